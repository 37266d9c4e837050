"""External signers: the bundle's Ed25519 signature made where the key lives (HSM, KMS, a signing
service), so that CI never holds the key (issue 11, finding 2; docs/operations.md).

A signer receives the canonical bytes of `signed` (compiler.trust.canonical_json) and returns the
64-byte Ed25519 signature, hex-encoded. Two transports:

- a command (`--signer-command "kms-sign --key reestr"`): the bytes on its standard input, the hex
  signature on its standard output, exit 0; run without a shell (the words split like a shell's);
- an HTTP service (`--signer-url https://signer.internal/sign`): `POST` with
  `Content-Type: application/octet-stream` and the bytes as body; the answer is
  `200` with `{"sig": "<hex>"}`. A bearer token, when needed, comes from the environment variable
  `REESTR_SIGNER_TOKEN`, never from the command line (which other processes can read).

Every signature is verified against the operator public key given with `--signer-public` before
it is used: a signer that answers with anything else stops the compile (SignerError), nothing is
written.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compiler.errors import CompilerError

TIMEOUT_SECONDS = 30.0
MAX_ANSWER = 4096


class SignerError(CompilerError):
    """The external signer failed, or answered with something that is not a valid signature."""

    code = "SIGNER-failed"


class _External:
    """Common part: the public key it must sign for, and the check of every answer."""

    def __init__(self, public: Ed25519PublicKey, name: str) -> None:
        self._public = public
        self.name = name

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        answer = self._ask(data)
        try:
            signature = bytes.fromhex(answer.strip())
        except ValueError:
            raise SignerError(f"{self.name}: the answer is not a hex signature") from None
        if len(signature) != 64:
            raise SignerError(f"{self.name}: expected a 64-byte Ed25519 signature, got {len(signature)} bytes")
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            raise SignerError(f"{self.name}: the signature does not verify with --signer-public "
                              "(another key, or other bytes signed)") from None
        return signature

    def _ask(self, data: bytes) -> str:
        raise NotImplementedError


class CommandSigner(_External):
    def __init__(self, command: str, public: Ed25519PublicKey) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise SignerError("--signer-command is empty")
        super().__init__(public, f"signer command {self.argv[0]}")

    def _ask(self, data: bytes) -> str:
        try:
            done = subprocess.run(self.argv, input=data, capture_output=True, timeout=TIMEOUT_SECONDS,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SignerError(f"{self.name}: {type(e).__name__}") from None
        if done.returncode != 0:
            raise SignerError(f"{self.name}: exit {done.returncode}")  # its stderr may hold secrets
        if len(done.stdout) > MAX_ANSWER:
            raise SignerError(f"{self.name}: answer longer than {MAX_ANSWER} bytes")
        try:
            return done.stdout.decode("ascii")
        except UnicodeDecodeError:
            raise SignerError(f"{self.name}: the answer is not a hex signature") from None


class HttpSigner(_External):
    def __init__(self, url: str, public: Ed25519PublicKey) -> None:
        if not url.startswith(("https://", "http://")):
            raise SignerError("--signer-url: expected an http(s) URL")
        super().__init__(public, "signer service")
        self.url = url

    def _ask(self, data: bytes) -> str:
        headers = {"Content-Type": "application/octet-stream", "Accept": "application/json"}
        token = os.environ.get("REESTR_SIGNER_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                body = response.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as e:
            raise SignerError(f"{self.name}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise SignerError(f"{self.name}: {type(e).__name__}: cannot reach it") from None
        if len(body) > MAX_ANSWER:
            raise SignerError(f"{self.name}: answer longer than {MAX_ANSWER} bytes")
        try:
            sig = json.loads(body)["sig"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise SignerError(f'{self.name}: expected {{"sig": "<hex>"}}') from None
        if not isinstance(sig, str):
            raise SignerError(f'{self.name}: expected {{"sig": "<hex>"}}')
        return sig

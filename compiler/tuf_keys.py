"""Signers and public keys for the TUF roles, through securesystemslib (issue 14).

A signer is named by a spec:

- a path to a PEM private key file (PKCS#8, Ed25519 as `reestr keygen` writes, or ECDSA / RSA):
  securesystemslib's CryptoSigner;
- `hsm:KEYID` or `hsm:KEYID?label=TOKEN`: a PKCS#11 token (securesystemslib's HSMSigner, ECDSA
  P-256/P-384). The module comes from `PYKCS11LIB` (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so),
  the user PIN from `REESTR_HSM_PIN`, never from the command line.

A public key is a PEM public key file, or the same `hsm:` spec (the key is read from the token).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib import parse

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner, HSMSigner, Key, Signature, Signer, SSlibKey

from compiler.errors import CompilerError

HSM_PIN_ENV = "REESTR_HSM_PIN"


class TufKeyError(CompilerError):
    """A key file or token could not be used as a TUF signer or public key."""


def _hsm(spec: str) -> tuple[int, str | None]:
    uri = parse.urlparse(spec)
    try:
        keyid = int(uri.path) if uri.path else HSMSigner.SCHEME_KEYID
    except ValueError:
        raise TufKeyError(f"{spec}: expected hsm:KEYID[?label=TOKEN]") from None
    return keyid, dict(parse.parse_qsl(uri.query)).get("label")


def _pin(_message: str) -> str:
    pin = os.environ.get(HSM_PIN_ENV)
    if not pin:
        raise TufKeyError(f"a PKCS#11 signer needs the token's user PIN in {HSM_PIN_ENV}")
    return pin


class _TokenSigner(HSMSigner):
    """HSMSigner whose failures (wrong PIN, token gone, key missing) are one clear TufKeyError."""

    def sign(self, payload: bytes) -> Signature:
        try:
            return super().sign(payload)
        except TufKeyError:
            raise
        except Exception as e:  # python-pkcs11 raises its own classes (PinIncorrect, NoSuchKey, ...)
            raise TufKeyError(f"PKCS#11 token: {type(e).__name__}: {e}") from e


def load_public(spec: str) -> Key:
    if spec.startswith("hsm:"):
        keyid, label = _hsm(spec)
        try:
            return HSMSigner.import_(keyid, label, _pin)[1]
        except TufKeyError:
            raise
        except Exception as e:  # ValueError, or python-pkcs11's own (no token, wrong PIN)
            raise TufKeyError(f"{spec}: {e}") from e
    try:
        pem = Path(spec).read_bytes()
    except OSError as e:
        raise TufKeyError(f"{spec}: {e.strerror}") from e
    try:
        return SSlibKey.from_crypto(serialization.load_pem_public_key(pem))
    except (ValueError, TypeError) as e:
        raise TufKeyError(f"{spec}: not a PEM public key of a supported type") from e


def load_signer(spec: str) -> Signer:
    if spec.startswith("hsm:"):
        keyid, label = _hsm(spec)
        public = load_public(spec)
        if not isinstance(public, SSlibKey):
            raise TufKeyError(f"{spec}: not an ECDSA key")
        return _TokenSigner(keyid, public, _pin, label)
    try:
        pem = Path(spec).read_bytes()
    except OSError as e:
        raise TufKeyError(f"{spec}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(pem, password=None)
        return CryptoSigner(key)
    except (ValueError, TypeError) as e:
        raise TufKeyError(f"{spec}: not a PEM private key without password of a supported type") from e

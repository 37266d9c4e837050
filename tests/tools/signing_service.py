"""A small Ed25519 signing service, as an operator would run in front of a KMS or an HSM.

`python signing_service.py KEY.pem [TOKEN]`: listens on 127.0.0.1 (a free port, printed as the
first line of stdout), answers `POST /sign` whose body is the bytes to sign with
`{"sig": "<hex>"}`; with TOKEN, only requests carrying `Authorization: Bearer TOKEN`. Used by the
external-signer tests of `reestr compile` (tests/compiler/test_signers.py); `sign` as the first
argument makes it the command signer instead (bytes on stdin, hex signature on stdout).
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key


def _key(path: str) -> Ed25519PrivateKey:
    key = load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def serve(key: Ed25519PrivateKey, token: str | None) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/sign":
                self.send_error(404)
                return
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                self.send_error(401)
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = json.dumps({"sig": key.sign(self.rfile.read(length)).hex()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        sys.stdout.write(_key(sys.argv[2]).sign(sys.stdin.buffer.read()).hex() + "\n")
    else:
        serve(_key(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)

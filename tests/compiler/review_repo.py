"""A real git repository holding a copy of the example registry, for plan/breaking tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

EXAMPLE = Path(__file__).resolve().parents[2] / "registry"
REESTR = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "reestr"
TODAY = "2026-11-25"


class Repo:
    """`root` is a git repository whose first commit is the example registry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(EXAMPLE, root / "registry")
        shutil.copytree(EXAMPLE.parent / "schemas", root / "schemas")
        self.git("init", "-q", "-b", "main")
        self.base = self.commit("example registry")

    def git(self, *args: str, day: str | None = None) -> str:
        env = {**os.environ, "GIT_COMMITTER_DATE": f"{day}T12:00:00Z", "GIT_AUTHOR_DATE": f"{day}T12:00:00Z"
               } if day else None
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=self.root, check=True, capture_output=True, text=True, env=env).stdout

    def commit(self, message: str, day: str | None = None) -> str:
        """Commit everything; `day` (YYYY-MM-DD) sets the commit's dates, as history-based R7 reads."""
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message, day=day)
        return self.git("rev-parse", "HEAD").strip()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def replace(self, rel: str, old: str, new: str) -> None:
        """Replace exactly one occurrence of `old` (a test edit that misses must fail loudly)."""
        text = self.path(rel).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
        self.path(rel).write_text(text.replace(old, new), encoding="utf-8")

    def write(self, rel: str, text: str) -> None:
        self.path(rel).parent.mkdir(parents=True, exist_ok=True)
        self.path(rel).write_text(text, encoding="utf-8")

    def remove(self, rel: str) -> None:
        self.path(rel).unlink()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real `reestr` console script, run in the repository."""
        return subprocess.run([str(REESTR), *args], cwd=self.root, capture_output=True, text=True,
                              check=False)


def new_certificate(cn: str) -> tuple[str, str]:
    """(PEM, SHA-256 hex of the DER) of a fresh self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2036, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            cert.fingerprint(hashes.SHA256()).hex())


def indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())

"""Issue 10, the compiler: findings 1 (templates), 13 (links and echoed values), 14 (certificate
PEM). Each case runs the real `reestr` console script on a copy of the example registry with one
hostile change; every case failed against the code before its fix."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.errors import PolicyFormatError
from proxy.policy import parse_policy
from tests.proxy.conftest import Pki, signed_bundle

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
KEY = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
SECRET_LINES = [line for line in KEY.splitlines() if "-----" not in line]


def reestr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REESTR, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100"})


def _template(reg: Path) -> None:
    svc = reg / "services" / "SID0003001.yaml"
    text = svc.read_text(encoding="utf-8")
    svc.write_text(text.replace("path: /applicants/search", "path: /applicants/{series}-{number}", 1),
                   encoding="utf-8")


def _key_linked(reg: Path) -> None:
    (reg.parent / "operator.key").write_text(KEY)
    (reg / "participants" / "leak.yaml").symlink_to(reg.parent / "operator.key")


def _key_copied(reg: Path) -> None:
    (reg / "participants" / "leak.yaml").write_text(KEY)


def _dangling(reg: Path) -> None:
    (reg / "consumers" / "ghost.yaml").symlink_to(reg.parent / "nowhere.yaml")


def _folder_linked(reg: Path) -> None:
    outside = reg.parent / "elsewhere"
    outside.mkdir()
    (outside / "ved9.yaml").write_text(KEY)
    (reg / "services" / "more").symlink_to(outside)


def _pem(change: Callable[[list[str], int, str], None]) -> Callable[[Path], None]:
    def apply(reg: Path) -> None:
        doc = reg / "participants" / "ved1.yaml"
        lines = doc.read_text(encoding="utf-8").splitlines()
        begin = next(i for i, ln in enumerate(lines) if "-----BEGIN CERTIFICATE-----" in ln)
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        change(lines, begin, indent)
        doc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return apply


def _garbage_before(lines: list[str], begin: int, indent: str) -> None:
    lines.insert(begin, indent + "subject=CN=somebody else")


def _garbage_after(lines: list[str], begin: int, indent: str) -> None:
    end = next(i for i in range(begin, len(lines)) if "-----END CERTIFICATE-----" in lines[i])
    lines.insert(end + 1, indent + "trailing text")


def _two_certificates(lines: list[str], begin: int, indent: str) -> None:
    end = next(i for i in range(begin, len(lines)) if "-----END CERTIFICATE-----" in lines[i])
    lines[end + 1:end + 1] = lines[begin:end + 1]


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "finding-01-two-parameters-in-a-segment": (_template, "OP-path-template"),
    "finding-13-private-key-linked": (_key_linked, "PATH-symlink"),
    "finding-13-private-key-copied-not-echoed": (_key_copied, "SCHEMA-type"),
    "finding-13-dangling-link-reported": (_dangling, "PATH-symlink"),
    "finding-13-folder-linked-out": (_folder_linked, "PATH-symlink"),
    "finding-14-garbage-before-pem": (_pem(_garbage_before), "CERT-invalid"),
    "finding-14-garbage-after-pem": (_pem(_garbage_after), "CERT-invalid"),
    "finding-14-two-certificates": (_pem(_two_certificates), "CERT-invalid"),
}


@pytest.mark.parametrize(("change", "code"), CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("command", ["validate", "compile"])
def test_registry_refused_without_echo(tmp_path: Path, change: Callable[[Path], None], code: str,
                                       command: str) -> None:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    change(tmp_path / "registry")
    if command == "validate":
        done = reestr("validate", "registry", cwd=tmp_path)
    else:
        assert reestr("keygen", "--out", "op", cwd=tmp_path).returncode == 0
        done = reestr("compile", "registry", "--key", "op.key", "--out", "dist", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert code in out
    assert not any(line in out for line in SECRET_LINES)  # not one line of the key's body
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_finding_01_sidecar_refuses_a_bundle_with_a_backtracking_template(pki: Pki) -> None:
    signed = copy.deepcopy(signed_bundle(pki))
    signed["services"]["SID0003001"]["operations"]["op9"] = {"method": "GET",
                                                              "path": "/reports/{series}-{number}"}
    with pytest.raises(PolicyFormatError, match="parameter"):
        parse_policy(signed)

"""`spec.signing_certificates` (R11): a GOST certificate loads, is validated with file:line, and
reaches the bundles of the providers the participant calls — and no other bundle."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree

from compiler import bundle, trust
from compiler.registry import load_directory
from proxy.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
SMEV3 = ROOT / "tests/data/real/gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"
SIGNER = "6be7d2a758e3aee471ebd8f0f48c7874d1479b6702936d75b0586c6a146bf1ae"  # SHA-256 of its DER
ISSUED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


SMEV2 = ROOT / "tests/data/real/CodeInside__siu/gws-crypto-cryptopro/src/test/resources/smev-2.xml"


def _gost_pem(path: Path = SMEV3) -> str:
    (el,) = etree.parse(str(path)).getroot().iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate",
                                                  "{*}BinarySecurityToken")
    body = base64.b64encode(base64.b64decode(el.text)).decode()
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(body, 64)) + "\n-----END CERTIFICATE-----\n"


def _add(root: Path, pid: str, pem: str) -> None:
    path = root / "participants" / f"{pid}.yaml"
    block = "  signing_certificates:\n    - note: ЭП-ОВ\n      pem: |\n" + textwrap.indent(pem, " " * 8)
    text = path.read_text(encoding="utf-8").replace("  sidecar:", block + "  sidecar:", 1)
    path.write_text(text, encoding="utf-8")


def _registry(tmp: Path, pem: str) -> Path:
    root = tmp / "registry"
    shutil.copytree(ROOT / "registry", root)
    shutil.copytree(ROOT / "schemas", tmp / "schemas")
    _add(root, "ved4", pem)
    return root


def _compiled(root: Path) -> dict[str, dict[str, Any]]:
    registry = load_directory(root)
    assert registry.problems == []
    info = bundle.BuildInfo(serial=5, issued_at=ISSUED, expires_at=ISSUED + timedelta(hours=6), commit=None)
    files = bundle.build(registry, info, [KEY])
    return {name.removesuffix(".json"): trust.verify_envelope(
        data, [KEY.public_key()], now=ISSUED,
        expected_type=trust.INDEX_TYPE if name == "index.json" else trust.BUNDLE_TYPE).signed
        for name, data in files.items()}


def test_gost_signing_certificate_reaches_the_provider(tmp_path: Path) -> None:
    bundles = _compiled(_registry(tmp_path, _gost_pem()))
    provider = bundles["ved3"]  # owner of SID0003003, which ved4 calls
    assert provider["signing_certificates"][SIGNER]["participant"] == "ved4"
    assert provider["services"]["SID0003003"]["callers"]["ved4"]["signing_certificates"] == [SIGNER]
    assert SIGNER not in provider["certificates"]  # a signing certificate is not a TLS identity
    assert "signing_certificates" not in bundles["ved1"]
    policy = parse_policy(provider)
    caller = policy.services["SID0003003"].callers["ved4"]
    assert set(caller.signing_certificates) == {SIGNER}
    assert SIGNER not in policy.certificates


def _validate(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from compiler.cli import main; main()", "validate", str(root)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("pem", "code"), [
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "CERT-invalid"),
    (None, "CERT-expired"),
], ids=["unreadable", "expired-real-gost"])
def test_validation_points_at_the_line(tmp_path: Path, pem: str | None, code: str) -> None:
    root = _registry(tmp_path, pem or _gost_pem())
    lines = (root / "participants" / "ved4.yaml").read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "pem: |" and
                lines[i - 3].strip() == "signing_certificates:")
    done = _validate(root)
    hits = [x for x in (done.stdout + done.stderr).splitlines() if code in x]
    assert hits and "participants/ved4.yaml:" in hits[0], done.stdout + done.stderr
    assert f"ved4.yaml:{line}:" in hits[0] or f"ved4.yaml:{line + 1}:" in hits[0], hits[0]


def test_providers_signing_certificate_reaches_its_consumers(tmp_path: Path) -> None:
    """ved3 signs its answers: ved4, which calls SID0003003, gets ved3's certificate to check them."""
    root = _registry(tmp_path, _gost_pem())
    _add(root, "ved3", _gost_pem(SMEV2))
    bundles = _compiled(root)
    grant = bundles["ved4"]["grants"]["SID0003003"]
    (theirs,) = grant["provider_signing_certificates"]
    assert bundles["ved4"]["signing_certificates"][theirs]["participant"] == "ved3"
    assert set(parse_policy(bundles["ved4"]).grants["SID0003003"].provider_signing_certificates) == {theirs}

"""`reestr-sidecar verify-message` on the real signed messages, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3 = REAL / "gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"
CRYPTOPRO = REAL / "CodeInside__siu/gws-crypto-cryptopro/src/test/resources"
MVVACT = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact"
SMEV3_SIGNER = "6be7d2a758e3aee471ebd8f0f48c7874d1479b6702936d75b0586c6a146bf1ae"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", "verify-message", *args],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("path", "at", "code", "expect"), [
    (SMEV3, "2020-05-20T10:00:00+03:00", 0, "SenderProvidedRequestData#SIGNED_BY_CONSUMER"),
    (CRYPTOPRO / "smev-2.xml", "2012-09-14", 0, "covers Body#body"),
    (MVVACT / "putData/request.xml", "2012-09-14", 0, "covers Body#putData"),
    (CRYPTOPRO / "smev-1.xml", "2012-09-14", 1, "signature-invalid: the digest of #body does not match"),
    (CRYPTOPRO / "modified-smev-3.xml", "2012-09-14", 1, "signature-invalid"),
    (SMEV3, "2026-01-01", 1, "signature-certificate-expired"),
], ids=["smev3-valid", "smev2-valid", "mvvact-valid", "smev-1-refused", "re-indented-refused", "expired-now"])
def test_verify_message(path: Path, at: str, code: int, expect: str) -> None:
    done = run(str(path), "--at", at)
    assert done.returncode == code, done.stdout + done.stderr
    assert expect in done.stdout


def test_lines_name_algorithm_and_signer() -> None:
    done = run(str(SMEV3), "--at", "2020-05-20")
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("CallerInformationSystemSignature")]
    assert "gostr34102012-gostr34112012-256" in line and f"sha256={SMEV3_SIGNER}" in line
    assert line.endswith("; valid")


@pytest.mark.parametrize(("registered", "code", "expect"), [
    ({SMEV3_SIGNER: {"participant": "mo-arch"}}, 0, "(registered to mo-arch)"),
    ({"00" * 32: {"participant": "other"}}, 1, "signature-wrong-signer"),
], ids=["registered-signer", "unregistered-signer"])
def test_with_bundle(tmp_path: Path, registered: dict[str, object], code: int, expect: str) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"signatures": [], "signed": {"signing_certificates": registered}}))
    done = run(str(SMEV3), "--at", "2020-05-20", "--bundle", str(bundle))
    assert done.returncode == code, done.stdout + done.stderr
    assert expect in done.stdout


@pytest.mark.parametrize(("content", "extra"), [
    (None, []), (b"<a", []), (b"<a/>", []), (b"<?xml version='1.0'?><!DOCTYPE a []><a/>", []),
    (SMEV3.read_bytes(), ["--at", "yesterday"]), (SMEV3.read_bytes(), ["--bundle", "/nonexistent/b.json"]),
], ids=["missing-file", "not-well-formed", "not-soap", "doctype", "bad-time", "missing-bundle"])
def test_unreadable_input_exits_2(tmp_path: Path, content: bytes | None, extra: list[str]) -> None:
    path = tmp_path / "m.xml"
    if content is not None:
        path.write_bytes(content)
    done = run(str(path), *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("reestr-sidecar: ")


def test_unsigned_message_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "m.xml"
    path.write_text('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body>'
                    "</s:Envelope>")
    done = run(str(path))
    assert done.returncode == 1
    assert "no signature" in done.stdout

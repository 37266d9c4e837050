"""Signing SMEV 3 messages (proxy.soap.signing) and the OpenSSL cross-checks: what reestr signs
verifies in OpenSSL's GOST engine, what OpenSSL signs verifies in reestr."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from proxy.soap.gost import certs, curves, hashes
from proxy.soap.gost.keys import SigningKeyError, load_private_key
from proxy.soap.message import read_message
from proxy.soap.signatures import check_signatures, verdict
from proxy.soap.signing import CommandSigner, KeyFileSigner, SigningError, sign_smev3
from tests.proxy.gost_pki import GostPki

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3 = REAL / "gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"


def _unsigned() -> etree._Element:
    root = etree.fromstring(SMEV3.read_bytes())
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.getparent().remove(holder)
    return root


def _check(root: etree._Element, signers: dict[str, object] | None = None) -> str:
    data = etree.tostring(root, encoding="utf-8")
    message = read_message(data, "text/xml; charset=utf-8", [], "smev3")
    results = check_signatures(message, "smev3", client_certificate=b"", signers=signers, at=datetime.now(UTC))
    return verdict(results).status


@pytest.mark.parametrize(("algorithm", "paramset"), [("gost2012_256", "A"), ("gost2012_256", "B"),
                                                     ("gost2012_512", "A")],
                         ids=["2012-256-A", "2012-256-B", "2012-512-A"])
def test_key_file_signer_round_trip(gost_pki: GostPki, algorithm: str, paramset: str) -> None:
    me = gost_pki.issue(f"signer-{algorithm}-{paramset}", algorithm, paramset)
    signer = KeyFileSigner.load(me.key, me.der)
    root = _unsigned()
    sign_smev3(root, signer)
    fp = certs.read(me.der).sha256
    assert _check(root, {fp: object()}) == "valid"
    assert _check(root, {"00" * 32: object()}) == "wrong-signer"
    (number,) = root.xpath("//*[local-name()='ExpertiseResultNumber']")
    number.text = "changed"
    assert _check(root, {fp: object()}) == "invalid"


def test_command_signer(gost_pki: GostPki, tmp_path: Path) -> None:
    """An external signer: a program that reads SignedInfo and prints the base64 signature."""
    me = gost_pki.issue("external")
    script = tmp_path / "sign.py"
    script.write_text(
        "import base64, sys\nfrom pathlib import Path\nfrom proxy.soap.signing import KeyFileSigner\n"
        f"s = KeyFileSigner.load(Path({str(me.key)!r}), Path({str(me.cert_pem)!r}).read_bytes() and "
        f"base64.b64decode({base64.b64encode(me.der).decode()!r}))\n"
        "sys.stdout.write(base64.b64encode(s.sign(sys.stdin.buffer.read())).decode())\n")
    signer = CommandSigner(certificate=me.der, method=KeyFileSigner.load(me.key, me.der).method,
                           argv=(sys.executable, str(script)))
    root = _unsigned()
    sign_smev3(root, signer)
    assert _check(root, {certs.read(me.der).sha256: object()}) == "valid"
    failing = CommandSigner(certificate=me.der, method=signer.method, argv=(sys.executable, "-c", "exit(3)"))
    with pytest.raises(SigningError, match="exited 3"):
        sign_smev3(_unsigned(), failing)


def test_key_must_match_certificate(gost_pki: GostPki) -> None:
    a, b = gost_pki.issue("a-key"), gost_pki.issue("b-key")
    with pytest.raises(SigningError, match="does not belong"):
        KeyFileSigner.load(a.key, b.der)


@pytest.mark.parametrize("content", [b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                                     b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n"],
                         ids=["empty", "not-pkcs8", "not-base64"])
def test_bad_key_files(content: bytes) -> None:
    with pytest.raises(SigningKeyError) as caught:
        load_private_key(content)
    assert "AAAA" not in str(caught.value)


def test_openssl_signature_verifies_in_reestr(gost_pki: GostPki, tmp_path: Path) -> None:
    me = gost_pki.issue("openssl-signs")
    data = tmp_path / "data"
    data.write_bytes(b"signed by OpenSSL")
    signature = gost_pki.openssl("dgst", "-engine", "gost", "-md_gost12_256", "-sign", str(me.key), str(data))
    cert = certs.read(me.der)
    digest = hashes.DIGESTS[hashes.STREEBOG_256](data.read_bytes())
    assert curves.verify(cert.curve, cert.public, digest, signature)
    assert not curves.verify(cert.curve, cert.public, hashes.DIGESTS[hashes.STREEBOG_256](b"other"), signature)


def test_reestr_signature_verifies_in_openssl(gost_pki: GostPki, tmp_path: Path) -> None:
    me = gost_pki.issue("reestr-signs")
    data = tmp_path / "data"
    data.write_bytes(b"signed by reestr")
    _, curve, d = load_private_key(me.key.read_bytes())
    sig = tmp_path / "sig"
    sig.write_bytes(curves.sign(curve, d, hashes.DIGESTS[hashes.STREEBOG_256](data.read_bytes())))
    pub = tmp_path / "pub.pem"
    pub.write_bytes(gost_pki.openssl("x509", "-in", str(me.cert_pem), "-pubkey", "-noout"))
    out = gost_pki.openssl("dgst", "-engine", "gost", "-md_gost12_256", "-verify", str(pub), "-signature",
                           str(sig), str(data))
    assert b"Verified OK" in out
    data.write_bytes(b"changed")
    with pytest.raises(AssertionError, match="failed"):
        gost_pki.openssl("dgst", "-engine", "gost", "-md_gost12_256", "-verify", str(pub), "-signature",
                         str(sig), str(data))


def test_openssl_streebog_and_gost94_match_reestr(gost_pki: GostPki, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(SMEV3.read_bytes())
    for flag, uri in (("-md_gost12_256", hashes.STREEBOG_256), ("-md_gost12_512", hashes.STREEBOG_512),
                      ("-md_gost94", hashes.GOST94)):
        out = gost_pki.openssl("dgst", "-engine", "gost", flag, "-binary", str(data))
        assert out == hashes.DIGESTS[uri](data.read_bytes()), flag

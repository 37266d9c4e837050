"""Signatures in the SOAP Header made by reestr (proxy.soap.header_signing, proxy.soap.authorship):
SMEV 2 WS-Security with GOST R 34.10-2012 (keys by OpenSSL's GOST engine) and plain XMLDSig with
RSA / ECDSA; each verifies with the verifier of its profile, and each hostile change is refused.
Replay ids of SMEV 2 and plain messages (proxy.replay.identity)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from proxy.replay import Identity, ReplayGuard, identity
from proxy.soap import authorship
from proxy.soap.errors import MessageError
from proxy.soap.gost import certs
from proxy.soap.header_signing import PemSigner
from proxy.soap.message import read_message
from proxy.soap.signing import KeyFileSigner, SigningError
from proxy.soap.verdict import SignatureResult
from tests.proxy.gost_pki import GostPki

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
PUT_DATA = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact/putData/request.xml"
SOAP11 = "{http://schemas.xmlsoap.org/soap/envelope/}"


def _pem_signer(tmp_path: Path, kind: str, name: str = "x") -> PemSigner:
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(
        public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    path = tmp_path / f"{name}-{kind}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return PemSigner.load(path)


def unsigned_smev2(age: dt.timedelta | None = dt.timedelta(0)) -> etree._Element:
    """The real mvvact putData request, its (2001, expired) signature removed, dated `age` ago
    (None: its smev:Date removed)."""
    root = etree.fromstring(PUT_DATA.read_bytes())
    root.remove(root.find(f"{SOAP11}Header"))
    (when,) = root.xpath("//*[local-name()='Message']/*[local-name()='Date']")
    if age is None:
        when.getparent().remove(when)
    else:
        when.text = (dt.datetime.now(dt.UTC) - age).isoformat()
    return root


def _check(root: etree._Element, profile: str, certificate: bytes = b"",
           signers: dict[str, object] | None = None) -> SignatureResult:
    message = read_message(etree.tostring(root), "text/xml; charset=utf-8", [], profile)  # type: ignore[arg-type]
    return authorship.check(message, profile, certificate=certificate, signers=signers,
                            at=dt.datetime.now(dt.UTC))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gost(gost_pki: GostPki) -> dict[str, KeyFileSigner]:
    out = {}
    for name, algorithm in (("a", "gost2012_256"), ("b", "gost2012_256"), ("a512", "gost2012_512")):
        who = gost_pki.issue(f"smev2-{name}", algorithm)
        out[name] = KeyFileSigner.load(who.key, who.der)
    return out


@pytest.mark.parametrize("name", ["a", "a512"], ids=["2012-256", "2012-512"])
def test_smev2_signed_by_reestr_verifies(gost: dict[str, KeyFileSigner], name: str) -> None:
    root = unsigned_smev2()
    made = authorship.sign(root, "smev2", gost[name])
    fp = certs.read(gost[name].certificate).sha256
    result = _check(root, "smev2", signers={fp: object()})
    assert (result.status, result.signer, result.algorithm, result.covers) == ("valid", fp, made.algorithm, (
        "Body#putData",))
    assert made.journal == result.journal
    assert authorship.already_signed(root, "smev2")


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_plain_signed_by_reestr_verifies(tmp_path: Path, kind: str) -> None:
    signer = _pem_signer(tmp_path, kind)
    root = unsigned_smev2()
    made = authorship.sign(root, "plain", signer)
    result = _check(root, "plain", certificate=signer.certificate)
    assert result.status == "valid", result.detail
    assert made.journal == result.journal == (
        f"valid {signer.method} {hashlib.sha256(signer.certificate).hexdigest()}")


def _change_body(root: etree._Element) -> None:
    (when,) = root.xpath("//*[local-name()='Message']/*[local-name()='ServiceName']")
    when.text = "Other"


def _second_body_child(root: etree._Element) -> None:
    root.find(f"{SOAP11}Body").append(etree.fromstring('<x:more xmlns:x="urn:x"/>'))


def _signature_value(root: etree._Element) -> None:
    (value,) = root.xpath("//*[local-name()='SignatureValue']")
    value.text = "A" + value.text[1:] if value.text[0] != "A" else "B" + value.text[1:]


def _body_id_twice(root: etree._Element) -> None:
    (body,) = root.xpath("//*[local-name()='Body']")
    dup = etree.SubElement(root.find(f"{SOAP11}Header"), "decoy")
    dup.set("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id",
            next(v for k, v in body.attrib.items() if k.endswith("Id")))


BROKEN: list[tuple[str, Callable[[etree._Element], None], str]] = [
    ("changed-after-signing", _change_body, "invalid"),
    ("second-payload-beside", _second_body_child, "malformed"),
    ("signature-value-changed", _signature_value, "invalid"),
    ("body-id-twice", _body_id_twice, "invalid"),
]


@pytest.mark.parametrize(("profile", "name", "breaks", "status"),
                         [(p, *b) for p in ("smev2", "plain") for b in BROKEN],
                         ids=[f"{p}-{b[0]}" for p in ("smev2", "plain") for b in BROKEN])
def test_hostile_changes_to_signed_messages(tmp_path: Path, gost: dict[str, KeyFileSigner], profile: str,
                                            name: str, breaks: Callable[[etree._Element], None],
                                            status: str) -> None:
    signer = gost["a"] if profile == "smev2" else _pem_signer(tmp_path, "ec")
    root = unsigned_smev2()
    authorship.sign(root, profile, signer)  # type: ignore[arg-type]
    breaks(root)
    signers: dict[str, object] = {certs.read(gost["a"].certificate).sha256: object()}
    if status == "malformed":  # the message layer refuses it before any signature is looked at
        with pytest.raises(MessageError):
            _check(root, profile, certificate=signer.certificate, signers=signers)
        return
    result = _check(root, profile, certificate=signer.certificate, signers=signers)
    assert result.status == status, result.detail


def test_signed_by_someone_else(tmp_path: Path, gost: dict[str, KeyFileSigner]) -> None:
    root = unsigned_smev2()
    authorship.sign(root, "smev2", gost["b"])
    assert _check(root, "smev2", signers={certs.read(gost["a"].certificate).sha256: object()}).status == "wrong-signer"
    mine, theirs = _pem_signer(tmp_path, "ec", "mine"), _pem_signer(tmp_path, "ec", "theirs")
    root = unsigned_smev2()
    authorship.sign(root, "plain", theirs)
    assert _check(root, "plain", certificate=mine.certificate).status == "invalid"


@pytest.mark.parametrize(("profile", "method"), [("smev2", "ec"), ("plain", "gost")],
                         ids=["smev2-with-ecdsa", "plain-with-gost"])
def test_wrong_kind_of_key_does_not_sign(tmp_path: Path, gost: dict[str, KeyFileSigner], profile: str,
                                         method: str) -> None:
    signer = gost["a"] if method == "gost" else _pem_signer(tmp_path, "ec")
    with pytest.raises(SigningError):
        authorship.sign(unsigned_smev2(), profile, signer)  # type: ignore[arg-type]
    with pytest.raises(SigningError):
        authorship.sign(unsigned_smev2(), profile, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("content", [b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
                         ids=["empty", "certificate-without-key"])
def test_bad_pem_bundles(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bundle.pem"
    path.write_bytes(content)
    with pytest.raises(SigningError):
        PemSigner.load(path)


def test_pem_key_must_match_its_certificate(tmp_path: Path) -> None:
    _pem_signer(tmp_path, "ec", "a")
    _pem_signer(tmp_path, "ec", "b")
    a, b = tmp_path / "a-ec.pem", tmp_path / "b-ec.pem"
    key_a = a.read_bytes().split(b"-----BEGIN CERTIFICATE-----")[0]
    cert_b = b"-----BEGIN CERTIFICATE-----" + b.read_bytes().split(b"-----BEGIN CERTIFICATE-----")[1]
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(key_a + cert_b)
    with pytest.raises(SigningError, match="does not belong"):
        PemSigner.load(mixed)
    assert "PRIVATE" not in repr(PemSigner.load(a))


# --- replay ids of SMEV 2 and plain messages ----------------------------------------------------


def _signed_identity(gost: dict[str, KeyFileSigner], age: dt.timedelta | None) -> tuple[etree._Element, Identity]:
    root = unsigned_smev2(age)
    authorship.sign(root, "smev2", gost["a"])
    message = read_message(etree.tostring(root), "text/xml", [], "smev2")
    return root, identity(message, _check(root, "smev2"))


@pytest.mark.parametrize(("age", "reason"), [
    (dt.timedelta(0), None), (dt.timedelta(hours=1), "replayed-message"), (-dt.timedelta(hours=1), "replayed-message"),
    (None, "replayed-message"),
], ids=["now", "smev2-too-old", "smev2-from-the-future", "smev2-without-date"])
def test_smev2_replay_window(gost: dict[str, KeyFileSigner], age: dt.timedelta | None, reason: str | None) -> None:
    _, who = _signed_identity(gost, age)
    assert who.key is not None  # the signature verified: the id is known, only the time decides
    now = dt.datetime.now(dt.UTC)
    assert ReplayGuard(dt.timedelta(minutes=15)).check_identity("SID1", who, now) == reason


def test_smev2_replay_id_is_the_signing_act(gost: dict[str, KeyFileSigner]) -> None:
    """The same capture re-sent is the same id; the author signing the same content again is a new one."""
    now = dt.datetime.now(dt.UTC)
    root, first = _signed_identity(gost, dt.timedelta(0))
    again = identity(read_message(etree.tostring(root), "text/xml", [], "smev2"), _check(root, "smev2"))
    _, other = _signed_identity(gost, dt.timedelta(0))
    assert first == again and first.key != other.key
    assert first.key is not None and first.key.startswith("sig-sha256:")
    guard = ReplayGuard(dt.timedelta(minutes=15))
    guard.remember("SID1", first.key, now)
    assert guard.check_identity("SID1", again, now) == "replayed-message"
    assert guard.check_identity("SID1", other, now) is None


@pytest.mark.parametrize("profile", ["smev2", "plain"])
def test_a_body_id_carried_twice_is_not_signed(tmp_path: Path, gost: dict[str, KeyFileSigner], profile: str) -> None:
    """reestr does not sign what its own verifier would refuse as wrapping."""
    root = unsigned_smev2()
    body = root.find(f"{SOAP11}Body")
    body.set("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id", "twice")
    etree.SubElement(body[0], "decoy", Id="twice")
    signer = gost["a"] if profile == "smev2" else _pem_signer(tmp_path, "ec")
    with pytest.raises(SigningError, match="not unique"):
        authorship.sign(root, profile, signer)  # type: ignore[arg-type]

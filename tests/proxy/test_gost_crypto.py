"""GOST primitives (proxy.soap.gost): digests against OpenSSL's GOST provider and known vectors,
curve arithmetic round trips and tampering, certificates of the real SMEV messages."""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from proxy.soap.gost import certs, curves, gost94, hashes, transform
from tests.proxy.conftest import Pki

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3_REQUEST = REAL / "gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"
CRYPTOPRO = REAL / "CodeInside__siu/gws-crypto-cryptopro/src/test/resources"

needs_openssl = pytest.mark.skipif(hashes.BACKEND != "openssl",
                                   reason="OpenSSL's GOST provider (libengine-gost-openssl) is not installed")


@pytest.mark.parametrize("size", [1, 31, 32, 33, 64, 100, 1000, 6000], ids=lambda n: f"{n}B")
@needs_openssl
def test_gost94_matches_openssl(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert gost94.digest(data) == hashes.DIGESTS[hashes.GOST94](data)


def test_gost94_known_vectors() -> None:
    """RFC 5831 / GOST R 34.11-94 CryptoPro test vectors (hex of the digest as usually printed)."""
    assert gost94.digest(b"").hex() == "981e5f3ca30c841487830f84fb433e13ac1101569b9c13584ac483234cd656c0"
    assert gost94.digest(b"a").hex() == "e74c52dd282183bf37af0079c9f78055715a103f17e3133ceff1aacf2f403011"


@needs_openssl
def test_streebog_known_vector() -> None:
    """GOST R 34.11-2012 example 1 (the 63-byte message), digest as printed (reversed bytes)."""
    assert hashes.DIGESTS[hashes.STREEBOG_256](b"012345678901234567890123456789012345678901234567890123456789012") \
        .hex() == "9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500"


@pytest.mark.parametrize("oid", sorted(curves.CURVES), ids=lambda o: o)
def test_sign_verify_round_trip(oid: str) -> None:
    c = curves.CURVES[oid]
    assert c.on_curve(c.x, c.y)
    assert curves._double_mul(c, c.q, (c.x, c.y), 0, (c.x, c.y))[2] == 0  # q·G = O: q is the order
    d = random.Random(oid).randrange(1, c.q)
    public = curves.public_key(c, d)
    digest = os.urandom(c.size)
    signature = curves.sign(c, d, digest)
    assert curves.verify(c, public, digest, signature)
    assert not curves.verify(c, public, bytes([digest[0] ^ 1]) + digest[1:], signature)
    assert not curves.verify(c, public, digest, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not curves.verify(c, curves.public_key(c, d + 1), digest, signature)


@pytest.mark.parametrize("bad", ["short", "zero-r", "r-too-big", "off-curve"], ids=str)
def test_verify_refuses_malformed_input(bad: str) -> None:
    c = curves.CURVES["1.2.643.7.1.2.1.1.1"]
    public = curves.public_key(c, 12345)
    digest = b"\x01" * 32
    signature = curves.sign(c, 12345, digest)
    if bad == "short":
        signature = signature[:-1]
    elif bad == "zero-r":
        signature = signature[:32] + bytes(32)
    elif bad == "r-too-big":
        signature = signature[:32] + c.q.to_bytes(32, "big")
    else:
        public = (public[0], public[1] + 1)
    assert not curves.verify(c, public, digest, signature)


def _token_certificates(path: Path) -> list[bytes]:
    root = etree.parse(str(path)).getroot()
    return [base64.b64decode(el.text) for el in root.iter("{*}BinarySecurityToken", "{*}X509Certificate")]


@pytest.mark.parametrize(("path", "algorithm"), [
    (SMEV3_REQUEST, "1.2.643.7.1.1.1.1"), (CRYPTOPRO / "smev-2.xml", "1.2.643.2.2.19")],
    ids=["smev3-gost2012-256", "smev2-gost2001"])
def test_real_certificates_load(path: Path, algorithm: str) -> None:
    (der,) = _token_certificates(path)
    cert = certs.read(der)
    assert cert.key_algorithm == algorithm
    assert cert.curve.on_curve(*cert.public)
    assert cert.not_before < cert.not_after
    assert cert.subject.count("CN=") == 1


@pytest.mark.parametrize("mutate", ["truncated", "trailing", "not-der", "rsa"], ids=str)
def test_unreadable_certificates_are_refused(mutate: str, pki: Pki) -> None:
    (der,) = _token_certificates(SMEV3_REQUEST)
    bad = {"truncated": der[:-10], "trailing": der + b"\x00", "not-der": b"\x30\x03abc",
           "rsa": pki.ca_cert.public_bytes(Encoding.DER)}[mutate]
    with pytest.raises(certs.CertificateError):
        certs.read(bad)


def test_smev_transform_reproduces_the_real_digest() -> None:
    root = etree.parse(str(SMEV3_REQUEST)).getroot()
    (signed,) = root.xpath("//*[@Id='SIGNED_BY_CONSUMER']")
    (value,) = root.iter("{http://www.w3.org/2000/09/xmldsig#}DigestValue")
    out = transform.apply(signed)
    assert out.startswith(b'<ns1:SenderProvidedRequestData xmlns:ns1="urn://x-artefacts-smev-gov-ru/services/')
    assert base64.b64encode(hashes.DIGESTS[hashes.STREEBOG_256](out)).decode() == value.text


@pytest.mark.parametrize(("xml", "expected"), [
    ('<a xmlns="u"> <b/> </a>', '<ns1:a xmlns:ns1="u"><ns1:b></ns1:b></ns1:a>'),
    ('<p:a xmlns:p="u" xmlns:q="unused">t</p:a>', '<ns1:a xmlns:ns1="u">t</ns1:a>'),
    ('<a z="1" xmlns:p="v" p:y="2" b="3"/>', '<a xmlns:ns1="v" ns1:y="2" b="3" z="1"></a>'),
    ('<a xmlns="u"><b xmlns="v"/><c xmlns="v"/></a>',
     '<ns1:a xmlns:ns1="u"><ns2:b xmlns:ns2="v"></ns2:b><ns3:c xmlns:ns3="v"></ns3:c></ns1:a>'),
    ('<a>x &amp; &lt;y&gt;<!--c--></a>', '<a>x &amp; &lt;y&gt;</a>'),
], ids=["whitespace-and-default-ns", "unused-ns-dropped", "attribute-order", "subtree-scope", "escaping"])
def test_smev_transform_rules(xml: str, expected: str) -> None:
    assert transform.apply(etree.fromstring(xml)).decode() == expected

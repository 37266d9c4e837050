"""Cost of one R11 signature check (`proxy.soap.signatures.check_soap_signature`), in µs per check.

    .venv/bin/python bench/signature_bench.py [N]

Signs a small SOAP 1.1 envelope (Body by Id, detached signature in the Header, exclusive c14n)
with RSA-2048/SHA-256 and with ECDSA P-256/SHA-256, then checks each N times (default 500), and
also times the cheap refusals (no signature; GOST) and a bare ECDSA verify as the machine's
baseline. Prints one line per case.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped]
from signxml import methods
from signxml.signer import XMLSigner

from proxy.soap.message import read_message
from proxy.soap.signatures import check_soap_signature

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
GOST = (Path(__file__).resolve().parents[1] / "tests/data/real/CodeInside__siu/gws-core/src/test/resources"
        / "mvvact/putData/request.xml")


def _cert(key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))


def _signed(key: Any, cert: x509.Certificate, algorithm: str) -> bytes:
    root = etree.fromstring(f'<s:Envelope xmlns:s="{SOAP}" xmlns:t="urn:test"><s:Header/>'
                            f'<s:Body Id="b"><t:GetStatus><t:Id>42</t:Id></t:GetStatus></s:Body>'
                            f'</s:Envelope>')
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    sig = XMLSigner(method=methods.detached, signature_algorithm=algorithm, digest_algorithm="sha256",
                    c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#").sign(
        root, key=pem, cert=cert.public_bytes(serialization.Encoding.PEM).decode(), reference_uri="#b")
    root.find(f"{{{SOAP}}}Header").append(sig)
    return bytes(etree.tostring(root))


def _time(label: str, body: bytes, der: bytes, n: int) -> None:
    """The check on the message layer's one parse (parsing itself is not part of the figure)."""
    message = read_message(body, "text/xml", [], "plain")
    status = check_soap_signature(message, der).status
    start = time.perf_counter()
    for _ in range(n):
        check_soap_signature(message, der)
    per = (time.perf_counter() - start) / n * 1e6
    print(f"{label:<28} {status:<12} {per:8.1f} µs/check  ({len(body)} bytes, n={n})")


def _baseline(n: int) -> None:
    """The bare public-key operation, to read the figures above against (the machine may be loaded)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
    start = time.perf_counter()
    for _ in range(n):
        key.public_key().verify(sig, b"x" * 200, ec.ECDSA(hashes.SHA256()))
    print(f"{'bare ecdsa p-256 verify':<28} {'':<12} {(time.perf_counter() - start) / n * 1e6:8.1f} µs/check")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_cert, ec_cert = _cert(rsa_key), _cert(ec_key)
    rsa_der, ec_der = (c.public_bytes(serialization.Encoding.DER) for c in (rsa_cert, ec_cert))
    _time("rsa-2048 sha256", _signed(rsa_key, rsa_cert, "rsa-sha256"), rsa_der, n)
    _time("ecdsa p-256 sha256", _signed(ec_key, ec_cert, "ecdsa-sha256"), ec_der, n)
    _time("absent", f'<s:Envelope xmlns:s="{SOAP}"><s:Body><t:A xmlns:t="urn:t"/></s:Body></s:Envelope>'.encode(),
          ec_der, n)
    with open(GOST, "rb") as f:
        _time("gost (smev2 sample)", f.read(), ec_der, n)
    _baseline(n)


if __name__ == "__main__":
    main()

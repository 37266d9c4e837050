"""Make a small demo PKI: one CA, a client certificate per participant, a server certificate.

Used once to create the committed example certificates (`demo/pki/`) and by tests that need fresh
ones. Demo keys are published on purpose: never use them outside the example.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "RU"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reestr demo"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(cn: str = "reestr demo CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, *, server: bool = False,
          not_before: dt.datetime = NOT_BEFORE, not_after: dt.datetime = NOT_AFTER,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                   critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(cn), x509.DNSName("localhost"),
             x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pair(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
               chain: list[x509.Certificate] = ()) -> tuple[Path, Path]:
    """Write STEM.crt (leaf + chain) and STEM.key; STEM.pem holds key + leaf + chain (mitmproxy)."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain])
    (directory / f"{stem}.crt").write_bytes(certs)
    (directory / f"{stem}.key").write_bytes(_pem_key(key))
    (directory / f"{stem}.pem").write_bytes(_pem_key(key) + certs)
    return directory / f"{stem}.crt", directory / f"{stem}.key"


def main(out: Path, participants: list[str], servers: list[str]) -> None:
    ca = make_ca()
    write_pair(out, "ca", *ca)
    for pid in participants:
        write_pair(out, pid, *issue(ca, pid))
    for host in servers:
        write_pair(out, f"{host}-server", *issue(ca, host, server=True), chain=[ca[0]])


if __name__ == "__main__":
    main(Path(__file__).parent / "pki",
         ["citto", "ved1", "ved2", "ved3", "ved4", "dz-tyumen", "mvd-tyumen"], ["ved3", "dz-tyumen"])

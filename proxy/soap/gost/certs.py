"""X.509 certificates with GOST R 34.10-2001/2012 keys, parsed with pyasn1.

`cryptography` reads a GOST certificate's fingerprint, names and dates but refuses its public key
(`Unknown key type 1.2.643.7.1.1.1.1`), so the key is read here: the SubjectPublicKeyInfo's BIT
STRING holds an OCTET STRING of x‖y, each little-endian; the curve is the first OID of the key
parameters (docs/sidecar.md). A certificate is read whole or refused with `CertificateError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5280

from proxy.soap.errors import SignatureError
from proxy.soap.gost.curves import CURVES, Curve

#: public key algorithm OIDs → key size in bytes of a coordinate
KEY_ALGORITHMS = {
    "1.2.643.2.2.19": 32,       # GOST R 34.10-2001
    "1.2.643.7.1.1.1.1": 32,    # GOST R 34.10-2012 256
    "1.2.643.7.1.1.1.2": 64,    # GOST R 34.10-2012 512
}
_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
          "2.5.4.11": "OU", "2.5.4.9": "STREET", "1.2.840.113549.1.9.1": "E", "2.5.4.4": "SN",
          "2.5.4.42": "GN", "2.5.4.12": "T", "1.2.643.100.1": "OGRN", "1.2.643.3.131.1.1": "INN",
          "1.2.643.100.3": "SNILS", "1.2.643.100.4": "INNLE"}


class CertificateError(SignatureError):
    """A signing certificate that cannot be read, or a key reestr does not implement."""

    code = "certificate-unreadable"


@dataclass(frozen=True)
class GostCertificate:
    """The parts of a signing certificate verification uses."""

    der: bytes
    sha256: str                 # of the DER, lowercase hex (the registry's key)
    subject: str
    not_before: datetime
    not_after: datetime
    key_algorithm: str          # OID
    curve: Curve
    public: tuple[int, int]

    def valid_at(self, when: datetime) -> bool:
        """True if `when` lies within the certificate's validity period."""
        return self.not_before <= when <= self.not_after


def is_gost(der: bytes) -> bool:
    """True if the certificate's public key is a GOST R 34.10 key (False for RSA/ECDSA/unreadable)."""
    try:
        cert, _ = decoder.decode(der, asn1Spec=rfc5280.Certificate())
        oid = str(cert["tbsCertificate"]["subjectPublicKeyInfo"]["algorithm"]["algorithm"])
    except PyAsn1Error:
        return False
    return oid in KEY_ALGORITHMS


def read(der: bytes) -> GostCertificate:
    """Parse a DER certificate with a GOST key; CertificateError if any part cannot be read."""
    try:
        cert, rest = decoder.decode(der, asn1Spec=rfc5280.Certificate())
        if rest:
            raise CertificateError("bytes after the certificate")
        tbs = cert["tbsCertificate"]
        spki = tbs["subjectPublicKeyInfo"]
        algorithm = str(spki["algorithm"]["algorithm"])
        size = KEY_ALGORITHMS.get(algorithm)
        if size is None:
            raise CertificateError(f"public key algorithm {algorithm} is not GOST R 34.10")
        params, _ = decoder.decode(spki["algorithm"]["parameters"])
        curve = CURVES.get(str(params[0]))
        if curve is None or curve.size != size:
            raise CertificateError(f"curve {params[0]} is not supported for {algorithm}")
        point, _ = decoder.decode(spki["subjectPublicKey"].asOctets(), asn1Spec=univ.OctetString())
        raw = point.asOctets()
        if len(raw) != 2 * size:
            raise CertificateError(f"public key of {len(raw)} bytes, expected {2 * size}")
        public = (int.from_bytes(raw[:size], "little"), int.from_bytes(raw[size:], "little"))
        if not curve.on_curve(*public):
            raise CertificateError("public key is not a point of its curve")
        validity = tbs["validity"]
        return GostCertificate(
            der=der, sha256=hashlib.sha256(der).hexdigest(), subject=_name(tbs["subject"]),
            not_before=_time(validity["notBefore"]), not_after=_time(validity["notAfter"]),
            key_algorithm=algorithm, curve=curve, public=public)
    except (PyAsn1Error, IndexError, TypeError, ValueError) as e:
        raise CertificateError(f"certificate unreadable: {type(e).__name__}") from e


def _time(value: rfc5280.Time) -> datetime:
    dt: datetime = value.getComponent().asDateTime
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _name(name: rfc5280.Name) -> str:
    parts = []
    for rdn in name[0]:
        for atv in rdn:
            oid = str(atv["type"])
            try:
                value, _ = decoder.decode(atv["value"])
                text = str(value)
            except PyAsn1Error:
                text = "?"
            parts.append(f"{_NAMES.get(oid, oid)}={text}")
    return ",".join(reversed(parts))

"""Registered certificates, read whole or refused.

cryptography parses a certificate lazily: `load_pem_x509_certificate` can accept bytes whose
subject or validity dates then fail to parse on first access (fuzzing found one). Everything that
reads a registered certificate (validation, compile, plan, scaffold) goes through `read`, which
touches every part it uses, so a certificate is either valid everywhere or CERT-invalid everywhere.

`load_pem_x509_certificate` also skips text before the first block and ignores what follows it,
a second certificate included (issue 10, finding 14): the registry would show one certificate
while the file holds more. `read` accepts exactly one `CERTIFICATE` block, with nothing but
whitespace around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes


@dataclass(frozen=True)
class Certificate:
    sha256: str          # of the DER, lowercase hex: what the sidecar matches a client by
    subject: str         # RFC 4514
    issuer: str          # RFC 4514
    not_before: datetime
    not_after: datetime


_ONE_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")


def read(pem: str) -> Certificate:
    """The parts of a PEM certificate the registry uses; ValueError if any of them cannot be read,
    or if the text is anything but one PEM certificate block."""
    if not _ONE_BLOCK.fullmatch(pem.strip()):
        raise ValueError("exactly one PEM CERTIFICATE block, with nothing before or after it")
    cert = x509.load_pem_x509_certificate(pem.encode())
    return Certificate(cert.fingerprint(hashes.SHA256()).hex(), cert.subject.rfc4514_string(),
                       cert.issuer.rfc4514_string(), cert.not_valid_before_utc, cert.not_valid_after_utc)

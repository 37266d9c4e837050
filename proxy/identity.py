"""Client certificate -> calling participant.

mitmproxy's `request_client_cert` asks for a certificate but verifies nothing (DESIGN §7a): a
handshake without one succeeds, and the TLS port also speaks plain HTTP. So identity is decided
here, from the leaf only: TLS must be established, the leaf's SHA-256 fingerprint must be one a
participant registered (in our bundle), and now must lie within both the certificate's own
validity dates and the registered ones. The TLS handshake itself proved key possession.

No mitmproxy import: `leaf_of` duck-types `client_conn` so tests can pass plain objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from proxy.policy import Policy


@dataclass(frozen=True)
class Leaf:
    """What identity needs of a presented certificate."""

    sha256: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Identity:
    """Either a participant id, or the reason code for not knowing who calls."""

    participant: str | None
    reason: str | None
    fingerprint: str | None = None


def leaf_of(client_conn: Any) -> Leaf | None:
    """The leaf certificate of an established TLS client connection, or None."""
    if not getattr(client_conn, "tls_established", False):
        return None
    chain = getattr(client_conn, "certificate_list", None) or []
    if not chain:
        return None
    cert = chain[0]
    return Leaf(sha256=cert.fingerprint().hex(), not_before=cert.notbefore,
                not_after=cert.notafter)


def identify(policy: Policy, leaf: Leaf | None, now: datetime) -> Identity:
    """Match the leaf against the registered certificates of the bundle."""
    if leaf is None:
        return Identity(None, "no-client-certificate")
    fp = leaf.sha256.lower()
    registered = policy.certificates.get(fp)
    if registered is None:
        return Identity(None, "unknown-certificate", fp)
    if now < leaf.not_before or now < registered.not_before:
        return Identity(registered.participant, "certificate-not-yet-valid", fp)
    if now > leaf.not_after or now > registered.not_after:
        return Identity(registered.participant, "certificate-expired", fp)
    return Identity(registered.participant, None, fp)

"""Keys, canonical JSON, signing, and the one bundle verification function.

The sidecar imports `verify_envelope` from here rather than keeping a copy, so the compiler's
`reestr verify` and a running sidecar accept exactly the same bundles (DESIGN §6).

Envelope: {"signed": {...}, "signatures": [{"keyid": hex, "sig": hex}]}; the signature is Ed25519
over the canonical JSON bytes of `signed`; keyid is the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from compiler.errors import CompilerError

BUNDLE_TYPE = "reestr-bundle"
INDEX_TYPE = "reestr-index"
FORMAT_VERSION = 1
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024


class TrustError(CompilerError):
    """A key could not be used, or an envelope was refused."""


class KeyFileError(TrustError):
    """A key file is missing, unreadable or not an Ed25519 key."""


class EnvelopeFormatError(TrustError):
    """The bytes are not a well-formed signed envelope."""


class SignatureThresholdError(TrustError):
    """Fewer than `threshold` distinct trusted keys produced a valid signature."""


class AudienceError(TrustError):
    """The bundle was issued for another participant."""


class ExpiredError(TrustError):
    """The bundle's expires_at is in the past."""


class RollbackError(TrustError):
    """The bundle's serial is below the serial already in force."""


class SerialReuseError(TrustError):
    """The bundle has the serial in force but different content."""


# --- canonical JSON -----------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that are signed and hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_time(moment: datetime) -> str:
    """UTC, second precision, 'Z' suffix: one spelling so identical inputs give identical bytes."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as e:
        raise EnvelopeFormatError(f"bad timestamp {text!r}") from e
    if moment.tzinfo is None:
        raise EnvelopeFormatError(f"timestamp without time zone {text!r}")
    return moment


# --- keys ---------------------------------------------------------------------------------------


def keyid(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)


def generate_keypair(prefix: str | Path) -> tuple[Path, Path]:
    """Write PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM)."""
    key = Ed25519PrivateKey.generate()
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        os.chmod(key_path, 0o600)
        pub_path.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    except OSError as e:
        raise KeyFileError(f"{key_path}: cannot write key: {e.strerror}") from e
    return key_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not a PEM private key without password") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not a PEM public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def _read_key_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path}: {e.strerror}") from e


# --- envelopes ----------------------------------------------------------------------------------


def sign_envelope(signed: Mapping[str, Any], keys: Iterable[Ed25519PrivateKey]) -> bytes:
    """Return the envelope bytes (canonical JSON plus a trailing newline) signed by every key."""
    payload = canonical_json(signed)
    signatures = sorted(
        ({"keyid": keyid(k.public_key()), "sig": k.sign(payload).hex()} for k in keys),
        key=lambda s: s["keyid"],
    )
    # The bytes of canonical_json({"signed": signed, "signatures": signatures}) + b"\n" ("signatures"
    # sorts before "signed"), without encoding the signed content, megabytes for a provider, twice.
    return b'{"signatures":' + canonical_json(signatures) + b',"signed":' + payload + b"}\n"


@dataclass(frozen=True)
class Verified:
    """An accepted envelope: its `signed` content and the digest of its canonical bytes."""

    signed: dict[str, Any]
    digest: str
    serial: int
    expires_at: datetime
    keyids: tuple[str, ...]


def verify_envelope(
    data: bytes,
    trusted: Iterable[Ed25519PublicKey],
    *,
    threshold: int = 1,
    audience: str | None = None,
    now: datetime | None = None,
    min_serial: int | None = None,
    pinned: tuple[int, str] | None = None,
    expected_type: str = BUNDLE_TYPE,
) -> Verified:
    """Accept a signed envelope or raise the TrustError subclass that names the reason.

    The checks, in order: well-formed; at least `threshold` distinct trusted keys signed the
    canonical bytes; the right type and format; issued for `audience`; not expired at `now`;
    serial not below `min_serial`; and if `pinned` = (serial, digest) is the bundle in force,
    the same serial must carry the same digest.
    """
    if threshold < 1:
        raise TrustError("threshold must be at least 1")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeFormatError(f"envelope is {len(data)} bytes, over {MAX_ENVELOPE_BYTES}")
    try:  # NaN/Infinity, 5000-digit integers and deep nesting are refused here, not raised raw
        envelope = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise EnvelopeFormatError(f"not JSON: {e}") from e
    signed, signatures = _split_envelope(envelope)
    payload = canonical_json(signed)

    by_id = {keyid(k): k for k in trusted}
    good: set[str] = set()
    for entry in signatures:
        key = by_id.get(entry["keyid"])
        if key is None or entry["keyid"] in good:
            continue
        try:
            key.verify(bytes.fromhex(entry["sig"]), payload)
        except (InvalidSignature, ValueError):
            continue
        good.add(entry["keyid"])
    if len(good) < threshold:
        raise SignatureThresholdError(
            f"{len(good)} valid signature(s) from trusted keys, {threshold} required")

    if signed.get("type") != expected_type or signed.get("format") != FORMAT_VERSION:
        raise EnvelopeFormatError(
            f"expected type {expected_type!r} format {FORMAT_VERSION}, "
            f"got {signed.get('type')!r} format {signed.get('format')!r}")
    serial = signed.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise EnvelopeFormatError(f"serial must be a non-negative integer, got {serial!r}")
    expires_at = parse_time(str(signed.get("expires_at")))
    if audience is not None and signed.get("audience") != audience:
        raise AudienceError(f"issued for {signed.get('audience')!r}, this is {audience!r}")
    moment = now or datetime.now(UTC)
    if expires_at <= moment:
        raise ExpiredError(f"expired at {format_time(expires_at)}")
    if min_serial is not None and serial < min_serial:
        raise RollbackError(f"serial {serial} is below {min_serial}, the serial in force")
    digest = sha256_hex(payload)
    if pinned is not None and serial == pinned[0] and digest != pinned[1]:
        raise SerialReuseError(f"serial {serial} is in force with other content")
    return Verified(signed=signed, digest=digest, serial=serial, expires_at=expires_at,
                    keyids=tuple(sorted(good)))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _split_envelope(envelope: object) -> tuple[dict[str, Any], list[dict[str, str]]]:
    if not isinstance(envelope, dict) or set(envelope) != {"signed", "signatures"}:
        raise EnvelopeFormatError("envelope must be an object with exactly 'signed' and 'signatures'")
    signed, signatures = envelope["signed"], envelope["signatures"]
    if not isinstance(signed, dict):
        raise EnvelopeFormatError("'signed' must be an object")
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict) and isinstance(s.get("keyid"), str) and isinstance(s.get("sig"), str)
        for s in signatures
    ):
        raise EnvelopeFormatError("'signatures' must be a list of {keyid, sig} strings")
    return signed, signatures

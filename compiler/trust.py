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
from typing import Any, Protocol

import orjson
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
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that are signed and hashed.

    Exactly what `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
    spells, encoded as UTF-8 (tests/compiler/test_trust.py compares the two on generated values),
    made by orjson: a compile writes hundreds of MiB of it and the standard library's encoder was
    the largest cost (≈4.7× slower, bench/registry_bench.py). Values are str-keyed objects,
    arrays, strings, integers (64-bit), booleans and null: no document we sign has a float, the
    one type whose spelling the two encoders do not share.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:  # a non-str key, an integer over 64 bits, a lone surrogate
        raise ValueError(f"cannot be spelled as canonical JSON: {e}") from e


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


class Signer(Protocol):
    """What signs an envelope: a private key, or an external signer (compiler.signers)."""

    def public_key(self) -> Ed25519PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


def sign_envelope(signed: Mapping[str, Any], keys: Iterable[Signer]) -> bytes:
    """Return the envelope bytes (canonical JSON plus a trailing newline) signed by every key."""
    payload = canonical_json(signed)
    signatures = sorted(
        ({"keyid": keyid(k.public_key()), "sig": k.sign(payload).hex()} for k in keys),
        key=lambda s: s["keyid"],
    )
    # The bytes of canonical_json({"signed": signed, "signatures": signatures}) + b"\n" ("signatures"
    # sorts before "signed"), without encoding the signed content, megabytes for a provider, twice.
    return b"".join((b'{"signatures":', canonical_json(signatures), b',"signed":', payload, b"}\n"))


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

    Two ways to the signed bytes, one outcome. An envelope laid out exactly as `sign_envelope`
    writes it (the usual case) is read by `_verify_canonical`: it cuts the bytes of the `signed`
    value out of the file, verifies the signatures over exactly those bytes, and parses them once,
    without parsing the whole file and encoding `signed` again (megabytes for a provider). That is
    sound because bytes that verify were signed by a trusted key: parsing exactly those bytes is
    parsing what the signer signed, and the digest (`pinned`, `Verified.digest`) is over them too.
    Any other layout (other whitespace or key order), and any envelope the fast path would not
    accept, goes the general way: parse the file, encode `signed` canonically, verify over that.
    So a refusal always comes from the general path, with the same class as before.
    """
    if threshold < 1:
        raise TrustError("threshold must be at least 1")
    return _accept(data, {keyid(k): k for k in trusted}, threshold, audience=audience, now=now,
                   min_serial=min_serial, pinned=pinned, expected_type=expected_type)


def check_target(
    data: bytes,
    *,
    audience: str | None = None,
    now: datetime | None = None,
    min_serial: int | None = None,
    pinned: tuple[int, str] | None = None,
    expected_type: str = BUNDLE_TYPE,
) -> Verified:
    """Accept a bundle whose bytes a TUF targets role vouched for (hash and length in verified
    metadata, docs/bundle-format.md): every check of `verify_envelope` but the signatures inside
    the envelope, which may be empty or format-1 signatures and are not read. The digest is the
    same as `verify_envelope`'s (of the canonical `signed` bytes), so the serial and digest in force
    carry over when a sidecar moves from `trusted_keys` to a TUF root."""
    return _accept(data, {}, 0, audience=audience, now=now, min_serial=min_serial, pinned=pinned,
                   expected_type=expected_type)


def _accept(data: bytes, by_id: Mapping[str, Ed25519PublicKey], threshold: int, *, audience: str | None,
            now: datetime | None, min_serial: int | None, pinned: tuple[int, str] | None,
            expected_type: str) -> Verified:
    """verify_envelope's checks; threshold 0 (check_target only) skips the signature count."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeFormatError(f"envelope is {len(data)} bytes, over {MAX_ENVELOPE_BYTES}")
    fast = _verify_canonical(data, by_id, threshold)
    signed, payload, good = fast if fast is not None else _verify_general(data, by_id)
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


_Checked = tuple[dict[str, Any], bytes, set[str]]  # signed content, signed bytes, good keyids

_CANONICAL_HEAD = b'{"signatures":'
_CANONICAL_MID = b'],"signed":'


def _verify_canonical(data: bytes, by_id: Mapping[str, Ed25519PublicKey],
                      threshold: int) -> _Checked | None:
    """The fast path for `{"signatures":[...],"signed":{...}}` + optional newline, or None.

    None unless the layout is that one, the signatures list is well-formed, `threshold` trusted
    keys signed the cut-out bytes, and those bytes parse as a JSON object: the caller then takes
    the general path, which decides (and names) the refusal. `],"signed":` cannot occur inside
    a JSON string (its quote would be escaped); where it occurs inside a nested value of the list,
    the cut-out list does not parse, so the first occurrence ends the list or nothing is cut.
    """
    if not data.startswith(_CANONICAL_HEAD):
        return None
    mid = data.find(_CANONICAL_MID, len(_CANONICAL_HEAD))
    end = len(data) - 2 if data.endswith(b"}\n") else len(data) - 1 if data.endswith(b"}") else -1
    start = mid + len(_CANONICAL_MID)
    if mid < 0 or end <= start or data[start:start + 1] != b"{":
        return None
    try:
        signatures = json.loads(data[len(_CANONICAL_HEAD):mid + 1], parse_constant=_no_constant)
        _check_signatures(signatures)
    except (ValueError, RecursionError, EnvelopeFormatError):
        return None
    payload = data[start:end]
    good = _good_signatures(signatures, by_id, payload)
    if len(good) < threshold:
        return None
    try:
        signed = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(signed, dict):
        return None
    return signed, payload, good


def _verify_general(data: bytes, by_id: Mapping[str, Ed25519PublicKey]) -> _Checked:
    """Any layout: parse the whole envelope, verify over the canonical encoding of `signed`."""
    try:  # NaN/Infinity, 5000-digit integers and deep nesting are refused here, not raised raw
        envelope = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise EnvelopeFormatError(f"not JSON: {e}") from e
    signed, signatures = _split_envelope(envelope)
    try:  # what parses but has no canonical spelling (a 30-digit integer) was never signed
        payload = canonical_json(signed)
    except ValueError as e:
        raise EnvelopeFormatError(f"signed content: {e}") from e
    return signed, payload, _good_signatures(signatures, by_id, payload)


def _good_signatures(signatures: list[dict[str, str]], by_id: Mapping[str, Ed25519PublicKey],
                     payload: bytes) -> set[str]:
    """The distinct trusted keyids whose signature over `payload` is valid."""
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
    return good


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _split_envelope(envelope: object) -> tuple[dict[str, Any], list[dict[str, str]]]:
    if not isinstance(envelope, dict) or set(envelope) != {"signed", "signatures"}:
        raise EnvelopeFormatError("envelope must be an object with exactly 'signed' and 'signatures'")
    signed, signatures = envelope["signed"], envelope["signatures"]
    if not isinstance(signed, dict):
        raise EnvelopeFormatError("'signed' must be an object")
    _check_signatures(signatures)
    return signed, signatures


def _check_signatures(signatures: object) -> None:
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict) and isinstance(s.get("keyid"), str) and isinstance(s.get("sig"), str)
        for s in signatures
    ):
        raise EnvelopeFormatError("'signatures' must be a list of {keyid, sig} strings")

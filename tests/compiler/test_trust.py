"""compiler.trust: canonical JSON, keys, and verify_envelope's refusals, each with its own class."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import trust
from compiler.trust import (
    AudienceError,
    EnvelopeFormatError,
    ExpiredError,
    KeyFileError,
    RollbackError,
    SerialReuseError,
    SignatureThresholdError,
    TrustError,
    canonical_json,
    sign_envelope,
    verify_envelope,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEYS = [Ed25519PrivateKey.generate() for _ in range(4)]
A, B, C, STRANGER = KEYS
PUB = [k.public_key() for k in KEYS]


def signed(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": trust.BUNDLE_TYPE, "format": trust.FORMAT_VERSION, "audience": "ved2", "serial": 7,
        "issued_at": "2026-11-25T10:00:00Z", "expires_at": "2026-11-25T16:00:00Z",
        "source": {"commit": None, "registry_digest": "sha256:00"},
        "grants": {"SID0003001": {"name": "Веб-сервис А", "operations": ["operation1", "operation3"]}},
    }
    base.update(over)
    return base


def envelope(content: dict[str, Any] | None = None, keys: list[Ed25519PrivateKey] | None = None) -> bytes:
    return sign_envelope(content if content is not None else signed(), keys if keys is not None else [A])


def check(data: bytes, **kwargs: Any) -> trust.Verified:
    kwargs.setdefault("now", NOW)
    trusted = kwargs.pop("trusted", [PUB[0]])
    return verify_envelope(data, trusted, **kwargs)


# --- accept -------------------------------------------------------------------------------------


def test_accepts_a_good_envelope() -> None:
    data = envelope()
    ok = check(data, audience="ved2", min_serial=7, pinned=(7, hashlib.sha256(canonical_json(signed())).hexdigest()))
    assert ok.signed == signed()
    assert ok.serial == 7
    assert ok.expires_at == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    assert ok.keyids == (trust.keyid(PUB[0]),)
    assert ok.digest == hashlib.sha256(canonical_json(signed())).hexdigest()


def test_envelope_bytes_are_canonical() -> None:
    data = envelope()
    assert data.endswith(b"}\n") and b"\n" not in data[:-1] and b": " not in data
    assert envelope() == data  # Ed25519 is deterministic: same content, same key, same bytes
    parsed = json.loads(data)
    assert canonical_json(parsed) + b"\n" == data


def test_canonical_envelope_is_verified_over_its_own_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = envelope()
    monkeypatch.setattr(trust, "canonical_json", lambda value: pytest.fail("signed was encoded again"))
    ok = check(data)
    assert ok.signed == signed()
    assert ok.digest == hashlib.sha256(data[data.index(b'"signed":') + 9:-2]).hexdigest()


@pytest.mark.parametrize("newline", [b"\n", b""], ids=["newline", "no-newline"])
def test_canonical_envelope_with_or_without_final_newline(newline: bytes) -> None:
    assert check(envelope()[:-1] + newline).signed == signed()


LAYOUTS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "indented": lambda env: json.dumps(env, indent=2, ensure_ascii=False).encode(),
    "signed-first": lambda env: json.dumps({"signed": env["signed"], "signatures": env["signatures"]}).encode(),
    "ascii-escapes": lambda env: json.dumps(env, sort_keys=True, separators=(",", ":")).encode(),
    "trailing-space": lambda env: canonical_json(env) + b" \n",
    "leading-space": lambda env: b" " + canonical_json(env),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_other_layouts_of_a_good_envelope_are_accepted_with_the_same_digest(
        layout: Callable[[dict[str, Any]], bytes]) -> None:
    data = envelope()
    other = layout(json.loads(data))
    assert other != data
    ok = check(other)
    assert ok.signed == signed() and ok.digest == check(data).digest


def test_signatures_list_cut_at_a_nested_marker_falls_back() -> None:
    env = json.loads(envelope())
    env["signatures"].insert(0, {"keyid": "00", "sig": "00", "sigm": [{"y": [1]}], "signed": 1})
    data = canonical_json(env) + b"\n"
    assert data.index(b'],"signed":') < data.index(b'],"signed":{')  # the first marker is nested
    assert check(data).signed == signed()


# --- tampering ----------------------------------------------------------------------------------


def _well_formed(data: bytes) -> bool:
    try:
        trust._split_envelope(json.loads(data))
    except (ValueError, EnvelopeFormatError):
        return False
    return True


def test_every_tampered_byte_of_signed_content_is_refused() -> None:
    data = envelope()
    start = data.index(b'"signed":') + len(b'"signed":')  # keys are sorted: "signed" comes last
    end = len(data) - len(b"}\n")
    assert data[start:start + 1] == b"{" and data[end - 1:end] == b"}"
    classes: dict[type[Exception], int] = {}
    for i in range(start, end):
        tampered = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        with pytest.raises(TrustError) as info:
            check(tampered)
        want = SignatureThresholdError if _well_formed(tampered) else EnvelopeFormatError
        assert type(info.value) is want, (i, tampered[i - 10:i + 10])
        classes[want] = classes.get(want, 0) + 1
    assert classes[SignatureThresholdError] > (end - start) // 2  # most flips keep JSON valid


@pytest.mark.parametrize("where", ["sig", "keyid"])
def test_tampered_signature_is_refused(where: str) -> None:
    env = json.loads(envelope())
    value = env["signatures"][0][where]
    env["signatures"][0][where] = ("0" if value[0] != "0" else "1") + value[1:]
    with pytest.raises(SignatureThresholdError):
        check(canonical_json(env))


# --- refusals, one class each -------------------------------------------------------------------


REFUSALS: dict[str, tuple[Callable[[], bytes], dict[str, Any], type[TrustError]]] = {
    "unknown-key": (lambda: envelope(keys=[STRANGER]), {}, SignatureThresholdError),
    "no-signatures": (lambda: envelope(keys=[]), {}, SignatureThresholdError),
    "wrong-audience": (envelope, {"audience": "ved3"}, AudienceError),
    "no-audience-in-bundle": (lambda: envelope(signed(audience=None)), {"audience": "ved2"}, AudienceError),
    "expired": (envelope, {"now": datetime(2026, 11, 25, 16, 0, 1, tzinfo=UTC)}, ExpiredError),
    "expired-at-the-second": (envelope, {"now": datetime(2026, 11, 25, 16, 0, tzinfo=UTC)}, ExpiredError),
    "serial-below-minimum": (envelope, {"min_serial": 8}, RollbackError),
    "equal-serial-other-digest": (envelope, {"pinned": (7, "0" * 64)}, SerialReuseError),
    "threshold-2-of-3-one-signed": (envelope, {"trusted": PUB[:3], "threshold": 2}, SignatureThresholdError),
    "threshold-same-key-twice": (lambda: envelope(keys=[A, A]), {"trusted": PUB[:3], "threshold": 2},
                                 SignatureThresholdError),
    "threshold-one-trusted-one-stranger": (lambda: envelope(keys=[A, STRANGER]),
                                           {"trusted": PUB[:3], "threshold": 2}, SignatureThresholdError),
    "threshold-zero": (envelope, {"threshold": 0}, TrustError),
    "index-as-bundle": (lambda: envelope(signed(type=trust.INDEX_TYPE)), {}, EnvelopeFormatError),
    "bundle-as-index": (envelope, {"expected_type": trust.INDEX_TYPE}, EnvelopeFormatError),
    "format-version": (lambda: envelope(signed(format=2)), {}, EnvelopeFormatError),
    "serial-string": (lambda: envelope(signed(serial="7")), {}, EnvelopeFormatError),
    "serial-bool": (lambda: envelope(signed(serial=True)), {}, EnvelopeFormatError),
    "serial-negative": (lambda: envelope(signed(serial=-1)), {}, EnvelopeFormatError),
    "expires-missing": (lambda: envelope({k: v for k, v in signed().items() if k != "expires_at"}), {},
                        EnvelopeFormatError),
    "expires-naive": (lambda: envelope(signed(expires_at="2026-11-25T16:00:00")), {}, EnvelopeFormatError),
    "expires-garbage": (lambda: envelope(signed(expires_at="tomorrow")), {}, EnvelopeFormatError),
}


@pytest.mark.parametrize(("make", "kwargs", "error"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused(make: Callable[[], bytes], kwargs: dict[str, Any], error: type[TrustError]) -> None:
    with pytest.raises(TrustError) as info:
        check(make(), **kwargs)
    assert type(info.value) is error
    assert str(info.value)


@pytest.mark.parametrize(("keys", "threshold"), [([A, B], 2), ([A, C], 2), ([A, B, C], 3), ([C], 1)],
                         ids=["a+b-of-3", "a+c-of-3", "all-3", "c-of-3"])
def test_threshold_met(keys: list[Ed25519PrivateKey], threshold: int) -> None:
    ok = check(envelope(keys=keys), trusted=PUB[:3], threshold=threshold)
    assert len(ok.keyids) == len(keys)


def test_equal_serial_same_digest_and_higher_serial_accepted() -> None:
    digest = check(envelope()).digest
    assert check(envelope(), min_serial=7, pinned=(7, digest)).serial == 7
    assert check(envelope(signed(serial=8)), min_serial=7, pinned=(7, digest)).serial == 8


MALFORMED = {
    "empty": b"",
    "not-json": b"{signed:",
    "not-utf8": b'{"signed": "\xff"}',
    "array": b"[]",
    "string": b'"signed"',
    "no-signatures": b'{"signed": {}}',
    "extra-key": b'{"signed": {}, "signatures": [], "note": 1}',
    "signed-list": b'{"signed": [], "signatures": []}',
    "signatures-object": b'{"signed": {}, "signatures": {}}',
    "signature-not-object": b'{"signed": {}, "signatures": ["ab"]}',
    "signature-no-sig": b'{"signed": {}, "signatures": [{"keyid": "ab"}]}',
    "signature-sig-number": b'{"signed": {}, "signatures": [{"keyid": "ab", "sig": 1}]}',
    "nan": b'{"signed": {"x": NaN}, "signatures": []}',
    "infinity": b'{"signed": {"x": -Infinity}, "signatures": []}',
    "huge-integer": b'{"signed": {"serial": ' + b"9" * 5000 + b'}, "signatures": []}',
    "integer-over-64-bits": b'{"signed": {"serial": ' + b"9" * 30 + b'}, "signatures": []}',
    "nested-500-deep": b'{"signed": {"x": ' + b"[" * 500 + b"]" * 500 + b'}, "signatures": []}',
    "deep-nesting": b'{"signed": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b'}, "signatures": []}',
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_envelope(data: bytes) -> None:
    with pytest.raises(TrustError) as info:
        check(data)
    assert type(info.value) is EnvelopeFormatError


def test_signature_not_hex_does_not_count() -> None:
    env = json.loads(envelope())
    env["signatures"][0]["sig"] = "zz"
    with pytest.raises(SignatureThresholdError):
        check(canonical_json(env))


def test_oversized_envelope_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = envelope()
    monkeypatch.setattr(trust, "MAX_ENVELOPE_BYTES", len(data) - 1)
    with pytest.raises(EnvelopeFormatError, match="bytes"):
        check(data)


def test_every_refusal_class_is_distinct() -> None:
    classes = [EnvelopeFormatError, SignatureThresholdError, AudienceError, ExpiredError, RollbackError,
               SerialReuseError, KeyFileError]
    assert len(set(classes)) == len(classes)
    assert all(issubclass(c, TrustError) and c.__name__.endswith("Error") for c in classes)


# --- canonical JSON, times, keys ----------------------------------------------------------------


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "ё"}]}) == '{"a":[1,{"c":"ё","d":null}],"b":1}'.encode()
    for unspellable in ({"x": 10**20}, {1: "non-str key"}, {"x": "\ud800"}):
        with pytest.raises(ValueError, match="canonical JSON"):
            canonical_json(unspellable)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_canonical_json_is_the_standard_librarys_spelling(value: Any) -> None:
    """orjson makes the bytes; they must be what the format defines (and older bundles were made
    with): json.dumps sorted, compact, not ASCII-escaped — control characters, quotes,
    backslashes, non-BMP characters, key order by code point."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        reference = expected.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: neither encoder can write it as UTF-8
        with pytest.raises(ValueError):
            canonical_json(value)
        return
    assert canonical_json(value) == reference


def test_time_format_roundtrip() -> None:
    moment = datetime(2026, 11, 25, 15, 4, 5, 999, tzinfo=UTC)
    text = trust.format_time(moment)
    assert text == "2026-11-25T15:04:05Z"
    assert trust.parse_time(text) == moment.replace(microsecond=0)
    assert trust.format_time(moment.astimezone(ZoneInfo("Asia/Yekaterinburg"))) == text


def test_keygen_load_and_keyid(tmp_path: Path) -> None:
    key_path, pub_path = trust.generate_keypair(tmp_path / "sub" / "op")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    private = trust.load_private_key(key_path)
    public = trust.load_public_key(pub_path)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert trust.keyid(public) == hashlib.sha256(raw).hexdigest()
    assert check(sign_envelope(signed(), [private]), trusted=[public]).keyids == (trust.keyid(public),)


def _ec_pem(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp / "ec.key", tmp / "ec.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


KEY_FILES: dict[str, tuple[str, str]] = {
    "private-missing": ("private", "missing.key"),
    "public-missing": ("public", "missing.pub"),
    "private-garbage": ("private", "garbage"),
    "public-garbage": ("public", "garbage"),
    "private-is-public": ("private", "ed.pub"),
    "public-is-private": ("public", "ed.key"),
    "private-ecdsa": ("private", "ec.key"),
    "public-ecdsa": ("public", "ec.pub"),
}


@pytest.mark.parametrize(("which", "name"), KEY_FILES.values(), ids=KEY_FILES.keys())
def test_bad_key_files(tmp_path: Path, which: str, name: str) -> None:
    trust.generate_keypair(tmp_path / "ed")
    _ec_pem(tmp_path)
    (tmp_path / "garbage").write_text("not a key")
    load = trust.load_private_key if which == "private" else trust.load_public_key
    with pytest.raises(KeyFileError, match=name):
        load(tmp_path / name)

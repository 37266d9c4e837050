"""The journal record: its fields, its canonical text, and the one spelling of time it uses.

Backend-independent: SQLite, PostgreSQL and archive files all store a record as the canonical JSON
text `record_json` makes (compiler.trust.canonical_json, the id included), and that text is what
the hash chain (`proxy.journal.chain`) covers. Imports neither mitmproxy nor click nor a database.

Record format versions (the `format` member of the text; absent means 1):

- 1: the nineteen fields up to `client_fingerprint`.
- 2: adds `profile`, `payload`, `message_id`, `reference_message_id`, `transaction_code`,
  `classification` and `payload_check` (null when absent), and `"format": 2`.
- 3: event records (issue 13): `kind` `event` — something that happened to a service, not a call
  (`service_event`: a health check's failure or recovery). The members are those of format 2;
  `reason` names the event (`health-down`, `health-up`), `sid` the service, `method` and `path` the
  probe (`TCP` and `host:port` for a TCP check), `status` the probe's HTTP status or null,
  `decision` `error` (down) or `allow` (up), `direction` `inbound`, `size` 0. Call records stay
  format 2: a reader that knows format 2 reads every call as before, and stats never count events.

Within format 2, `signature_check` (issue 9) is `valid`, `absent`, ... alone, or — once a
signature was read far enough — `<status> <SignatureMethod URI> <signer's certificate SHA-256>`
(`-` when no certificate was read), space-separated: the algorithm and signer of a valid or
refused signature (`proxy.soap.verdict.SignatureResult.journal`). Profile `smev2` joined
`plain` and `smev3`. Old records keep their text and verify unchanged.

A format-1 record still verifies (its text is hashed as stored) and reads back with the newer
members as null (`record_data`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

from compiler.trust import canonical_json
from proxy.errors import SidecarError

RECORD_FORMAT = 2
EVENT_FORMAT = 3
EVENT_REASONS = frozenset({"health-down", "health-up"})

Direction = Literal["inbound", "outbound"]
Kind = Literal["request", "response", "event"]
Decision = Literal["allow", "deny", "error"]
Profile = Literal["plain", "smev2", "smev3"]
PayloadCheck = Literal["valid", "invalid"]

_DIRECTIONS = frozenset({"inbound", "outbound"})
_KINDS = frozenset({"request", "response", "event"})
_DECISIONS = frozenset({"allow", "deny", "error"})
_PROFILES = frozenset({"plain", "smev2", "smev3", None})
_PAYLOAD_CHECKS = frozenset({"valid", "invalid", None})
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class JournalError(SidecarError):
    """The journal cannot be opened, read or used."""

    code = "journal-error"


class JournalWriteError(JournalError):
    """A record could not be made durable; the call it belongs to must not go on (503)."""

    code = "journal-write-failed"


class JournalFormatError(JournalError):
    """A store is not a reestr journal, or a value does not fit the record format."""

    code = "journal-format"


@dataclass(frozen=True, slots=True)
class Record:
    """One request or response as it passed the sidecar. Bodies are never stored, only digests.

    `time` is UTC in the one spelling `utc_now()` produces (microseconds, 'Z'), so times sort as
    text. `exchange` links a request to its response. `reason` is a stable code ("R-no-grant"),
    `grant` says where the allowing grant is written, `status` is the HTTP status of responses
    and denials. Format 2 (issue 8): `profile` of the service ("plain" | "smev3"), `payload` the
    Clark name `{ns}local` of the SOAP body element or SMEV 3 payload root, the profile's message
    identifiers, the service's `classification` (R14) and `payload_check` ("valid" | "invalid").
    """

    time: str
    direction: Direction
    kind: Kind
    exchange: str
    decision: Decision
    method: str
    path: str
    size: int
    body_sha256: str
    consumer: str | None = None
    provider: str | None = None
    sid: str | None = None
    operation: str | None = None
    reason: str | None = None
    status: int | None = None
    signature_check: str | None = None
    bundle_serial: int | None = None
    grant: str | None = None
    client_fingerprint: str | None = None
    profile: Profile | None = None
    payload: str | None = None
    message_id: str | None = None
    reference_message_id: str | None = None
    transaction_code: str | None = None
    classification: str | None = None
    payload_check: PayloadCheck | None = None

    def __post_init__(self) -> None:
        for name in RECORD_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, _FIELD_TYPES[name]) and not isinstance(value, bool)):
                raise JournalFormatError(f"record field {name} has {type(value).__name__} {value!r}")
            if isinstance(value, str) and not value.isascii():
                object.__setattr__(self, name, _valid_unicode(value))
        if not _TIME_RE.fullmatch(self.time):
            raise JournalFormatError(f"record time {self.time!r} is not UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ'")
        if self.direction not in _DIRECTIONS or self.kind not in _KINDS or self.decision not in _DECISIONS:
            raise JournalFormatError(
                f"bad direction/kind/decision: {self.direction!r}/{self.kind!r}/{self.decision!r}")
        if (self.kind == "event") != (self.reason in EVENT_REASONS):
            raise JournalFormatError(f"kind {self.kind!r} with reason {self.reason!r}: events and only "
                                     "events have an event reason")
        if self.profile not in _PROFILES or self.payload_check not in _PAYLOAD_CHECKS:
            raise JournalFormatError(f"bad profile/payload_check: {self.profile!r}/{self.payload_check!r}")


RECORD_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Record))
V1_FIELDS: tuple[str, ...] = RECORD_FIELDS[:RECORD_FIELDS.index("client_fingerprint") + 1]
"""The fields of record format 1, in order (the SQLite schema of format 1 is generated from them)."""
INTEGER_FIELDS = frozenset({"size", "status", "bundle_serial"})
_REQUIRED_FIELDS = frozenset({"time", "direction", "kind", "exchange", "decision", "method", "path", "size",
                              "body_sha256"})
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    name: (int if name in INTEGER_FIELDS else str) if name in _REQUIRED_FIELDS
    else (int if name in INTEGER_FIELDS else str, type(None))
    for name in RECORD_FIELDS
}


_new_record = object.__new__
_set_field = object.__setattr__


def sidecar_record(*, time: str, direction: Direction, kind: Kind, exchange: str, decision: Decision,
                   method: str, path: str, size: int, body_sha256: str, consumer: str | None = None,
                   provider: str | None = None, sid: str | None = None, operation: str | None = None,
                   reason: str | None = None, status: int | None = None, signature_check: str | None = None,
                   bundle_serial: int | None = None, grant: str | None = None,
                   client_fingerprint: str | None = None, profile: Profile | None = None,
                   payload: str | None = None, message_id: str | None = None,
                   reference_message_id: str | None = None, transaction_code: str | None = None,
                   classification: str | None = None, payload_check: PayloadCheck | None = None) -> Record:
    """A `Record` the sidecar builds itself on its hot path (keyword arguments only), without
    `__post_init__`'s type and spelling checks: the caller's types are fixed by its own code
    (mypy) and `time` comes from `utc_now()`. What can come from the wire is still made safe the
    same way: any text that is not ASCII goes through the same UTF-8 repair, so no record can fail
    its group commit. Everything else (CLI, tests, reading back) uses the validating constructor.
    """
    record = _new_record(Record)
    values = (time, direction, kind, exchange, decision, method, path, size, body_sha256, consumer,
              provider, sid, operation, reason, status, signature_check, bundle_serial, grant,
              client_fingerprint, profile, payload, message_id, reference_message_id, transaction_code,
              classification, payload_check)  # RECORD_FIELDS order; test_journal checks it
    for name, value in zip(RECORD_FIELDS, values, strict=True):
        if value.__class__ is str and not value.isascii():
            value = _valid_unicode(value)
        _set_field(record, name, value)
    return record


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def service_event(*, time: str, event: str, exchange: str, sid: str, provider: str, method: str,
                  path: str, status: int | None = None) -> Record:
    """An event record (format 3): `event` is one of EVENT_REASONS (validated)."""
    return Record(time=time, direction="inbound", kind="event", exchange=exchange,
                  decision="allow" if event == "health-up" else "error", method=method, path=path,
                  size=0, body_sha256=_EMPTY_SHA256, provider=provider, sid=sid, reason=event,
                  status=status)


def _valid_unicode(text: str) -> str:
    r"""Text that UTF-8 can hold, so that no record can fail its whole group commit.

    mitmproxy decodes a raw non-UTF-8 request target with surrogateescape; such bytes are kept
    visibly as escapes (the byte 0xFF becomes the four characters \xff) rather than refused.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


_second: tuple[int, str] = (-1, "")  # the last whole second utc_now() spelled, and its text


def utc_now() -> str:
    """The current time in the record spelling (what `format_time(datetime.now(UTC))` gives).

    Two records per call: the 'YYYY-MM-DDTHH:MM:SS' part is spelled once per second; the tuple
    is replaced whole, so the loop and the writer thread may both call this.
    """
    global _second
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached, text = _second
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, text)
    return f"{text}.{nanos // 1000:06d}Z"


def format_time(moment: datetime) -> str:
    """UTC with microseconds and 'Z'; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_bound(text: str) -> str:
    """An ISO 8601 time or date given by a user → the record spelling, for range filters."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise JournalFormatError(f"not an ISO 8601 time: {text!r}") from e
    return format_time(moment)


_record_values = attrgetter(*RECORD_FIELDS)


def record_json(record: Record, record_id: int) -> str:
    """The canonical JSON text of a record with its id and format: exactly what the chain hashes."""
    data: dict[str, Any] = dict(zip(RECORD_FIELDS, _record_values(record), strict=True))
    data["id"] = record_id
    data["format"] = EVENT_FORMAT if record.kind == "event" else RECORD_FORMAT
    return canonical_json(data).decode("utf-8")


def record_data(text: str) -> dict[str, Any]:
    """A stored record's text → its members, every field of the newest format present (null when
    the record is older than the field) and `format` (1 when the text has none)."""
    data: dict[str, Any] = json.loads(text)
    if not isinstance(data, dict):
        raise JournalFormatError("a stored record is not a JSON object")
    for name in RECORD_FIELDS:
        data.setdefault(name, None)
    data.setdefault("format", 1)
    return data

"""The journal's on-disk format: the record, the SQLite schema, the hash chain and checkpoints.

The writer (`proxy.journal`), the verifier (`proxy.journal_verify`) and the queries
(`proxy.journal_query`) share this module so they agree byte for byte on what is hashed and
signed. It imports neither mitmproxy nor click.

A row stores the record as its canonical JSON text (compiler.trust.canonical_json, the id
included), with `prev_hash` and `hash = SHA-256(prev_hash || canonical JSON)` (prev_hash as its
64 lowercase hex characters, UTF-8). The record's fields are exposed as generated columns, so
people and `stats` can query them, while the bytes that are hashed exist exactly once: editing a
field means editing the hashed text (R11: integrity of every message is fixed). The generated
columns are only a view: SQLite's json_extract ends a string at a NUL character; the hashed text
and `export` keep every character.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

from compiler.trust import canonical_json, sha256_hex
from proxy.errors import SidecarError

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
CHECKPOINT_TYPE = "reestr-journal-checkpoint"

Direction = Literal["inbound", "outbound"]
Kind = Literal["request", "response"]
Decision = Literal["allow", "deny", "error"]

_DIRECTIONS = frozenset({"inbound", "outbound"})
_KINDS = frozenset({"request", "response"})
_DECISIONS = frozenset({"allow", "deny", "error"})
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class JournalError(SidecarError):
    """The journal cannot be opened, read or used."""


class JournalWriteError(JournalError):
    """A record could not be made durable; the call it belongs to must not go on (503)."""


class JournalFormatError(JournalError):
    """A file is not a reestr journal, or a value does not fit the record format."""


@dataclass(frozen=True, slots=True)
class Record:
    """One request or response as it passed the sidecar. Bodies are never stored, only digests.

    `time` is UTC in the one spelling `utc_now()` produces (microseconds, 'Z'), so times sort as
    text. `exchange` links a request to its response. `reason` is a stable code ("R-no-grant"),
    `grant` says where the allowing grant is written, `status` is the HTTP status of responses
    and denials.
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


RECORD_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Record))
_INTEGER_FIELDS = frozenset({"size", "status", "bundle_serial"})
_REQUIRED_FIELDS = frozenset({"time", "direction", "kind", "exchange", "decision", "method", "path", "size",
                              "body_sha256"})
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    name: (int if name in _INTEGER_FIELDS else str) if name in _REQUIRED_FIELDS
    else (int if name in _INTEGER_FIELDS else str, type(None))
    for name in RECORD_FIELDS
}


_new_record = object.__new__
_set_field = object.__setattr__


def sidecar_record(time: str, direction: Direction, kind: Kind, exchange: str, decision: Decision,
                   method: str, path: str, size: int, body_sha256: str, consumer: str | None,
                   provider: str | None, sid: str | None, operation: str | None, reason: str | None,
                   status: int | None, signature_check: str | None, bundle_serial: int | None,
                   grant: str | None, client_fingerprint: str | None) -> Record:
    """A `Record` the sidecar builds itself on its hot path (arguments in field order), without
    `__post_init__`'s type and spelling checks: the caller's types are fixed by its own code
    (mypy) and `time` comes from `utc_now()`. What can come from the wire is still made safe the
    same way: any text that is not ASCII goes through the same UTF-8 repair, so no record can fail
    its group commit. Everything else (CLI, tests, reading back) uses the validating constructor.
    """
    record = _new_record(Record)
    values = (time, direction, kind, exchange, decision, method, path, size, body_sha256, consumer,
              provider, sid, operation, reason, status, signature_check, bundle_serial, grant,
              client_fingerprint)
    for name, value in zip(RECORD_FIELDS, values, strict=True):
        if value.__class__ is str and not value.isascii():
            value = _valid_unicode(value)
        _set_field(record, name, value)
    return record


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
    """The canonical JSON text of a record with its id: exactly what the chain hashes."""
    data: dict[str, Any] = dict(zip(RECORD_FIELDS, _record_values(record), strict=True))
    data["id"] = record_id
    return canonical_json(data).decode("utf-8")


def chain_hash(prev_hash: str, text: str) -> str:
    """hash = SHA-256(prev_hash || canonical JSON), both as UTF-8 text."""
    return sha256_hex((prev_hash + text).encode("utf-8"))


def checkpoint_payload(checkpoint_id: int, upto_record_id: int, head_hash: str, time: str,
                       keyid: str) -> bytes:
    """The bytes a checkpoint signature covers: a typed object naming the sealed chain head."""
    return canonical_json({"type": CHECKPOINT_TYPE, "id": checkpoint_id, "upto_record_id": upto_record_id,
                           "head_hash": head_hash, "time": time, "keyid": keyid})


def _generated_column(name: str) -> str:
    sql_type = "INTEGER" if name in _INTEGER_FIELDS else "TEXT"
    return f'"{name}" {sql_type} GENERATED ALWAYS AS (json_extract(record, \'$.{name}\')) VIRTUAL'


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  record TEXT NOT NULL,
  {", ".join(_generated_column(name) for name in RECORD_FIELDS)}
) STRICT;
CREATE INDEX IF NOT EXISTS records_time ON records (time);
CREATE TABLE IF NOT EXISTS checkpoints (
  id INTEGER PRIMARY KEY,
  upto_record_id INTEGER NOT NULL,
  head_hash TEXT NOT NULL,
  time TEXT NOT NULL,
  keyid TEXT NOT NULL,
  signature TEXT NOT NULL
) STRICT;
INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '{FORMAT_VERSION}');
"""


def schema_problem(conn: sqlite3.Connection) -> str | None:
    """Say how the file's tables, indexes and triggers differ from the journal schema, if they do.

    A hand-made change (a trigger rewriting rows as they are inserted, a table that is no longer
    STRICT) is tampering too; the writer refuses such a file and the verifier reports it.
    """
    expected = _schema_objects(_reference_schema())
    found = _schema_objects(conn)
    if found == expected:
        return None
    changed = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
    return f"schema objects changed by hand: {', '.join(changed)}"


def _reference_schema() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    return conn


def _schema_objects(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
    # sqlite_stat* tables are statistics that ANALYZE or PRAGMA optimize may add: not a change.
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'").fetchall()
    return {name: (kind, sql) for kind, name, sql in rows}


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """Open a journal so that nothing can change it (`mode=ro`), and check it is one."""
    target = Path(path)
    if not target.is_file():
        raise JournalError(f"{path}: {'not a file' if target.exists() else 'no such file'}")
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot read: {e}") from e
    if not {"meta", "records", "checkpoints"} <= tables:
        conn.close()
        raise JournalFormatError(f"{path}: not a reestr journal (tables missing)")
    return conn

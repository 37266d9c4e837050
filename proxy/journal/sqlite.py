"""SQLite backend: one chain in one file in WAL mode (the journal of one sidecar on one disk).

A row stores the record's canonical text with `prev_hash` and `hash`; the record's fields are
exposed as generated (VIRTUAL) columns, so people and `stats` can query them while the bytes that
are hashed exist exactly once: editing a field means editing the hashed text (R11). The generated
columns are only a view: SQLite's json_extract ends a string at a NUL character; the hashed text
and `export` keep every character.

Schema versions: format 1 is the table as the first writer made it (`SCHEMA_V1`, kept byte for
byte so such files still pass the schema check); format 2 adds the generated columns of the
record's format-2 fields and indexes for `export --message-id` (`MIGRATE_V2`). A new file is made
as format 1 and migrated at once, so a migrated file and a new one have the same schema. A writer
migrates a format-1 file when it opens it; readers accept both.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from proxy.journal.chain import GENESIS_HASH, Checkpoint
from proxy.journal.record import (
    INTEGER_FIELDS,
    RECORD_FIELDS,
    V1_FIELDS,
    JournalError,
    JournalFormatError,
    JournalWriteError,
)
from proxy.journal.store import ChainInput, Filter, Row, StatsKey, Store

SYNCHRONOUS = frozenset({"NORMAL", "FULL", "EXTRA"})
_MAX_ROWS_PER_INSERT = 256  # 1,024 parameters: far below any SQLite build's limit
_BATCH = 4096


def _generated_column(name: str) -> str:
    sql_type = "INTEGER" if name in INTEGER_FIELDS else "TEXT"
    return f'"{name}" {sql_type} GENERATED ALWAYS AS (json_extract(record, \'$.{name}\')) VIRTUAL'


SCHEMA_V1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  record TEXT NOT NULL,
  {", ".join(_generated_column(name) for name in V1_FIELDS)}
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
INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '1');
"""

MIGRATE_V2 = "\n".join(
    [f"ALTER TABLE records ADD COLUMN {_generated_column(name)};" for name in RECORD_FIELDS[len(V1_FIELDS):]]
    + ["CREATE INDEX records_message_id ON records (message_id) WHERE message_id IS NOT NULL;",
       "CREATE INDEX records_reference_message_id ON records (reference_message_id) "
       "WHERE reference_message_id IS NOT NULL;",
       "CREATE INDEX records_exchange ON records (exchange);",
       "UPDATE meta SET value = '2' WHERE key = 'format';"])

_FORMATS = ("1", "2")


def _text(column: str) -> str:
    """A column as text: no-op on the STRICT schema; keeps a hand-changed table from crashing a walk."""
    return f"ifnull(CAST({column} AS TEXT), '')"


# The chain input `prev_hash || record` as UTF-8 bytes (the database encoding), concatenated by
# SQLite: the same bytes `proxy.journal.chain.chain_hash` hashes, without a Python step per row.
_CHAIN_INPUTS = (f"SELECT id, {_text('prev_hash')}, {_text('hash')}, "
                 f"CAST({_text('prev_hash')} || {_text('record')} AS BLOB) FROM records ORDER BY id")


class SqliteStore(Store):
    """A journal file; see the module docstring."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout: float = 5.0) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise JournalError(f"synchronous must be one of {sorted(SYNCHRONOUS)}, not {synchronous!r}")
        if busy_timeout < 0:
            raise JournalError("need busy_timeout ≥ 0")
        self.path = Path(path).absolute()  # the file check must not depend on the working directory
        self.label = str(path)
        self._synchronous = synchronous.upper()
        self._busy_ms = int(busy_timeout * 1000)
        self._conn: sqlite3.Connection | None = None
        self._file_id = (0, 0)
        self._format = "2"

    # --- writing ------------------------------------------------------------------------------

    def open_writer(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   cached_statements=_MAX_ROWS_PER_INSERT + 32)
        except sqlite3.Error as e:
            raise JournalError(f"{self.path}: cannot open journal: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.executescript(SCHEMA_V1)
            version = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if version is None or version[0] not in _FORMATS:
                raise JournalFormatError(f"{self.path}: unsupported journal format {version}")
            changed = schema_problem(conn)
            if changed is not None:
                raise JournalFormatError(f"{self.path}: refusing to write: {changed}")
            if version[0] == "1":
                conn.executescript(f"BEGIN IMMEDIATE;\n{MIGRATE_V2}\nCOMMIT;")
            stat = os.stat(self.path)
        except (sqlite3.Error, OSError, JournalError) as e:
            conn.close()
            if isinstance(e, JournalError):
                raise
            raise JournalError(f"{self.path}: cannot open journal: {e}") from e
        self._file_id = (stat.st_dev, stat.st_ino)
        self._conn = conn

    def head(self) -> tuple[int, str]:
        self._check_file()
        return self._head(self._connection())

    @staticmethod
    def _head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            return row[0], row[1]
        return _pruned(conn)

    def last_sealed(self) -> int:
        with self._errors():
            row = self._connection().execute("SELECT coalesce(max(upto_record_id), 0) FROM checkpoints").fetchone()
        return int(row[0])

    def append(self, rows: Sequence[Row]) -> None:
        """Up to 256 records (nearly every batch) are one multi-row INSERT in autocommit mode, which
        is one transaction (one fsync with FULL) in one statement: the writer releases and re-takes
        the GIL once, not once each for BEGIN, the INSERT and COMMIT, so it interrupts the event loop
        less — on two cores the largest cost of the journal under load. A bigger batch takes a few
        INSERTs inside BEGIN IMMEDIATE … COMMIT. Ids are the primary key: if anything else appended
        to the file meanwhile, the INSERT fails instead of forking the chain."""
        conn = self._connection()
        self._check_file()
        params = [value for row in rows for value in row]
        sizes = _chunks(len(rows))
        with self._errors(JournalWriteError):
            if len(sizes) > 1:
                conn.execute("BEGIN IMMEDIATE")
            done = 0
            for count in sizes:
                conn.execute(_insert_sql(count), params[4 * done:4 * (done + count)])
                done += count
            if len(sizes) > 1:
                conn.execute("COMMIT")

    def seal(self, sign: Callable[[int, int, str], Checkpoint]) -> Checkpoint:
        conn = self._connection()
        self._check_file()
        with self._errors(JournalWriteError):
            conn.execute("BEGIN IMMEDIATE")
            upto, head = self._head(conn)
            checkpoint_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM checkpoints").fetchone()[0]
            cp = sign(checkpoint_id, upto, head)
            conn.execute("INSERT INTO checkpoints (id, upto_record_id, head_hash, time, keyid, signature) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (cp.id, cp.upto, cp.head, cp.time, cp.keyid, cp.signature))
            conn.execute("COMMIT")
        return cp

    def reset(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            # The transaction is gone either way; the next one re-reads the chain head.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is not open")
        return self._conn

    def _check_file(self) -> None:
        """Refuse to write into a file that was removed or replaced: its records would be lost."""
        try:
            stat = os.stat(self.path)
        except OSError as e:
            raise JournalWriteError(f"{self.path}: journal file is gone ({e.strerror})") from e
        if (stat.st_dev, stat.st_ino) != self._file_id:
            raise JournalWriteError(f"{self.path}: journal file was replaced")

    @contextlib.contextmanager
    def _errors(self, kind: type[JournalError] = JournalError) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise kind(f"{self.label}: {e}") from e

    # --- reading ------------------------------------------------------------------------------

    def open_reader(self) -> None:
        """Open with `mode=ro`, so that nothing can change the file, and check it is a journal."""
        if not self.path.is_file():
            raise JournalError(f"{self.label}: {'not a file' if self.path.exists() else 'no such file'}")
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as e:
            raise JournalError(f"{self.label}: cannot read: {e}") from e
        if not {"meta", "records", "checkpoints"} <= tables:
            conn.close()
            raise JournalFormatError(f"{self.label}: not a reestr journal (tables missing)")
        with self._errors():
            columns = {row[1] for row in conn.execute("PRAGMA table_xinfo(records)")}
        self._format = "2" if "message_id" in columns else "1"
        self._conn = conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        conn = self._connection()
        with self._errors():
            conn.execute("BEGIN")  # one snapshot, even while a sidecar keeps writing
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def chains(self) -> list[str | None]:
        return [None]

    def schema_problem(self) -> str | None:
        with self._errors():
            return schema_problem(self._connection())

    def rows(self, chain: str | None, after: int = 0, upto: int | None = None) -> Iterator[list[Row]]:
        sql = "SELECT id, prev_hash, hash, record FROM records WHERE id > ?"
        params: list[object] = [after]
        if upto is not None:
            sql += " AND id <= ?"
            params.append(upto)
        yield from self._batches(sql + " ORDER BY id", params)

    def chain_inputs(self, chain: str | None) -> Iterator[list[ChainInput]]:
        yield from self._batches(_CHAIN_INPUTS, [])

    def checkpoints(self, chain: str | None) -> list[Checkpoint]:
        with self._errors():
            rows = self._connection().execute(
                f"SELECT id, CAST(upto_record_id AS INTEGER), {_text('head_hash')}, {_text('time')}, "
                f"{_text('keyid')}, {_text('signature')} FROM checkpoints ORDER BY id").fetchall()
        return [Checkpoint(*row) for row in rows]

    def pruned(self, chain: str | None) -> tuple[int, str]:
        with self._errors():
            return _pruned(self._connection())

    def select(self, chain: str | None, where: Filter) -> Iterator[list[Row]]:
        clauses, params = _time_clauses(where)
        if where.message_id is not None:
            if self._format == "1":
                return  # format-1 records carry no message ids
            clauses.append("exchange IN (SELECT exchange FROM records WHERE message_id = ? "
                           "UNION SELECT exchange FROM records WHERE reference_message_id = ?)")
            params += [where.message_id, where.message_id]
        sql = "SELECT id, prev_hash, hash, record FROM records"
        yield from self._batches(sql + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id",
                                 params)

    def stats(self, where: Filter) -> dict[StatsKey, int]:
        clauses, params = _time_clauses(Filter(where.since, where.until, requests_only=True,
                                               provider=where.provider))
        with self._errors():
            rows = self._connection().execute(
                "SELECT sid, operation, consumer, decision, count(*) FROM records WHERE "
                + " AND ".join(clauses) + " GROUP BY sid, operation, consumer, decision", params).fetchall()
        return {(sid, op, consumer, decision): count for sid, op, consumer, decision, count in rows}

    def prune(self, chain: str | None, upto: int, head: str) -> int:
        conn = self._connection()
        with self._errors(JournalWriteError):
            conn.execute("BEGIN IMMEDIATE")
            found = conn.execute("SELECT hash FROM records WHERE id = ?", (upto,)).fetchone()
            if found is None or found[0] != head:
                conn.execute("ROLLBACK")
                raise JournalWriteError(f"{self.label}: record {upto} changed since it was verified; nothing pruned")
            gone = conn.execute("DELETE FROM records WHERE id <= ?", (upto,)).rowcount
            conn.execute("DELETE FROM checkpoints WHERE upto_record_id <= ?", (upto,))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('pruned_upto', ?), ('pruned_head', ?)",
                         (str(upto), head))
            conn.execute("COMMIT")
        return int(gone)

    def _batches(self, sql: str, params: Sequence[object]) -> Iterator[list[Any]]:
        with self._errors():
            cursor = self._connection().execute(sql, params)
            while batch := cursor.fetchmany(_BATCH):
                yield batch


def _pruned(conn: sqlite3.Connection) -> tuple[int, str]:
    values = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('pruned_upto', 'pruned_head')"))
    if "pruned_upto" not in values:
        return 0, GENESIS_HASH
    try:
        return int(values["pruned_upto"]), str(values.get("pruned_head", ""))
    except ValueError as e:
        raise JournalFormatError(f"meta pruned_upto is not a number: {values['pruned_upto']!r}") from e


def _time_clauses(where: Filter) -> tuple[list[str], list[object]]:
    """Clauses over the indexed generated columns (bounds already in the record spelling)."""
    clauses, params = where.clauses(lambda name: name, "?")
    return clauses or ["1"], params


def schema_problem(conn: sqlite3.Connection) -> str | None:
    """Say how the file's tables, indexes and triggers differ from the journal schema (format 1
    or format 2), if they do. A hand-made change (a trigger rewriting rows as they are inserted, a
    table that is no longer STRICT) is tampering too; the writer refuses such a file and the
    verifier reports it."""
    found = _schema_objects(conn)
    closest: dict[str, tuple[str, str | None]] = {}
    for expected in _reference_schemas():
        if found == expected:
            return None
        closest = expected
    changed = sorted(name for name in closest.keys() | found.keys() if closest.get(name) != found.get(name))
    return f"schema objects changed by hand: {', '.join(changed)}"


@functools.cache
def _reference_schemas() -> tuple[dict[str, tuple[str, str | None]], ...]:
    """The schema objects of format 1 and of format 2 (the last is the one to compare a bad file with)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA_V1)
    v1 = _schema_objects(conn)
    conn.executescript(MIGRATE_V2)
    v2 = _schema_objects(conn)
    conn.close()
    return v1, v2


def _schema_objects(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
    # sqlite_stat* tables are statistics that ANALYZE or PRAGMA optimize may add: not a change.
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'").fetchall()
    return {name: (kind, sql) for kind, name, sql in rows}


def _chunks(count: int) -> list[int]:
    """Rows per INSERT for `count` records: all of them in one statement up to 256, else 256 at a
    time and the rest (the connection caches the prepared statement of every row count)."""
    full, rest = divmod(count, _MAX_ROWS_PER_INSERT)
    return [_MAX_ROWS_PER_INSERT] * full + ([rest] if rest else [])


@functools.cache
def _insert_sql(rows: int) -> str:
    return "INSERT INTO records (id, prev_hash, hash, record) VALUES " + ", ".join(["(?, ?, ?, ?)"] * rows)

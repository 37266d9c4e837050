"""PostgreSQL backend (psycopg 3): several chains in one database, one per sidecar.

Several sidecars of one agency write to one database; each appends to its own chain (`chain`
column, part of every key) and signs its own checkpoints with its own key, so nothing is locked
across sidecars on the hot path. A writer holds a session advisory lock on its chain's name: a
second sidecar configured with the same chain is refused instead of forking it.

Durability: a batch is one statement in autocommit mode — a prepared multi-row `INSERT` for
the small batches of few connections (one round trip), a binary `COPY` for large ones — one
transaction whose commit PostgreSQL acknowledges only once its WAL is flushed (`synchronous_commit` on; a
session where the server default is `off` is switched back on). The writer (`proxy.journal.writer`)
returns ids, and the sidecar forwards, only after that acknowledgement. A lost connection is a
failed write; the store reconnects on its next call, at most once per backoff interval (0.1 s
doubling to 5 s): a call before the next attempt fails at once, so while the database is
unreachable every request gets its 503 without waiting.

Rows keep the record's canonical text as it was hashed (`record`, `text`); `doc` is a generated
jsonb view of it for queries and indexes (a NUL escape in the text reads as U+FFFD there: jsonb
cannot hold NUL; the text and export keep it). Readers run in one REPEATABLE READ, READ ONLY
transaction (a consistent snapshot while sidecars write).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from proxy.journal.chain import CHAIN_RE, GENESIS_HASH, Checkpoint
from proxy.journal.record import JournalError, JournalFormatError, JournalWriteError
from proxy.journal.store import Filter, Row, StatsKey, Store

FORMAT = "2"
_BATCH = 4096
_BACKOFF_FIRST = 0.1  # seconds between reconnect attempts, doubling up to _BACKOFF_MAX
_BACKOFF_MAX = 5.0
_SCHEMA_LOCK = 0x7265657374720001  # 'reestr' + 1: serialises schema creation between sidecars
_DOC_FUNCTION = "SELECT replace(record, '\\u0000', '\\ufffd')::jsonb"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS journal_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO journal_meta (key, value) VALUES ('format', '{FORMAT}') ON CONFLICT (key) DO NOTHING;
CREATE OR REPLACE FUNCTION reestr_record_doc(record text) RETURNS jsonb
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ {_DOC_FUNCTION} $$;
CREATE TABLE IF NOT EXISTS journal_records (
  chain text NOT NULL,
  id bigint NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  record text NOT NULL,
  doc jsonb GENERATED ALWAYS AS (reestr_record_doc(record)) STORED,
  PRIMARY KEY (chain, id)
);
CREATE INDEX IF NOT EXISTS journal_records_time ON journal_records ((doc->>'time'));
CREATE INDEX IF NOT EXISTS journal_records_exchange ON journal_records (chain, (doc->>'exchange'));
CREATE INDEX IF NOT EXISTS journal_records_message_id ON journal_records ((doc->>'message_id'))
  WHERE doc->>'message_id' IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_records_reference_message_id ON journal_records ((doc->>'reference_message_id'))
  WHERE doc->>'reference_message_id' IS NOT NULL;
CREATE TABLE IF NOT EXISTS journal_checkpoints (
  chain text NOT NULL,
  id bigint NOT NULL,
  upto_record_id bigint NOT NULL,
  head_hash text NOT NULL,
  time text NOT NULL,
  keyid text NOT NULL,
  signature text NOT NULL,
  PRIMARY KEY (chain, id)
);
CREATE TABLE IF NOT EXISTS journal_pruned (chain text PRIMARY KEY, upto bigint NOT NULL, head text NOT NULL);
"""

_TABLES = ("journal_meta", "journal_records", "journal_checkpoints", "journal_pruned")

_APPEND = "COPY journal_records (chain, id, prev_hash, hash, record) FROM STDIN (FORMAT BINARY)"
_APPEND_TYPES = ("text", "int8", "text", "text", "text")
_INSERT_MAX = 32
"""Batches up to this many rows are one prepared INSERT: a COPY costs two round trips to the
server (the COPY statement, then the data) and more Python on the writer thread per batch, which
dominates when few connections make batches of a few records (docs/performance.md)."""


def _insert_sql(count: int) -> str:
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * count)
    return f"INSERT INTO journal_records (chain, id, prev_hash, hash, record) VALUES {values}"

# Every chain in the records (a loose index scan over the primary key), the checkpoints and the
# pruned prefixes: a chain cannot hide from verify by being left out of some list.
_CHAINS = """
WITH RECURSIVE c AS (
  SELECT min(chain) AS chain FROM journal_records
  UNION ALL SELECT (SELECT min(chain) FROM journal_records WHERE chain > c.chain) FROM c WHERE c.chain IS NOT NULL)
SELECT chain FROM c WHERE chain IS NOT NULL
UNION SELECT chain FROM journal_checkpoints UNION SELECT chain FROM journal_pruned ORDER BY 1
"""


def safe_label(dsn: str) -> str:
    """The DSN as messages may show it: without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql (unparsable DSN)"
    params.pop("password", None)
    return "postgresql " + make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


class PostgresStore(Store):
    """A journal database; `chain` names the chain a writer appends to (readers read all)."""

    def __init__(self, dsn: str, chain: str | None = None, *, connect_timeout: float = 3.0) -> None:
        if chain is not None and not CHAIN_RE.fullmatch(chain):
            raise JournalError(f"chain name {chain!r}: 1-128 letters, digits, '.', '_', '@', '-'")
        self.dsn = dsn
        self.chain = chain
        self.label = safe_label(dsn) + (f" chain {chain}" if chain else "")
        self._timeout = max(1, round(connect_timeout))
        self._conn: psycopg.Connection[Any] | None = None
        self._writer = False
        self._failed_connects = 0
        self._next_connect = 0.0
        self._last_error = ""

    # --- connections --------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self._timeout,
                                   application_name="reestr-sidecar", keepalives=1, keepalives_idle=10,
                                   keepalives_interval=5, keepalives_count=3)
        except psycopg.Error as e:
            raise JournalWriteError(f"{self.label}: cannot connect: {_first_line(e, self.dsn)}") from e
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection; a writer reconnects (and re-claims its chain) if it was lost."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if not self._writer:
            raise JournalError(f"{self.label}: not open")
        self._conn = None
        now = time.monotonic()
        if now < self._next_connect:
            raise JournalWriteError(f"{self._last_error} (next attempt in {self._next_connect - now:.1f} s)")
        try:
            conn = self._connect()
            try:
                self._claim(conn)
            except BaseException:
                conn.close()
                raise
        except JournalError as e:
            self._failed_connects += 1
            self._last_error = str(e)
            self._next_connect = now + min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (self._failed_connects - 1))
            raise
        self._failed_connects = 0
        self._conn = conn
        return conn

    def _claim(self, conn: psycopg.Connection[Any]) -> None:
        with self._errors(JournalWriteError):
            if str(conn.execute("SHOW synchronous_commit").fetchone()[0]) == "off":  # type: ignore[index]
                conn.execute("SET synchronous_commit = on")
            # The chain's lock dies with this session: let the server notice a vanished sidecar
            # host within about 25 s, so its restart can claim the chain again.
            conn.execute("SET tcp_keepalives_idle = 10")
            conn.execute("SET tcp_keepalives_interval = 5")
            conn.execute("SET tcp_keepalives_count = 3")
            got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                               (f"reestr-journal:{self.chain}",)).fetchone()
        if not got or not got[0]:
            raise JournalWriteError(f"{self.label}: chain {self.chain!r} is being written by another sidecar "
                                    "(give each sidecar its own journal.chain)")

    @contextlib.contextmanager
    def _errors(self, kind: type[JournalError] = JournalError) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as e:
            raise kind(f"{self.label}: {_first_line(e, self.dsn)}") from e

    # --- writing ------------------------------------------------------------------------------

    def open_writer(self) -> None:
        if self.chain is None:
            raise JournalError(f"{self.label}: a writer needs a chain name")
        conn = self._connect()
        try:
            with self._errors(), conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(SCHEMA)  # a constant script
                version = conn.execute("SELECT value FROM journal_meta WHERE key = 'format'").fetchone()
            if version is None or version[0] != FORMAT:
                raise JournalFormatError(f"{self.label}: unsupported journal format {version}")
            changed = _schema_problem(conn)
            if changed is not None:
                raise JournalFormatError(f"{self.label}: refusing to write: {changed}")
            self._claim(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._writer = True

    def head(self) -> tuple[int, str]:
        conn = self._connection()
        with self._errors(JournalWriteError):
            return self._head(conn, self.chain)

    def _head(self, conn: psycopg.Connection[Any], chain: str | None) -> tuple[int, str]:
        row = conn.execute("SELECT id, hash FROM journal_records WHERE chain = %s ORDER BY id DESC LIMIT 1",
                           (chain,)).fetchone()
        if row:
            return int(row[0]), str(row[1])
        return self._pruned(conn, chain)

    def last_sealed(self) -> int:
        conn = self._connection()
        with self._errors():
            row = conn.execute("SELECT coalesce(max(upto_record_id), 0) FROM journal_checkpoints WHERE chain = %s",
                               (self.chain,)).fetchone()
        return int(row[0]) if row else 0

    def append(self, rows: Sequence[Row]) -> None:
        """One statement, so in autocommit mode a single transaction that is committed (and
        acknowledged) when it ends: up to `_INSERT_MAX` rows a prepared multi-row INSERT (one
        round trip), more a binary COPY (about twice the rows/s of `INSERT … SELECT FROM
        unnest(…)` on large batches here, bench/journal_bench.py).

        A connection found dead (the server restarted, an idle session was closed) is replaced and
        the batch sent once more: if the first attempt did commit, its ids are taken and the
        second fails, so a batch is never written twice and the chain never forks."""
        with self._errors(JournalWriteError):
            try:
                self._write(self._connection(), rows)
            except psycopg.OperationalError:
                self.reset()
                self._write(self._connection(), rows)

    def _write(self, conn: psycopg.Connection[Any], rows: Sequence[Row]) -> None:
        chain = self.chain
        if len(rows) <= _INSERT_MAX:
            conn.execute(_insert_sql(len(rows)), [v for row in rows for v in (chain, *row)], prepare=True)
            return
        with conn.cursor() as cursor, cursor.copy(_APPEND) as copy:
            copy.set_types(list(_APPEND_TYPES))
            for row in rows:
                copy.write_row((chain, *row))

    def seal(self, sign: Callable[[int, int, str], Checkpoint]) -> Checkpoint:
        conn = self._connection()
        with self._errors(JournalWriteError), conn.transaction():
            upto, head = self._head(conn, self.chain)
            row = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM journal_checkpoints WHERE chain = %s",
                               (self.chain,)).fetchone()
            cp = sign(int(row[0]) if row else 1, upto, head)
            conn.execute("INSERT INTO journal_checkpoints (chain, id, upto_record_id, head_hash, time, keyid, "
                         "signature) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (self.chain, cp.id, cp.upto, cp.head, cp.time, cp.keyid, cp.signature))
        return cp

    def reset(self) -> None:
        """Drop the connection: whatever state it is in, the next call starts afresh."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        self.reset()
        self._writer = False

    # --- reading ------------------------------------------------------------------------------

    def open_reader(self) -> None:
        conn = self._connect_reader()
        with self._errors():
            found = {row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()}
        if not set(_TABLES) <= found:
            conn.close()
            raise JournalFormatError(f"{self.label}: not a reestr journal (tables missing)")
        self._conn = conn

    def open_maintenance(self) -> None:
        """Prune runs on a reader connection: its transaction switches itself to READ WRITE."""
        self.open_reader()

    def _connect_reader(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=self._timeout,
                                   application_name="reestr-sidecar-reader",
                                   options="-c default_transaction_read_only=on")
        except psycopg.Error as e:
            raise JournalError(f"{self.label}: cannot connect: {_first_line(e, self.dsn)}") from e

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        conn = self._reader()
        with self._errors():
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def _reader(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise JournalError(f"{self.label}: not open")
        return self._conn

    def chains(self) -> list[str | None]:
        with self._errors():
            return [row[0] for row in self._reader().execute(_CHAINS).fetchall()]

    def schema_problem(self) -> str | None:
        with self._errors():
            return _schema_problem(self._reader())

    def rows(self, chain: str | None, after: int = 0, upto: int | None = None) -> Iterator[list[Row]]:
        yield from self._batches(
            "SELECT id, prev_hash, hash, record FROM journal_records WHERE chain = %s AND id > %s "
            "AND id <= %s ORDER BY id", (chain, after, upto if upto is not None else 2**63 - 1))

    def checkpoints(self, chain: str | None) -> list[Checkpoint]:
        with self._errors():
            rows = self._reader().execute(
                "SELECT id, upto_record_id, head_hash, time, keyid, signature FROM journal_checkpoints "
                "WHERE chain = %s ORDER BY id", (chain,)).fetchall()
        return [Checkpoint(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], chain) for r in rows]

    def pruned(self, chain: str | None) -> tuple[int, str]:
        with self._errors():
            return self._pruned(self._reader() if not self._writer else self._connection(), chain)

    @staticmethod
    def _pruned(conn: psycopg.Connection[Any], chain: str | None) -> tuple[int, str]:
        row = conn.execute("SELECT upto, head FROM journal_pruned WHERE chain = %s", (chain,)).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def select(self, chain: str | None, where: Filter) -> Iterator[list[Row]]:
        clauses, params = _clauses(where)
        clauses.insert(0, "chain = %s")
        params.insert(0, chain)
        if where.message_id is not None:
            clauses.append("doc->>'exchange' IN (SELECT doc->>'exchange' FROM journal_records "
                           "WHERE chain = %s AND doc->>'message_id' = %s UNION SELECT doc->>'exchange' "
                           "FROM journal_records WHERE chain = %s AND doc->>'reference_message_id' = %s)")
            params += [chain, where.message_id, chain, where.message_id]
        yield from self._batches("SELECT id, prev_hash, hash, record FROM journal_records WHERE "
                                 + " AND ".join(clauses) + " ORDER BY id", params)

    def stats(self, where: Filter) -> dict[StatsKey, int]:
        clauses, params = _clauses(Filter(where.since, where.until, requests_only=True, provider=where.provider))
        with self._errors():
            rows = self._reader().execute(
                "SELECT doc->>'sid', doc->>'operation', doc->>'consumer', doc->>'decision', count(*) "
                "FROM journal_records WHERE " + " AND ".join(clauses) + " GROUP BY 1, 2, 3, 4",
                params).fetchall()
        return {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows}

    def prune(self, chain: str | None, upto: int, head: str) -> int:
        conn = self._reader()
        with self._errors(JournalWriteError), conn.transaction():
            conn.execute("SET TRANSACTION READ WRITE")
            found = conn.execute("SELECT hash FROM journal_records WHERE chain = %s AND id = %s FOR UPDATE",
                                 (chain, upto)).fetchone()
            if found is None or found[0] != head:
                raise JournalWriteError(f"{self.label}: record {upto} changed since it was verified; nothing pruned")
            gone = conn.execute("DELETE FROM journal_records WHERE chain = %s AND id <= %s", (chain, upto)).rowcount
            conn.execute("DELETE FROM journal_checkpoints WHERE chain = %s AND upto_record_id <= %s", (chain, upto))
            conn.execute("INSERT INTO journal_pruned (chain, upto, head) VALUES (%s, %s, %s) "
                         "ON CONFLICT (chain) DO UPDATE SET upto = excluded.upto, head = excluded.head",
                         (chain, upto, head))
        return int(gone)

    def _batches(self, sql: str, params: Sequence[object]) -> Iterator[list[Any]]:
        conn = self._reader()
        with self._errors(), conn.cursor(name="reestr_journal_read") as cursor:
            cursor.itersize = _BATCH
            cursor.execute(sql, params)  # built from constants only
            while batch := cursor.fetchmany(_BATCH):
                yield batch


def _clauses(where: Filter) -> tuple[list[str], list[object]]:
    clauses, params = where.clauses(lambda name: f"doc->>'{name}'", "%s")
    return clauses or ["true"], params


def _schema_problem(conn: psycopg.Connection[Any]) -> str | None:
    """Triggers or rules on the journal tables, or a changed view function, are tampering: they
    could rewrite rows as they are inserted or hide them from readers."""
    problems = []
    triggers = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%s)",
        (list(_TABLES),)).fetchall()
    problems += [f"trigger {row[0]}" for row in triggers]
    rules = conn.execute("SELECT rulename FROM pg_rules WHERE tablename = ANY(%s)", (list(_TABLES),)).fetchall()
    problems += [f"rule {row[0]}" for row in rules]
    body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'reestr_record_doc'").fetchall()
    if [row[0].strip() for row in body] != [_DOC_FUNCTION]:
        problems.append("function reestr_record_doc")
    policies = conn.execute("SELECT policyname FROM pg_policies WHERE tablename = ANY(%s)", (list(_TABLES),)).fetchall()
    problems += [f"policy {row[0]}" for row in policies]
    return f"schema objects changed by hand: {', '.join(problems)}" if problems else None


def _first_line(error: BaseException, dsn: str = "") -> str:
    """The first line of a driver error, with anything that could be a password removed: libpq
    quotes an unparsable DSN whole in its message."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if dsn:
        line = line.replace(dsn, "<dsn>")
    line = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", line)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", line, flags=re.IGNORECASE)

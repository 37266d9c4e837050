"""The journal writer: one thread, group commit, a hash chain and signed checkpoints (R11, DESIGN §7).

Callers hand a `Record` to `append` (asyncio) or `append_blocking` and get its id back only once
the transaction holding it is committed with the configured `synchronous` level: a request is
forwarded, and a response returned, only after its record is durable. One writer thread drains
everything waiting into one transaction (group commit), so a burst of calls costs one fsync, and
the asyncio loop never blocks on disk I/O (DESIGN §7a: an insert with synchronous=FULL costs
≈126 µs here, milliseconds on real disks).

If a transaction fails (disk full, file removed or replaced, database locked), every waiter in it
gets `JournalWriteError` and `healthy` turns False until a later transaction succeeds: the journal
never reports an id for a record that is not committed. Each transaction reads the chain head
inside its write lock, so the chain continues correctly after a failure or a restart.

Storage only: no mitmproxy import (DESIGN §8). The format lives in `proxy.journal_format`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.trust import keyid
from proxy.journal_format import (
    GENESIS_HASH,
    SCHEMA,
    JournalError,
    JournalFormatError,
    JournalWriteError,
    Record,
    chain_hash,
    checkpoint_payload,
    record_json,
    schema_problem,
    utc_now,
)

__all__ = ["Journal", "JournalError", "JournalFormatError", "JournalWriteError", "Record", "utc_now"]

_SYNCHRONOUS = frozenset({"NORMAL", "FULL", "EXTRA"})
_MAX_BATCH = 10_000
_MAX_ROWS_PER_INSERT = 256  # 1,024 parameters: far below any SQLite build's limit
_STOP = object()


@dataclass(frozen=True, slots=True)
class _AsyncWaiter:
    """An asyncio future and its loop: resolved from the writer thread via call_soon_threadsafe."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


_Waiter = _AsyncWaiter | Future[int]
_Item = tuple[Record, _Waiter]


class Journal:
    """A SQLite (WAL) journal with a single writer thread; see the module docstring."""

    def __init__(self, path: str | Path, signing_key: Ed25519PrivateKey, *, synchronous: str = "FULL",
                 checkpoint_every: int = 1000, checkpoint_interval: float = 10.0,
                 busy_timeout: float = 5.0) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise JournalError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}")
        if checkpoint_every < 1 or checkpoint_interval <= 0 or busy_timeout < 0:
            raise JournalError("need checkpoint_every ≥ 1, checkpoint_interval > 0, busy_timeout ≥ 0")
        self._path = Path(path).absolute()  # the file check must not depend on the working directory
        self._key = signing_key
        self._keyid = keyid(signing_key.public_key())
        self._synchronous = synchronous.upper()
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._busy_ms = int(busy_timeout * 1000)
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._state = "new"
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._file_id = (0, 0)
        self._last_id = 0
        self._chain: tuple[int, str] | None = None  # (last id, its hash) once known; None: read the file
        self._sealed_id = 0
        self._sealed_at = time.monotonic()
        self._healthy = True
        self._close_error: JournalError | None = None
        self.commits = 0
        """Transactions committed that carried records: fewer than records means group commit works."""
        self.checkpoints_written = 0

    # --- public API -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def queue_depth(self) -> int:
        """Records waiting for the writer thread (a metric: the journal falling behind)."""
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        """False after a failed write, until a later write succeeds; False once stopped."""
        return self._healthy and self._state == "running"

    @property
    def last_id(self) -> int:
        """The id of the last record committed by or found at start of this journal."""
        return self._last_id

    def start(self) -> None:
        """Open (or create) the file, resume the chain from its last record, start the writer."""
        with self._lock:
            if self._state != "new":
                raise JournalError("journal already started")
            self._conn = self._open()
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()
            self._state = "running"

    async def append(self, record: Record) -> int:
        """Queue a record and return its id once it is durable; raises JournalWriteError if not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._put(record, _AsyncWaiter(loop, future))
        return await future

    def append_blocking(self, record: Record, timeout: float | None = None) -> int:
        """`append` for callers without an event loop (tests, tools). Never call it from the loop."""
        future: Future[int] = Future()
        self._put(record, future)
        return future.result(timeout)

    def close(self) -> None:
        """Write what is queued, seal the chain with a final checkpoint, stop the writer thread."""
        with self._lock:
            if self._state != "running":
                self._state = "closed"
                return
            self._state = "closing"
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        if self._close_error is not None:
            raise self._close_error

    def __enter__(self) -> Journal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening --------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   cached_statements=_MAX_ROWS_PER_INSERT + 32)
        except sqlite3.Error as e:
            raise JournalError(f"{self._path}: cannot open journal: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self._path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.executescript(SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if version is None or version[0] != "1":
                raise JournalFormatError(f"{self._path}: unsupported journal format {version}")
            changed = schema_problem(conn)
            if changed is not None:
                raise JournalFormatError(f"{self._path}: refusing to write: {changed}")
            self._last_id = self._head(conn)[0]
            sealed = conn.execute("SELECT coalesce(max(upto_record_id), 0) FROM checkpoints").fetchone()
            self._sealed_id = sealed[0]
            stat = os.stat(self._path)
        except (sqlite3.Error, OSError, JournalError) as e:
            conn.close()
            if isinstance(e, JournalError):
                raise
            raise JournalError(f"{self._path}: cannot open journal: {e}") from e
        self._file_id = (stat.st_dev, stat.st_ino)
        return conn

    @staticmethod
    def _head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    # --- the writer thread ----------------------------------------------------------------------

    def _put(self, record: Record, waiter: _Waiter) -> None:
        with self._lock:
            if self._state != "running":
                raise JournalError(f"journal is {self._state}, not running")
            self._queue.put((record, waiter))

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # a bug must not leave callers waiting forever
            self._healthy = False
            self._close_error = JournalWriteError(f"journal writer stopped: {e!r}")
        finally:
            with self._lock:
                self._state = "closed"
            self._fail_pending()
            if self._conn is not None:
                self._conn.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._seal_wait())
            except queue.Empty:
                self._seal_alone()
                continue
            batch, stopping = self._drain(first)
            if batch:
                self._write(batch)
        if self._last_id > self._sealed_id:
            self._seal_alone()
            if not self._healthy:
                self._close_error = JournalWriteError(f"{self._path}: final checkpoint could not be written")

    def _seal_wait(self) -> float | None:
        """Seconds until the interval checkpoint is due, or None (block) if all is sealed."""
        if self._last_id <= self._sealed_id:
            return None
        return max(0.0, self._sealed_at + self._interval - time.monotonic())

    def _drain(self, first: _Item | object) -> tuple[list[_Item], bool]:
        batch: list[_Item] = []
        stopping = False
        item = first
        while True:
            if isinstance(item, tuple):
                batch.append(item)
            else:
                stopping = True
            if len(batch) >= _MAX_BATCH:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return batch, stopping

    def _write(self, batch: list[_Item]) -> None:
        """Append the batch in one transaction and settle its waiters; seal if a checkpoint is due.

        Up to 256 records (nearly every batch) are one multi-row INSERT in autocommit mode, which
        is one transaction (one fsync with FULL) in one statement: the writer releases and re-takes
        the GIL once, not once each for BEGIN, a head query, the INSERT and COMMIT, so it
        interrupts the event loop less — on two cores the largest cost of the journal under load.
        A bigger batch takes a few INSERTs inside BEGIN IMMEDIATE … COMMIT. The chain head is kept
        in memory and read from the file at start and after any failure; ids are the primary key,
        so if anything else appended to the file meanwhile, the INSERT fails instead of forking
        the chain.
        """
        try:
            conn = self._connection()
            self._check_file()
            if self._chain is None:
                self._chain = self._head(conn)
            last_id, prev = self._chain
            params: list[int | str] = []
            for record_id, (record, _) in enumerate(batch, last_id + 1):
                text = record_json(record, record_id)
                digest = chain_hash(prev, text)
                params += (record_id, prev, digest, text)
                prev = digest
            sizes = _chunks(len(batch))
            if len(sizes) > 1:
                conn.execute("BEGIN IMMEDIATE")
            done = 0
            for rows in sizes:
                conn.execute(_insert_sql(rows), params[4 * done:4 * (done + rows)])
                done += rows
            if len(sizes) > 1:
                conn.execute("COMMIT")
        except Exception as e:  # sqlite3.Error, OSError, JournalError; anything else must fail closed too
            self._healthy = False
            self._chain = None
            self._rollback()
            self._settle(batch, 0, f"journal write failed: {e}")
            return
        self._healthy = True
        self.commits += 1
        self._chain = (last_id + len(batch), prev)
        self._last_id = last_id + len(batch)
        self._settle(batch, last_id + 1, None)
        if self._last_id - self._sealed_id >= self._every or time.monotonic() - self._sealed_at >= self._interval:
            self._seal_alone()

    def _seal_alone(self) -> None:
        """A checkpoint in its own transaction: the interval passed, or the journal is closing."""
        try:
            conn = self._connection()
            self._check_file()
            conn.execute("BEGIN IMMEDIATE")
            last_id, head = self._head(conn)
            self._insert_checkpoint(conn, last_id, head)
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError, JournalError):
            self._healthy = False
            self._rollback()
            self._sealed_at = time.monotonic()  # retry after another interval, not in a busy loop
        else:
            self._healthy = True
            self._last_id = last_id
            self._sealed(last_id)

    def _insert_checkpoint(self, conn: sqlite3.Connection, upto: int, head: str) -> None:
        checkpoint_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM checkpoints").fetchone()[0]
        moment = utc_now()
        signature = self._key.sign(checkpoint_payload(checkpoint_id, upto, head, moment, self._keyid))
        conn.execute("INSERT INTO checkpoints (id, upto_record_id, head_hash, time, keyid, signature) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (checkpoint_id, upto, head, moment, self._keyid, signature.hex()))

    def _sealed(self, upto: int) -> None:
        self._sealed_id = upto
        self._sealed_at = time.monotonic()
        self.checkpoints_written += 1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is not open")
        return self._conn

    def _check_file(self) -> None:
        """Refuse to write into a file that was removed or replaced: its records would be lost."""
        try:
            stat = os.stat(self._path)
        except OSError as e:
            raise JournalWriteError(f"{self._path}: journal file is gone ({e.strerror})") from e
        if (stat.st_dev, stat.st_ino) != self._file_id:
            raise JournalWriteError(f"{self._path}: journal file was replaced")

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            # The transaction is gone either way; the next one re-reads the chain head.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    # --- resolving waiters ----------------------------------------------------------------------

    def _settle(self, batch: list[_Item], first_id: int, error: str | None) -> None:
        """Hand each waiter its id (or the error); one call_soon_threadsafe per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
        for record_id, (_, waiter) in enumerate(batch, first_id):
            if isinstance(waiter, _AsyncWaiter):
                by_loop.setdefault(waiter.loop, []).append((waiter.future, record_id))
            elif error is None:
                waiter.set_result(record_id)
            else:
                waiter.set_exception(JournalWriteError(error))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, pairs, error)

    def _fail_pending(self) -> None:
        pending: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                pending.append(item)
        if pending:
            self._settle(pending, 0, "journal stopped before the record was written")


def _chunks(count: int) -> list[int]:
    """Rows per INSERT for `count` records: all of them in one statement up to 256, else 256 at a
    time and the rest (the connection caches the prepared statement of every row count)."""
    full, rest = divmod(count, _MAX_ROWS_PER_INSERT)
    return [_MAX_ROWS_PER_INSERT] * full + ([rest] if rest else [])


@functools.cache
def _insert_sql(rows: int) -> str:
    return "INSERT INTO records (id, prev_hash, hash, record) VALUES " + ", ".join(["(?, ?, ?, ?)"] * rows)


def _resolve(pairs: list[tuple[asyncio.Future[int], int]], error: str | None) -> None:
    """Runs on the caller's event loop: complete the futures that are still waiting."""
    for future, record_id in pairs:
        if future.done():
            continue  # the caller was cancelled; its record is written all the same
        if error is None:
            future.set_result(record_id)
        else:
            future.set_exception(JournalWriteError(error))

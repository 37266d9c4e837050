"""The journal writer: one thread, group commit, a hash chain and signed checkpoints (R11, DESIGN §7).

Callers hand a `Record` to `append` (asyncio) or `append_blocking` and get its id back only once
the transaction holding it is committed durably by the store (SQLite with the configured
`synchronous` level, PostgreSQL with its commit acknowledged): a request is forwarded, and a
response returned, only after its record is durable. One writer thread drains everything waiting
into one transaction (group commit), so a burst of calls costs one fsync, and the asyncio loop
never blocks on I/O (DESIGN §7a: an insert with synchronous=FULL costs ≈126 µs here, milliseconds
on real disks).

Independent of the backend: it speaks to a `proxy.journal.store.Store`. If a transaction fails
(disk full, file replaced, database unreachable), every waiter in it gets `JournalWriteError`,
`healthy` turns False and `problem` says why, until a later transaction succeeds: the journal
never reports an id for a record that is not committed. While unhealthy, an idle writer probes
the store (0.05 s after the failure, doubling to 5 s), so a journal that comes back is healthy
again by itself, even without traffic; a store that must reconnect spaces its own attempts out
(`PostgresStore`), so records arriving meanwhile fail at once instead of each waiting for a dead
database. The chain head is re-read from the store after any failure, so the chain continues
correctly after a failure or a restart.

Storage only: no mitmproxy import (DESIGN §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.journal.chain import Checkpoint, chain_hash
from proxy.journal.record import JournalError, JournalWriteError, Record, record_json, utc_now
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Row, Store

_MAX_BATCH = 10_000
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 5.0
_STOP = object()

CHECKPOINT_INTERVAL = 10.0
"""Seconds between checkpoints when records keep coming or not (`proxy.journal.anchor`: tail age)."""


@dataclass(frozen=True, slots=True)
class _AsyncWaiter:
    """An asyncio future and its loop: resolved from the writer thread via call_soon_threadsafe."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


_Waiter = _AsyncWaiter | Future[int]
_Item = tuple[Record, _Waiter]


class Journal:
    """The group-commit writer of one chain of a `Store`; see the module docstring.

    `target` is a store, or a path (a SQLite file with `synchronous` and `busy_timeout`).
    """

    def __init__(self, target: Store | str | Path, signing_key: Ed25519PrivateKey, *, synchronous: str = "FULL",
                 checkpoint_every: int = 1000, checkpoint_interval: float = CHECKPOINT_INTERVAL,
                 busy_timeout: float = 5.0) -> None:
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise JournalError("need checkpoint_every ≥ 1, checkpoint_interval > 0")
        self.store = target if isinstance(target, Store) else SqliteStore(
            target, synchronous=synchronous, busy_timeout=busy_timeout)
        self._key = signing_key
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._state = "new"
        self._thread: threading.Thread | None = None
        self._last_id = 0
        self._chain: tuple[int, str] | None = None  # (last id, its hash) once known; None: read the store
        self._sealed_id = 0
        self._sealed_at = time.monotonic()
        self._problem: str | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._close_error: JournalError | None = None
        self.commits = 0
        """Transactions committed that carried records: fewer than records means group commit works."""
        self.checkpoints_written = 0
        self.latest_checkpoint: Checkpoint | None = None
        """The last checkpoint this writer made durable: what `proxy.journal.anchor` exports."""
        self.on_commit: Callable[[float], None] | None = None
        """Called on the writer thread after each committed batch with the seconds the durable write
        took (a metric: durability latency); once per transaction, never per record."""

    # --- public API -----------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The SQLite file, if the store is one."""
        return self.store.path if isinstance(self.store, SqliteStore) else None

    @property
    def queue_depth(self) -> int:
        """Records waiting for the writer thread (a metric: the journal falling behind)."""
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        """False after a failed write, until a later write succeeds; False once stopped."""
        return self._problem is None and self._state == "running"

    @property
    def problem(self) -> str | None:
        """Why the journal cannot be written (for /readyz), or None when it can."""
        if self._state != "running":
            return f"journal is {self._state}"
        return self._problem

    @property
    def last_id(self) -> int:
        """The id of the last record committed by or found at start of this journal."""
        return self._last_id

    def start(self) -> None:
        """Open (or create) the store, resume the chain from its last record, start the writer."""
        with self._lock:
            if self._state != "new":
                raise JournalError("journal already started")
            self.store.open_writer()
            try:
                self._last_id = self.store.head()[0]
                self._sealed_id = self.store.last_sealed()
            except JournalError:
                self.store.close()
                raise
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
            self._problem = f"journal writer stopped: {e!r}"
            self._close_error = JournalWriteError(self._problem)
        finally:
            with self._lock:
                self._state = "closed"
            self._fail_pending()
            self.store.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._wait())
            except queue.Empty:
                if self._problem is not None:
                    self._probe()
                else:
                    self._seal_alone()
                continue
            batch, stopping = self._drain(first)
            if batch:
                self._write(batch)
        if self._last_id > self._sealed_id:
            self._seal_alone()
            if self._problem is not None:
                self._close_error = JournalWriteError(f"{self.store.label}: final checkpoint could not be "
                                                      f"written: {self._problem}")

    def _wait(self) -> float | None:
        """Seconds until the next probe (unhealthy) or interval checkpoint, or None (block)."""
        if self._problem is not None:
            return max(0.0, self._retry_at - time.monotonic())
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

        The chain head is kept in memory and read from the store at start and after any failure.
        """
        try:
            if self._chain is None:
                self._chain = self.store.head()
            last_id, prev = self._chain
            rows: list[Row] = []
            for record_id, (record, _) in enumerate(batch, last_id + 1):
                text = record_json(record, record_id)
                digest = chain_hash(prev, text)
                rows.append((record_id, prev, digest, text))
                prev = digest
            began = time.perf_counter()
            self.store.append(rows)
            took = time.perf_counter() - began
        except Exception as e:  # JournalError from the store; anything else must fail closed too
            self._failed(e)
            self._settle(batch, 0, f"journal write failed: {self._problem}")
            return
        self._succeeded()
        self.commits += 1
        self._chain = (last_id + len(batch), prev)
        self._last_id = last_id + len(batch)
        self._settle(batch, last_id + 1, None)
        if self.on_commit is not None:
            self.on_commit(took)
        if self._last_id - self._sealed_id >= self._every or time.monotonic() - self._sealed_at >= self._interval:
            self._seal_alone()

    def _probe(self) -> None:
        """Unhealthy and idle: see whether the store can be written again (reconnects if need be)."""
        try:
            self._chain = self.store.head()
        except Exception as e:
            self._failed(e)
            return
        self._succeeded()
        if self._chain[0] > self._sealed_id:
            self._seal_alone()

    def _seal_alone(self) -> None:
        """A checkpoint in its own transaction: the interval passed, or the journal is closing."""
        try:
            cp = self.store.seal(self._sign)
        except Exception as e:
            self._failed(e)
            self._sealed_at = time.monotonic()  # retry after another interval, not in a busy loop
            return
        self._succeeded()
        self._last_id = cp.upto
        self._chain = (cp.upto, cp.head)
        self._sealed_id = cp.upto
        self._sealed_at = time.monotonic()
        self.checkpoints_written += 1
        self.latest_checkpoint = cp  # replaced whole: the event loop may read it at any time

    def _sign(self, checkpoint_id: int, upto: int, head: str) -> Checkpoint:
        return Checkpoint.sign(self._key, checkpoint_id, upto, head, utc_now(), self.store.chain)

    def _failed(self, error: Exception) -> None:
        self._problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        self._chain = None
        self.store.reset()
        self._failures += 1
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** max(0, self._failures - 1))
        self._retry_at = time.monotonic() + delay

    def _succeeded(self) -> None:
        self._problem = None
        self._failures = 0

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


def _resolve(pairs: list[tuple[asyncio.Future[int], int]], error: str | None) -> None:
    """Runs on the caller's event loop: complete the futures that are still waiting."""
    for future, record_id in pairs:
        if future.done():
            continue  # the caller was cancelled; its record is written all the same
        if error is None:
            future.set_result(record_id)
        else:
            future.set_exception(JournalWriteError(error))

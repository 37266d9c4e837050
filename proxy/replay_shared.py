"""Replay protection shared by the workers of one sidecar (`workers: N`, issue 13).

`proxy.replay.ReplayGuard` keeps the accepted message ids in the memory of one process. With N
workers a replayed message could reach another worker than the original, so the workers share
one ledger: a SQLite file (`<state_dir>/workers/replay.sqlite`, WAL) holding (sid, message id,
time accepted). `check` claims a message in one statement — `INSERT … ON CONFLICT DO UPDATE …
WHERE` the stored entry has left the window — so of two workers that receive the same message at
the same moment exactly one accepts it. Only signed messages of services that require signatures
get here; other calls never touch the file.

Fails closed: if the ledger cannot be written (disk, a lock held beyond `busy_timeout`), the
message is refused with `replay-check-failed` (503), never accepted unchecked. Not durable
across a power loss (synchronous=OFF): after a crash each worker seeds the ledger from its own
journal (`seed`, as the single-process guard does), where every accepted message is durable.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from proxy.replay import ReplayGuard, message_time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (sid TEXT NOT NULL, message_id TEXT NOT NULL, at REAL NOT NULL,
                                 PRIMARY KEY (sid, message_id)) WITHOUT ROWID;
"""
_CLAIM = ("INSERT INTO seen (sid, message_id, at) VALUES (?, ?, ?) "
          "ON CONFLICT (sid, message_id) DO UPDATE SET at = excluded.at WHERE seen.at < ?")
_EXPIRE_EVERY = 1000
FILE = "replay.sqlite"


class SharedReplayGuard(ReplayGuard):
    def __init__(self, window: timedelta, path: Path, busy_timeout: float = 2.0) -> None:
        super().__init__(window)
        self.path = path
        self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._claims = 0
        self._claimed: tuple[str, str] | None = None

    def check(self, sid: str, message_id: str | None, now: datetime) -> str | None:
        if message_id is None:
            return None
        when = message_time(message_id)
        if when is not None and abs(now - when) > self.window:
            return "replayed-message"
        at, oldest = now.timestamp(), (now - self.window).timestamp()
        try:
            claimed = self._db.execute(_CLAIM, (sid, message_id, at, oldest)).rowcount == 1
            self._claims += 1
            if self._claims % _EXPIRE_EVERY == 0:
                self._db.execute("DELETE FROM seen WHERE at < ?", (oldest,))
        except sqlite3.Error:
            return "replay-check-failed"
        if not claimed:
            return "replayed-message"
        self._claimed = (sid, message_id)
        return None

    def remember(self, sid: str, message_id: str | None, now: datetime) -> None:
        """After a successful `check` the message is claimed already; `seed` inserts."""
        if message_id is None or self._claimed == (sid, message_id):
            return
        try:
            self._db.execute("INSERT OR IGNORE INTO seen (sid, message_id, at) VALUES (?, ?, ?)",
                             (sid, message_id, now.timestamp()))
        except sqlite3.Error:  # seeding is best effort; the journal still holds the record
            return

    def close(self) -> None:
        self._db.close()

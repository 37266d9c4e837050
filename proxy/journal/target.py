"""Which store a sidecar config's `journal` section names (one place for the runner and the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Store

if TYPE_CHECKING:
    from proxy.config import SidecarConfig


def store_for(config: SidecarConfig) -> Store:
    """SQLite at `journal.path`, or the PostgreSQL `journal.dsn` writing chain `journal.chain`
    (default: the participant id)."""
    journal = config.journal
    if journal.backend == "postgres":
        assert journal.dsn is not None  # the config model requires it
        from proxy.journal.postgres import PostgresStore  # psycopg (≈8 MB) only where it is used

        return PostgresStore(journal.dsn, journal.chain or config.participant)
    assert journal.path is not None
    return SqliteStore(journal.path, synchronous=journal.synchronous)

"""Read a journal: export records for auditors, count calls for service owners (R11, R12).

Backend-independent: both read a `Store` opened read-only, so they are safe while a sidecar keeps
writing. Time bounds are ISO 8601 (a date, or a time; without a zone it is UTC): `since` is
inclusive, `until` exclusive. Neither verifies the chain: run verify for that.

Exported records are dicts with every field of the newest record format (null when a record is
older than the field, `record.record_data`), `prev_hash` and `hash`, and `chain` when the store
holds several chains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proxy.journal.record import parse_bound, record_data
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Filter, StatsKey, StatsRow, Store

__all__ = ["StatsRow", "export", "make_filter", "stats", "stats_rows"]


def make_filter(since: str | None = None, until: str | None = None, message_id: str | None = None,
                provider: str | None = None) -> Filter:
    """A `Filter` from user input: bounds normalised to the record spelling (JournalFormatError)."""
    return Filter(since=parse_bound(since) if since is not None else None,
                  until=parse_bound(until) if until is not None else None,
                  message_id=message_id, provider=provider)


def _store(target: str | Path | Store) -> Store:
    return target if isinstance(target, Store) else SqliteStore(target)


def export(target: str | Path | Store, since: str | None = None, until: str | None = None,
           message_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield records chain by chain, in id order, as dicts (see the module docstring).

    `message_id`: every record whose `message_id` or `reference_message_id` is it, plus the
    other records of those exchanges (the responses).
    """
    where = make_filter(since, until, message_id)
    store = _store(target)
    store.open_reader()
    try:
        with store.snapshot():
            chains = store.chains()
            for chain in chains:
                for batch in store.select(chain, where):
                    for _, prev_hash, digest, text in batch:
                        yield row_data(prev_hash, digest, text, chain if len(chains) > 1 or chain else None)
    finally:
        store.close()


def row_data(prev_hash: str, digest: str, text: str, chain: str | None) -> dict[str, Any]:
    """One exported record: its members, its links, and its chain if it has a name."""
    data = record_data(text)
    data["prev_hash"], data["hash"] = prev_hash, digest
    if chain is not None:
        data["chain"] = chain
    return data


def stats_counts(target: str | Path | Store, where: Filter) -> dict[StatsKey, int]:
    """Request counts per (sid, operation, consumer, decision) over every chain of a store."""
    store = _store(target)
    store.open_reader()
    try:
        with store.snapshot():
            return store.stats(where)
    finally:
        store.close()


def stats_rows(counts: dict[StatsKey, int]) -> list[StatsRow]:
    """Counts as sorted rows (None sorts first)."""
    return [StatsRow(*key, calls) for key, calls in
            sorted(counts.items(), key=lambda item: tuple((v is not None, v or "") for v in item[0]))]


def stats(target: str | Path | Store, since: str | None = None, until: str | None = None,
          provider: str | None = None) -> list[StatsRow]:
    """Count requests per sid, operation, consumer and decision; `provider` keeps one owner's services.

    What a service owner is entitled to see about its services (R12): who calls what, how often,
    and how it was decided. Responses are not counted: one call is one request record.
    """
    return stats_rows(stats_counts(target, make_filter(since, until, provider=provider)))

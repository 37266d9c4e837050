"""Read a journal: export records for auditors, count calls for service owners (R11, R12).

Backend-independent: both read a `Store` opened read-only, so they are safe while a sidecar keeps
writing. Time bounds are ISO 8601 (a date, or a time; without a zone it is UTC): `since` is
inclusive, `until` exclusive. Neither verifies the chain: run verify for that.

Exported records are dicts with every field of the newest record format (null when a record is
older than the field, `record.record_data`), `prev_hash` and `hash`, and `chain` when the store
holds several chains.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from proxy.journal.archive import Archive, load_archives, read_archive
from proxy.journal.record import JournalError, parse_bound, record_data
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Filter, Row, StatsKey, StatsRow, Store

__all__ = ["StatsRow", "export", "export_archives", "make_filter", "stats", "stats_rows"]


def make_filter(since: str | None = None, until: str | None = None, message_id: str | None = None,
                provider: str | None = None) -> Filter:
    """A `Filter` from user input: bounds normalised to the record spelling (JournalFormatError)."""
    return Filter(since=parse_bound(since) if since is not None else None,
                  until=parse_bound(until) if until is not None else None,
                  message_id=message_id, provider=provider)


def _store(target: str | Path | Store) -> Store:
    return target if isinstance(target, Store) else SqliteStore(target)


def export(target: str | Path | Store, since: str | None = None, until: str | None = None,
           message_id: str | None = None, archives: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yield records chain by chain, in id order, as dicts (see the module docstring).

    `message_id`: every record whose `message_id` or `reference_message_id` is it, plus the
    other records of those exchanges (the responses). `archives`: the records pruned from the
    store are read from the archives in that directory (before the store's own).
    """
    where = make_filter(since, until, message_id)
    archived = load_archives(archives) if archives is not None else {}
    store = _store(target)
    store.open_reader()
    try:
        with store.snapshot():
            chains = store.chains()
            if archived:
                chains = sorted(set(chains) | set(archived), key=lambda c: (c is not None, c or ""))
            for chain in chains:
                name = chain if len(chains) > 1 or chain else None
                pruned = store.pruned(chain)[0]
                for batch in _archived_rows(archived.get(chain, []), pruned, where):
                    for _, prev_hash, digest, text in batch:
                        yield row_data(prev_hash, digest, text, name)
                for batch in store.select(chain, where):
                    for _, prev_hash, digest, text in batch:
                        yield row_data(prev_hash, digest, text, name)
    finally:
        store.close()


def export_archives(directory: Path, since: str | None = None, until: str | None = None,
                    message_id: str | None = None) -> Iterator[dict[str, Any]]:
    """`export` of an archive directory alone (its journal gone or elsewhere), chain by chain."""
    where = make_filter(since, until, message_id)
    archived = load_archives(directory)
    for chain in sorted(archived, key=lambda c: (c is not None, c or "")):
        archives = archived[chain]
        for batch in _archived_rows(archives, archives[-1].last, where):
            for _, prev_hash, digest, text in batch:
                yield row_data(prev_hash, digest, text, chain)


def _archived_rows(archives: list[Archive], pruned: int, where: Filter) -> Iterator[list[Row]]:
    """Archived rows the store no longer holds (id ≤ pruned) that match `where`. A message id
    takes two passes: the exchanges that name it, then their records."""
    exchanges: set[str] | None = None
    if where.message_id is not None:
        exchanges = set()
        for batch in _rows_upto(archives, pruned):
            for row in batch:
                data = json.loads(row[3])
                if where.message_id in (data.get("message_id"), data.get("reference_message_id")):
                    exchanges.add(str(data.get("exchange")))
    for batch in _rows_upto(archives, pruned):
        kept = []
        for row in batch:
            data = json.loads(row[3])
            if where.matches(data) and (exchanges is None or data.get("exchange") in exchanges):
                kept.append(row)
        if kept:
            yield kept


def _rows_upto(archives: list[Archive], pruned: int) -> Iterator[list[Row]]:
    for archive in archives:
        if archive.first > pruned:
            return
        for batch in read_archive(archive):
            yield [row for row in batch if row[0] <= pruned]


def row_data(prev_hash: str, digest: str, text: str, chain: str | None) -> dict[str, Any]:
    """One exported record: its members, its links, and its chain if it has a name."""
    data = record_data(text)
    data["prev_hash"], data["hash"] = prev_hash, digest
    if chain is not None:
        data["chain"] = chain
    return data


def stats_counts(target: str | Path | Store, where: Filter, archives: Path | None = None) -> dict[StatsKey, int]:
    """Request counts per (sid, operation, consumer, decision) over every chain of a store, and
    over the archived records it no longer holds."""
    archived = load_archives(archives) if archives is not None else {}
    requests = Filter(where.since, where.until, requests_only=True, provider=where.provider)
    store = _store(target)
    store.open_reader()
    try:
        with store.snapshot():
            counts = store.stats(where)
            for chain, chain_archives in archived.items():
                for batch in _archived_rows(chain_archives, store.pruned(chain)[0], requests):
                    for row in batch:
                        data = json.loads(row[3])
                        key = (data.get("sid"), data.get("operation"), data.get("consumer"), data["decision"])
                        counts[key] = counts.get(key, 0) + 1
            return counts
    finally:
        store.close()


def stats_rows(counts: dict[StatsKey, int]) -> list[StatsRow]:
    """Counts as sorted rows (None sorts first)."""
    return [StatsRow(*key, calls) for key, calls in
            sorted(counts.items(), key=lambda item: tuple((v is not None, v or "") for v in item[0]))]


def stats(target: str | Path | Store | Sequence[str | Path | Store], since: str | None = None,
          until: str | None = None, provider: str | None = None, archives: Path | None = None) -> list[StatsRow]:
    """Count requests per sid, operation, consumer and decision; `provider` keeps one owner's services.

    What a service owner is entitled to see about its services (R12): who calls what, how often,
    and how it was decided. Responses are not counted: one call is one request record. Several
    targets (the journals of several sidecars) are counted together; `archives` belongs to a
    single target.
    """
    targets = list(target) if isinstance(target, Sequence) and not isinstance(target, str) else [target]
    if archives is not None and len(targets) != 1:
        raise JournalError("--archives belongs to one journal: count several journals without it, or one with it")
    where = make_filter(since, until, provider=provider)
    total: dict[StatsKey, int] = {}
    for one in targets:
        for key, calls in stats_counts(one, where, archives).items():
            total[key] = total.get(key, 0) + calls
    return stats_rows(total)

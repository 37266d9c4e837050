"""Read a journal: export records for auditors, count calls for service owners (R11, R12).

Both open the file read-only, so they are safe while a sidecar keeps writing. Time bounds are
ISO 8601 (a date, or a time; without a zone it is UTC): `since` is inclusive, `until` exclusive.
Neither verifies the chain: run `verify_journal` for that.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.journal_format import JournalError, open_readonly, parse_bound

_BATCH = 4096


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Calls (requests) to one service operation from one consumer with one decision."""

    sid: str | None
    operation: str | None
    consumer: str | None
    decision: str
    calls: int


def export(path: str | Path, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield records in id order as dicts: the record's fields and id, plus prev_hash and hash."""
    where, params = _time_filter(since, until)
    conn = open_readonly(path)
    try:
        cursor = conn.execute(f"SELECT prev_hash, hash, record FROM records {where} ORDER BY id", params)
        while batch := cursor.fetchmany(_BATCH):
            for prev_hash, digest, text in batch:
                data: dict[str, Any] = json.loads(text)
                data["prev_hash"], data["hash"] = prev_hash, digest
                yield data
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot read journal: {e}") from e
    finally:
        conn.close()


def stats(path: str | Path, since: str | None = None, until: str | None = None,
          provider: str | None = None) -> list[StatsRow]:
    """Count requests per sid, operation, consumer and decision; `provider` keeps one owner's services.

    What a service owner is entitled to see about its services (R12): who calls what, how often,
    and how it was decided. Responses are not counted: one call is one request record.
    """
    where, params = _time_filter(since, until, "kind = 'request'")
    if provider is not None:
        where += " AND provider = ?"
        params.append(provider)
    conn = open_readonly(path)
    try:
        rows = conn.execute(
            f"SELECT sid, operation, consumer, decision, count(*) FROM records {where} "
            "GROUP BY sid, operation, consumer, decision ORDER BY sid, operation, consumer, decision",
            params).fetchall()
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot read journal: {e}") from e
    finally:
        conn.close()
    return [StatsRow(*row) for row in rows]


def _time_filter(since: str | None, until: str | None, *conditions: str) -> tuple[str, list[Any]]:
    """A WHERE clause over the indexed `time` column; bounds normalised to the record spelling."""
    clauses, params = list(conditions), []
    if since is not None:
        clauses.append("time >= ?")
        params.append(parse_bound(since))
    if until is not None:
        clauses.append("time < ?")
        params.append(parse_bound(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

"""Priced usage (R13): allowed calls multiplied by the tariff of each service, per currency.

Tariffs come from a verified bundle (the service header's `tariff`, docs/bundle-format.md): the
provider's own bundle (`services`) or a consumer's (`grants`). A call is billed when its request
was allowed; denied calls and errors are counted by `stats` but cost nothing. Amounts are decimal
(no float rounding), as the registry spells them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from proxy.journal.record import JournalFormatError
from proxy.journal.store import StatsRow


@dataclass(frozen=True, slots=True)
class Tariff:
    currency: str
    per_call: Decimal


@dataclass(frozen=True, slots=True)
class PricedRow:
    """Allowed calls of one consumer to one service operation, and what they cost."""

    sid: str
    operation: str | None
    consumer: str | None
    calls: int
    currency: str
    per_call: Decimal
    amount: Decimal


def tariffs(signed: Mapping[str, Any]) -> dict[str, Tariff]:
    """The tariff of every service a bundle names (provided or granted) that has one."""
    found: dict[str, Tariff] = {}
    for section in ("services", "grants"):
        entries = signed.get(section)
        if not isinstance(entries, dict):
            continue
        for sid, header in entries.items():
            tariff = header.get("tariff") if isinstance(header, dict) else None
            if tariff is None:
                continue
            try:
                found[sid] = Tariff(str(tariff["currency"]), Decimal(str(tariff["per_call"])))
            except (KeyError, TypeError, InvalidOperation) as e:
                raise JournalFormatError(f"bundle: service {sid}: bad tariff {tariff!r}") from e
    return found


def priced(rows: Iterable[StatsRow], by_sid: Mapping[str, Tariff]) -> list[PricedRow]:
    """Allowed calls to services with a tariff, priced; services without one are left out."""
    out = []
    for row in rows:
        tariff = by_sid.get(row.sid or "")
        if row.decision != "allow" or tariff is None or row.sid is None:
            continue
        out.append(PricedRow(row.sid, row.operation, row.consumer, row.calls, tariff.currency, tariff.per_call,
                             tariff.per_call * row.calls))
    return out


def totals(rows: Iterable[PricedRow]) -> dict[str, Decimal]:
    """The amount per currency."""
    sums: dict[str, Decimal] = {}
    for row in rows:
        sums[row.currency] = sums.get(row.currency, Decimal(0)) + row.amount
    return dict(sorted(sums.items()))

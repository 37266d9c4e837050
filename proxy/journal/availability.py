"""Availability of services over a period, from the health events in journals (record format 3).

A service's time is *observed* from its first health event (or the start of the period, when an
earlier event already said whether it was up) to the end of the period (or now); it is *down*
between a `health-down` event and the next `health-up`. Availability = 1 − down / observed. Time
before a service's first event is not observed: a sidecar that was not running says nothing.
Events of several chains (the workers of one sidecar, or several sidecars) are merged by time.

Storage only: reads any `Store` through the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from proxy.journal.record import parse_bound, record_data, utc_now
from proxy.journal.store import Filter, Store


@dataclass(frozen=True)
class AvailabilityRow:
    sid: str
    observed_seconds: float
    down_seconds: float
    downs: int  # health-down events within the period
    up_now: bool | None  # the state at the end of the period

    @property
    def availability(self) -> float | None:
        return None if self.observed_seconds <= 0 else 1 - self.down_seconds / self.observed_seconds


def _seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def events(stores: Sequence[Store], until: str | None = None) -> list[tuple[str, str, bool]]:
    """(time, sid, up) of every health event before `until`, all chains, sorted by time."""
    out: list[tuple[str, str, bool]] = []
    where = Filter(until=until, events_only=True)
    for store in stores:
        store.open_reader()
        try:
            with store.snapshot():
                for chain in store.chains():
                    for batch in store.select(chain, where):
                        for _, _, _, text in batch:
                            data = record_data(text)
                            if data.get("kind") == "event" and isinstance(data.get("sid"), str):
                                out.append((str(data["time"]), data["sid"],
                                            data.get("reason") == "health-up"))
        finally:
            store.close()
    out.sort()
    return out


def availability(stores: Sequence[Store], since: str | None = None,
                 until: str | None = None) -> list[AvailabilityRow]:
    """One row per service with a health event before the end of the period, sorted by SID."""
    start = parse_bound(since) if since is not None else None
    end = parse_bound(until) if until is not None else utc_now()
    state: dict[str, tuple[float, bool]] = {}  # sid -> (observed since, up)
    observed: dict[str, float] = {}
    down: dict[str, float] = {}
    downs: dict[str, int] = {}
    t0 = _seconds(start) if start is not None else None

    def close(sid: str, at: float) -> None:
        began, up = state[sid]
        began = max(began, t0) if t0 is not None else began
        if at > began:
            observed[sid] = observed.get(sid, 0.0) + at - began
            if not up:
                down[sid] = down.get(sid, 0.0) + at - began

    for when, sid, up in events(stores, until=end):
        at = _seconds(when)
        if sid in state:
            close(sid, at)
        if not up and (start is None or when >= start):
            downs[sid] = downs.get(sid, 0) + 1
        state[sid] = (at, up)
    t_end = _seconds(end)
    for sid in state:
        close(sid, t_end)
    return [AvailabilityRow(sid, observed.get(sid, 0.0), down.get(sid, 0.0), downs.get(sid, 0), state[sid][1])
            for sid in sorted(state)]

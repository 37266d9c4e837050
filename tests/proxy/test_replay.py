"""proxy.replay: the window, message times from SMEV 3 MessageIDs, seeding from journal records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from proxy.replay import ReplayGuard, message_time

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _uuid1_at(when: datetime) -> str:
    ticks = int((when - datetime(1582, 10, 15, tzinfo=UTC)).total_seconds() * 10_000_000)
    return str(uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, 0x1000 | ((ticks >> 48) & 0x0FFF),
                                 0x80, 0x01, 0x123456789ABC)))


def test_real_message_id_time() -> None:
    when = message_time("39f52a38-9a54-11ea-b23a-3316e2108089")
    assert when is not None and when.date().isoformat() == "2020-05-20"


@pytest.mark.parametrize("value", [None, "not-a-uuid", str(uuid.uuid4())], ids=["none", "not-uuid", "uuid4"])
def test_ids_without_time(value: str | None) -> None:
    assert message_time(value) is None


@pytest.mark.parametrize(("offset", "reason"), [
    (timedelta(0), None), (timedelta(minutes=-14), None), (timedelta(minutes=-16), "replayed-message"),
    (timedelta(minutes=16), "replayed-message"),
], ids=["now", "inside-window", "too-old", "from-the-future"])
def test_message_time_window(offset: timedelta, reason: str | None) -> None:
    assert ReplayGuard(WINDOW).check("SID1", _uuid1_at(NOW + offset), NOW) == reason


def test_seen_id_is_refused_per_service_until_the_window_passes() -> None:
    guard = ReplayGuard(WINDOW)
    mid = str(uuid.uuid4())  # no time inside: only the id counts
    assert guard.check("SID1", mid, NOW) is None
    guard.remember("SID1", mid, NOW)
    assert guard.check("SID1", mid, NOW + timedelta(minutes=1)) == "replayed-message"
    assert guard.check("SID2", mid, NOW) is None  # another service
    assert guard.check("SID1", mid, NOW + WINDOW + timedelta(seconds=1)) is None


def test_seed_from_journal_records() -> None:
    guard = ReplayGuard(WINDOW)
    base = {"kind": "request", "direction": "inbound", "decision": "allow", "sid": "SID1",
            "signature_check": "valid urn:x 00"}
    records = [
        {**base, "message_id": "a", "time": "2026-12-02T11:55:00.000000Z"},
        {**base, "message_id": "b", "time": "2026-12-02T11:00:00.000000Z"},  # outside the window
        {**base, "message_id": "c", "time": "2026-12-02T11:58:00.000000Z", "decision": "deny"},
        {**base, "message_id": "d", "time": "2026-12-02T11:58:00.000000Z", "signature_check": None},
        {**base, "message_id": "e", "time": "2026-12-02T11:58:00.000000Z", "kind": "response"},
    ]
    assert guard.seed(records, NOW) == 1
    assert guard.check("SID1", "a", NOW) == "replayed-message"
    assert [guard.check("SID1", m, NOW) for m in "bcde"] == [None] * 4

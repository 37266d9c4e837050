"""proxy.replay_shared: the replay ledger the workers of one sidecar share (issue 13).

Two guards on one file stand for two workers; a race between two real processes claims each
message exactly once; a ledger that cannot be written refuses (fail closed).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from proxy.replay_shared import SharedReplayGuard
from tests.proxy.test_replay import NOW, WINDOW, _uuid1_at


def test_a_message_accepted_by_one_worker_is_a_replay_at_another(tmp_path: Path) -> None:
    a, b = SharedReplayGuard(WINDOW, tmp_path / "r.sqlite"), SharedReplayGuard(WINDOW, tmp_path / "r.sqlite")
    mid = str(uuid.uuid4())
    assert a.check("SID1", mid, NOW) is None
    a.remember("SID1", mid, NOW)
    assert b.check("SID1", mid, NOW + timedelta(minutes=1)) == "replayed-message"
    assert a.check("SID1", mid, NOW + timedelta(minutes=2)) == "replayed-message"
    assert b.check("SID2", mid, NOW) is None  # another service
    assert b.check("SID1", mid, NOW + WINDOW + timedelta(seconds=1)) is None  # the window passed


@pytest.mark.parametrize(("offset", "reason"), [
    (timedelta(0), None), (timedelta(minutes=-16), "replayed-message"), (timedelta(minutes=16), "replayed-message"),
], ids=["now", "too-old", "from-the-future"])
def test_message_time_window(tmp_path: Path, offset: timedelta, reason: str | None) -> None:
    assert SharedReplayGuard(WINDOW, tmp_path / "r.sqlite").check("SID1", _uuid1_at(NOW + offset), NOW) == reason


def test_seeded_by_one_worker_refused_by_another(tmp_path: Path) -> None:
    a, b = SharedReplayGuard(WINDOW, tmp_path / "r.sqlite"), SharedReplayGuard(WINDOW, tmp_path / "r.sqlite")
    record = {"kind": "request", "direction": "inbound", "decision": "allow", "sid": "SID1",
              "signature_check": "valid urn:x 00", "message_id": "m1", "time": "2026-12-02T11:55:00.000000Z"}
    assert a.seed([record], NOW) == 1
    assert b.check("SID1", "m1", NOW) == "replayed-message"


_CLAIMER = """
import sys
from datetime import datetime, timedelta, UTC
from pathlib import Path
from proxy.replay_shared import SharedReplayGuard
guard = SharedReplayGuard(timedelta(minutes=15), Path(sys.argv[1]), busy_timeout=30)
now = datetime.now(UTC)
sys.stdin.readline()  # start together
for i in range(300):
    if guard.check("SID1", f"m{i}", now) is None:
        print(i)
"""


def test_two_processes_racing_accept_each_message_once(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite")
    SharedReplayGuard(WINDOW, Path(path)).close()  # the schema exists before the race
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    accepted = [set(map(int, p.communicate(timeout=120)[0].split())) for p in procs]
    assert accepted[0] | accepted[1] == set(range(300))
    assert accepted[0] & accepted[1] == set()


def test_a_ledger_that_cannot_be_written_refuses(tmp_path: Path) -> None:
    guard = SharedReplayGuard(WINDOW, tmp_path / "r.sqlite", busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "r.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        assert guard.check("SID1", str(uuid.uuid4()), NOW) == "replay-check-failed"
    finally:
        holder.execute("ROLLBACK")
    assert guard.check("SID1", str(uuid.uuid4()), NOW) is None

"""The journal: durable ids, group commit, fail-closed writes, the hash chain and its verification.

Everything runs on real SQLite files in tmp_path. Tampering is done the way an insider would do
it: with the `sqlite3` module, on the closed file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.trust import canonical_json, keyid
from proxy.journal import Journal, JournalError, JournalFormatError, JournalWriteError, Record, utc_now
from proxy.journal.chain import GENESIS_HASH, chain_hash, checkpoint_payload
from proxy.journal.query import StatsRow, export, stats
from proxy.journal.record import RECORD_FIELDS, record_json, sidecar_record
from proxy.journal.verify import verify_journal

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # the same in subprocesses


def make_record(n: int = 0, **changes: object) -> Record:
    fields: dict[str, object] = {
        "time": utc_now(), "direction": "inbound", "kind": "request", "exchange": f"exchange-{n}",
        "decision": "allow", "method": "POST", "path": "/SID0003001/certificates", "size": 10 + n,
        "body_sha256": hashlib.sha256(str(n).encode()).hexdigest(), "consumer": "vedomstvo-1",
        "provider": "vedomstvo-3", "sid": "SID0003001", "operation": "getCertificate",
        "bundle_serial": 7, "grant": "consumers/vedomstvo-1.yaml#grants[0]", "client_fingerprint": "ab" * 32,
    }
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(db: Path) -> Iterator[Journal]:
    j = Journal(db, KEY, checkpoint_every=10)
    j.start()
    yield j
    with contextlib.suppress(JournalError):
        j.close()


def write_journal(path: Path, count: int = 25, checkpoint_every: int = 10) -> None:
    """A closed journal: one commit per record, checkpoints at 10, 20 and (on close) 25."""
    with Journal(path, KEY, checkpoint_every=checkpoint_every) as j:
        for n in range(1, count + 1):
            j.append_blocking(make_record(n))


def rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


# --- writing --------------------------------------------------------------------------------------


def test_append_blocking_returns_consecutive_ids_already_committed(journal: Journal, db: Path) -> None:
    ids = [journal.append_blocking(make_record(n)) for n in range(3)]
    assert ids == [1, 2, 3]
    # Another connection sees them at once: the id is returned only after COMMIT.
    assert rows(db, "SELECT id, exchange FROM records ORDER BY id") == [
        (1, "exchange-0"), (2, "exchange-1"), (3, "exchange-2")]


def test_async_append_resolves_on_the_callers_loop_after_commit(journal: Journal, db: Path) -> None:
    async def main() -> list[int]:
        return list(await asyncio.gather(*(journal.append(make_record(n)) for n in range(50))))

    ids = asyncio.run(main())
    assert sorted(ids) == list(range(1, 51))
    assert rows(db, "SELECT count(*) FROM records") == [(50,)]


def test_rows_hold_the_chain_and_no_body(journal: Journal, db: Path) -> None:
    record = make_record(1, status=200, kind="response")
    journal.append_blocking(make_record(0))
    journal.append_blocking(record)
    (prev1, hash1), (prev2, hash2, text2) = (rows(db, "SELECT prev_hash, hash FROM records WHERE id = 1")[0],
                                             rows(db, "SELECT prev_hash, hash, record FROM records WHERE id = 2")[0])
    assert prev1 == GENESIS_HASH and prev2 == hash1
    assert text2 == record_json(record, 2) and hash2 == chain_hash(str(prev2), str(text2))
    assert set(json.loads(str(text2))) == {*Record.__dataclass_fields__, "id", "format"}


def test_chain_resumes_from_the_last_record_after_reopen(db: Path) -> None:
    write_journal(db, count=3)
    with Journal(db, KEY) as j:
        assert j.last_id == 3
        assert j.append_blocking(make_record(4)) == 4
    prev4, hash3 = rows(db, "SELECT prev_hash FROM records WHERE id = 4")[0][0], rows(
        db, "SELECT hash FROM records WHERE id = 3")[0][0]
    assert prev4 == hash3
    report = verify_journal(db, KEY.public_key())
    assert report.ok and report.records == 4 and report.unsealed_tail == 0


def test_a_record_appended_by_another_writer_is_not_overwritten_or_forked(journal: Journal, db: Path) -> None:
    """The writer keeps the chain head in memory; a row it did not write makes its next INSERT
    fail (the id is taken), and the one after continues from what the file holds."""
    assert journal.append_blocking(make_record(1)) == 1
    other = sqlite3.connect(db, isolation_level=None)
    prev = str(rows(db, "SELECT hash FROM records WHERE id = 1")[0][0])
    text = record_json(make_record(2, exchange="other-writer"), 2)
    other.execute("INSERT INTO records (id, prev_hash, hash, record) VALUES (2, ?, ?, ?)",
                  (prev, chain_hash(prev, text), text))
    other.close()
    with pytest.raises(JournalWriteError, match=r"UNIQUE|PRIMARY"):
        journal.append_blocking(make_record(3))
    assert not journal.healthy
    assert journal.append_blocking(make_record(4)) == 3
    assert journal.healthy
    assert [r["exchange"] for r in export(db)] == ["exchange-1", "other-writer", "exchange-4"]
    journal.close()
    assert verify_journal(db, KEY.public_key()).ok


def test_group_commit_puts_waiting_records_into_one_transaction(db: Path) -> None:
    # Hold the write lock so the writer's first transaction waits; everything that arrives
    # meanwhile must go into the next single transaction, not one transaction per record.
    j = Journal(db, KEY, busy_timeout=10)
    j.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def main() -> list[int]:
        first = asyncio.ensure_future(j.append(make_record(0)))
        await asyncio.sleep(0)
        while j.queue_depth:  # the writer took record 0 and now waits for the lock
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(j.append(make_record(n))) for n in range(1, 500)]
        await asyncio.sleep(0.1)
        assert j.queue_depth == 499
        blocker.execute("ROLLBACK")
        return list(await asyncio.gather(first, *rest))

    ids = asyncio.run(main())
    j.close()
    assert sorted(ids) == list(range(1, 501))
    assert j.commits == 2
    # 499 records in one transaction go in as several multi-row INSERTs: order and chain intact
    assert verify_journal(db, KEY.public_key()).ok
    assert [r["exchange"] for r in export(db)] == [f"exchange-{n}" for n in range(500)]


def test_many_concurrent_appenders_share_transactions(journal: Journal) -> None:
    async def main() -> list[int]:
        return list(await asyncio.gather(*(journal.append(make_record(n)) for n in range(2000))))

    assert sorted(asyncio.run(main())) == list(range(1, 2001))
    assert journal.commits <= 200


def test_appends_from_many_threads_get_distinct_ids(journal: Journal) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for n in range(start, start + 50):
            record_id = journal.append_blocking(make_record(n))
            with lock:
                got.append(record_id)

    threads = [threading.Thread(target=worker, args=(k * 50,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 401))


def test_checkpoints_every_n_records_and_on_close(db: Path) -> None:
    write_journal(db, count=25, checkpoint_every=10)
    assert rows(db, "SELECT id, upto_record_id FROM checkpoints ORDER BY id") == [(1, 10), (2, 20), (3, 25)]
    cp_id, _, head, moment, kid, signature = rows(db, "SELECT * FROM checkpoints WHERE id = 3")[0]
    assert head == rows(db, "SELECT hash FROM records WHERE id = 25")[0][0]
    assert kid == keyid(KEY.public_key())
    KEY.public_key().verify(bytes.fromhex(str(signature)),
                            checkpoint_payload(int(str(cp_id)), 25, str(head), str(moment), str(kid)))


def test_checkpoint_after_interval_while_idle(db: Path) -> None:
    idle = Journal(db, KEY, checkpoint_interval=1.0)
    idle.start()
    idle.append_blocking(make_record(1))
    assert rows(db, "SELECT count(*) FROM checkpoints") == [(0,)]
    deadline = time.monotonic() + 10
    while not rows(db, "SELECT count(*) FROM checkpoints")[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(db, "SELECT upto_record_id FROM checkpoints") == [(1,)]  # sealed while idle
    idle.close()
    assert rows(db, "SELECT count(*) FROM checkpoints") == [(1,)]  # nothing new to seal on close


def test_append_after_close_is_refused(journal: Journal) -> None:
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append_blocking(make_record())
    assert not journal.healthy


def test_start_fails_clearly_on_a_path_that_cannot_be_a_database(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "dir.db", KEY).start()
    (tmp_path / "text.db").write_text("not sqlite " * 100)
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "text.db", KEY).start()


@pytest.mark.parametrize(("changes", "match"), [
    pytest.param({"time": "2026-11-25T21:00:00+00:00"}, "not UTC", id="time-not-canonical"),
    pytest.param({"time": "2026-11-25T21:00:00Z"}, "not UTC", id="time-without-microseconds"),
    pytest.param({"direction": "sideways"}, "direction", id="bad-direction"),
    pytest.param({"decision": "maybe"}, "decision", id="bad-decision"),
    pytest.param({"size": "10"}, "size", id="size-not-int"),
    pytest.param({"status": True}, "status", id="status-bool"),
    pytest.param({"sid": 3001}, "sid", id="sid-not-str"),
])
def test_record_refuses_values_the_format_cannot_hold(changes: dict[str, object], match: str) -> None:
    with pytest.raises(JournalFormatError, match=match):
        make_record(**changes)


def test_non_utf8_request_target_is_escaped_not_refused(journal: Journal, db: Path) -> None:
    # What mitmproxy hands over for GET /caf\xe9 (raw Latin-1 byte): a lone surrogate.
    record = make_record(1, path="/SID0003001/caf\udce9", consumer="ведомство-1")
    assert record.path == "/SID0003001/caf\\xe9" and record.consumer == "ведомство-1"
    journal.append_blocking(record)
    journal.close()
    assert [r["path"] for r in export(db)] == ["/SID0003001/caf\\xe9"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(), n=st.integers(0, 2**62))
def test_sidecar_record_is_the_validated_record(text: str, n: int) -> None:
    # The sidecar's unchecked hot-path constructor must build exactly what Record() builds,
    # including the UTF-8 repair of wire text, and record_json must stay canonical_json.
    checked = make_record(3, path=text, method=text or "GET", operation=text or None, size=n)
    fast = sidecar_record(**{name: getattr(checked, name) if name not in ("path", "method", "operation")
                             else {"path": text, "method": text or "GET", "operation": text or None}[name]
                             for name in RECORD_FIELDS})  # type: ignore[arg-type]
    assert fast == checked
    data = {name: getattr(checked, name) for name in RECORD_FIELDS}
    assert record_json(fast, n) == canonical_json({**data, "id": n, "format": 2}).decode("utf-8")


def test_sidecar_record_sets_every_field_in_its_place() -> None:
    """The hot-path constructor lists the fields positionally inside: each keyword lands in its field."""
    values = {name: f"v-{name}" for name in RECORD_FIELDS}
    record = sidecar_record(**values)  # type: ignore[arg-type]
    assert {name: getattr(record, name) for name in RECORD_FIELDS} == values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(), min_size=1, max_size=5), sizes=st.lists(st.integers(0, 2**62), min_size=1))
def test_any_text_round_trips_and_verifies(tmp_path: Path, texts: list[str], sizes: list[int]) -> None:
    path = tmp_path / f"j-{time.monotonic_ns()}.db"
    written = [make_record(n, path=text, operation=text or None, size=sizes[n % len(sizes)])
               for n, text in enumerate(texts)]
    with Journal(path, KEY) as j:
        for record in written:
            j.append_blocking(record)
    assert verify_journal(path, KEY.public_key()).ok
    exported = list(export(path))
    assert [(r["path"], r["operation"], r["size"]) for r in exported] == [
        (r.path, r.operation, r.size) for r in written]
    # The generated columns are a query view via json_extract, where SQLite ends a string at NUL.
    assert [row for row, text in zip(rows(path, "SELECT path, operation, size FROM records ORDER BY id"),
                                     texts, strict=True) if "\x00" not in text] == [
        (r.path, r.operation, r.size) for r in written if "\x00" not in r.path]


# --- failing closed -------------------------------------------------------------------------------


def test_locked_database_fails_every_waiter_then_recovers(db: Path) -> None:
    j = Journal(db, KEY, busy_timeout=0.2)
    j.start()
    assert j.append_blocking(make_record(0)) == 1
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def burst() -> list[object]:
        return list(await asyncio.gather(*(j.append(make_record(n)) for n in range(1, 40)),
                                         return_exceptions=True))

    results = asyncio.run(burst())
    assert all(isinstance(r, JournalWriteError) for r in results), results
    assert "locked" in str(results[0])
    assert not j.healthy
    blocker.execute("ROLLBACK")
    assert j.append_blocking(make_record(99)) == 2  # the chain continues where it was
    assert j.healthy
    j.close()
    assert rows(db, "SELECT id, exchange FROM records") == [(1, "exchange-0"), (2, "exchange-99")]
    assert verify_journal(db, KEY.public_key()).ok


@pytest.mark.parametrize("replace", [
    pytest.param(lambda p: p.unlink(), id="file-removed"),
    pytest.param(lambda p: (p.unlink(), p.mkdir()), id="file-replaced-by-directory"),
    pytest.param(lambda p: (p.unlink(), p.write_bytes(b"")), id="file-replaced-by-empty-file"),
])
def test_removed_or_replaced_file_fails_the_write(db: Path, replace: Callable[[Path], object]) -> None:
    j = Journal(db, KEY)
    j.start()
    j.append_blocking(make_record(0))
    replace(db)
    with pytest.raises(JournalWriteError, match=r"gone|replaced"):
        j.append_blocking(make_record(1))
    assert not j.healthy
    with pytest.raises(JournalWriteError):
        j.close()  # the final checkpoint cannot be written either


_DISK_FULL = textwrap.dedent("""
    import asyncio, json, os, resource, signal, sys
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    sys.path.insert(0, sys.argv[2])
    from test_journal import make_record
    from proxy.journal import Journal, JournalWriteError

    path = sys.argv[1]
    j = Journal(path, Ed25519PrivateKey.generate(), checkpoint_every=10**9, checkpoint_interval=3600)
    j.start()
    durable = [j.append_blocking(make_record(n, path="/x" * 200)) for n in range(20)]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = max(os.path.getsize(path + suffix) for suffix in ("", "-wal")) + 16384
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    async def burst():
        return await asyncio.gather(*(j.append(make_record(n, path="/x" * 200)) for n in range(500)),
                                    return_exceptions=True)

    failed, errors = 0, set()
    while failed == 0:
        for result in asyncio.run(burst()):
            if isinstance(result, JournalWriteError):
                failed += 1
                errors.add(str(result))
            else:
                durable.append(result)
    print(json.dumps({"durable": durable, "failed": failed, "errors": sorted(errors),
                      "healthy": j.healthy}))
    os._exit(0)  # like a crash: no close, no final checkpoint
""")


def test_full_disk_fails_waiters_and_never_reports_an_uncommitted_record(db: Path) -> None:
    # RLIMIT_FSIZE makes writes fail with EFBIG even for root: SQLite reports the disk as full.
    result = subprocess.run([sys.executable, "-c", _DISK_FULL, str(db), str(Path(__file__).parent)],
                            capture_output=True, text=True, timeout=120, check=True)
    outcome = json.loads(result.stdout)
    assert outcome["failed"] > 0 and not outcome["healthy"]
    assert any("disk" in e for e in outcome["errors"]), outcome["errors"]  # "disk I/O error" or "full"
    stored = {row[0] for row in rows(db, "SELECT id FROM records")}
    assert set(outcome["durable"]) <= stored  # every id handed out is really in the file
    report = verify_journal(db, KEY.public_key())
    assert report.ok and report.unsealed_tail == report.records


_KILLED = textwrap.dedent("""
    import asyncio, sys
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    sys.path.insert(0, sys.argv[2])
    from test_journal import KEY, make_record
    from proxy.journal import Journal

    j = Journal(sys.argv[1], KEY, checkpoint_every=50)
    j.start()

    async def appender(k):
        n = 0
        while True:
            record_id = await j.append(make_record(k * 10**6 + n))
            print(record_id, flush=True)
            n += 1

    async def main():
        await asyncio.gather(*(appender(k) for k in range(20)))

    asyncio.run(main())
""")


def test_sigkill_under_load_leaves_a_journal_that_verifies(db: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(db), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(500)]
    proc.kill()
    acknowledged += [int(line) for line in proc.stdout.read().split()]
    proc.wait()
    stored = {row[0] for row in rows(db, "SELECT id FROM records")}
    assert set(acknowledged) <= stored  # every id a caller was given survived the kill
    report = verify_journal(db, KEY.public_key())
    assert report.ok, report.problems
    assert report.records >= 500 and report.checkpoints >= 1
    assert report.unsealed_tail == report.records - report.last_sealed_record


# --- verification ---------------------------------------------------------------------------------


def _edit(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for sql, params in statements:
            conn.execute(sql, params)


def _record(path: Path, record_id: int) -> tuple[str, str, str]:
    prev, digest, text = rows(path, "SELECT prev_hash, hash, record FROM records WHERE id = ?", record_id)[0]
    return str(prev), str(digest), str(text)


def modify_field(path: Path) -> None:
    _edit(path, ("UPDATE records SET record = replace(record, '\"allow\"', '\"deny\"') WHERE id = 7", ()))


def delete_record(path: Path) -> None:
    _edit(path, ("DELETE FROM records WHERE id = 7", ()))


def delete_sealed_tail(path: Path) -> None:
    _edit(path, ("DELETE FROM records WHERE id >= 23", ()))


def swap_rows(path: Path) -> None:
    five, nine = _record(path, 5), _record(path, 9)
    update = "UPDATE records SET prev_hash = ?, hash = ?, record = ? WHERE id = ?"
    _edit(path, (update, (*nine, 5)), (update, (*five, 9)))


def swap_contents(path: Path) -> None:
    five, nine = _record(path, 5)[2], _record(path, 9)[2]
    _edit(path, ("UPDATE records SET record = ? WHERE id = 5", (nine,)),
          ("UPDATE records SET record = ? WHERE id = 9", (five,)))


def insert_record(path: Path) -> None:
    # Make room at 13 and insert a forged record correctly chained after 12.
    forged = make_record(1000, decision="deny", reason="R-no-grant", status=403)
    text = record_json(forged, 13)
    prev = _record(path, 12)[1]
    _edit(path, ("UPDATE records SET id = -id WHERE id >= 13", ()),
          ("UPDATE records SET id = 1 - id WHERE id < 0", ()),
          ("INSERT INTO records (id, prev_hash, hash, record) VALUES (13, ?, ?, ?)",
           (prev, chain_hash(prev, text), text)))


def rewrite_chain(path: Path) -> None:
    # The careful insider: edit record 15 and recompute every hash after it.
    prev = _record(path, 14)[1]
    for record_id in range(15, 26):
        text = _record(path, record_id)[2]
        if record_id == 15:
            text = text.replace('"allow"', '"deny"')
        digest = chain_hash(prev, text)
        _edit(path, ("UPDATE records SET prev_hash = ?, hash = ?, record = ? WHERE id = ?",
                     (prev, digest, text, record_id)))
        prev = digest


def renumber_tail(path: Path) -> None:
    _edit(path, ("UPDATE records SET id = id + 100 WHERE id >= 21", ()))


def corrupt_checkpoint_signature(path: Path) -> None:
    _edit(path, ("UPDATE checkpoints SET signature = CASE WHEN signature LIKE '00%' THEN 'ff' ELSE '00' END "
                 "|| substr(signature, 3) WHERE id = 2", ()))


def move_checkpoint_head(path: Path) -> None:
    _edit(path, ("UPDATE checkpoints SET head_hash = (SELECT hash FROM records WHERE id = 19), "
                 "upto_record_id = 19 WHERE id = 2", ()))


def resign_checkpoint_with_other_key(path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    cp_id, upto, head, moment, _, _ = rows(path, "SELECT * FROM checkpoints WHERE id = 2")[0]
    kid = keyid(other.public_key())
    signature = other.sign(checkpoint_payload(int(str(cp_id)), int(str(upto)), str(head), str(moment), kid))
    _edit(path, ("UPDATE checkpoints SET keyid = ?, signature = ? WHERE id = 2", (kid, signature.hex())))


def delete_checkpoint(path: Path) -> None:
    _edit(path, ("DELETE FROM checkpoints WHERE id = 2", ()))


def add_trigger(path: Path) -> None:
    _edit(path, ("CREATE TRIGGER quiet AFTER INSERT ON records BEGIN "
                 "UPDATE records SET record = replace(record, '\"deny\"', '\"allow\"') WHERE id = new.id; END", ()))


def loosen_table(path: Path) -> None:
    # Rebuild the table without STRICT so a record can hold a number instead of its text.
    _edit(path, ("DROP INDEX records_time", ()), ("ALTER TABLE records RENAME TO old", ()),
          ("CREATE TABLE records (id INTEGER PRIMARY KEY, prev_hash, hash, record)", ()),
          ("INSERT INTO records SELECT id, prev_hash, hash, record FROM old", ()), ("DROP TABLE old", ()),
          ("UPDATE records SET record = 42, hash = NULL WHERE id = 7", ()))


@pytest.mark.parametrize(("tamper", "first_bad", "code"), [
    pytest.param(modify_field, 7, "record-modified", id="modified-field"),
    pytest.param(delete_record, 7, "record-missing", id="deleted-record"),
    pytest.param(delete_sealed_tail, 23, "record-missing", id="deleted-sealed-tail"),
    pytest.param(swap_rows, 5, "record-chain-broken", id="reordered-rows"),
    pytest.param(swap_contents, 5, "record-modified", id="reordered-contents"),
    pytest.param(insert_record, 13, "record-inserted", id="inserted-record"),
    pytest.param(rewrite_chain, 11, "checkpoint-head-mismatch", id="hand-edited-and-rehashed"),
    pytest.param(renumber_tail, 21, "record-missing", id="renumbered-ids"),
    pytest.param(corrupt_checkpoint_signature, 20, "checkpoint-bad-signature", id="checkpoint-signature"),
    pytest.param(move_checkpoint_head, 19, "checkpoint-bad-signature", id="checkpoint-moved"),
    pytest.param(resign_checkpoint_with_other_key, 20, "checkpoint-unknown-key", id="checkpoint-unknown-key"),
    pytest.param(delete_checkpoint, 11, "checkpoint-missing", id="checkpoint-deleted"),
    pytest.param(add_trigger, 1, "schema-modified", id="trigger-added"),
    pytest.param(loosen_table, 1, "schema-modified", id="table-loosened-and-record-made-a-number"),
])
def test_verify_names_the_first_bad_record(db: Path, tamper: Callable[[Path], None], first_bad: int,
                                           code: str) -> None:
    write_journal(db)
    assert verify_journal(db, KEY.public_key()).ok
    tamper(db)
    report = verify_journal(db, KEY.public_key())
    assert not report.ok
    assert report.first_bad_record == first_bad, report.problems
    assert report.problems[0].code == code, report.problems


def test_loosened_table_still_names_the_edited_record(db: Path) -> None:
    write_journal(db)
    loosen_table(db)
    report = verify_journal(db, KEY.public_key())
    assert [(p.record_id, p.code) for p in report.problems[:4]] == [
        (1, "schema-modified"), (7, "record-modified"), (7, "record-id-mismatch"), (8, "record-chain-broken")]


def test_writer_refuses_a_journal_whose_schema_was_changed(db: Path) -> None:
    write_journal(db, count=3)
    add_trigger(db)
    with pytest.raises(JournalFormatError, match="refusing to write: schema objects changed by hand: quiet"):
        Journal(db, KEY).start()


def test_analyze_statistics_are_not_tampering(db: Path) -> None:
    write_journal(db)
    _edit(db, ("ANALYZE", ()))
    assert verify_journal(db, KEY.public_key()).ok
    with Journal(db, KEY) as j:
        assert j.append_blocking(make_record(26)) == 26


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 records, checkpoints every 1000: verify reads it in several batches."""
    path = tmp_path_factory.mktemp("big") / "journal.db"

    async def fill(j: Journal) -> None:
        for start in range(0, 10_000, 500):
            await asyncio.gather(*(j.append(make_record(n)) for n in range(start, start + 500)))

    with Journal(path, KEY, synchronous="NORMAL", checkpoint_every=1000) as j:
        asyncio.run(fill(j))
    return path


@pytest.mark.parametrize("position", [1, 4095, 4096, 4097, 8193, 10_000])
@pytest.mark.parametrize("how", ["modify", "delete"])
def test_verify_finds_tampering_at_batch_boundaries(big_journal: Path, tmp_path: Path, position: int,
                                                    how: str) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(big_journal, db)
    intact = verify_journal(db, KEY.public_key())
    assert intact.ok and intact.records == 10_000 and intact.unsealed_tail == 0
    if how == "modify":
        _edit(db, ("UPDATE records SET record = replace(record, '\"POST\"', '\"GET\"') WHERE id = ?", (position,)))
    else:
        _edit(db, ("DELETE FROM records WHERE id = ?", (position,)))
    report = verify_journal(db, KEY.public_key())
    assert report.first_bad_record == position, report.problems
    assert report.problems[0].code == ("record-modified" if how == "modify" else "record-missing")


def test_verify_intact_journal_counts_and_reports_no_problem(db: Path) -> None:
    write_journal(db)
    report = verify_journal(db, KEY.public_key())
    assert (report.ok, report.records, report.checkpoints, report.last_sealed_record, report.unsealed_tail,
            report.first_bad_record) == (True, 25, 3, 25, 0, None)


def test_verify_reports_an_unsealed_tail_without_failing(db: Path) -> None:
    write_journal(db)
    _edit(db, ("DELETE FROM checkpoints WHERE id = 3", ()))  # what SIGKILL before close leaves
    report = verify_journal(db, KEY.public_key())
    assert report.ok and report.last_sealed_record == 20 and report.unsealed_tail == 5


def test_verify_with_another_key_fails_on_every_checkpoint(db: Path) -> None:
    write_journal(db)
    report = verify_journal(db, Ed25519PrivateKey.generate().public_key())
    assert {p.code for p in report.problems} == {"checkpoint-unknown-key"}
    assert report.first_bad_record == 10 and report.unsealed_tail == 25


def test_verify_does_not_change_the_file_even_while_it_is_written(db: Path) -> None:
    write_journal(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    verify_journal(db, KEY.public_key())
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    wal = db.with_name("journal.db-wal")  # SQLite may create an empty one for its read lock
    assert not wal.exists() or wal.stat().st_size == 0
    with Journal(db, KEY, checkpoint_every=10) as j:
        writer = threading.Thread(target=lambda: [j.append_blocking(make_record(n)) for n in range(300)])
        writer.start()
        while writer.is_alive():  # each verify reads one consistent snapshot
            assert verify_journal(db, KEY.public_key()).ok
        writer.join()
    assert verify_journal(db, KEY.public_key()).records == 325


@pytest.mark.parametrize("setup", [
    pytest.param(lambda p: None, id="missing"),
    pytest.param(lambda p: p.write_text("hello " * 200), id="not-sqlite"),
    pytest.param(lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)"), id="other-database"),
    pytest.param(lambda p: p.mkdir(), id="directory"),
])
def test_verify_unreadable_file_raises_journal_error(db: Path, setup: Callable[[Path], object]) -> None:
    setup(db)
    with pytest.raises(JournalError):
        verify_journal(db, KEY.public_key())


# --- export and stats -----------------------------------------------------------------------------


def _timed_journal(path: Path) -> None:
    """Ten records one second apart from 2026-01-01T00:00:00Z, of mixed calls."""
    calls = [("vedomstvo-1", "SID0003001", "op1", "allow", "vedomstvo-3"),
             ("vedomstvo-2", "SID0003001", "op2", "deny", "vedomstvo-3"),
             ("vedomstvo-2", "SID0003001", "op1", "allow", "vedomstvo-3"),
             ("vedomstvo-1", "SID0005001", "read", "allow", "vedomstvo-5")]
    with Journal(path, KEY) as j:
        for n in range(10):
            consumer, sid, operation, decision, provider = calls[n % 4]
            kind = "response" if n == 9 else "request"
            j.append_blocking(make_record(n, time=f"2026-01-01T00:00:{n:02d}.000000Z", consumer=consumer,
                                          sid=sid, operation=operation, decision=decision,
                                          provider=provider, kind=kind))


@pytest.mark.parametrize(("since", "until", "ids"), [
    pytest.param(None, None, list(range(1, 11)), id="all"),
    pytest.param("2026-01-01T00:00:03Z", "2026-01-01T00:00:06Z", [4, 5, 6], id="since-inclusive-until-exclusive"),
    pytest.param("2026-01-01T03:00:08+03:00", None, [9, 10], id="other-zone"),
    pytest.param("2026-01-01T00:00:08", None, [9, 10], id="naive-is-utc"),
    pytest.param(None, "2026-01-01", [], id="date-only"),
])
def test_export_filters_by_time(db: Path, since: str | None, until: str | None, ids: list[int]) -> None:
    _timed_journal(db)
    exported = list(export(db, since=since, until=until))
    assert [r["id"] for r in exported] == ids
    if exported:
        first = exported[0]
        assert {"prev_hash", "hash", "body_sha256", "exchange"} <= set(first)
        assert first["hash"] == chain_hash(first["prev_hash"], record_json(
            Record(**{k: first[k] for k in Record.__dataclass_fields__}), first["id"]))


def test_export_refuses_a_bad_time(db: Path) -> None:
    _timed_journal(db)
    with pytest.raises(JournalFormatError, match="ISO 8601"):
        list(export(db, since="yesterday"))


def test_stats_counts_requests_per_sid_operation_consumer_decision(db: Path) -> None:
    _timed_journal(db)
    assert stats(db) == [
        StatsRow("SID0003001", "op1", "vedomstvo-1", "allow", 3),
        StatsRow("SID0003001", "op1", "vedomstvo-2", "allow", 2),
        StatsRow("SID0003001", "op2", "vedomstvo-2", "deny", 2),  # the third one, record 10, is a response
        StatsRow("SID0005001", "read", "vedomstvo-1", "allow", 2),
    ]
    assert stats(db, provider="vedomstvo-5") == [StatsRow("SID0005001", "read", "vedomstvo-1", "allow", 2)]
    assert stats(db, since="2026-01-01T00:00:04Z", until="2026-01-01T00:00:06Z", provider="vedomstvo-3") == [
        StatsRow("SID0003001", "op1", "vedomstvo-1", "allow", 1),
        StatsRow("SID0003001", "op2", "vedomstvo-2", "deny", 1),
    ]


def test_readers_work_on_a_copy_without_wal_files(db: Path, tmp_path: Path) -> None:
    _timed_journal(db)
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    os.chmod(copy, 0o444)
    assert len(list(export(copy))) == 10 and verify_journal(copy, KEY.public_key()).ok


def test_utc_now_is_the_record_spelling_of_now() -> None:
    from datetime import UTC, datetime

    from proxy.journal.record import format_time

    for _ in range(3):
        before = format_time(datetime.now(UTC))
        now = utc_now()
        after = format_time(datetime.now(UTC))
        assert before <= now <= after and len(now) == len(before)
        time.sleep(0.3)  # across a second boundary too: the cached 'YYYY-MM-DDTHH:MM:SS' moves on

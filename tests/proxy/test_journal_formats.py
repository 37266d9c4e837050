"""Record and schema formats: a journal written by the format-1 writer still verifies, exports and
takes new records (migrated to format 2); format-2 members and `export --message-id`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.trust import load_public_key
from proxy.journal import Journal, Record
from proxy.journal.query import export
from proxy.journal.record import RECORD_FIELDS, V1_FIELDS
from proxy.journal.verify import verify_journal

V1 = Path(__file__).resolve().parents[1] / "data" / "journal-v1"
# The fixed key that wrote the format-1 fixture (tests/data/journal-v1/README.md).
V1_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"reestr journal v1 fixture").digest())


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    target = tmp_path / "journal.sqlite"
    shutil.copyfile(V1 / "journal-v1.sqlite", target)
    return target


def test_the_fixture_key_is_the_one_in_the_directory() -> None:
    assert load_public_key(V1 / "sidecar.pub").public_bytes_raw() == V1_KEY.public_key().public_bytes_raw()


def test_a_format_1_journal_verifies_read_only() -> None:
    before = (V1 / "journal-v1.sqlite").read_bytes()
    report = verify_journal(V1 / "journal-v1.sqlite", load_public_key(V1 / "sidecar.pub"))
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.unsealed_tail) == (18, 5, 0)
    assert (V1 / "journal-v1.sqlite").read_bytes() == before


def test_a_format_1_journal_exports_as_before_with_the_new_members_null() -> None:
    old = [json.loads(line) for line in (V1 / "export-v1.jsonl").read_text(encoding="utf-8").splitlines()]
    new = list(export(V1 / "journal-v1.sqlite"))
    added = set(RECORD_FIELDS) - set(V1_FIELDS)
    assert len(added) == 7 and "message_id" in added
    assert [{k: v for k, v in r.items() if k not in added | {"format"}} for r in new] == old
    assert all(r["format"] == 1 and all(r[name] is None for name in added) for r in new)
    assert list(export(V1 / "journal-v1.sqlite", message_id="anything")) == []


def test_a_format_1_journal_tampered_is_still_detected(v1_copy: Path) -> None:
    with contextlib.closing(sqlite3.connect(v1_copy)) as conn, conn:
        conn.execute("UPDATE records SET record = replace(record, '\"deny\"', '\"allow\"') WHERE id = 9")
    report = verify_journal(v1_copy, V1_KEY.public_key())
    assert report.first_bad_record == 9 and report.problems[0].code == "record-modified"


def test_the_writer_migrates_a_format_1_file_and_the_whole_chain_verifies(v1_copy: Path) -> None:
    with Journal(v1_copy, V1_KEY) as journal:
        assert journal.last_id == 18
        assert journal.append_blocking(_record("ex-new", message_id="39f52a38-0001")) == 19
    with contextlib.closing(sqlite3.connect(v1_copy)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("2",)
        assert conn.execute("SELECT id FROM records WHERE message_id = '39f52a38-0001'").fetchall() == [(19,)]
    report = verify_journal(v1_copy, V1_KEY.public_key())
    assert report.ok, report.problems
    assert report.records == 19 and report.unsealed_tail == 0
    formats = [r["format"] for r in export(v1_copy)]
    assert formats == [1] * 18 + [2]


def test_a_hand_added_index_is_still_schema_tampering_after_migration(v1_copy: Path) -> None:
    with Journal(v1_copy, V1_KEY):
        pass
    with contextlib.closing(sqlite3.connect(v1_copy)) as conn, conn:
        conn.execute("CREATE INDEX extra ON records (sid)")
    report = verify_journal(v1_copy, V1_KEY.public_key())
    assert [p.code for p in report.problems] == ["schema-modified"] and "extra" in report.problems[0].message


def _record(exchange: str, kind: str = "request", **fields: object) -> Record:
    base: dict[str, object] = {
        "time": "2026-11-21T10:00:00.000000Z", "direction": "inbound", "kind": kind, "exchange": exchange,
        "decision": "allow", "method": "POST", "path": "/SID0003001/smev", "size": 1,
        "body_sha256": "0" * 64, "sid": "SID0003001", "profile": "smev3",
        "payload": "{urn://x-artefacts-rosreestr-ru/1.0.0}PublicPrintOutRequest", "classification": "personal-data"}
    base.update(fields)
    return Record(**base)  # type: ignore[arg-type]


def test_export_by_message_id_finds_the_message_its_replies_and_their_responses(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, V1_KEY) as journal:
        for record in [
            _record("a", message_id="m-1"), _record("b", message_id="m-2"),
            _record("a", kind="response", status=200),
            _record("c", message_id="m-3", reference_message_id="m-1", transaction_code="T-1"),
            _record("b", kind="response", status=200),
            _record("c", kind="response", status=200, payload_check="valid"),
        ]:
            journal.append_blocking(record)
    found = list(export(path, message_id="m-1"))
    assert [(r["id"], r["exchange"], r["kind"]) for r in found] == [
        (1, "a", "request"), (3, "a", "response"), (4, "c", "request"), (6, "c", "response")]
    assert found[2]["transaction_code"] == "T-1" and found[3]["payload_check"] == "valid"
    assert all({"message_id", "payload", "classification"} <= set(r) for r in found)
    assert list(export(path, message_id="m-9")) == []


@pytest.mark.parametrize(("changes", "match"), [
    pytest.param({"profile": "smev4"}, "profile", id="unknown-profile"),
    pytest.param({"payload_check": "maybe"}, "payload_check", id="unknown-payload-check"),
    pytest.param({"message_id": 5}, "message_id", id="message-id-not-text"),
])
def test_format_2_members_are_checked(changes: dict[str, object], match: str) -> None:
    with pytest.raises(Exception, match=match):
        _record("x", **changes)

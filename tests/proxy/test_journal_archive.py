"""Archives and retention on both backends: archive sealed ranges, verify from record 1 through the
archives into the journal, prune only what is archived and verified, read archived records back.
Tampering with archives is done on the files, as someone with access to the archive store would."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.journal import Journal, Record
from proxy.journal.archive import ArchiveError, archive, load_archives, prune
from proxy.journal.postgres import PostgresStore
from proxy.journal.query import export, stats
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Store
from proxy.journal.verify import verify_store

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = [KEY.public_key()]


class Backend:
    """One journal on one backend: a writer store, fresh reader stores, a way to tamper with rows."""

    def __init__(self, kind: str, where: str) -> None:
        self.kind, self.where = kind, where

    def writer(self) -> Store:
        return SqliteStore(self.where) if self.kind == "sqlite" else PostgresStore(self.where, "ved3-a")

    def reader(self) -> Store:
        return SqliteStore(self.where) if self.kind == "sqlite" else PostgresStore(self.where)

    def execute(self, sqlite_sql: str, postgres_sql: str) -> None:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.where)) as conn, conn:
                conn.execute(sqlite_sql)
        else:
            with psycopg.connect(self.where, autocommit=True) as conn:
                conn.execute(postgres_sql)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "journal.sqlite"))
    return Backend("postgres", request.getfixturevalue("pg_dsn"))


def at(minute: int) -> str:
    return f"2026-05-01T10:{minute:02d}:00.000000Z"


def write(backend: Backend, first: int, count: int) -> None:
    """Records `first`.. at minute n, checkpoints every 10 (and on close)."""
    with Journal(backend.writer(), KEY, checkpoint_every=10) as journal:
        for n in range(first, first + count):
            journal.append_blocking(Record(
                time=at(n), direction="inbound", kind="request", exchange=f"ex-{n}",
                decision="deny" if n % 7 == 0 else "allow", method="POST", path="/SID0003001/x", size=n,
                body_sha256=hashlib.sha256(str(n).encode()).hexdigest(), consumer=f"ved{1 + n % 2}",
                provider="ved3", sid="SID0003001", operation="op2", message_id=f"m-{n}"))


@pytest.fixture
def archived(backend: Backend, tmp_path: Path) -> Path:
    """Records 1–30 written; archives of 1–20 (records before minute 21) and of 21–30."""
    directory = tmp_path / "archives"
    write(backend, 1, 30)
    first = archive(backend.reader(), directory, before=at(21))
    assert [(a.first, a.last, a.records) for a in first] == [(1, 20, 20)]
    second = archive(backend.reader(), directory)
    assert [(a.first, a.last) for a in second] == [(21, 30)]
    assert archive(backend.reader(), directory) == []  # nothing new is sealed
    return directory


def test_archives_verify_into_the_live_journal(backend: Backend, archived: Path) -> None:
    [report] = verify_store(backend.reader(), PUBLIC, archives=archived)
    assert report.ok, report.problems
    assert (report.archives, report.archived, report.records, report.pruned) == (2, 30, 30, 0)


def test_prune_deletes_only_archived_verified_records_older_than_the_bound(backend: Backend,
                                                                          archived: Path) -> None:
    before_export = list(export(backend.reader()))
    before_stats = stats(backend.reader())
    write(backend, 31, 5)  # 31–35: sealed on close, but in no archive
    done = prune(backend.reader(), backend.reader(), archived, PUBLIC, before=at(59))
    assert [(p.upto, p.deleted) for p in done] == [(30, 30)]  # 31–35 stay: not archived
    [report] = verify_store(backend.reader(), PUBLIC)
    assert report.ok and (report.pruned, report.records, report.last_record) == (30, 5, 35)
    [report] = verify_store(backend.reader(), PUBLIC, archives=archived)
    assert report.ok, report.problems
    exported = list(export(backend.reader(), archives=archived))
    assert [r["id"] for r in exported] == list(range(1, 36))
    assert [{k: v for k, v in r.items() if k != "chain"} for r in exported[:30]] == [
        {k: v for k, v in r.items() if k != "chain"} for r in before_export]
    assert [r["id"] for r in export(backend.reader(), archives=archived, message_id="m-12")] == [12]
    assert sum(r.calls for r in stats(backend.reader(), archives=archived)) == 35
    assert sum(r.calls for r in before_stats) == 30
    write(backend, 36, 1)  # the writer continues the chain after a prune
    assert verify_store(backend.reader(), PUBLIC, archives=archived)[0].ok


def test_prune_keeps_archives_with_a_record_at_or_after_the_bound(backend: Backend, archived: Path) -> None:
    done = prune(backend.reader(), backend.reader(), archived, PUBLIC, before=at(25))
    assert [(p.upto, p.deleted) for p in done] == [(20, 20)]
    assert [r["id"] for r in export(backend.reader())] == list(range(21, 31))


def test_prune_refuses_when_the_journal_does_not_verify(backend: Backend, archived: Path) -> None:
    backend.execute("UPDATE records SET record = replace(record, '\"allow\"', '\"deny\"') WHERE id = 3",
                    "UPDATE journal_records SET record = replace(record, '\"allow\"', '\"deny\"') WHERE id = 3")
    with pytest.raises(ArchiveError, match=r"refusing to prune.*record 3"):
        prune(backend.reader(), backend.reader(), archived, PUBLIC, before=at(59))
    assert len(list(export(backend.reader()))) == 30  # nothing deleted


def test_prune_refuses_when_an_archive_does_not_verify(backend: Backend, archived: Path) -> None:
    _edit_archive(next(iter(load_archives(archived).values()))[0].file, update_manifest=False)
    with pytest.raises(ArchiveError, match="archive-modified"):
        prune(backend.reader(), backend.reader(), archived, PUBLIC, before=at(59))
    assert len(list(export(backend.reader()))) == 30


def test_archive_refuses_a_chain_that_does_not_verify(backend: Backend, tmp_path: Path) -> None:
    write(backend, 1, 10)
    backend.execute("UPDATE records SET record = record || ' ' WHERE id = 4",
                    "UPDATE journal_records SET record = record || ' ' WHERE id = 4")
    with pytest.raises(ArchiveError, match="record 4 does not verify"):
        archive(backend.reader(), tmp_path / "a")
    assert list((tmp_path / "a").iterdir()) == []


def _edit_archive(path: Path, update_manifest: bool) -> None:
    """Change one record's decision inside an archive (and its manifest digest, if asked)."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    item = json.loads(lines[3])
    assert '"decision":"allow"' in item["record"]
    item["record"] = item["record"].replace('"decision":"allow"', '"decision":"deny"')
    lines[3] = json.dumps(item)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    if update_manifest:
        manifest = path.with_name(path.name.replace(".jsonl.gz", ".manifest.json"))
        data = json.loads(manifest.read_text())
        data["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest.write_text(json.dumps(data))


def _remove(which: int) -> Callable[[Path], None]:
    def remove(directory: Path) -> None:
        archive_ = sorted(directory.glob("*.manifest.json"))[which]
        archive_.with_name(archive_.name.replace(".manifest.json", ".jsonl.gz")).unlink()
        archive_.unlink()
    return remove


def _swap(directory: Path) -> None:
    first, second = sorted(directory.glob("*.jsonl.gz"))
    temporary = directory / "swap"
    shutil.move(first, temporary)
    shutil.move(second, first)
    shutil.move(temporary, second)


def _edit(update_manifest: bool) -> Callable[[Path], None]:
    return lambda directory: _edit_archive(sorted(directory.glob("*.jsonl.gz"))[0], update_manifest)


@pytest.mark.parametrize(("tamper", "code"), [
    pytest.param(_remove(0), "archive-missing", id="first-archive-missing"),
    pytest.param(_swap, "archive-modified", id="archives-reordered"),
    pytest.param(_edit(False), "archive-modified", id="record-edited"),
    pytest.param(_edit(True), "record-modified", id="record-edited-digest-recomputed"),
])
def test_tampered_archives_are_detected(backend: Backend, archived: Path, tamper: Callable[[Path], None],
                                        code: str) -> None:
    tamper(archived)
    [report] = verify_store(backend.reader(), PUBLIC, archives=archived)
    assert code in [p.code for p in report.problems], report.problems


def test_a_missing_archive_after_pruning_is_detected(backend: Backend, archived: Path) -> None:
    prune(backend.reader(), backend.reader(), archived, PUBLIC, before=at(25))  # 1–20 pruned
    write(backend, 31, 10)
    archive(backend.reader(), archived)  # 31–40
    _remove(1)(archived)  # the archive of 21–30
    [report] = verify_store(backend.reader(), PUBLIC, archives=archived)
    assert [p.code for p in report.problems][:1] == ["archive-missing"]
    _remove(0)(archived)  # now also 1–20: the pruned prefix is in no archive
    codes = [p.code for p in verify_store(backend.reader(), PUBLIC, archives=archived)[0].problems]
    assert "archive-live-mismatch" in codes and "archive-missing" in codes


def test_a_chain_name_that_is_not_a_file_name_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    with Journal(PostgresStore(pg_dsn, "a"), KEY):
        pass
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO journal_checkpoints VALUES ('../../escape', 1, 0, %s, 't', 'k', 's')", ("0" * 64,))
    with pytest.raises(ArchiveError, match="refusing to archive a chain named"):
        archive(PostgresStore(pg_dsn), tmp_path / "a")
    assert not list(tmp_path.rglob("*escape*"))


def test_an_archive_is_never_overwritten(tmp_path: Path) -> None:
    """Two SQLite journals have the same chain name: sharing a directory is refused, not merged."""
    first, second = Backend("sqlite", str(tmp_path / "one.sqlite")), Backend("sqlite", str(tmp_path / "two.sqlite"))
    write(first, 1, 10)
    write(second, 1, 10)
    archive(first.reader(), tmp_path / "a")
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    shutil.move(str(next((tmp_path / "a").glob("*.manifest.json"))), tmp_path / "moved.json")
    with pytest.raises(ArchiveError, match="exists already"):
        archive(second.reader(), tmp_path / "a")
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == {
        k: v for k, v in before.items() if not k.endswith(".manifest.json")}

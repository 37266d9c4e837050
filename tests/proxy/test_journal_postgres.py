"""The PostgreSQL journal on a real server (tests/proxy/pgcluster.py): chains of several sidecars in
one database, tampering found, the CLI over `--dsn`, and a server stopped and restarted under load.

The decision and journal tests of test_runner.py and the SIGKILL test of test_sidecar_e2e.py run on
this backend too (parametrized)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.trust import generate_keypair, load_private_key
from proxy.journal import Journal, JournalError, JournalWriteError, Record
from proxy.journal.postgres import PostgresStore, safe_label
from proxy.journal.query import export, stats
from proxy.journal.verify import verify_store
from proxy.runner import start_subprocess
from tests.proxy.conftest import Keys, Pki, Upstream, sign, signed_bundle, write_config
from tests.proxy.pgcluster import PgCluster, make_cluster
from tests.proxy.test_runner import postgres_journal, run_sidecar, wait_until

KEY_A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def record(n: int, **changes: object) -> Record:
    fields: dict[str, object] = {
        "time": f"2026-11-21T10:00:{n % 60:02d}.000000Z", "direction": "inbound", "kind": "request",
        "exchange": f"ex-{n}", "decision": "allow", "method": "POST", "path": "/SID0003001/x", "size": n,
        "body_sha256": hashlib.sha256(str(n).encode()).hexdigest(), "consumer": "ved1", "provider": "ved3",
        "sid": "SID0003001", "operation": "op2"}
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def two_chains(pg_dsn: str) -> str:
    """Chains a (7 records, checkpoints every 3) and b (4 records, one denied) in one database."""
    with Journal(PostgresStore(pg_dsn, "a"), KEY_A, checkpoint_every=3) as a, \
            Journal(PostgresStore(pg_dsn, "b"), KEY_B) as b:
        for n in range(7):
            a.append_blocking(record(n, message_id=f"m-{n}"))
        for n in range(4):
            b.append_blocking(record(100 + n, decision="deny" if n == 3 else "allow", consumer="ved2"))
    return pg_dsn


def test_each_sidecar_keeps_its_own_chain_and_both_verify(two_chains: str) -> None:
    reports = verify_store(PostgresStore(two_chains), [KEY_A.public_key(), KEY_B.public_key()])
    assert [(r.chain, r.ok, r.records, r.checkpoints, r.unsealed_tail) for r in reports] == [
        ("a", True, 7, 3, 0), ("b", True, 4, 1, 0)]


@pytest.mark.parametrize("sizes", [
    pytest.param([1, 2, 32], id="insert-batches"),
    pytest.param([33, 500], id="copy-batches"),
    pytest.param([5, 400, 1, 40], id="mixed"),
])
def test_batches_of_every_size_keep_one_chain(pg_dsn: str, sizes: list[int]) -> None:
    """Small batches are one INSERT, large ones one COPY: the same rows and chain either way."""
    from proxy.journal.chain import chain_hash
    from proxy.journal.record import record_json

    store = PostgresStore(pg_dsn, "batches")
    store.open_writer()
    try:
        last, prev = store.head()
        for size in sizes:
            rows = []
            for record_id in range(last + 1, last + size + 1):
                text = record_json(record(record_id), record_id)
                digest = chain_hash(prev, text)
                rows.append((record_id, prev, digest, text))
                prev = digest
            store.append(rows)
            last += size
        assert store.head() == (last, prev)
        with pytest.raises(JournalWriteError):  # an id already written: refused, never a fork
            store.append([rows[-1]])
    finally:
        store.close()
    reports = verify_store(PostgresStore(pg_dsn), [KEY_A.public_key()])
    mine = [r for r in reports if r.chain == "batches"]
    assert (mine[0].records, mine[0].ok, mine[0].unsealed_tail) == (sum(sizes), True, sum(sizes)), \
        mine[0].problems


def test_a_second_writer_on_the_same_chain_is_refused(pg_dsn: str) -> None:
    with Journal(PostgresStore(pg_dsn, "a"), KEY_A), pytest.raises(JournalWriteError, match="another sidecar"):
        Journal(PostgresStore(pg_dsn, "a"), KEY_A).start()


def test_chains_resume_after_restart(two_chains: str) -> None:
    with Journal(PostgresStore(two_chains, "a"), KEY_A) as journal:
        assert journal.last_id == 7
        assert journal.append_blocking(record(7)) == 8
    assert all(r.ok for r in verify_store(PostgresStore(two_chains), [KEY_A.public_key(), KEY_B.public_key()]))


@pytest.mark.parametrize(("statement", "chain", "code"), [
    pytest.param("UPDATE journal_records SET record = replace(record, '\"allow\"', '\"deny\"') "
                 "WHERE chain = 'a' AND id = 5", "a", "record-modified", id="record-edited"),
    pytest.param("DELETE FROM journal_records WHERE chain = 'b' AND id = 2", "b", "record-missing", id="deleted"),
    pytest.param("UPDATE journal_checkpoints SET chain = 'b', id = 2 WHERE chain = 'a' AND id = 1", "b",
                 "checkpoint-bad-signature", id="checkpoint-moved-to-another-chain"),
    pytest.param("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; "
                 "CREATE TRIGGER t BEFORE INSERT ON journal_records FOR EACH ROW EXECUTE FUNCTION f()", "a",
                 "schema-modified", id="trigger-added"),
])
def test_tampering_is_found_on_the_chain_it_touches(two_chains: str, statement: str, chain: str,
                                                    code: str) -> None:
    sql(two_chains, statement)
    reports = {r.chain: r for r in verify_store(PostgresStore(two_chains), [KEY_A.public_key(),
                                                                            KEY_B.public_key()])}
    assert code in [p.code for p in reports[chain].problems]
    if code == "checkpoint-bad-signature":  # and chain a lost its checkpoint 1
        assert [p.code for p in reports["a"].problems] == ["checkpoint-missing"]
    elif code != "schema-modified":
        assert all(r.ok for name, r in reports.items() if name != chain)


def test_a_checkpoint_signed_by_another_sidecars_key_is_not_accepted_for_this_key(two_chains: str) -> None:
    reports = verify_store(PostgresStore(two_chains), [KEY_A.public_key()])
    assert reports[0].ok
    assert [p.code for p in reports[1].problems] == ["checkpoint-unknown-key"]


def test_export_and_stats_over_all_chains(two_chains: str) -> None:
    exported = list(export(PostgresStore(two_chains)))
    assert [(r["chain"], r["id"]) for r in exported] == [("a", n) for n in range(1, 8)] + [
        ("b", n) for n in range(1, 5)]
    assert [r["id"] for r in export(PostgresStore(two_chains), message_id="m-3")] == [4]
    rows = stats(PostgresStore(two_chains))
    assert [(r.consumer, r.decision, r.calls) for r in rows] == [("ved1", "allow", 7), ("ved2", "allow", 3),
                                                                  ("ved2", "deny", 1)]


def test_the_password_never_appears_in_messages() -> None:
    assert "s3cret" not in safe_label("postgresql://reestr:s3cret@127.0.0.1:1/journal")
    with pytest.raises(JournalError) as caught:
        Journal(PostgresStore("postgresql://reestr:s3cret@127.0.0.1:1/journal", "a"), KEY_A).start()
    assert "s3cret" not in str(caught.value) and "cannot connect" in str(caught.value)


def test_cli_verify_export_stats_with_dsn(two_chains: str, tmp_path: Path) -> None:
    keys = []
    for name, key in (("a", KEY_A), ("b", KEY_B)):
        from cryptography.hazmat.primitives import serialization
        path = tmp_path / f"{name}.pub"
        path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
        keys += ["--key", str(path)]
    sidecar = [sys.executable, "-c", "from proxy.cli import main; main()"]
    verify = subprocess.run([*sidecar, "journal", "verify", "--dsn", two_chains, *keys], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert "chain a: intact: 7 records" in verify.stdout and "chain b: intact: 4 records" in verify.stdout
    exported = subprocess.run([*sidecar, "journal", "export", "--dsn", two_chains, "--message-id", "m-6"],
                              capture_output=True, text=True, timeout=60)
    assert [(r["chain"], r["id"], r["message_id"]) for r in map(json.loads, exported.stdout.splitlines())] == [
        ("a", 7, "m-6")]
    counted = subprocess.run([*sidecar, "stats", "--dsn", two_chains, "--format", "json"], capture_output=True,
                             text=True, timeout=60)
    assert sum(r["calls"] for r in json.loads(counted.stdout)) == 11
    sql(two_chains, "UPDATE journal_records SET record = record || ' ' WHERE chain = 'b' AND id = 3")
    tampered = subprocess.run([*sidecar, "journal", "verify", "--dsn", two_chains, *keys], capture_output=True,
                              text=True, timeout=60)
    assert tampered.returncode == 1
    assert "chain b: TAMPERED: first bad record 3: record-modified" in tampered.stdout


# --- sidecars on one database -------------------------------------------------------------------


def test_two_sidecars_on_one_database_keep_two_chains_that_verify(tmp_path: Path, pki: Pki, keys: Keys,
                                                                  upstream: Upstream, pg_dsn: str) -> None:
    other_key, _ = generate_keypair(tmp_path / "other")
    procs = []
    try:
        for name, signing_key in (("ved3-a", keys.sidecar_key), ("ved3-b", other_key)):
            d = tmp_path / name
            d.mkdir()
            (d / "bundle.json").write_bytes(sign(signed_bundle(pki), keys.operator))
            journal = {**postgres_journal(pg_dsn, keys, chain=name), "signing_key": str(signing_key)}
            config = write_config(d, pki, keys, upstream.url, str(d / "bundle.json"), journal=journal)
            procs.append((start_subprocess(config), config))
        for proc, _ in procs:
            port = proc.config.listen.port
            with httpx.Client(verify=pki.client_context("ved1"), timeout=10) as client:
                for n in range(5):
                    assert client.get(f"https://127.0.0.1:{port}/SID0003001/certificates/{n}").status_code == 200
    finally:
        for proc, _ in procs:
            proc.stop()
    public = [load_private_key(keys.sidecar_key).public_key(), load_private_key(other_key).public_key()]
    reports = verify_store(PostgresStore(pg_dsn), public)
    assert [(r.chain, r.ok, r.records, r.unsealed_tail) for r in reports] == [
        ("ved3-a", True, 10, 0), ("ved3-b", True, 10, 0)]


# --- the server stopped and restarted under load ------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A server of its own: this test stops it."""
    cluster = make_cluster()
    yield cluster
    cluster.destroy()


def test_server_stopped_under_load_means_503_nothing_unjournaled_forwarded_and_resumes(
        tmp_path: Path, pki: Pki, keys: Keys, upstream: Upstream, own_cluster: PgCluster) -> None:
    dsn = own_cluster.new_database()
    before = len(upstream.calls)  # the upstream is shared by the module
    with run_sidecar(tmp_path, pki, keys, upstream, signed_bundle(pki),
                     journal=postgres_journal(dsn, keys)) as sidecar:
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(verify=pki.client_context("ved1"), timeout=10) as client:
                while not stop.is_set():
                    try:
                        statuses.append(client.get(sidecar.base + "/SID0003001/certificates/1").status_code)
                    except httpx.HTTPError:
                        statuses.append(0)

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: statuses.count(200) > 30)
            own_cluster.stop("fast")
            outage_start = len(statuses)
            wait_until(lambda: statuses[outage_start:].count(503) > 20)
            ready = httpx.get(sidecar.admin + "/readyz")
            assert ready.status_code == 503 and "journal cannot be written" in ready.text
            assert "cannot connect" in ready.text or "terminat" in ready.text
            own_cluster.start()
            restarted = len(statuses)
            wait_until(lambda: statuses[restarted:].count(200) > 30, timeout=30)  # resumes by itself
            assert httpx.get(sidecar.admin + "/readyz").status_code == 200
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        time.sleep(0.2)
        forwarded = [int(call["headers"]["Reestr-Journal-Id"]) for call in upstream.calls[before:]
                     if call["headers"].get("Reestr-Journal-Id")]
    assert set(statuses) <= {200, 503}
    journaled = {(r["id"], r["kind"]) for r in export(PostgresStore(dsn))}
    # every request the upstream received has its durable request record
    assert forwarded and all((rid, "request") in journaled for rid in forwarded)
    report = verify_store(PostgresStore(dsn), [load_private_key(keys.sidecar_key).public_key()])[0]
    assert report.ok, report.problems[:3]


def test_a_row_written_by_someone_else_fails_the_batch_instead_of_forking(pg_dsn: str) -> None:
    from proxy.journal.chain import chain_hash
    from proxy.journal.record import record_json

    with Journal(PostgresStore(pg_dsn, "a"), KEY_A) as journal:
        assert journal.append_blocking(record(1)) == 1
        [(prev,)] = sql(pg_dsn, "SELECT hash FROM journal_records WHERE chain = 'a' AND id = 1")
        text = record_json(record(2, exchange="intruder"), 2)
        sql(pg_dsn, "INSERT INTO journal_records (chain, id, prev_hash, hash, record) VALUES ('a', 2, %s, %s, %s)",
            prev, chain_hash(prev, text), text)
        with pytest.raises(JournalWriteError, match="duplicate key"):
            journal.append_blocking(record(3))
        assert not journal.healthy
        assert journal.append_blocking(record(4)) == 3  # the head is re-read: the chain goes on from row 2
        assert journal.healthy
    assert [r["exchange"] for r in export(PostgresStore(pg_dsn))] == ["ex-1", "intruder", "ex-4"]
    assert verify_store(PostgresStore(pg_dsn), [KEY_A.public_key()])[0].ok


def test_a_server_restarted_while_idle_costs_no_failed_write(own_cluster: PgCluster) -> None:
    """The writer's connection died with the old server: the next batch reconnects and goes through."""
    dsn = own_cluster.new_database()
    with Journal(PostgresStore(dsn, "a"), KEY_A) as journal:
        assert journal.append_blocking(record(1)) == 1
        own_cluster.stop("fast")
        own_cluster.start()
        assert journal.append_blocking(record(2)) == 2
        assert journal.healthy
    assert verify_store(PostgresStore(dsn), [KEY_A.public_key()])[0].ok

"""Journal benchmark: durable records/s with group commit vs. one insert per commit, and verify speed,
for SQLite and PostgreSQL in one run.

    .venv/bin/python bench/journal_bench.py [--records 50000] [--concurrency 200] [--runs 3] [--no-postgres]

For SQLite with synchronous=FULL and NORMAL, and for PostgreSQL (a throwaway local server made with
initdb/pg_ctl, fsync on, synchronous_commit on: a commit is acknowledged once its WAL is flushed),
it appends records from an asyncio loop with many concurrent appenders (each awaits durability
before its next record, as the sidecar does per request) and compares, in the same run, with the
same database doing the same hashing but one insert per commit in a tight loop on the caller's
thread (no event loop, no hand-off: on the sidecar's loop it would stall all traffic for every
commit). It shows what the GIL switch interval does to a commit's latency while another thread is
busy (as the sidecar's loop is; proxy.runner.GIL_SWITCH_INTERVAL). Then it verifies a journal of
--verify-records records on each backend. Prints medians of --runs runs and ratios.
Targets (issues 3, 12): ≥ 5,000 durable records/s on each backend; verify ≥ 200,000 records/s (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.journal import Journal, Record, utc_now
from proxy.journal.chain import GENESIS_HASH, chain_hash
from proxy.journal.postgres import PostgresStore
from proxy.journal.record import record_json
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import Store
from proxy.journal.verify import verify_journal
from tests.proxy.pgcluster import PgCluster, server_binaries

KEY = Ed25519PrivateKey.generate()


def _record(n: int) -> Record:
    """A typical inbound request record: about 600 bytes of canonical JSON."""
    return Record(time=utc_now(), direction="inbound", kind="request",
                  exchange=f"6f1c0e2a-8b8a-4a55-9d8c-{n:012d}", decision="allow", method="POST",
                  path="/SID0003001/certificates/search", size=1234,
                  body_sha256=hashlib.sha256(n.to_bytes(8, "big")).hexdigest(), consumer="vedomstvo-1",
                  provider="vedomstvo-3", sid="SID0003001", operation="getMedicalCertificates",
                  signature_check="valid", bundle_serial=42, grant="consumers/vedomstvo-1.yaml#grants[0]",
                  client_fingerprint="ab" * 32)


def journal_run(target: Store | Path, synchronous: str, records: int,
                concurrency: int) -> tuple[float, float, float, int]:
    """Records/s, p50 and p99 append latency (ms) and transactions, for one fresh journal."""
    journal = Journal(target, KEY, synchronous=synchronous)
    journal.start()
    latencies: list[float] = []

    async def appender(start: int) -> None:
        for n in range(start, records, concurrency):
            began = time.perf_counter()
            await journal.append(_record(n))
            latencies.append(time.perf_counter() - began)

    async def main() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(appender(k) for k in range(concurrency)))
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    journal.close()
    latencies.sort()
    return (records / elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000,
            journal.commits)


def baseline_run(directory: Path, synchronous: str, records: int) -> float:
    """Plain SQLite in WAL mode, the same record text and hash, one insert per commit."""
    conn = sqlite3.connect(directory / f"plain-{synchronous}-{time.monotonic_ns()}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, prev_hash TEXT, hash TEXT, record TEXT)")
    prev = GENESIS_HASH
    began = time.perf_counter()
    for n in range(1, records + 1):
        text = record_json(_record(n), n)
        digest = chain_hash(prev, text)
        conn.execute("INSERT INTO records VALUES (?, ?, ?, ?)", (n, prev, digest, text))
        prev = digest
    elapsed = time.perf_counter() - began
    conn.close()
    return records / elapsed


def postgres_baseline_run(dsn: str, records: int) -> float:
    """PostgreSQL, the same record text and hash, one INSERT per commit (autocommit)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain (id bigint PRIMARY KEY, prev_hash text, hash text, record text)")
        prev = GENESIS_HASH
        began = time.perf_counter()
        for n in range(1, records + 1):
            text = record_json(_record(n), n)
            digest = chain_hash(prev, text)
            conn.execute("INSERT INTO plain VALUES (%s, %s, %s, %s)", (n, prev, digest, text))
            prev = digest
        return records / (time.perf_counter() - began)


def verify_run(path: Path | Store) -> float:
    began = time.perf_counter()
    report = verify_journal(path, KEY.public_key())
    elapsed = time.perf_counter() - began
    if not report.ok:
        raise SystemExit(f"benchmark journal does not verify: {report.first_problem}")
    return report.records / elapsed


def build_journal(path: Path | Store, records: int) -> None:
    with Journal(path, KEY, synchronous="NORMAL") as journal:
        for start in range(0, records, 10_000):
            async def chunk(first: int = start) -> None:
                await asyncio.gather(*(journal.append(_record(n)) for n in range(first, min(first + 10_000, records))))
            asyncio.run(chunk())


def busy_loop_commit_ms(store: Store, switch_interval: float, commits: int = 150, size: int = 20) -> float:
    """Median ms per commit of `size` records while another thread is busy in Python, as the
    sidecar's mitmproxy loop is: the writer waits for the GIL after every wait on its database
    (proxy.runner.GIL_SWITCH_INTERVAL)."""
    import threading

    store.open_writer()
    last, prev = store.head()
    batches = []
    for _ in range(commits):
        rows = []
        for n in range(last + 1, last + 1 + size):
            text = record_json(_record(n), n)
            digest = chain_hash(prev, text)
            rows.append((n, prev, digest, text))
            prev = digest
        last += size
        batches.append(rows)
    stop = threading.Event()

    def busy() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    before = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    spinner = threading.Thread(target=busy)
    spinner.start()
    waits = []
    try:
        for rows in batches:
            began = time.perf_counter()
            store.append(rows)
            waits.append(time.perf_counter() - began)
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(before)
        store.close()
    return statistics.median(waits) * 1000


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--baseline-records", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--verify-records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only.")
    args = parser.parse_args()
    cluster = None
    if not args.no_postgres:
        bindir = server_binaries()
        if bindir is None:
            raise SystemExit("PostgreSQL server binaries not found (Debian: apt-get install postgresql), "
                             "or pass --no-postgres")
        cluster = PgCluster(bindir)
        cluster.start()
    try:
        _main(args, cluster)
    finally:
        if cluster is not None:
            cluster.destroy()


def _main(args: argparse.Namespace, cluster: PgCluster | None) -> None:

    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        directory = Path(tmp)
        print(f"journal append: {args.records} records, {args.concurrency} concurrent appenders, "
              f"median of {args.runs} runs; baseline: {args.baseline_records} records, one insert per commit")
        for synchronous in ("FULL", "NORMAL"):
            results = [journal_run(directory / f"journal-{synchronous}-{n}.db", synchronous, args.records,
                                   args.concurrency) for n in range(args.runs)]
            rate = statistics.median(r[0] for r in results)
            p50 = statistics.median(r[1] for r in results)
            p99 = statistics.median(r[2] for r in results)
            commits = statistics.median(r[3] for r in results)
            plain = median_of(args.runs, lambda s=synchronous: baseline_run(directory, s, args.baseline_records))
            verdict = "ok" if rate >= 5_000 else "BELOW TARGET 5,000"
            print(f"  synchronous={synchronous:<6} journal {rate:>9,.0f} durable records/s ({verdict}); "
                  f"append latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {args.records / commits:,.0f} records/commit")
            print(f"  synchronous={synchronous:<6} plain   {plain:>9,.0f} records/s one insert per commit, "
                  f"blocking the caller's thread; journal/plain {rate / plain:.1f}x")

        if cluster is not None:
            results = [journal_run(PostgresStore(cluster.new_database(), "bench"), "FULL", args.records,
                                   args.concurrency) for _ in range(args.runs)]
            rate = statistics.median(r[0] for r in results)
            p50 = statistics.median(r[1] for r in results)
            p99 = statistics.median(r[2] for r in results)
            commits = statistics.median(r[3] for r in results)
            plain = median_of(args.runs, lambda: postgres_baseline_run(cluster.new_database(), args.baseline_records))
            verdict = "ok" if rate >= 5_000 else "BELOW TARGET 5,000"
            print(f"  postgresql       journal {rate:>9,.0f} durable records/s ({verdict}); "
                  f"append latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {args.records / commits:,.0f} records/commit")
            print(f"  postgresql       plain   {plain:>9,.0f} records/s one INSERT per commit, "
                  f"blocking the caller's thread; journal/plain {rate / plain:.1f}x")

        print("commit of 20 records while another thread is busy in Python (the sidecar's loop), "
              "median of 150, GIL switch interval 5 ms (CPython's default) vs 1 ms (the sidecar's):")
        backends: list[tuple[str, Callable[[], Store]]] = [
            ("sqlite FULL", lambda: SqliteStore(directory / f"busy-{time.monotonic_ns()}.db"))]
        if cluster is not None:
            dsn = cluster.new_database()
            backends.append(("postgresql", lambda: PostgresStore(dsn, f"busy{time.monotonic_ns()}")))
        for label, make in backends:
            slow = statistics.median(busy_loop_commit_ms(make(), 0.005) for _ in range(args.runs))
            fast = statistics.median(busy_loop_commit_ms(make(), 0.001) for _ in range(args.runs))
            print(f"  {label:<16} {slow:6.2f} ms at 5 ms, {fast:6.2f} ms at 1 ms")

        path = directory / "verify.db"
        build_journal(path, args.verify_records)
        rate = median_of(args.runs, lambda: verify_run(path))
        verdict = "ok" if rate >= 200_000 else "BELOW TARGET 200,000"
        print(f"journal verify (sqlite): {args.verify_records} records, median {rate:,.0f} records/s "
              f"({verdict}); {args.verify_records / rate:.2f} s")
        if cluster is not None:
            dsn = cluster.new_database()
            build_journal(PostgresStore(dsn, "bench"), args.verify_records)
            rate = median_of(args.runs, lambda: verify_run(PostgresStore(dsn)))
            print(f"journal verify (postgresql): {args.verify_records} records, median {rate:,.0f} records/s; "
                  f"{args.verify_records / rate:.2f} s")


if __name__ == "__main__":
    main()

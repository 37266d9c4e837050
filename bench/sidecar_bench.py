"""Sidecar benchmark (issue 3, "Done when"): throughput with wrk, bundle load time, sidecar RSS.

    .venv/bin/python bench/sidecar_bench.py [--duration 10] [--warmup 2] [--connections 10,50]
        [--rounds 3] [--profile] [--postgres] [--before REV] [--workers N]

Needs the Debian packages `wrk` and `stunnel4` (`apt-get install -y wrk stunnel4`). Takes about
six minutes with the defaults (24 wrk runs of 2 + 10 s). Everything listens on and talks to
127.0.0.1 only; every process it starts is stopped at the end, also on Ctrl-C, on failure, or when
the overall `--deadline` passes; the helper servers also exit by themselves after a while.

What runs, in ONE run, at each connection count (default 10 and 50), each target for a fixed
duration after a short warm-up, all on the same machine, the same upstream, the same call:

  (a) the sidecar, `reestr-sidecar run` in a child process, with the signed policy bundle and the
      durable journal (`synchronous: FULL`, and `NORMAL` as an extra row); the call is an allowed
      one: Ведомство 1 `GET /SID0003001/applicants/42` (full access to service А);
  (b) bare mitmproxy (`bench/bare_mitmproxy.py`): stock mitmproxy, a DumpMaster (mitmproxy's
      default addons) in reverse mode, same server certificate, client certificate requested,
      lazy upstream connection, one no-op addon — the baseline the target is stated against;
  (b') the same with only the mitmproxy addons the sidecar loads (`proxy.runner.mitmproxy_addons`,
      no onboarding app, script loader, flow saving, ...): (a)/(b') is the cost of reestr's own
      work (policy, durable journal, metrics), (b')/(b) what dropping the defaults saves;
  (a'') with --postgres (what `make bench-sidecar` runs): the same sidecar with the PostgreSQL
      journal on a throwaway local server (fsync on, synchronous_commit on); target ≥ 85% of (a);
  (a-N) with --journal-sizes N,M (default 10,000 and 200,000; what `make bench-sidecar` runs): the
      FULL sidecar on a journal that already holds N (and M) records, filled before the start by
      the sidecar's own writer: loop CPU per request with M records must be within 10% of N's
      (nothing on the request path may grow with uptime or journal size);
  (aW) with --workers N (`make bench-sidecar` runs --workers 2): the same sidecar as (a), journal
      FULL, with `workers: N` — a supervisor and N worker processes on the same ports
      (docs/sidecar.md); the row shows (aW)/(a) (target ≥ 1.4× with 2 workers on 2 cores, where
      wrk and stunnel share them) and each worker's loop CPU per request beside (a)'s (target
      within 10%); CPU and loop figures are the workers' (`bench/workers_rows.py`);
  (c) the upstream directly (`bench/fast_upstream.py`, a minimal asyncio HTTP server with a small
      fixed JSON answer): it must be far faster than (a) and (b), and the table shows that it is.

  (a0) with `--before REV`: the sidecar as it was at git revision REV (exported with `git archive`
      and run from there by the same interpreter, same config, same bundle, journal FULL), so a
      change's cost is measured against the code before it in the same run: (a)/(a0). Used for
      issue 10 (hardening: target parsing, header rules, timeouts, bounded labels), whose budget
      is ≤ 5% of throughput.

wrk cannot present a TLS client certificate, and the sidecar denies a call without one. So wrk
talks plain HTTP/1.1 to a local **stunnel** in client mode, which holds Ведомство 1's certificate
(`demo/pki/ved1.{crt,key}`), verifies the server against the demo CA, and opens one TLS connection
per wrk connection (kept alive, like wrk's). (a) and (b) sit behind the same stunnel process with
the same settings, so both pay exactly the same TLS-client cost and the same extra hop; (c) is
plain HTTP straight to the upstream. Latencies of (a) and (b) include the stunnel hop.
stunnel runs with `sessionResume = no`: a resumed TLS 1.3 session (PSK ClientHello) against
mitmproxy 12 with `request_client_cert` fails — the proxy closes the connection and the client
sees "unexpected eof" (every second stunnel connection failed; Python's ssl with `session=` fails
the same way against the sidecar and against bare mitmproxy), so every connection makes a full
handshake; wrk keeps its connections alive, so handshakes are a small part of the run anyway.
The figures come from a wrk Lua `done()` hook (requests, duration, errors, p50, p99); non-2xx
answers and socket errors are counted and shown, and each target answers one checked call first
(the sidecar's with a `Reestr-Journal-Id` header), so a fast stream of denials cannot pass as
throughput.

Each row is measured `--rounds` times, the targets interleaved, and the table shows the run with
the median req/s and the min–max spread: this machine is shared, and other work moves every
figure. Two figures resist that noise better than req/s: the CPU time the target process spent per
request (from /proc, user + system), and the same for its main thread alone — mitmproxy's asyncio
loop, which is single-threaded, so 1e6 / (loop µs per request) is what one core can carry; the
ratio of those loop costs, (b)/(a), is the throughput ratio one would see with a core to spare.
A one-row commit probe (WAL, synchronous=FULL) after the runs shows the fsync latency at that
moment: the sidecar waits for two commits per call, so with few connections and a slow disk
(a) FULL is bound by that latency, not by CPU. `--profile` samples (a) FULL, (b) and (b') with py-spy
(not a project dependency: `pip install py-spy` into the venv) during their largest-connection run
and prints where the samples fall.

All sidecars run with the big bundle of part 2 (10,000 grants), which costs nothing per request
(the decision is dict lookups; measured: the same req/s with the 3-service demo bundle) but
makes the RSS figure honest.

Part 2, bundle load: the example registry is compiled with a fresh operator key, then Ведомство 3's
bundle is grown to 10,000 grants (service × caller entries, plus the (caller, operation) pairs they
allow) by synthetic REST services and callers and signed again with `compiler.trust.sign_envelope`.
Loading it is timed the way the sidecar does it: `BundleStore.offer` (= `verify_envelope` +
`parse_policy` index + writing `bundle.json`/`state.json` with fsync) into a fresh state directory;
the median of `--load-runs` runs, with the two parts timed alone as well (with the garbage
collector paused, as `offer` runs them). The RSS (VmRSS, and the
peak VmHWM) of the FULL sidecar process is read from /proc after all its traffic.

The journal alone and `journal verify` are measured by `bench/journal_bench.py`.

Outputs (configs, bundles, journals, stunnel log, wrk raw output) go to bench/out/sidecar/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler import gcpause  # noqa: E402
from compiler.trust import (  # noqa: E402
    format_time,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_envelope,
    verify_envelope,
)
from proxy.bundles import BundleStore  # noqa: E402
from proxy.policy import parse_policy  # noqa: E402

PKI = ROOT / "demo" / "pki"
BIN = Path(sys.executable).parent
OUT = ROOT / "bench" / "out" / "sidecar"
CALL_PATH = "/SID0003001/applicants/42"
CALLER = "ved1"

WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""

TARGETS_TARGET_RATIO = 0.85  # (a) ≥ 85% of (b)
LEAN_TARGET_RATIO = 0.80  # (a) ≥ 80% of (b'), issue 13
LOAD_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0


# --- processes ----------------------------------------------------------------------------------


class Procs:
    """Every child process started, stopped in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[Any] | Any]] = []

    def add(self, name: str, proc: Any) -> Any:
        self.items.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(self.items):
            popen = getattr(proc, "process", proc)
            if popen.poll() is not None:
                continue
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop on SIGTERM: killing it", file=sys.stderr)
                popen.kill()
                popen.wait()
        self.items.clear()


class DeadlineExceeded(Exception):
    pass


class Stopped(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise DeadlineExceeded("the overall --deadline passed")


def _on_signal(signum: int, frame: object) -> None:
    raise Stopped(f"stopped by {signal.Signals(signum).name}")


def guarded(bench: Callable[[Procs], int], deadline: float) -> int:
    """Run `bench(procs)` with every process it starts stopped at the end — also on Ctrl-C,
    SIGTERM/SIGHUP (even when started in the background, where a shell leaves SIGINT ignored),
    a failure, or when `deadline` seconds have passed (exit 130 then)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.alarm(int(deadline))
    procs = Procs()
    try:
        return bench(procs)
    except (KeyboardInterrupt, Stopped, DeadlineExceeded) as e:
        print(f"\n{e or 'interrupted'}: stopping everything", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        procs.stop_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def wait_ready(admin_port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 30.0) -> None:
    """Until the sidecar's /readyz says 200 (bundle in force, journal writable, proxy listening)."""
    url = f"http://127.0.0.1:{admin_port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting (see its log)")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {timeout}s")


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


# --- the bundle with 10,000 grants --------------------------------------------------------------

_LAW = ("Федеральный закон от 27.07.2010 № 210-ФЗ «Об организации предоставления государственных "
        "и муниципальных услуг», ст. 7.1")


def _cert(rng: random.Random, pid: str, cn: str) -> tuple[str, dict[str, str]]:
    """(fingerprint, entry of the bundle's certificates table)."""
    return f"{rng.getrandbits(256):064x}", {
        "participant": pid, "subject": f"CN={cn},O=reestr bench,C=RU",
        "not_before": "2026-01-01T00:00:00Z", "not_after": "2036-01-01T00:00:00Z"}


def grow_bundle(signed: dict[str, Any], grants: int, seed: int = 3) -> dict[str, Any]:
    """`signed` with synthetic REST services and callers added up to `grants` caller entries."""
    rng = random.Random(seed)
    signed = json.loads(json.dumps(signed))
    services = signed["services"]
    table = signed.setdefault("certificates", {})
    have = sum(len(s["callers"]) for s in services.values())
    need = max(0, grants - have)
    pool_size = max(1, min(2000, need))
    pool = []
    for i in range(pool_size):
        pid = f"bench-{i:05d}"
        certs = [_cert(rng, pid, pid)] + ([_cert(rng, pid, pid + "-next")] if i % 10 == 0 else [])
        pool.append((pid, certs))
    n_services = max(1, -(-need // 200)) if need else 0
    for s in range(n_services):
        sid = f"SID0003{100 + s:03d}"
        ops = {f"operation{k}": {"method": "GET" if k % 2 else "POST",
                                 "path": f"/records/{{id}}/part{k}" if k % 2 else f"/records/search{k}"}
               for k in range(1, 5)}
        count = need // n_services + (1 if s < need % n_services else 0)
        callers = {}
        for pid, certs in rng.sample(pool, count):
            full = rng.random() < 0.5
            callers[pid] = {
                "access": "full" if full else "operations",
                "operations": None if full else sorted(rng.sample(sorted(ops), rng.randint(1, 3))),
                "grant": f"consumers/{pid}.yaml:{rng.randint(5, 900)}", "legal_basis": _LAW,
                "valid_until": None if rng.random() < 0.8 else "2030-12-31", "ends_on": None,
                "certificates": [fp for fp, _ in certs],
            }
            table.update(certs)
        services[sid] = {"name": f"Синтетический сервис {s}", "protocol": "rest",
                         "classification": rng.choice(["public", "restricted", "personal-data"]),
                         "signed_messages": False, "operations": ops, "callers": callers}
    now = datetime.now(UTC).replace(microsecond=0)
    signed["serial"] = int(signed["serial"]) + 1
    signed["issued_at"] = format_time(now)
    signed["expires_at"] = format_time(now + timedelta(hours=6))
    return signed


def build_big_bundle(out: Path, grants: int) -> Path:
    """Compile the example registry with a fresh operator key (out/keys/operator.{key,pub}) and
    write Ведомство 3's bundle grown to `grants` grants, signed again, as out/bundles/ved3-big.json."""
    if not (out / "keys" / "operator.key").exists():
        generate_keypair(out / "keys" / "operator")
    run([str(BIN / "reestr"), "compile", "registry", "--key", str(out / "keys" / "operator.key"),
         "--out", str(out / "bundles"), "--expires-in", "6h"])
    base = json.loads((out / "bundles" / "ved3.json").read_bytes())["signed"]
    big = out / "bundles" / "ved3-big.json"
    big.write_bytes(sign_envelope(grow_bundle(base, grants),
                                  [load_private_key(out / "keys" / "operator.key")]))
    return big


def count_grants(signed: dict[str, Any]) -> tuple[int, int, int]:
    """(service × caller entries, (caller, operation) pairs allowed, distinct certificates)."""
    entries = pairs = 0
    certs: set[str] = set()
    for svc in signed["services"].values():
        for c in svc["callers"].values():
            entries += 1
            pairs += len(svc["operations"]) if c["access"] == "full" else len(c["operations"])
            certs.update(c["certificates"])
    return entries, pairs, len(certs)


@dataclass
class LoadResult:
    bytes: int
    entries: int
    pairs: int
    certs: int
    offer_ms: list[float]
    offer_cpu_ms: list[float]
    verify_ms: list[float]
    parse_ms: list[float]


def time_bundle_load(path: Path, trusted_pub: Path, runs: int) -> LoadResult:
    data = path.read_bytes()
    trusted = [load_public_key(trusted_pub)]
    offer_ms, offer_cpu_ms, verify_ms, parse_ms = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=path.parent) as state:
            store = BundleStore("ved3", trusted, 1, Path(state))
            store.load_state()
            t0, c0 = time.perf_counter(), time.thread_time()
            accepted = store.offer(data, str(path))
            offer_ms.append((time.perf_counter() - t0) * 1000)
            offer_cpu_ms.append((time.thread_time() - c0) * 1000)
            if not accepted:
                raise RuntimeError(f"the big bundle was refused: {store.last_refusal}")
        with gcpause.paused():  # as BundleStore.offer runs them
            t0 = time.perf_counter()
            verified = verify_envelope(data, trusted, threshold=1, audience="ved3")
            verify_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            parse_policy(verified.signed)
            parse_ms.append((time.perf_counter() - t0) * 1000)
    entries, pairs, certs = count_grants(json.loads(data)["signed"])
    return LoadResult(len(data), entries, pairs, certs, offer_ms, offer_cpu_ms, verify_ms, parse_ms)


def commit_probe(seconds: float = 1.0, limit: int = 2000) -> tuple[float, float]:
    """p50 and p99 ms of one-row SQLite commits in WAL mode with synchronous=FULL, here, now.

    FULL fsyncs the WAL on every commit; the sidecar waits for two such commits (the request and
    the response record) per call, so with few connections this latency bounds (a) FULL.
    """
    import sqlite3

    path = OUT / "commit-probe.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        con.execute("CREATE TABLE t (x TEXT)")
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end and len(times) < limit:
            t0 = time.perf_counter()
            con.execute("INSERT INTO t VALUES ('x')")
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        con.close()
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect + read + write + timeout
    non2xx: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_s: float = 0.0  # CPU time (user + system, all threads) of the target process in the run
    loop_cpu_s: float = 0.0  # the same for its main thread only (mitmproxy's asyncio loop)
    spread: tuple[float, float] | None = None  # min and max req/s over the rounds
    worker_loops: list[float] | None = None  # --workers row: loop µs per request of each worker
    worker_reqs: list[float] | None = None  # --workers row: requests each worker answered

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def loop_us_per_req(self) -> float:
        return self.loop_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(url: str, connections: int, seconds: float, threads: int, lua: Path, log: Path) -> WrkResult:
    cmd = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{int(seconds)}s",
           "--timeout", "5s", "-s", str(lua), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    f_ = line.split()[1:]
    req, dur, conn, rd, wr, status, tmo = (int(x) for x in f_[:7])
    p50, p99, mean = (float(x) / 1000 for x in f_[7:])
    return WrkResult(req, dur / 1e6, conn + rd + wr + tmo, status, p50, p99, mean)


def _median_run(rs: list[WrkResult]) -> WrkResult:
    """The run with the median req/s (lower median for an even count), with the spread noted."""
    ordered = sorted(rs, key=lambda r: r.rps)
    pick = ordered[(len(ordered) - 1) // 2]
    pick.spread = (ordered[0].rps, ordered[-1].rps)
    return pick


def paired(runs: dict[tuple[str, int], list[WrkResult]], top: str, bottom: str, c: int,
           metric: str = "rps") -> float:
    """Median over the rounds of `top`'s `metric` ÷ `bottom`'s in the same round (`rps` or
    `loop_us_per_req`). The rows of one round run within a minute of each other, so each round's
    ratio sees one machine speed; the speed moves between rounds by more than the targets' margins
    (docs/performance.md, "Reading the figures"), and a ratio of separately chosen median rounds
    carries that movement. The target verdicts use this; the table shows the median rounds."""
    ratios = []
    for x, y in zip(runs[(top, c)], runs[(bottom, c)], strict=True):
        den = getattr(y, metric)
        ratios.append(getattr(x, metric) / den if den else float("inf"))
    return statistics.median(ratios)


def cpu_seconds(pid: int, main_thread_only: bool = False) -> float:
    """utime + stime of a process (all threads), or of its main thread (the asyncio loop)."""
    import os

    path = f"/proc/{pid}/task/{pid}/stat" if main_thread_only else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the targets --------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    url: str
    check: Callable[[httpx.Response], str | None]
    pid: int | None = None


def _check_upstream(r: httpx.Response) -> str | None:
    return None if r.status_code == 200 and b'"answer"' in r.content else f"HTTP {r.status_code}"


def _check_sidecar(r: httpx.Response) -> str | None:
    if r.status_code != 200 or b'"answer"' not in r.content:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    return None if r.headers.get("reestr-journal-id") else "no Reestr-Journal-Id header"


def write_sidecar_config(name: str, sync: str, upstream_port: int, bundle: Path,
                         dsn: str | None = None, workers: int = 1) -> tuple[Path, int, int]:
    state = OUT / name
    state.mkdir(parents=True, exist_ok=True)
    listen, admin = free_port(), free_port()
    config = state / "sidecar.yaml"
    journal = (f"""  path: {state / "journal.sqlite"}
  synchronous: {sync}""" if dsn is None else f"""  backend: postgres
  dsn: "{dsn}"
  chain: ved3-bench""")
    config.write_text(f"""\
participant: ved3
listen: {{host: 127.0.0.1, port: {listen}}}
admin: {{host: 127.0.0.1, port: {admin}}}
upstream: http://127.0.0.1:{upstream_port}
tls:
  server_bundle: {PKI / "ved3-server.pem"}
bundle:
  source: {bundle}
  trusted_keys: [{OUT / "keys" / "operator.pub"}]
state_dir: {state / "state"}
journal:
{journal}
  signing_key: {OUT / "keys" / "sidecar.key"}
""" + (f"workers: {workers}\n" if workers > 1 else ""), encoding="utf-8")  # (a0) knows no `workers`
    return config, listen, admin


def prefill_journal(path: Path, records: int, key_path: Path) -> float:
    """Write `records` records (request/response pairs of allowed calls, with their checkpoints)
    into a new journal at `path`, as a sidecar with that much history leaves it; seconds taken.
    The writer is the sidecar's own (`proxy.journal.Journal`); `synchronous=NORMAL` only to fill
    it fast, the sidecar then opens the file with FULL."""
    import asyncio
    import uuid

    from proxy.journal import Journal, sidecar_record, utc_now

    journal = Journal(path, load_private_key(key_path), synchronous="NORMAL")
    journal.start()
    digest = hashlib.sha256(b"").hexdigest()

    def record(i: int) -> Any:
        exchange = str(uuid.UUID(int=random.getrandbits(128), version=4))
        return sidecar_record(time=utc_now(), direction="inbound", kind="request" if i % 2 == 0 else "response",
                              exchange=exchange, decision="allow", method="GET",
                              path=f"/SID0003001/applicants/{i}", size=0, body_sha256=digest,
                              consumer=CALLER, provider="ved3", sid="SID0003001", operation="full",
                              status=None if i % 2 == 0 else 200, bundle_serial=1, grant="full")

    async def fill() -> None:
        for start in range(0, records, 4096):
            await asyncio.gather(*(journal.append(record(i)) for i in range(start, min(records, start + 4096))))

    t0 = time.perf_counter()
    try:
        asyncio.run(fill())
    finally:
        journal.close()
    return time.perf_counter() - t0


def _start_before(rev: str, upstream_port: int, bundle: Path, procs: Procs) -> tuple[Any, int]:
    """The sidecar of git revision `rev` (its proxy/ and compiler/ exported), journal FULL."""
    tree = OUT / "before-tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "proxy", "compiler"],
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=60)
    config, listen, admin = write_sidecar_config("sidecar-before", "FULL", upstream_port, bundle)
    with (OUT / "sidecar-before" / "sidecar.log").open("wb") as log:
        proc = procs.add("sidecar-before", subprocess.Popen(
            [sys.executable, "-c", "from proxy.cli import main; main()", "run", "--config", str(config)],
            cwd=tree, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
    wait_ready(admin, proc, f"the sidecar at {rev}")
    return proc, listen


def write_stunnel_config(routes: dict[str, tuple[int, int]]) -> Path:
    """One client-mode service per TLS target: plain accept port -> TLS connect port, as ved1."""
    lines = ["foreground = yes", "pid =", "syslog = no", f"output = {OUT / 'stunnel.log'}",
             "debug = 5", ""]
    for name, (accept, connect) in routes.items():
        lines += [f"[{name}]", "client = yes", f"accept = 127.0.0.1:{accept}",
                  f"connect = 127.0.0.1:{connect}", f"cert = {PKI / (CALLER + '.crt')}",
                  f"key = {PKI / (CALLER + '.key')}", f"CAfile = {PKI / 'ca.crt'}",
                  "verifyChain = yes", "checkIP = 127.0.0.1",
                  # a resumed TLS 1.3 session fails against mitmproxy (the server's answer to the
                  # PSK ClientHello does not decode, see the docstring): full handshakes only
                  "sessionResume = no", ""]
    path = OUT / "stunnel.conf"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# --- optional profile ---------------------------------------------------------------------------


def start_py_spy(pid: int, seconds: float, out: Path, procs: Procs) -> subprocess.Popen[Any]:
    exe = shutil.which("py-spy") or str(BIN / "py-spy")
    return procs.add(f"py-spy {pid}", subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking", "--threads"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=out.with_suffix(".log").open("wb")))


def print_profile(path: Path, label: str, top: int = 14) -> None:
    """From py-spy's collapsed stacks: where the samples end (self) and what they pass (total)."""
    if not path.is_file():
        print(f"\nno py-spy samples for {label} ({path.name} missing: is py-spy installed?)")
        return
    self_: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";")]
        if frames:
            self_[frames[-1]] = self_.get(frames[-1], 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
    print(f"\npy-spy, {label}: {samples:,} samples (all threads); self = the frame was running")
    for name, n in sorted(self_.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  self {n / samples:6.1%}  {name}")
    mine = [(k, v) for k, v in total.items()
            if "(proxy/" in k or "prometheus_client/" in k or k.startswith(("thread ", "process "))]
    for name, n in sorted(mine, key=lambda kv: -kv[1])[:2 * top]:
        print(f"  total {n / samples:5.1%}  {name}")


def _frame(raw: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)` without the line, to add samples up."""
    if raw.startswith(("thread (", "process (")):
        return "thread " + raw.partition("): ")[2]
    name, _, where = raw.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/lib/python3.12/", f"{ROOT}/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10.0, help="seconds of each measured wrk run")
    ap.add_argument("--warmup", type=int, default=2.0, help="seconds of wrk before each run")
    ap.add_argument("--connections", default="10,50", help="comma-separated connection counts")
    ap.add_argument("--rounds", type=int, default=3,
                    help="measure every row this many times, interleaved; the table shows the median")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--grants", type=int, default=10_000, help="grants in the big bundle")
    ap.add_argument("--load-runs", type=int, default=9, help="bundle load repetitions (median)")
    ap.add_argument("--profile", action="store_true",
                    help="sample (a) FULL and (b) with py-spy during their largest-connection run "
                         "(py-spy must be on PATH or in the venv: pip install py-spy; not a project "
                         "dependency); samples skew those two rows a little")
    ap.add_argument("--before", metavar="REV", default=None,
                    help="also run the sidecar of git revision REV as row (a0), for a before/after "
                         "comparison in the same run (e.g. the commit before a change)")
    ap.add_argument("--journal-sizes", default="10000,200000", metavar="N,M",
                    help="also rows (a) FULL on a journal that already holds N and M records "
                         "(loop CPU per request must not grow with the journal); '' for none")
    ap.add_argument("--workers", type=int, default=0, metavar="N",
                    help="also a row (aW): the FULL sidecar with `workers: N` (N ≥ 2) beside (a), the same "
                         "sidecar with one process; target ≥ 1.4× (a)'s throughput with 2 workers")
    ap.add_argument("--deadline", type=float, default=1800.0, help="overall cap in seconds")
    ap.add_argument("--postgres", action="store_true",
                    help="also a row (a'') with the PostgreSQL journal, on a throwaway local server "
                         "(initdb/pg_ctl from Debian's postgresql package); target ≥ 85%% of (a)")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",") if c.strip()]
    if not conns or min(conns) < 1 or max(conns) > 1000 or not 1 <= args.duration <= 120 \
            or not 0 <= args.warmup <= 30 or not 1 <= args.rounds <= 10:
        ap.error("connections 1..1000, duration 1..120 s, warm-up 0..30 s, rounds 1..10")
    for tool in ("wrk", "stunnel"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install -y wrk stunnel4")

    def run_all(procs: Procs) -> int:
        if not args.postgres:
            return _bench(args, conns, procs)
        from tests.proxy.pgcluster import PgCluster, server_binaries

        bindir = server_binaries()
        if bindir is None:
            sys.exit("PostgreSQL server binaries not found: apt-get install -y postgresql")
        cluster = PgCluster(bindir)
        try:
            cluster.start()
            args.dsn = cluster.new_database()
            return _bench(args, conns, procs)
        finally:
            procs.stop_all()  # the sidecars first, then the database they write to
            cluster.destroy()

    return guarded(run_all, args.deadline)


def _bench(args: argparse.Namespace, conns: list[int], procs: Procs) -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "keys").mkdir(parents=True)
    lua = OUT / "report.lua"
    lua.write_text(WRK_LUA, encoding="utf-8")
    wrk_log = OUT / "wrk.log"
    env_line = (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {sys.version.split()[0]} · "
                f"{_nproc()} cores · {_wrk_version()} · load average before: {_loadavg()}")

    print("== preparing: example registry compiled, Ведомство 3's bundle grown to "
          f"{args.grants:,} grants", flush=True)
    generate_keypair(OUT / "keys" / "sidecar")
    big = build_big_bundle(OUT, args.grants)

    print(f"== bundle load: {args.load_runs} runs", flush=True)
    load = time_bundle_load(big, OUT / "keys" / "operator.pub", args.load_runs)

    print("== starting the upstream, bare mitmproxy, two sidecars, stunnel", flush=True)
    up_port = free_port()
    upstream = procs.add("upstream", subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up_port), str(args.deadline)],
        stdin=subprocess.DEVNULL))
    wait_port(up_port, upstream, "the upstream")

    bare_port = free_port()
    bare = procs.add("bare mitmproxy", subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_mitmproxy.py"), "--listen", str(bare_port),
         "--upstream", f"http://127.0.0.1:{up_port}", "--server-bundle", str(PKI / "ved3-server.pem"),
         "--confdir", str(OUT / "bare-confdir"), "--seconds", str(args.deadline)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(OUT / "bare-mitmproxy.log").open("wb")))
    wait_port(bare_port, bare, "bare mitmproxy")
    lean_port = free_port()
    lean = procs.add("mitmproxy, sidecar's addons", subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_mitmproxy.py"), "--listen", str(lean_port),
         "--upstream", f"http://127.0.0.1:{up_port}", "--server-bundle", str(PKI / "ved3-server.pem"),
         "--confdir", str(OUT / "bare-confdir"), "--seconds", str(args.deadline), "--addons", "sidecar"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(OUT / "lean-mitmproxy.log").open("wb")))
    wait_port(lean_port, lean, "mitmproxy with the sidecar's addons")

    sidecars = {}
    for sync in ("FULL", "NORMAL", *(("PG",) if args.postgres else ())):
        name = f"sidecar-{sync.lower()}"
        config, listen, admin = write_sidecar_config(name, sync, up_port, big,
                                                     args.dsn if sync == "PG" else None)
        with (OUT / name / "sidecar.log").open("wb") as log:
            proc = procs.add(name, subprocess.Popen(
                [str(BIN / "reestr-sidecar"), "run", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        wait_ready(admin, proc, name)
        sidecars[sync] = (proc, listen)
    if args.before:
        sidecars["BEFORE"] = _start_before(args.before, up_port, big, procs)
    sizes = [int(n) for n in args.journal_sizes.split(",") if n.strip()]
    for size in sizes:
        name = f"sidecar-{size}"
        config, listen, admin = write_sidecar_config(name, "FULL", up_port, big)
        took = prefill_journal(OUT / name / "journal.sqlite", size, OUT / "keys" / "sidecar.key")
        print(f"   journal of ({_size_key(size)}) prefilled with {size:,} records in {took:.1f} s", flush=True)
        with (OUT / name / "sidecar.log").open("wb") as log:
            proc = procs.add(name, subprocess.Popen(
                [str(BIN / "reestr-sidecar"), "run", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        wait_ready(admin, proc, name)
        sidecars[str(size)] = (proc, listen)
    workers_target = None
    if args.workers > 1:  # (aW): the same sidecar, journal FULL, as a supervisor and N workers
        from bench.workers_rows import WorkersTarget

        config, listen, admin = write_sidecar_config("sidecar-workers", "FULL", up_port, big, workers=args.workers)
        with (OUT / "sidecar-workers" / "sidecar.log").open("wb") as log:
            proc = procs.add("sidecar-workers", subprocess.Popen(
                [str(BIN / "reestr-sidecar"), "run", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        wait_ready(admin, proc, "sidecar-workers", timeout=60)
        workers_target = WorkersTarget(OUT / "sidecar-workers" / "state", cpu_seconds)
        workers_target.wait_all_ready(args.workers)
        sidecars["WORKERS"] = (proc, listen)

    routes = {"bare": (free_port(), bare_port), "lean": (free_port(), lean_port)}
    routes.update({f"sidecar-{s.lower()}": (free_port(), listen) for s, (_, listen) in sidecars.items()})
    before = [Target("a0", f"(a0) sidecar at {args.before}, FULL",
                     f"http://127.0.0.1:{routes['sidecar-before'][0]}{CALL_PATH}", _check_sidecar,
                     sidecars["BEFORE"][0].pid)] if args.before else []
    stunnel = procs.add("stunnel", subprocess.Popen(
        ["stunnel", str(write_stunnel_config(routes))], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for name, (accept, _) in routes.items():
        wait_port(accept, stunnel, f"stunnel [{name}]")

    targets = [
        Target("c", "(c) upstream direct", f"http://127.0.0.1:{up_port}{CALL_PATH}", _check_upstream,
               upstream.pid),
        Target("b", "(b) bare mitmproxy, no-op addon",
               f"http://127.0.0.1:{routes['bare'][0]}{CALL_PATH}", _check_upstream, bare.pid),
        Target("b-lean", "(b') mitmproxy, sidecar's addons",
               f"http://127.0.0.1:{routes['lean'][0]}{CALL_PATH}", _check_upstream, lean.pid),
        Target("a", "(a) sidecar, journal FULL",
               f"http://127.0.0.1:{routes['sidecar-full'][0]}{CALL_PATH}", _check_sidecar,
               sidecars["FULL"][0].pid),
        Target("a-normal", "(a') sidecar, journal NORMAL",
               f"http://127.0.0.1:{routes['sidecar-normal'][0]}{CALL_PATH}", _check_sidecar,
               sidecars["NORMAL"][0].pid),
        *before,
    ]
    for size in sizes:
        targets.append(Target(_size_key(size), f"(a) FULL on {size:,} old records",
                              f"http://127.0.0.1:{routes[f'sidecar-{size}'][0]}{CALL_PATH}", _check_sidecar,
                              sidecars[str(size)][0].pid))
    if workers_target is not None:
        targets.append(Target("a-w", f"(aW) sidecar, {args.workers} workers, FULL",
                              f"http://127.0.0.1:{routes['sidecar-workers'][0]}{CALL_PATH}", _check_sidecar,
                              sidecars["WORKERS"][0].pid))
    if args.postgres:
        targets.append(Target("a-pg", "(a'') sidecar, journal PostgreSQL",
                              f"http://127.0.0.1:{routes['sidecar-pg'][0]}{CALL_PATH}", _check_sidecar,
                              sidecars["PG"][0].pid))
    for t in targets:
        r = httpx.get(t.url, timeout=10)
        problem = t.check(r)
        if problem:
            raise RuntimeError(f"{t.label}: the checked call failed: {problem}")

    runs: dict[tuple[str, int], list[WrkResult]] = {}
    total = len(conns) * len(targets) * args.rounds
    print(f"== wrk: {total} runs of {args.warmup:g}+{args.duration:g} s, {args.rounds} round(s) "
          f"interleaved (≈{total * (args.warmup + args.duration) / 60:.1f} min)", flush=True)
    for c in conns:
        for rnd in range(args.rounds):
            for t in targets:
                if args.warmup > 0:
                    wrk(t.url, c, args.warmup, args.threads, lua, wrk_log)
                spy = None
                if args.profile and rnd == 0 and c == max(conns) and t.key in ("a", "b", "b-lean") \
                        and t.pid is not None:
                    spy = start_py_spy(t.pid, args.duration, OUT / f"py-spy-{t.key}.txt", procs)
                cpu0 = cpu_seconds(t.pid) if t.pid is not None else 0.0
                loop0 = cpu_seconds(t.pid, True) if t.pid is not None else 0.0
                samples = workers_target.sample() if t.key == "a-w" and workers_target else None
                res = wrk(t.url, c, args.duration, args.threads, lua, wrk_log)
                if samples is not None and workers_target is not None:
                    from bench.workers_rows import deltas

                    res.cpu_s, res.worker_loops, res.worker_reqs = deltas(samples, workers_target.sample())
                    res.loop_cpu_s = sum(lp * rq for lp, rq in zip(res.worker_loops, res.worker_reqs,
                                                                   strict=True)) / 1e6
                elif t.pid is not None:
                    res.cpu_s = cpu_seconds(t.pid) - cpu0
                    res.loop_cpu_s = cpu_seconds(t.pid, True) - loop0
                if spy is not None:
                    spy.wait(30)
                runs.setdefault((t.key, c), []).append(res)
                print(f"   {t.label:<34} c={c:<3} {res.rps:>10,.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
                      f"p99 {res.p99_ms:7.2f} ms  CPU {res.cpu_us_per_req:6.0f} µs/req "
                      f"(loop {res.loop_us_per_req:.0f})", flush=True)
    results = {key: _median_run(rs) for key, rs in runs.items()}

    mem = {t.key: rss_kb(t.pid) for t in targets if t.pid is not None}
    probe = commit_probe()
    records = _journal_records(OUT / "sidecar-full" / "journal.sqlite")

    _print_report(env_line, conns, targets, results, runs, load, mem, records, args)
    print(f"one-row SQLite commit with synchronous=FULL, measured right after the runs: p50 "
          f"{probe[0]:.2f} ms, p99 {probe[1]:.2f} ms (the sidecar awaits two per call)")
    print()
    import pipeline_bench  # bench/: reestr's stages in-process, on the same big bundle

    store = pipeline_bench.load_store(big, OUT / "keys" / "operator.pub", OUT / "pipeline-state")
    pipeline_bench.print_costs(pipeline_bench.stage_costs(store), results[("a", max(conns))].loop_us_per_req)
    if args.profile:
        for key in ("b", "b-lean", "a"):
            print_profile(OUT / f"py-spy-{key}.txt", {t.key: t.label for t in targets}[key])
    ok_ratio = all(paired(runs, "a", "b", c) >= TARGETS_TARGET_RATIO for c in conns)
    ok_load = statistics.median(load.offer_ms) <= LOAD_TARGET_MS
    ok_rss = mem["a"]["VmHWM"] / 1024 <= RSS_TARGET_MB
    ok_lean = all(paired(runs, "a", "b-lean", c) >= LEAN_TARGET_RATIO for c in conns)
    grown = sorted({int(key[1:]) for key, _ in results if key.startswith("j")})
    ok_size = "n/a" if len(grown) < 2 else "PASS" if all(
        paired(runs, f"j{grown[-1]}", f"j{grown[0]}", c, "loop_us_per_req") <= 1.10 for c in conns) else "FAIL"
    clean = all(r.errors == 0 and r.non2xx == 0 for r in results.values())
    print(f"\nverdict: throughput (a)/(b) ≥ 85%: {'PASS' if ok_ratio else 'FAIL'} · (a)/(b') ≥ 80%: "
          f"{'PASS' if ok_lean else 'FAIL'} · loop CPU per request not growing with the journal (≤ 110%): "
          f"{ok_size} · bundle load ≤ 100 ms: "
          f"{'PASS' if ok_load else 'FAIL'} · RSS ≤ 150 MB: {'PASS' if ok_rss else 'FAIL'} · "
          f"errors/non-2xx: {'none' if clean else 'SOME (see table)'}")
    print(f"load average after: {_loadavg()} (other work on this {_nproc()}-core machine skews "
          "every row; compare ratios within one run)")
    print(f"raw wrk output: {wrk_log.relative_to(ROOT)}; process logs in {OUT.relative_to(ROOT)}/")
    return 0


def _print_report(env_line: str, conns: list[int], targets: list[Target],
                  results: dict[tuple[str, int], WrkResult], runs: dict[tuple[str, int], list[WrkResult]],
                  load: LoadResult,
                  mem: dict[str, dict[str, int]], records: int | None, args: argparse.Namespace) -> None:
    print(f"\n== reestr-sidecar benchmark · {env_line}")
    print(f"call: {CALLER} GET {CALL_PATH} (allowed) · wrk {args.threads} threads, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s per row · (a),(b) via stunnel with "
          f"{CALLER}'s client certificate · median of {args.rounds} interleaved round(s)\n"
          "CPU = CPU time (user+sys) of the target process during the run, all threads, per request; "
          "loop = its main thread only (mitmproxy's asyncio loop: one core at most, so 1e6 / loop µs "
          "is the ceiling in req/s); CPU % = all threads, share of one core\n")
    head = (f"{'target':<34} {'conns':>5} {'req/s':>8} {'(min–max)':>15} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU µs/req':>10} {'loop µs':>7} {'CPU':>5} {'errors':>6} {'non-2xx':>7}")
    print(head)
    print("-" * len(head))
    for c in conns:
        for t in targets:
            r = results[(t.key, c)]
            lo, hi = r.spread or (r.rps, r.rps)
            print(f"{t.label:<34} {c:>5} {r.rps:>8,.0f} {f'({lo:,.0f}–{hi:,.0f})':>15} {r.p50_ms:>8.2f} "
                  f"{r.p99_ms:>8.2f} {r.cpu_us_per_req:>10,.0f} {r.loop_us_per_req:>7,.0f} {r.cpu_share:>5.0%} "
                  f"{r.errors:>6} "
                  f"{r.non2xx:>7}")
        def ratio(top: str, bottom: str, metric: str = "rps", c: int = c) -> float:
            return paired(runs, top, bottom, c, metric)

        loop = "loop_us_per_req"
        if ("a0", c) in results:
            print(f"{'before/after':<34} {c:>5}  (a)/(a0) {ratio('a', 'a0'):6.1%} [target ≥ 95%]   loop CPU "
                  f"per request (a0)/(a) {ratio('a0', 'a', loop):6.1%}")
        print(f"{'ratios':<34} {c:>5}  (a)/(b) {ratio('a', 'b'):6.1%} [target ≥ 85%]   (a')/(b) "
              f"{ratio('a-normal', 'b'):6.1%}   (a)/(b') {ratio('a', 'b-lean'):6.1%} [target ≥ 80%]   (b')/(b) "
              f"{ratio('b-lean', 'b'):6.1%}   (b)/(c) {ratio('b', 'c'):6.2%}   loop CPU per request (b)/(a) "
              f"{ratio('b', 'a', loop):6.1%}")
        grown = sorted({int(k[0][1:]) for k in results if k[1] == c and k[0].startswith("j")})
        if len(grown) >= 2:
            small, large = f"j{grown[0]}", f"j{grown[-1]}"
            print(f"{'journal size':<34} {c:>5}  loop CPU per request with {grown[-1]:,} records / with "
                  f"{grown[0]:,}: {ratio(large, small, loop):6.1%} [target ≤ 110%]   req/s "
                  f"{ratio(large, small):6.1%}")
        if ("a-w", c) in results:
            w = results[("a-w", c)]
            loops = " / ".join(f"{lp:,.0f}" for lp in w.worker_loops or [])
            shares = " / ".join(f"{rq / w.requests:.0%}" for rq in w.worker_reqs or []) if w.requests else "-"
            worst = statistics.median(max(x.worker_loops or [0.0]) / y.loop_us_per_req if y.loop_us_per_req
                                      else 0.0 for x, y in zip(runs[("a-w", c)], runs[("a", c)], strict=True))
            print(f"{'workers':<34} {c:>5}  (aW)/(a) {ratio('a-w', 'a'):5.2f}× [target ≥ 1.40×]   loop CPU per "
                  f"request of each worker {loops} µs (calls {shares}); slowest worker vs (a) "
                  f"{worst:6.1%} [target ≤ 110%]")
        if ("a-pg", c) in results:
            print(f"{'':<34} {c:>5}  (a'')/(a) PostgreSQL journal vs SQLite FULL {ratio('a-pg', 'a'):6.1%} "
                  f"[target ≥ 85%]   loop CPU per request (a)/(a'') {ratio('a', 'a-pg', loop):6.1%}")
        print(f"{'':<34} {c:>5}  (ratios: the median over the rounds of each round's own ratio)")
        print()
    med = statistics.median
    print(f"bundle: {load.bytes / 1e6:.2f} MB, {load.entries:,} grants (service × caller entries) = "
          f"{load.pairs:,} (caller, operation) pairs, {load.certs:,} certificates")
    print(f"bundle load (median of {len(load.offer_ms)}): BundleStore.offer {med(load.offer_ms):.1f} ms "
          f"[target ≤ 100 ms] (min {min(load.offer_ms):.1f}, max {max(load.offer_ms):.1f}) = "
          f"verify_envelope {med(load.verify_ms):.1f} ms + parse_policy {med(load.parse_ms):.1f} ms "
          f"+ persisting; CPU time of the offer {med(load.offer_cpu_ms):.1f} ms")
    labels = {t.key: t.label for t in targets}
    for key in ("a", "a-normal", "a-pg", "b", "b-lean", "c"):
        if key in mem:
            m = mem[key]
            note = " [target ≤ 150 MB]" if key == "a" else ""
            print(f"RSS after traffic, {labels[key]:<34} VmRSS {m['VmRSS'] / 1024:6.1f} MB, "
                  f"peak VmHWM {m['VmHWM'] / 1024:6.1f} MB{note}")
    if records is not None:
        print(f"journal of (a) FULL: {records:,} records")


def _size_key(size: int) -> str:
    """The target key of the row on a journal prefilled with `size` records."""
    return f"j{size}"


def _journal_records(path: Path) -> int | None:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            table = "records" if "records" in tables else (tables[0] if tables else None)
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) if table else None
        finally:
            con.close()
    except sqlite3.Error:
        return None


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _nproc() -> int:
    import os

    return os.cpu_count() or 0


def _wrk_version() -> str:
    proc = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0].split(" [")[0] if text else "wrk"


if __name__ == "__main__":
    sys.exit(main())

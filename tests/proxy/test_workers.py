"""`workers: N`: a supervisor and real worker processes sharing the listening ports (issue 13).

Real processes, real TLS with client certificates, real journals: a worker SIGKILLed under load
is restarted and every chain verifies with a record for every response a client received; a new
bundle on SIGHUP under load drops no call and decides none by a mix of bundles; SIGTERM drains.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from compiler.trust import load_private_key
from proxy.config import load_config
from proxy.journal.query import export
from proxy.journal.verify import verify_journal
from proxy.runner import ProcessHandle, start_subprocess
from proxy.workers import journal_stores, read_status
from tests.proxy.conftest import Keys, Pki, Upstream, serve_http, sign, signed_bundle, write_config
from tests.proxy.test_runner import postgres_journal
from tests.proxy.test_sidecar_e2e import cli, wait_for

pytestmark = pytest.mark.slow


class Cluster:
    """A config directory with a bundle file, started as a supervisor with `workers` workers."""

    def __init__(self, d: Path, pki: Pki, keys: Keys, upstream_url: str, workers: int = 2, **cfg: Any) -> None:
        self.dir, self.pki, self.keys = d, pki, keys
        self.bundle = d / "bundle.json"
        self.config_path = write_config(d, pki, keys, upstream_url, str(self.bundle), workers=workers, **cfg)
        self.config = yaml.safe_load(self.config_path.read_text())
        self.proc: ProcessHandle | None = None

    def start(self) -> ProcessHandle:
        self.proc = start_subprocess(self.config_path, timeout=40)
        return self.proc

    def publish(self, data: bytes) -> None:
        tmp = self.bundle.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.bundle)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.config['listen']['port']}{path}"

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.config['admin']['port']}{path}", timeout=5)

    def status(self) -> dict[str, Any]:
        return read_status(load_config(self.config_path)) or {"workers": []}

    def pids(self) -> list[int | None]:
        return [w["pid"] for w in self.status()["workers"]]

    def all_ready(self) -> bool:
        try:
            return self.admin("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def records(self) -> list[dict[str, Any]]:
        return [r for store in journal_stores(load_config(self.config_path)) for r in export(store)]

    def verify(self) -> None:
        public = load_private_key(self.keys.sidecar_key).public_key()
        stores = journal_stores(load_config(self.config_path))
        assert len(stores) == self.config["workers"]
        for store in stores:
            report = verify_journal(store, public)
            assert report.ok, report.problems[:3]
        result = cli("journal", "verify", "--config", str(self.config_path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(": intact:") == self.config["workers"], result.stdout

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=60)


class Load:
    """Client threads calling until stopped; each call has a unique path, so its records can be found."""

    def __init__(self, cluster: Cluster, who: str = "ved1", threads: int = 4) -> None:
        self.cluster, self.who = cluster, who
        self.received: list[tuple[str, httpx.Response]] = []
        self.failed: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(verify=self.cluster.pki.client_context(self.who), timeout=15) as client:
            while not self.stop.is_set():
                path = f"/SID0003001/certificates/{uuid.uuid4().hex}"
                try:
                    r = client.get(self.cluster.url(path))
                except httpx.HTTPError as e:
                    with self.lock:
                        self.failed.append((path, repr(e)))
                    continue
                with self.lock:
                    self.received.append((path, r))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)

    def wait(self, more: int, timeout: float = 30) -> None:
        target = len(self.received) + more
        wait_for(lambda: len(self.received) >= target, timeout=timeout)


@pytest.fixture
def cluster_factory(tmp_path: Path, pki: Pki, keys: Keys) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(upstream_url: str, **cfg: Any) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", pki, keys, upstream_url, **cfg)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def by_path(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """path -> {kind: record} (paths are unique per call)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r["kind"] in ("request", "response"):
            out.setdefault(r["path"], {})[r["kind"]] = r
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_of_a_worker_under_load(cluster_factory: Callable[..., Cluster], upstream: Upstream,
                                       pki: Pki, keys: Keys, backend: str, request: pytest.FixtureRequest) -> None:
    extra: dict[str, Any] = {}
    if backend == "postgres":
        extra["journal"] = postgres_journal(request.getfixturevalue("pg_dsn"), keys, chain="ved3-k")
    c = cluster_factory(upstream.url, **extra)
    c.publish(sign(signed_bundle(pki), keys.operator))
    c.start()
    wait_for(c.all_ready, timeout=20)
    pids = c.pids()
    assert len(pids) == 2 and all(pids)
    with Load(c) as load:
        load.wait(60)
        os.kill(pids[1], signal.SIGKILL)  # type: ignore[arg-type]
        wait_for(lambda: c.pids()[1] not in (None, pids[1]), timeout=20)
        wait_for(c.all_ready, timeout=30)
        load.wait(60)
    assert c.pids()[0] == pids[0]  # the other worker kept serving
    metrics = c.admin("/metrics").text
    assert 'reestr_worker_restarts_total{worker="1"} 1.0' in metrics
    assert "reestr_workers_alive 2.0" in metrics
    # what an operator aggregates, summed over the workers: bounded labels, histograms, gauges
    calls = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("reestr_requests_total{") and 'sid="SID0003001"' in line)
    assert calls >= len(load.received)
    assert 'reestr_request_duration_seconds_bucket{decision="allow",direction="inbound",le="+Inf",sid="SID0003001"}' \
        in metrics
    for name in ("reestr_journal_commit_seconds_count", "reestr_bundle_age_seconds", "reestr_bundle_serial 10.0",
                 "reestr_journal_queue_depth", "reestr_journal_healthy 1.0"):
        assert name in metrics, name
    c.proc.stop(timeout=60)  # type: ignore[union-attr]
    c.verify()
    records = by_path(c.records())
    assert len(load.received) > 120
    for path, response in load.received:  # every response a client got has its records
        assert response.status_code == 200, (path, response.status_code)
        pair = records[path]
        assert pair["request"]["decision"] == "allow"
        assert pair["response"]["id"] == int(response.headers["Reestr-Journal-Id"])
    # both workers journaled: the calls were shared
    chains = {r.get("chain") for r in c.records()} if backend == "postgres" else None
    assert chains is None or chains == {"ved3-k", "ved3-k-w1"}


def test_sighup_swaps_the_bundle_under_load(cluster_factory: Callable[..., Cluster], upstream: Upstream,
                                           pki: Pki, keys: Keys) -> None:
    c = cluster_factory(upstream.url)
    c.config["bundle"]["poll_seconds"] = 3600  # only SIGHUP brings the new bundle
    c.config_path.write_text(yaml.safe_dump(c.config))
    old = signed_bundle(pki, serial=10)  # ved2: op1 and op3
    c.publish(sign(old, keys.operator))
    proc = c.start()
    wait_for(c.all_ready, timeout=20)
    new = signed_bundle(pki, serial=11)
    new["services"]["SID0003001"]["callers"]["ved2"]["operations"] = ["op3"]  # op1 no longer
    with Load(c, who="ved2") as load:
        load.wait(50)
        c.publish(sign(new, keys.operator))
        proc.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reestr_bundle_serial 11.0" in c.admin("/metrics").text, timeout=20)
        load.wait(50)
    proc.stop(timeout=60)
    c.verify()
    assert load.failed == []  # no call dropped
    records = by_path(c.records())
    serials = set()
    for path, response in load.received:
        pair = records[path]
        serial = pair["request"]["bundle_serial"]
        assert pair["response"]["bundle_serial"] == serial  # one bundle per call
        serials.add(serial)
        if serial == 10:
            assert response.status_code == 200 and pair["request"]["decision"] == "allow"
        else:
            assert serial == 11 and response.status_code == 403 and pair["request"]["decision"] == "deny"
    assert serials == {10, 11}
    assert load.received[-1][1].status_code == 403


class SlowUpstream:
    """An upstream that answers after `delay` seconds (calls in flight during a drain)."""

    def __init__(self, delay: float) -> None:
        self.started = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.started += 1
                time.sleep(delay)
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server, self.url = serve_http(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sigterm_drains_calls_in_flight(cluster_factory: Callable[..., Cluster], pki: Pki, keys: Keys) -> None:
    slow = SlowUpstream(delay=1.5)
    try:
        c = cluster_factory(slow.url)
        c.publish(sign(signed_bundle(pki), keys.operator))
        proc = c.start()
        wait_for(c.all_ready, timeout=20)
        results: list[int | str] = []

        def call(i: int) -> None:
            with httpx.Client(verify=pki.client_context("ved1"), timeout=30) as client:
                try:
                    results.append(client.get(c.url(f"/SID0003001/certificates/drain{i}")).status_code)
                except httpx.HTTPError as e:
                    results.append(repr(e))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: slow.started == 6, timeout=20)  # all six are at the upstream now
        proc.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert results == [200] * 6
        assert proc.process.wait(60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(c.url("/SID0003001/certificates/late"), verify=pki.client_context("ved1"))
        c.verify()
        records = by_path(c.records())
        assert all(records[f"/SID0003001/certificates/drain{i}"]["response"]["status"] == 200 for i in range(6))
    finally:
        slow.close()


def test_connections_that_arrive_together_are_shared(cluster_factory: Callable[..., Cluster],
                                                     upstream: Upstream) -> None:
    """Ten connections waiting in the shared queue when the workers wake: each worker takes one
    per wake-up, so no worker takes them all (asyncio's default took the whole queue at once)."""
    c = cluster_factory(upstream.url)
    c.publish(sign(signed_bundle(c.pki), c.keys.operator))
    c.start()
    wait_for(c.all_ready, timeout=20)
    pids = [p for p in c.pids() if p]
    assert len(pids) == 2
    paths = [f"/SID0003001/certificates/together-{i}" for i in range(10)]
    statuses: list[int] = []

    def call(path: str) -> None:
        with httpx.Client(verify=c.pki.client_context("ved1"), timeout=30) as client:
            statuses.append(client.get(c.url(path)).status_code)

    for pid in pids:  # the connections queue up in the kernel while no worker runs
        os.kill(pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=call, args=(p,), daemon=True) for p in paths]
        for t in threads:
            t.start()
        time.sleep(1.0)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    for t in threads:
        t.join(40)
    assert statuses == [200] * 10
    c.proc.stop(timeout=60)  # type: ignore[union-attr]
    per_worker = [sum(1 for r in export(store) if r["kind"] == "request" and r["path"] in paths)
                  for store in journal_stores(load_config(c.config_path))]
    assert sum(per_worker) == 10
    assert min(per_worker) >= 2, per_worker


def test_readyz_waits_for_every_worker(cluster_factory: Callable[..., Cluster], upstream: Upstream) -> None:
    c = cluster_factory(upstream.url, workers=3)  # no bundle published: no worker can be ready
    c.start()
    r = c.admin("/readyz")
    assert r.status_code == 503
    assert all(f"worker {i}:" in r.text for i in range(3)), r.text
    status = cli("status", "--config", str(c.config_path))
    assert status.returncode == 0 and "workers: 3" in status.stdout, status.stdout


def test_both_sides_with_workers(tmp_path: Path, pki: Pki, keys: Keys, upstream: Upstream) -> None:
    """A consumer sidecar whose outbound listener is shared by 2 workers calls a provider with 2."""
    from tests.proxy.conftest import free_port, signed_consumer_bundle

    (tmp_path / "ved3.json").write_bytes(sign(signed_bundle(pki), keys.operator))
    provider = write_config(tmp_path / "ved3", pki, keys, upstream.url, str(tmp_path / "ved3.json"),
                            tls={"server_bundle": str(pki.clients["ved3"].pem)}, workers=2)
    provider_port = yaml.safe_load(provider.read_text())["listen"]["port"]
    (tmp_path / "ved1.json").write_bytes(sign(signed_consumer_bundle(
        pki, f"https://127.0.0.1:{provider_port}"), keys.operator))
    out_port = free_port()
    consumer = write_config(
        tmp_path / "ved1", pki, keys, "http://127.0.0.1:9", str(tmp_path / "ved1.json"), participant="ved1",
        workers=2, outbound={"listen": {"host": "127.0.0.1", "port": out_port},
                             "client_bundle": str(pki.clients["ved1"].pem), "provider_ca": str(pki.ca_pem),
                             "clients": [{"name": "internal-app",
                                          "certificate": str(pki.clients["internal"].cert_only())}]})
    procs = [start_subprocess(provider, timeout=40)]
    try:
        procs.append(start_subprocess(consumer, timeout=40))
        with httpx.Client(verify=pki.client_context("internal"), timeout=10) as client:
            answers = [client.get(f"https://127.0.0.1:{out_port}/SID0003001/certificates/{i}") for i in range(20)]
        assert [r.status_code for r in answers] == [200] * 20
        assert all(r.json()["consumer"] == "ved1" for r in answers)
        denied = httpx.post(f"https://127.0.0.1:{out_port}/SID0003001/certificates",
                            verify=pki.client_context("internal"), timeout=10)
        assert (denied.status_code, denied.json()["code"]) == (403, "operation-not-granted")
    finally:
        for p in reversed(procs):
            assert p.stop(timeout=60) == 0
    for config in (consumer, provider):
        result = cli("journal", "verify", "--config", str(config))
        assert result.returncode == 0 and result.stdout.count(": intact:") == 2, result.stdout
    outbound = [r for store in journal_stores(load_config(consumer)) for r in export(store)
                if r["kind"] == "request" and r["decision"] == "allow"]
    assert len(outbound) == 20 and {r["direction"] for r in outbound} == {"outbound"}


def test_verify_config_names_a_missing_worker_journal(cluster_factory: Callable[..., Cluster],
                                                     upstream: Upstream, pki: Pki, keys: Keys) -> None:
    c = cluster_factory(upstream.url)
    c.publish(sign(signed_bundle(pki), keys.operator))
    c.start()
    wait_for(c.all_ready, timeout=20)
    c.proc.stop(timeout=60)  # type: ignore[union-attr]
    c.verify()
    second = Path(c.config["journal"]["path"]).with_name("journal-w1.sqlite")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{second}{suffix}").unlink(missing_ok=True)  # a worker's whole journal deleted
    result = cli("journal", "verify", "--config", str(c.config_path))
    assert result.returncode == 1
    assert "MISSING: worker 1 ran" in result.stdout and result.stdout.count(": intact:") == 1, result.stdout

"""`reestr-sidecar` as a real process: config errors, live bundle updates under attack, fail-closed
expiry, `status`, and a SIGKILL under load that leaves a journal which verifies."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from compiler.trust import load_private_key
from proxy.bundles import read_state
from proxy.config import load_config
from proxy.journal.query import export
from proxy.journal.verify import verify_journal
from proxy.runner import ProcessHandle, journal_store, start_subprocess
from tests.proxy.conftest import Keys, Pki, Upstream, free_port, sign, signed_bundle, write_config
from tests.proxy.test_bundles import ATTACKS, CODES
from tests.proxy.test_runner import postgres_journal

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


class Site:
    """A config directory with a bundle file the test rewrites, and a started sidecar."""

    def __init__(self, d: Path, pki: Pki, keys: Keys, upstream: Upstream, **cfg: Any) -> None:
        self.dir, self.pki, self.keys = d, pki, keys
        self.bundle = d / "bundle.json"
        self.config_path = write_config(d, pki, keys, upstream.url, str(self.bundle), **cfg)
        self.config = yaml.safe_load(self.config_path.read_text())
        self.proc: ProcessHandle | None = None
        self._clients: dict[str | None, httpx.Client] = {}

    def start(self) -> ProcessHandle:
        self.proc = start_subprocess(self.config_path)
        return self.proc

    def publish(self, data: bytes) -> None:
        tmp = self.bundle.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.bundle)

    def call(self, who: str | None, method: str = "GET",
             path: str = "/SID0003001/certificates") -> httpx.Response:
        if who not in self._clients:
            self._clients[who] = httpx.Client(verify=self.pki.client_context(who), timeout=10)
        return self._clients[who].request(
            method, f"https://127.0.0.1:{self.config['listen']['port']}{path}")

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.config['admin']['port']}{path}")

    def state(self) -> dict[str, Any]:
        return read_state(Path(self.config["state_dir"]))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def site(tmp_path: Path, pki: Pki, keys: Keys, upstream: Upstream) -> Iterator[Site]:
    s = Site(tmp_path, pki, keys, upstream)
    yield s
    s.close()


@pytest.mark.parametrize(("change", "message"), [
    ({"listne": 1}, "listne: Extra inputs are not permitted"),
    ({"bundle": {"source": "b.json", "trusted_keys": ["missing.pub"]}}, "missing.pub"),
    ({"tls": {"server_bundle": "ca-only.pem"}}, "tls.server_bundle"),
], ids=["unknown-field", "missing-key", "bad-tls-bundle"])
def test_config_errors_are_clear_and_nothing_listens(site: Site, change: dict[str, Any],
                                                     message: str) -> None:
    (site.dir / "ca-only.pem").write_bytes(site.pki.ca_pem.read_bytes())
    site.config_path.write_text(yaml.safe_dump({**site.config, **change}))
    result = cli("run", "--config", str(site.config_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(httpx.ConnectError):
        site.admin("/healthz")


def test_live_bundle_updates_and_attacks(site: Site, pki: Pki, keys: Keys) -> None:
    site.publish(sign(signed_bundle(pki, serial=10), keys.operator))
    site.start()
    assert site.call("ved2", "POST").status_code == 403
    for attack, make in ATTACKS.items():  # against serial 10 in force
        site.publish(make(pki, keys))
        wait_for(lambda a=attack: (site.state().get("last_refusal") or {}).get("code") == CODES[a])
        assert site.state()["in_force"]["serial"] == 10, attack
        assert site.call("ved2", "POST").status_code == 403, attack
        assert site.call("ved2", "GET").status_code == 200, attack
        site.publish(sign(signed_bundle(pki, serial=99, audience="nobody"), keys.operator))
        wait_for(lambda: site.state()["last_refusal"]["code"] == "wrong-audience")
    newer = signed_bundle(pki, serial=11)
    newer["services"]["SID0003001"]["callers"]["ved2"].update(access="full", operations=None)
    site.publish(sign(newer, keys.operator))
    wait_for(lambda: site.call("ved2", "POST").status_code == 200)
    status = cli("status", "--config", str(site.config_path))
    assert status.returncode == 0
    assert "serial 11" in status.stdout and "wrong-audience" in status.stdout
    assert site.admin("/readyz").status_code == 200
    # a restart starts from the persisted bundle, and still refuses a rollback
    assert site.proc is not None and site.proc.stop() == 0
    site.publish(sign(signed_bundle(pki, serial=10), keys.operator))
    site.start()
    assert site.call("ved2", "POST").status_code == 200
    assert site.state()["in_force"]["serial"] == 11
    wait_for(lambda: site.state()["last_refusal"]["code"] == "rollback")


def test_expired_bundle_fails_closed_until_a_newer_one(site: Site, pki: Pki, keys: Keys) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    site.publish(sign(signed_bundle(pki, serial=10, expires_at=soon), keys.operator))
    site.start()
    assert site.call("ved1").status_code == 200
    wait_for(lambda: site.admin("/readyz").status_code == 503, timeout=12)
    assert "expired" in site.admin("/readyz").text
    for who in ("ved1", "ved3", None):
        r = site.call(who)
        assert (r.status_code, r.json()["code"]) == (503, "no-valid-bundle")
    status = cli("status", "--config", str(site.config_path))
    assert "EXPIRED" in status.stdout
    site.publish(sign(signed_bundle(pki, serial=11), keys.operator))
    wait_for(lambda: site.admin("/readyz").status_code == 200)
    assert site.call("ved1").status_code == 200


def test_no_bundle_at_all_is_503_and_not_ready(site: Site) -> None:
    site.start()
    r = site.call("ved1")
    assert (r.status_code, r.json()["code"]) == (503, "no-valid-bundle")
    ready = site.admin("/readyz")
    assert ready.status_code == 503 and "no valid bundle" in ready.text
    assert "last fetch error" in cli("status", "--config", str(site.config_path)).stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_under_load_leaves_a_verifiable_journal(site: Site, pki: Pki, keys: Keys, backend: str,
                                                         request: pytest.FixtureRequest) -> None:
    if backend == "postgres":
        site.config["journal"] = postgres_journal(request.getfixturevalue("pg_dsn"), keys)
    else:
        site.config["journal"]["synchronous"] = "FULL"
    site.config_path.write_text(yaml.safe_dump(site.config))
    site.publish(sign(signed_bundle(pki, serial=10), keys.operator))
    proc = site.start()
    received: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(who: str, method: str) -> None:
        with httpx.Client(verify=pki.client_context(who), timeout=5) as client:
            url = f"https://127.0.0.1:{site.config['listen']['port']}/SID0003001/certificates"
            while not stop.is_set():
                try:
                    r = client.request(method, url)
                except httpx.HTTPError:
                    continue
                with lock:
                    received.append(int(r.headers["Reestr-Journal-Id"]))

    threads = [threading.Thread(target=load, args=a) for a in
               [("ved1", "GET"), ("ved2", "POST"), ("ved1", "POST"), ("ved2", "GET")]]
    for t in threads:
        t.start()
    wait_for(lambda: len(received) > 200, timeout=20)
    proc.kill()
    stop.set()
    for t in threads:
        t.join(10)
    public = load_private_key(keys.sidecar_key).public_key()
    store = journal_store(load_config(site.config_path))
    report = verify_journal(store, public)
    assert report.ok, report.problems[:3]
    recs = {r["id"]: r for r in export(store)}
    requests = {r["exchange"] for r in recs.values() if r["kind"] == "request"}
    for rid in received:
        assert recs[rid]["kind"] == "response" and recs[rid]["exchange"] in requests
    assert {recs[rid]["decision"] for rid in received} == {"allow", "deny"}


def test_upstream_down_is_502_and_journaled_as_error(tmp_path: Path, pki: Pki, keys: Keys,
                                                     upstream: Upstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    s = Site(tmp_path, pki, keys, upstream)
    s.config["upstream"] = dead
    s.config_path.write_text(yaml.safe_dump(s.config))
    s.publish(sign(signed_bundle(pki), keys.operator))
    try:
        s.start()
        assert s.call("ved1").status_code == 502
        last = list(export(Path(s.config["journal"]["path"])))[-2:]
        assert [(r["kind"], r["decision"]) for r in last] == [("request", "allow"), ("response", "error")]
        assert last[1]["reason"] == "upstream-error" and last[1]["status"] == 502
    finally:
        s.close()


@pytest.mark.parametrize(("field", "message"), [("admin", "admin listener"), ("listen", "failed to listen")],
                         ids=["admin-port", "proxy-port"])
def test_busy_port_is_a_clean_error(site: Site, field: str, message: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        site.config[field]["port"] = busy.getsockname()[1]
        site.config_path.write_text(yaml.safe_dump(site.config))
        result = cli("run", "--config", str(site.config_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_swaps_under_load_drop_nothing(site: Site, pki: Pki, keys: Keys) -> None:
    site.publish(sign(signed_bundle(pki, serial=10), keys.operator))
    site.start()
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(verify=pki.client_context("ved1"), timeout=10) as client:
            url = f"https://127.0.0.1:{site.config['listen']['port']}/SID0003001/certificates/1"
            while not stop.is_set():
                try:
                    statuses.append(client.get(url).status_code)
                except httpx.HTTPError as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for serial in range(11, 16):
        site.publish(sign(signed_bundle(pki, serial=serial), keys.operator))
        wait_for(lambda s=serial: (site.state().get("in_force") or {}).get("serial") == s)
    stop.set()
    for t in threads:
        t.join(10)
    assert failures == [] and len(statuses) > 20 and set(statuses) == {200}

"""Service health (issue 13, 004 §7д): a real sidecar probes its real upstream per service.

The upstream is stopped and started again on the same port: health goes down and up, both
changes are journaled as event records (format 3) that verify with the chain, `status` shows it,
the admin port exposes it, and `stats --availability` reports availability over the period.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from proxy.config import load_config
from proxy.errors import ConfigError
from proxy.journal import Journal, Record
from proxy.journal.availability import availability
from proxy.journal.query import export, stats
from proxy.journal.record import JournalFormatError, service_event
from proxy.journal.sqlite import SqliteStore
from proxy.runner import start_subprocess
from proxy.workers import journal_stores
from tests.proxy.conftest import Keys, Pki, free_port, sign, signed_bundle, write_config
from tests.proxy.test_sidecar_e2e import cli, wait_for

pytestmark = pytest.mark.slow


class Service:
    """An upstream on a fixed port that can be stopped and started again; /health answers 200,
    /broken 503."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status = 503 if self.path == "/broken" else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def service() -> Iterator[Service]:
    s = Service()
    s.start()
    yield s
    if s.server is not None:
        s.stop()


HEALTH = {"interval": 0.1, "timeout": 1,
          "services": {"SID0003001": {"method": "GET", "path": "/health"}, "SID0003002": {"tcp": True}}}


def health_events(config_path: Path) -> list[dict[str, Any]]:
    return [r for store in journal_stores(load_config(config_path)) for r in export(store) if r["kind"] == "event"]


def states(config_path: Path) -> dict[str, bool]:
    result = cli("status", "--config", str(config_path), "--format", "json")
    health = json.loads(result.stdout)["health"] or {"services": {}}
    return {sid: s["up"] for sid, s in health["services"].items()}


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_upstream_stopped_and_started(tmp_path: Path, pki: Pki, keys: Keys, service: Service, workers: int) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(sign(signed_bundle(pki), keys.operator))
    config_path = write_config(tmp_path, pki, keys, service.url, str(bundle), health=HEALTH, workers=workers)
    config = yaml.safe_load(config_path.read_text())
    proc = start_subprocess(config_path, timeout=40)
    try:
        wait_for(lambda: states(config_path) == {"SID0003001": True, "SID0003002": True}, timeout=20)
        metrics = httpx.get(f"http://127.0.0.1:{config['admin']['port']}/metrics").text
        assert 'reestr_service_up{sid="SID0003001"} 1.0' in metrics
        assert 'reestr_service_probe_seconds{sid="SID0003002"}' in metrics
        service.stop()
        wait_for(lambda: states(config_path) == {"SID0003001": False, "SID0003002": False}, timeout=20)
        metrics = httpx.get(f"http://127.0.0.1:{config['admin']['port']}/metrics").text
        assert 'reestr_service_up{sid="SID0003001"} 0.0' in metrics
        text = cli("status", "--config", str(config_path)).stdout
        assert "SID0003001   DOWN" in text, text
        service.start()
        wait_for(lambda: states(config_path) == {"SID0003001": True, "SID0003002": True}, timeout=20)
    finally:
        assert proc.stop(timeout=60) == 0
    events = health_events(config_path)
    for sid in ("SID0003001", "SID0003002"):
        assert [e["reason"] for e in events if e["sid"] == sid] == ["health-up", "health-down", "health-up"]
    assert all(e["format"] == 3 and e["provider"] == "ved3" for e in events)
    assert [e["method"] for e in events if e["sid"] == "SID0003002"] == ["TCP"] * 3
    verified = cli("journal", "verify", "--config", str(config_path))
    assert verified.returncode == 0, verified.stdout
    assert stats(journal_stores(load_config(config_path))) == []  # events are not calls
    result = cli("stats", "--availability", "--config", str(config_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["sid"]: r for r in json.loads(result.stdout)}
    for sid in ("SID0003001", "SID0003002"):
        assert rows[sid]["downs"] == 1 and rows[sid]["up_now"] is True
        assert 0 < rows[sid]["down_seconds"] < rows[sid]["observed_seconds"]
        assert 0 < rows[sid]["availability"] < 1
    text = cli("stats", "--availability", "--config", str(config_path)).stdout
    assert "SID0003001" in text and "%" in text


def test_a_5xx_is_down_and_a_dead_port_is_down(tmp_path: Path, pki: Pki, keys: Keys, service: Service) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(sign(signed_bundle(pki), keys.operator))
    health = {"interval": 0.1, "timeout": 1, "services": {"SID0003001": {"path": "/broken"}}}
    config_path = write_config(tmp_path, pki, keys, service.url, str(bundle), health=health)
    proc = start_subprocess(config_path)
    try:
        wait_for(lambda: states(config_path) == {"SID0003001": False}, timeout=20)
    finally:
        proc.stop()
    assert [e["status"] for e in health_events(config_path)] == [503]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_availability_over_a_period(tmp_path: Path, keys: Keys, backend: str, request: pytest.FixtureRequest) -> None:
    """The arithmetic on a real journal: observed from the first event, down between down and up;
    events of two chains merged; the calls between them are not events and the events not calls."""
    from compiler.trust import load_private_key
    from proxy.journal.postgres import PostgresStore
    from proxy.journal.record import sidecar_record

    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None

    def store(chain: str) -> SqliteStore | PostgresStore:
        return PostgresStore(dsn, chain) if dsn is not None else SqliteStore(tmp_path / f"{chain}.sqlite")

    key = load_private_key(keys.sidecar_key)
    events = {"a": [("00:00", "health-up"), ("01:00", "health-down")],
              "b": [("01:30", "health-up"), ("03:00", "health-down")]}  # the same service, two workers
    for chain, items in events.items():
        with Journal(store(chain), key) as journal:
            for hhmm, event in items:
                time = f"2026-01-01T{hhmm}:00.000000Z"
                journal.append_blocking(service_event(time=time, event=event, exchange=time, sid="SID1",
                                                      provider="ved3", method="GET", path="/h"))
                journal.append_blocking(sidecar_record(
                    time=time, direction="inbound", kind="request", exchange="x" + time, decision="allow",
                    method="GET", path="/SID1/x", size=0, body_sha256="0" * 64, sid="SID1", consumer="ved1"))
    stores = [store("a"), store("b")] if dsn is None else [store("a")]  # one database holds both chains
    rows = availability(stores, until="2026-01-01T04:00:00Z")
    assert [(r.sid, r.observed_seconds, r.down_seconds, r.downs, r.up_now) for r in rows] == [
        ("SID1", 4 * 3600, 1.5 * 3600, 2, False)]
    rows = availability(stores, since="2026-01-01T01:15:00Z", until="2026-01-01T02:15:00Z")
    assert (rows[0].observed_seconds, rows[0].down_seconds, rows[0].downs) == (3600, 900, 0)
    assert rows[0].availability == 0.75
    assert sum(row.calls for row in stats(stores)) == 4  # the calls only


@pytest.mark.parametrize("bad", [
    {"kind": "event", "reason": "R-no-grant"},
    {"kind": "request", "reason": "health-down"},
], ids=["event-without-event-reason", "call-with-event-reason"])
def test_event_records_are_only_events(bad: dict[str, str]) -> None:
    with pytest.raises(JournalFormatError):
        Record(time="2026-01-01T00:00:00.000000Z", direction="inbound", exchange="x", decision="error",
               method="GET", path="/", size=0, body_sha256="0" * 64, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("health", "message"), [
    ({"interval": 1, "services": {}}, "services"),
    ({"services": {"SID 1": {"path": "/"}}}, "not a service id"),
    ({"services": {"S1": {"path": "health"}}}, "path"),
    ({"services": {"S1": {"path": "/a b"}}}, "path"),
    ({"services": {"S1": {"tcp": True, "path": "/"}}}, "a tcp check takes no method or path"),
    ({"services": {"S1": {"method": "DELETE"}}}, "method"),
    ({"interval": 0, "services": {"S1": {}}}, "interval"),
    ({"timeout": 0, "services": {"S1": {}}}, "timeout"),
    ({"services": {"S1": {"hdrs": {}}}}, "Extra inputs"),
], ids=["no-services", "bad-sid", "relative-path", "space-in-path", "tcp-with-path", "method", "interval",
        "timeout", "unknown-key"])
def test_bad_health_config(tmp_path: Path, pki: Pki, keys: Keys, health: dict[str, Any], message: str) -> None:
    path = write_config(tmp_path, pki, keys, "http://127.0.0.1:1", "b.json", health=health)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("workers", "message"), [(0, "workers"), (65, "workers"), ("two", "workers")],
                         ids=["zero", "too-many", "not-a-number"])
def test_bad_workers(tmp_path: Path, pki: Pki, keys: Keys, workers: Any, message: str) -> None:
    path = write_config(tmp_path, pki, keys, "http://127.0.0.1:1", "b.json", workers=workers)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("args", "message"), [
    (["journal", "verify", "--config", "{cfg}", "{cfg}"], "--config names the journals"),
    (["journal", "verify", "--config", "{cfg}", "--dsn", "postgresql://x/y"], "--config names the journals"),
    (["stats", "--availability", "--priced", "--config", "{cfg}"], "--availability takes no --priced"),
    (["stats", "--availability", "--config", "{cfg}", "--since", "yesterday"], "not an ISO 8601 time"),
], ids=["verify-config-and-path", "verify-config-and-dsn", "availability-priced", "availability-bad-since"])
def test_cli_usage_errors(tmp_path: Path, pki: Pki, keys: Keys, args: list[str], message: str) -> None:
    cfg = write_config(tmp_path, pki, keys, "http://127.0.0.1:1", "b.json", workers=2)
    result = cli(*(a.replace("{cfg}", str(cfg)) for a in args))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr

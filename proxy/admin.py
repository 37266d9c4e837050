"""The admin listener, on its own port: /healthz, /readyz, /metrics (DESIGN §7, R12).

/journal/anchor: the journal's latest checkpoint (`proxy.journal.anchor`), 404 before the first.
/healthz: the proxy is up (503 "starting" until mitmproxy listens). /readyz: 200 only with a bundle
in force and a healthy journal, otherwise 503 and the reason in the body; while the bundle expires
within the warning margin, still 200 with "ready; warning: ..." (docs/operations.md, alerting).
/metrics: Prometheus text from a registry of our own (several sidecars may live in one test process).

A tiny asyncio HTTP/1.1 server on the sidecar's event loop: four GET endpoints do not justify a
web framework or a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from compiler.trust import TrustError, parse_time
from proxy.bundles import BundleStore

if TYPE_CHECKING:
    from proxy.journal import Journal


REFRESH_SECONDS = 1.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Renderer(Protocol):
    def render(self) -> bytes: ...


class HealthMetrics:
    """Per-SID availability of the upstream (proxy.health): up (1/0), last probe latency, probes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("reestr_service_up", "1 while the service's upstream answers its health check, 0 when not",
                        ["sid"], registry=registry, multiprocess_mode="livemax")
        self.probe_seconds = Gauge("reestr_service_probe_seconds", "Duration of the last health probe",
                                   ["sid"], registry=registry, multiprocess_mode="livemax")
        self.probes = Counter("reestr_service_probes", "Health probes by result", ["sid", "result"],
                              registry=registry)


class SidecarMetrics:
    """Counters by sid, operation, consumer and decision; latency by sid; bundle, journal and
    health gauges. Labels come from the bundle only (proxy.addons.metrics).

    Gauges read their value when /metrics is scraped (`set_function`), except in prometheus-client's
    multiprocess mode (a worker of `proxy.supervisor`), where only values written to the shared
    files count: there `refresh_forever` sets them every `REFRESH_SECONDS`, off the request path.
    """

    def __init__(self, store: BundleStore, queue_depth: Callable[[], float],
                 warning_seconds: float | None = None, *, multiprocess: bool = False,
                 journal: Journal | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess
        self.requests = Counter(
            "reestr_requests", "Calls answered by the sidecar",
            ["direction", "sid", "operation", "consumer", "decision", "reason"],
            registry=self.registry)
        self.latency = Histogram(
            "reestr_request_duration_seconds", "Time from request headers to response",
            ["direction", "sid", "decision"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.commit = Histogram(
            "reestr_journal_commit_seconds", "Durable write of one group commit (durability latency)",
            registry=self.registry, buckets=COMMIT_BUCKETS)
        self.health = HealthMetrics(self.registry)
        if journal is not None:
            journal.on_commit = self.commit.observe
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []
        self._gauge("reestr_bundle_serial", "Serial of the bundle in force (-1: none)", "livemin",
                    lambda: float(store.current.serial) if store.current else -1.0)
        self._gauge("reestr_bundle_expiry_seconds",
                    "Seconds until the bundle in force expires (negative: expired or none)", "livemin",
                    lambda: store.current.expires_at.timestamp() - time.time() if store.current else -1.0)
        self._gauge("reestr_bundle_age_seconds",
                    "Seconds since the bundle in force was issued (freshness; -1: none)", "livemax",
                    lambda: _age(store))
        self._gauge("reestr_bundle_expiry_warning",
                    "1 while the bundle in force expires within the warning margin, else 0", "livemax",
                    lambda: float(store.expiry_warning(warning_seconds) is not None))
        if store.tuf:
            self._gauge("reestr_tuf_timestamp_expiry_seconds",
                        "Seconds until the last verified TUF timestamp expires; at 0 the sidecar "
                        "fails closed (negative: expired or none)", "livemin",
                        lambda: store.fresh_until.timestamp() - time.time() if store.fresh_until else -1.0)
            self._gauge("reestr_tuf_root_version", "Version of the newest verified TUF root (-1: none)",
                        "livemax", lambda: float((store.tuf_state or {}).get("root_version") or -1))
        self._gauge("reestr_journal_queue_depth", "Records waiting for the journal writer", "livesum",
                    queue_depth)
        self._gauge("reestr_journal_healthy", "1 while the journal can be written", "livemin",
                    lambda: float(journal is None or journal.healthy))

    def _gauge(self, name: str, doc: str, mode: str, value: Callable[[], float]) -> None:
        gauge = Gauge(name, doc, registry=self.registry, multiprocess_mode=mode)  # type: ignore[arg-type]
        if self.multiprocess:
            self._gauges.append((gauge, value))
            gauge.set(value())
        else:
            gauge.set_function(value)

    def refresh(self) -> None:
        for gauge, value in self._gauges:
            gauge.set(value())

    async def refresh_forever(self) -> None:
        while self._gauges:
            await asyncio.sleep(REFRESH_SECONDS)
            self.refresh()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _age(store: BundleStore) -> float:
    current = store.current
    issued = current.verified.signed.get("issued_at") if current is not None else None
    if not isinstance(issued, str):
        return -1.0
    try:
        return time.time() - parse_time(issued).timestamp()
    except TrustError:
        return -1.0


class AdminServer:
    """Serves the three endpoints; `ready()` returns None when ready, else the reason."""

    def __init__(self, host: str, port: int, metrics: Renderer,
                 ready: Callable[[], str | None], live: Callable[[], bool] = lambda: True,
                 anchor: Callable[[], str | None] = lambda: None,
                 warning: Callable[[], str | None] = lambda: None,
                 sock: socket.socket | None = None) -> None:
        self.host, self.port = host, port
        self.sock = sock  # an inherited listening socket instead of binding host:port
        self.warning = warning
        self.anchor = anchor
        self.metrics = metrics
        self.ready = ready
        self.live = live
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=self.sock)
        else:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("ascii", "replace").split("?", 1)[0] if len(parts) > 1 else ""
            status, ctype, body = self._route(parts[0] if parts else b"", path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def _route(self, method: bytes, path: str) -> tuple[str, str, bytes]:
        text = "text/plain; charset=utf-8"
        if method != b"GET":
            return "405 Method Not Allowed", text, b"GET only\n"
        if path == "/healthz":
            if not self.live():
                return "503 Service Unavailable", text, b"starting\n"
            return "200 OK", text, b"ok\n"
        if path == "/readyz":
            reason = self.ready() if self.live() else "starting"
            if reason is None:
                warning = self.warning()  # still ready: a warning is for the monitoring, not the LB
                return "200 OK", text, b"ready\n" if warning is None else f"ready; warning: {warning}\n".encode()
            return "503 Service Unavailable", text, f"not ready: {reason}\n".encode()
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
        if path == "/journal/anchor":  # the latest checkpoint, for collectors (proxy.journal.anchor)
            anchor = self.anchor()
            if anchor is None:
                return "404 Not Found", text, b"no checkpoint yet\n"
            return "200 OK", "application/json", anchor.encode() + b"\n"
        return "404 Not Found", text, b"not found\n"

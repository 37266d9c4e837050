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
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from proxy.bundles import BundleStore


class SidecarMetrics:
    """Counters by sid, operation, consumer and decision; latency; bundle and journal gauges."""

    def __init__(self, store: BundleStore, queue_depth: Callable[[], float],
                 warning_seconds: float | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "reestr_requests", "Calls answered by the sidecar",
            ["direction", "sid", "operation", "consumer", "decision", "reason"],
            registry=self.registry)
        self.latency = Histogram(
            "reestr_request_duration_seconds", "Time from request headers to response",
            ["direction", "decision"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        serial = Gauge("reestr_bundle_serial", "Serial of the bundle in force (-1: none)",
                       registry=self.registry)
        serial.set_function(lambda: float(store.current.serial) if store.current else -1.0)
        expiry = Gauge("reestr_bundle_expiry_seconds",
                       "Seconds until the bundle in force expires (negative: expired or none)",
                       registry=self.registry)
        expiry.set_function(
            lambda: store.current.expires_at.timestamp() - time.time() if store.current else -1.0)
        warning = Gauge("reestr_bundle_expiry_warning",
                        "1 while the bundle in force expires within the warning margin, else 0",
                        registry=self.registry)
        warning.set_function(lambda: float(store.expiry_warning(warning_seconds) is not None))
        if store.tuf:
            fresh = Gauge("reestr_tuf_timestamp_expiry_seconds",
                          "Seconds until the last verified TUF timestamp expires; at 0 the sidecar "
                          "fails closed (negative: expired or none)", registry=self.registry)
            fresh.set_function(
                lambda: store.fresh_until.timestamp() - time.time() if store.fresh_until else -1.0)
            root = Gauge("reestr_tuf_root_version", "Version of the newest verified TUF root (-1: none)",
                         registry=self.registry)
            root.set_function(lambda: float((store.tuf_state or {}).get("root_version") or -1))
        depth = Gauge("reestr_journal_queue_depth", "Records waiting for the journal writer",
                      registry=self.registry)
        depth.set_function(queue_depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class AdminServer:
    """Serves the three endpoints; `ready()` returns None when ready, else the reason."""

    def __init__(self, host: str, port: int, metrics: SidecarMetrics,
                 ready: Callable[[], str | None], live: Callable[[], bool] = lambda: True,
                 anchor: Callable[[], str | None] = lambda: None,
                 warning: Callable[[], str | None] = lambda: None) -> None:
        self.host, self.port = host, port
        self.warning = warning
        self.anchor = anchor
        self.metrics = metrics
        self.ready = ready
        self.live = live
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
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

"""Timeouts: a connection that does not deliver a request head (or a body) in time is closed.

Why (issue 10, finding 16): mitmproxy only closes a connection after `tcp_timeout` seconds with no
bytes at all, so a client sending one header byte every few seconds (slowloris) holds its
connection, and its slot, forever. Here each client connection has a deadline that activity does
not move:

- a new connection must complete its first request head within `header_timeout` seconds (the TLS
  handshake included);
- a request body must arrive within `idle_timeout` seconds of its head;
- between requests, a kept-alive connection may wait `idle_timeout` seconds for the next head.

While a request waits for its upstream there is no deadline (the upstream's speed is not the
caller's fault). A sweeper task checks the deadlines a few times per `header_timeout` and closes
expired connections through mitmproxy's connection handler, as its own idle timeout does.
mitmproxy's `tcp_timeout` is set to `idle_timeout` as well (runner).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import connection, ctx, http


@dataclass
class _Conn:
    opened: float
    last_done: float | None = None  # when its last exchange was answered
    reading: dict[str, float] = field(default_factory=dict)  # flow id -> head received, body due
    waiting: set[str] = field(default_factory=set)  # flows sent on, not yet answered


class Timeouts:
    """Per-connection deadlines for request heads, bodies and keep-alive waits."""

    def __init__(self, header_timeout: float, idle_timeout: float) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self._conns: dict[str, _Conn] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def running(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def done(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def client_connected(self, client: connection.Client) -> None:
        self._conns[client.id] = _Conn(opened=time.monotonic())

    def client_disconnected(self, client: connection.Client) -> None:
        self._conns.pop(client.id, None)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is not None:
            conn.reading[flow.id] = time.monotonic()

    def request(self, flow: http.HTTPFlow) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is not None and conn.reading.pop(flow.id, None) is not None:
            conn.waiting.add(flow.id)

    def response(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)

    def _answered(self, flow: http.HTTPFlow) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is not None:
            conn.reading.pop(flow.id, None)
            conn.waiting.discard(flow.id)
            conn.last_done = time.monotonic()

    def deadline(self, conn: _Conn) -> float | None:
        """When `conn` is closed unless something completes; None while it waits for upstream."""
        if conn.reading:
            return min(conn.reading.values()) + self.idle_timeout
        if conn.waiting:
            return None
        if conn.last_done is None:
            return conn.opened + self.header_timeout
        return conn.last_done + self.idle_timeout

    async def _sweep(self) -> None:
        tick = min(1.0, max(0.05, min(self.header_timeout, self.idle_timeout) / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for client_id, conn in list(self._conns.items()):
                due = self.deadline(conn)
                if due is not None and now > due:
                    self._conns.pop(client_id, None)
                    await _close(client_id)


async def _close(client_id: str) -> None:
    """Close a client connection the way mitmproxy's own inactivity timeout does."""
    server: Any = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    handler = server.connections.get(client_id) if server is not None else None
    if handler is not None:
        with contextlib.suppress(Exception):  # it may have closed meanwhile
            await handler.on_timeout()

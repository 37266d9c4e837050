"""Draining a worker: stop accepting, let the calls in flight finish, then stop (SIGTERM).

`Drain` is a mitmproxy addon that keeps the flows between their request head and their answer
(response or error). `drain()` closes this process's listeners (with inherited sockets the other
workers keep accepting from the same queue, `proxy.listeners`), marks every later response
`Connection: close` so kept-alive clients leave after their current call, and waits — at most
`timeout` seconds — until no flow is in flight and the client connections have closed (or a short
grace has passed for idle kept-alive ones, which a client may always find closed between calls).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mitmproxy import http

GRACE_SECONDS = 1.0  # after the last call: time for its response bytes to leave, idle connections to go


class Drain:
    def __init__(self) -> None:
        self._flows: dict[int, http.HTTPFlow] = {}
        self.draining = False

    # mitmproxy hooks: one dict operation per request, nothing else
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._flows[id(flow)] = flow

    def response(self, flow: http.HTTPFlow) -> None:
        self._flows.pop(id(flow), None)
        if self.draining and flow.response is not None:
            flow.response.headers["connection"] = "close"

    def error(self, flow: http.HTTPFlow) -> None:
        self._flows.pop(id(flow), None)

    @property
    def in_flight(self) -> int:
        for key, flow in list(self._flows.items()):
            if not flow.live:  # the connection ended without an answer hook
                self._flows.pop(key, None)
        return len(self._flows)

    async def drain(self, master: Any, timeout: float) -> bool:
        """Close the listeners and wait for the calls in flight; True if all finished in time."""
        self.draining = True
        proxyserver = master.addons.get("proxyserver")
        for instance in list(proxyserver.servers):
            if instance.is_running:
                await instance.stop()
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.in_flight:
                idle_since = None
            else:
                idle_since = idle_since or now
                if not proxyserver.connections or now - idle_since >= GRACE_SECONDS:
                    return True
            await asyncio.sleep(0.02)
        return self.in_flight == 0

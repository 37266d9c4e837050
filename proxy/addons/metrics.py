"""Metrics: count every answered call by sid, operation, consumer and decision; time it (R12).

Runs last, so it sees the final outcome (a journal failure turns an allow into a 503).
"""

from __future__ import annotations

import time

from mitmproxy import http

from proxy.addons._responses import DECISION, DIRECTION
from proxy.admin import SidecarMetrics
from proxy.policy import Decision

_COUNTED = "reestr.counted"


class Metrics:
    def __init__(self, metrics: SidecarMetrics) -> None:
        self.metrics = metrics

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow, error=False)

    def error(self, flow: http.HTTPFlow) -> None:
        self._count(flow, error=True)

    def _count(self, flow: http.HTTPFlow, error: bool) -> None:
        if flow.metadata.get(_COUNTED):
            return
        flow.metadata[_COUNTED] = True
        d: Decision | None = flow.metadata.get(DECISION)
        direction = flow.metadata.get(DIRECTION, "inbound")
        verdict = "error" if error else ("allow" if d is not None and d.allowed else "deny")
        self.metrics.requests.labels(
            direction, (d.sid if d else None) or "", (d.operation if d else None) or "",
            (d.consumer if d else None) or "", verdict, (d.reason if d else None) or "").inc()
        started = flow.request.timestamp_start
        self.metrics.latency.labels(direction, verdict).observe(max(0.0, time.time() - started))

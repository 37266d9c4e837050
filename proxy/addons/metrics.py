"""Metrics: count every answered call by sid, operation, consumer and decision; time it (R12).

Runs last, so it sees the final outcome (a journal failure turns an allow into a 503).

Labels are bounded by the bundle, never by the caller (issue 10, finding 9): a SID, operation or
consumer the bundle in force does not name is counted as `unknown`, so 2,000 made-up SIDs add
one series, not 2,000, and a value such as a SNILS sent as a SID never becomes a label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mitmproxy import http

from proxy.addons._responses import BUNDLE, DECISION, DIRECTION
from proxy.admin import SidecarMetrics
from proxy.policy import Decision, Policy

_COUNTED = "reestr.counted"
_MAX_CHILDREN = 100_000  # a safety net only: the labels are bounded by the bundle
UNKNOWN = "unknown"


@dataclass(frozen=True)
class _Names:
    """What one bundle names: operations by SID (own services and grants), participants."""

    operations: dict[str, frozenset[str]]
    participants: frozenset[str]

    @classmethod
    def of(cls, policy: Policy) -> _Names:
        ops = {sid: frozenset(op.name for op in svc.operations) for sid, svc in policy.services.items()}
        for sid, grant in policy.grants.items():
            ops.setdefault(sid, frozenset(op.name for op in grant.operation_defs))
        people = {policy.audience, *(c.participant for c in policy.certificates.values())}
        return cls(ops, frozenset(people))

    def labels(self, d: Decision) -> tuple[str, str, str]:
        """(sid, operation, consumer): "" when absent, `unknown` when the bundle does not name it."""
        sid, operation, consumer = d.sid or "", d.operation or "", d.consumer or ""
        ops = self.operations.get(sid)
        if sid and ops is None:
            sid = UNKNOWN
        if operation and (ops is None or operation not in ops):
            operation = UNKNOWN
        if consumer and consumer not in self.participants:
            consumer = UNKNOWN
        return sid, operation, consumer


class Metrics:
    def __init__(self, metrics: SidecarMetrics) -> None:
        self.metrics = metrics
        # the names of the bundle last seen, rebuilt when another bundle is in force: one pass
        # over the bundle per swap instead of one per request (this instance only)
        self._names: tuple[Policy, _Names] | None = None
        # label values -> (counter child, histogram child): prometheus-client's labels() checks
        # and locks on every call; the set of label values is bounded by the bundle, and the cache
        # is emptied when another bundle comes into force, so it stays bounded across updates
        self._children: dict[tuple[str, str, str, str, str, str], tuple[Any, Any]] = {}

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow, error=False)

    def error(self, flow: http.HTTPFlow) -> None:
        self._count(flow, error=True)

    def _count(self, flow: http.HTTPFlow, error: bool) -> None:
        if flow.metadata.get(_COUNTED):
            return
        flow.metadata[_COUNTED] = True
        d: Decision | None = flow.metadata.get(DECISION)
        bundle = flow.metadata.get(BUNDLE)
        direction = flow.metadata.get(DIRECTION, "inbound")
        verdict = "error" if error else ("allow" if d is not None and d.allowed else "deny")
        sid = operation = consumer = ""
        if d is not None:
            if bundle is None:
                sid, operation, consumer = ((x and UNKNOWN) for x in (d.sid or "", d.operation or "",
                                                                       d.consumer or ""))
            else:
                sid, operation, consumer = self._names_of(bundle.policy).labels(d)
        key = (direction, sid, operation, consumer, verdict, (d.reason if d else None) or "")
        children = self._children.get(key)
        if children is None:
            if len(self._children) >= _MAX_CHILDREN:
                self._children.clear()
            children = self._children[key] = (self.metrics.requests.labels(*key),
                                               self.metrics.latency.labels(direction, sid, verdict))
        children[0].inc()
        children[1].observe(max(0.0, time.time() - flow.request.timestamp_start))

    def _names_of(self, policy: Policy) -> _Names:
        if self._names is None or self._names[0] is not policy:
            self._names = (policy, _Names.of(policy))
            self._children.clear()
        return self._names[1]

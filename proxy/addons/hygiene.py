"""Hygiene: the header rules of `proxy.headers`, in both directions, before the decision.

Runs after `Enforce` / `OutboundEnforce` have pinned the bundle in `requestheaders` (so a refusal
here is journaled with the bundle serial) and before their `request` hooks decide. A refusal
becomes the flow's response (`refuse`): nothing is forwarded. Caller-sent `reestr-*` headers (after
`_`→`-` folding) are removed here; the inbound side then sets its own identity headers.
Trailers are refused: they would be headers the rules never saw.
"""

from __future__ import annotations

from mitmproxy import http

from proxy.addons._responses import DECISION, refuse
from proxy.headers import HeadLimits, check_head, namespaced
from proxy.policy import deny


class Hygiene:
    """Size caps (414/431), obs-fold, overrides and the reestr namespace."""

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if DECISION in flow.metadata:
            return
        request = flow.request
        fields = request.headers.fields
        reason = check_head(request.data.path, fields, self.limits)
        if reason is not None:
            return refuse(flow, deny(reason))
        # raw names: iterating `request.headers` builds a set of every lower-cased name first
        for name in namespaced([name for name, _ in fields]):
            if name in request.headers:
                del request.headers[name]
        return None

    def request(self, flow: http.HTTPFlow) -> None:
        if DECISION not in flow.metadata and flow.request.trailers:
            refuse(flow, deny("malformed-request"))

"""Outbound enforce: the agency's own systems call the local sidecar; it checks the agency's own
grants and forwards to the provider's sidecar, where the agency's client certificate identifies it
(DESIGN §7, consumer side).

The outbound listener is a second reverse-mode listener of the same mitmproxy; its flows are told
apart by their mode spec. Allowed calls are re-targeted at `provider_sidecar` from the bundle, over
TLS verified against the configured provider CA, presenting our certificate (mitmproxy's
`client_certs`). Denials never leave the machine. Requests on this port are not authenticated: bind
it to an address only the agency's own systems reach.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from mitmproxy import ctx, http

from proxy.addons._responses import (
    BUNDLE,
    DECISION,
    DIRECTION,
    admit_headers,
    forward_as_decided,
    policy_request,
    refuse,
)
from proxy.bundles import BundleStore
from proxy.policy import deny, evaluate_outbound


class OutboundEnforce:
    """Grants check and re-targeting for flows that arrive on the outbound listener."""

    def __init__(self, store: BundleStore, mode_spec: str) -> None:
        self.store = store
        self.mode_spec = mode_spec

    def _mine(self, flow: http.HTTPFlow) -> bool:
        mode = getattr(flow.client_conn, "proxy_mode", None)
        return getattr(mode, "full_spec", None) == self.mode_spec

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self._mine(flow):
            return
        flow.metadata[DIRECTION] = "outbound"
        admit_headers(flow, self.store)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(DIRECTION) != "outbound" or DECISION in flow.metadata:
            return
        bundle = flow.metadata[BUNDLE]
        if len(flow.request.raw_content or b"") > ctx.options.reestr_max_body_bytes:
            return refuse(flow, deny("body-too-large"))
        decision = evaluate_outbound(bundle.policy, policy_request(flow.request), datetime.now(UTC).date())
        if not decision.allowed or decision.target is None:
            return refuse(flow, decision)
        flow.metadata[DECISION] = decision
        target = urlsplit(decision.target)
        flow.request.scheme = target.scheme or "https"
        flow.request.host = target.hostname or ""
        flow.request.port = target.port or (443 if flow.request.scheme == "https" else 80)
        flow.request.host_header = target.netloc
        forward_as_decided(flow.request, decision)
        return None


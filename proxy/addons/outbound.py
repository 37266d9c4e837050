"""Outbound enforce: the agency's own systems call the local sidecar; it checks the agency's own
grants and forwards to the provider's sidecar, where the agency's client certificate identifies it
(DESIGN §7, consumer side).

The outbound listener is a second reverse-mode listener of the same mitmproxy; its flows are told
apart by their mode spec. Allowed calls are re-targeted at `provider_sidecar` from the bundle, over
TLS verified against the configured provider CA and pinned to the provider's registered
certificates (`proxy.addons.outbound_tls`), presenting our certificate (mitmproxy's
`client_certs`). Denials never leave the machine.

Local callers authenticate (issue 10, finding 11): a request on this listener must come over TLS
with a client certificate of one of the internal systems in `outbound.clients`, within its
validity dates — otherwise any local process could call with the agency's identity. The journal
records that certificate's fingerprint (`client_fingerprint`), so a record names the internal
system that made the call (the config maps fingerprints to names).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from mitmproxy import ctx, http

from proxy.addons._responses import (
    BUNDLE,
    DECISION,
    DIRECTION,
    admit_headers,
    client_leaf,
    forward_as_decided,
    policy_request,
    refuse,
)
from proxy.bundles import BundleStore
from proxy.policy import deny, evaluate_outbound


class OutboundEnforce:
    """Grants check and re-targeting for flows that arrive on the outbound listener."""

    def __init__(self, store: BundleStore, mode_spec: str, clients: Mapping[str, str]) -> None:
        self.store = store
        self.mode_spec = mode_spec
        self.clients = clients  # sha256 of an internal system's certificate -> its name

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
        reason = self._caller_refused(flow)
        if reason is not None:
            return refuse(flow, deny(reason))
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

    def _caller_refused(self, flow: http.HTTPFlow) -> str | None:
        """Why the local caller may not use this listener, or None (a registered internal system)."""
        leaf = client_leaf(flow)
        if leaf is None:
            return "no-client-certificate"
        if leaf.sha256 not in self.clients:
            return "unknown-certificate"
        now = datetime.now(UTC)
        if now < leaf.not_before:
            return "certificate-not-yet-valid"
        if now > leaf.not_after:
            return "certificate-expired"
        return None

"""Provider pinning: the outbound side sends a request only to a provider's registered certificate.

Why (issue 10, finding 10): verifying the provider's sidecar against a CA accepts every
certificate that CA issued for the address — any of them would receive the request, personal data
included, and its forged answer would reach the agency's system. The bundle names the provider's
registered certificates (`grants.<SID>.provider_certificates`, SHA-256 of the DER, from the
registry); the TLS handshake to a provider's sidecar fails unless its leaf is one of them, so not
one byte of the request is sent otherwise. CA and hostname verification (`outbound.provider_ca`)
still apply on top: the pin narrows them, it does not replace them.

The pin set of an address is the union over the grants whose `provider_sidecar` is that address
(normally one provider); an address no grant names gets an empty set, so nothing is sent there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from mitmproxy import tls
from OpenSSL import SSL

from proxy.bundles import BundleStore
from proxy.policy import Policy


def pins_by_address(policy: Policy) -> dict[tuple[str, int], frozenset[str]]:
    """(host, port) of each provider sidecar -> the fingerprints accepted there."""
    pins: dict[tuple[str, int], frozenset[str]] = {}
    for grant in policy.grants.values():
        url = urlsplit(grant.provider_sidecar)
        key = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
        pins[key] = pins.get(key, frozenset()) | grant.provider_certificates
    return pins


class ProviderPinning:
    """Adds the pin check to mitmproxy's upstream TLS verification, on the outbound listener only."""

    def __init__(self, store: BundleStore, mode_spec: str) -> None:
        self.store = store
        self.mode_spec = mode_spec
        self._pins: tuple[Policy, dict[tuple[str, int], frozenset[str]]] | None = None

    def tls_start_server(self, data: tls.TlsData) -> None:
        mode = getattr(data.context.client, "proxy_mode", None)
        if getattr(mode, "full_spec", None) != self.mode_spec or data.ssl_conn is None:
            return
        address = data.context.server.address
        bundle = self.store.in_force()
        accepted = frozenset() if bundle is None or address is None else \
            self._pins_of(bundle.policy).get((address[0], address[1]), frozenset())

        def verify(_conn: Any, cert: Any, _errno: int, depth: int, ok: int) -> bool:
            if depth != 0:
                return bool(ok)
            leaf = cert.to_cryptography().fingerprint(hashes.SHA256()).hex()
            return bool(ok) and leaf in accepted

        data.ssl_conn.set_verify(SSL.VERIFY_PEER, verify)

    def _pins_of(self, policy: Policy) -> dict[tuple[str, int], frozenset[str]]:
        # rebuilt when another bundle is in force: one pass over the grants per swap
        if self._pins is None or self._pins[0] is not policy:
            self._pins = (policy, pins_by_address(policy))
        return self._pins[1]

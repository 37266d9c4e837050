"""Response signing (R11) at the provider's sidecar: the 2xx answers of a `signed_messages`
service leave signed by their profile (proxy.soap.authorship) — SMEV 3 as
`SenderInformationSystemSignature` over `SenderProvidedResponseData`, SMEV 2 in WS-Security, both
with the provider's ЭП-ОВ signer (`signatures.signer`); `plain` in the Header with the key of the
sidecar's TLS server certificate (`tls.server_bundle`), the certificate the consumer's sidecar
pins. An answer the provider's system signed itself is checked (cryptography; for `plain`, our
server certificate) and journaled, and forwarded as it is: the consumer's sidecar decides. An
SMEV 3 answer without sender-provided data (an Ack, a status) and an empty answer (a one-way
operation's 202) are forwarded unsigned.

Works on the response check's one parse (proxy.addons.responses). A signer failure, a missing
signer, an MTOM answer or an answer that is not a SOAP message replace the answer with
`signing-failed`: an unsigned answer never leaves in place of a signed one. The response
record's `signature_check` says what was made or found.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree  # type: ignore[import-untyped]
from mitmproxy import http

from proxy.addons._responses import BUNDLE, DECISION, DIRECTION, RESPONSE_PAYLOAD, RESPONSE_SIGNATURE, deny_response
from proxy.addons.responses import ResponseFacts
from proxy.bundles import ActiveBundle
from proxy.policy import Decision
from proxy.soap import authorship
from proxy.soap.errors import SignatureError

log = logging.getLogger(__name__)


class ResponseSigning:
    """Signs the allowed answers of signed SOAP services on the inbound side."""

    def __init__(self, signers: authorship.Signers) -> None:
        self.signers = signers

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        response = flow.response
        if (decision is None or not decision.allowed or flow.metadata.get(DIRECTION) == "outbound"
                or response is None or not 200 <= response.status_code < 300):
            return
        bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
        service = bundle.policy.services.get(decision.sid or "") if bundle is not None else None
        if service is None or not service.signed_messages or service.protocol != "soap":
            return
        facts: ResponseFacts | None = flow.metadata.get(RESPONSE_PAYLOAD)
        message = facts.message if facts is not None else None
        if not response.raw_content:
            return  # a one-way operation's empty 202 / 204: nothing to sign
        if message is None:
            if service.profile == "smev3" and b"SenderProvided" not in (response.raw_content or b""):
                return  # an SMEV 3 Ack or status: no sender-provided data to sign
            return self._failed(flow, decision, "the answer is not a SOAP message")
        root = message.envelope.root
        if service.profile == "smev3" and "SenderProvidedResponseData" not in authorship.names(root):
            return
        if authorship.already_signed(root, service.profile):
            tls = self.signers.tls.certificate if self.signers.tls is not None else b""
            flow.metadata[RESPONSE_SIGNATURE] = authorship.check(
                message, service.profile, certificate=tls, signers=None, at=datetime.now(UTC)).journal
            return
        if message.multipart:
            return self._failed(flow, decision, "an MTOM answer")
        try:
            made = authorship.sign(root, service.profile, self.signers.for_profile(service.profile))
        except SignatureError as e:
            return self._failed(flow, decision, e.code)
        flow.metadata[RESPONSE_SIGNATURE] = made.journal
        response.content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    @staticmethod
    def _failed(flow: http.HTTPFlow, decision: Decision, why: str) -> None:
        log.warning("response signing of %s failed: %s", decision.sid, why)
        flow.response = deny_response(replace(decision, reason="signing-failed"), flow.request)

"""Outbound signing and answer verification (R11): the consumer's sidecar signs SMEV 3 requests to services that require
signed messages, with the agency's signer (`signatures.signer`: a key file or an external command,
proxy.soap.signing), so agency systems need not sign themselves.

Runs after OutboundEnforce has allowed the call and parsed the message once: the signature goes
into that parse (`CallerInformationSystemSignature` after `SenderProvidedRequestData`) and the
request body becomes its serialisation, which the journal then digests and the provider's sidecar
verifies. A request that already carries an information-system signature is left as it is (the
agency signed it itself); an MTOM request is refused (`signing-failed`: re-serialising would lose
its parts), and so is one the signer fails on. Nothing about the key reaches logs or the caller.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree  # type: ignore[import-untyped]
from mitmproxy import http

from proxy.addons._responses import BUNDLE, DECISION, DIRECTION, deny_response, refuse
from proxy.bundles import ActiveBundle
from proxy.policy import Decision
from proxy.soap import smev_signatures
from proxy.soap.errors import MessageError, SignatureError
from proxy.soap.message import read_message
from proxy.soap.signatures import verdict
from proxy.soap.signing import Signer, sign_smev3

log = logging.getLogger(__name__)
_HOLDERS = ("CallerInformationSystemSignature", "SenderInformationSystemSignature")


class OutboundSigning:
    """Signs allowed outbound SMEV 3 requests of `signed_messages` grants."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def request(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        if flow.metadata.get(DIRECTION) != "outbound" or decision is None or decision.message is None:
            return
        bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
        grant = bundle.policy.grants.get(decision.sid or "") if bundle is not None else None
        if grant is None or not grant.signed_messages or grant.profile != "smev3":
            return
        root = decision.message.envelope.root
        if any(etree.QName(el).localname in _HOLDERS for el in root.iter() if isinstance(el.tag, str)):
            return
        if decision.message.multipart:
            return refuse(flow, _failed(decision))
        try:
            sign_smev3(root, self.signer)
        except SignatureError as e:
            log.warning("outbound signing of %s failed: %s", decision.sid, e.code)
            return refuse(flow, _failed(decision))
        flow.request.content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _failed(decision: Decision) -> Decision:
    return replace(decision, reason="signing-failed")


class OutboundResponseVerify:
    """The consumer's sidecar checks that a signed service's SMEV 3 answer is signed by the
    provider (R11): an answer carrying `SenderProvidedResponseData` must hold a valid
    `SenderInformationSystemSignature` by one of the provider's registered signing certificates
    (`provider_signing_certificates` of the grant); otherwise the agency's system gets
    `response-signature-invalid` (502) instead of the answer. Answers without sender-provided data
    (an Ack, a Fault) pass as they are."""

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        response = flow.response
        if (flow.metadata.get(DIRECTION) != "outbound" or decision is None or not decision.allowed
                or response is None or not 200 <= response.status_code < 300):
            return
        bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
        grant = bundle.policy.grants.get(decision.sid or "") if bundle is not None else None
        if grant is None or not grant.signed_messages or grant.profile != "smev3":
            return
        try:
            message = read_message(response.raw_content or b"", response.headers.get("content-type"), [], "smev3")
        except MessageError:
            return  # not an SMEV 3 message: nothing that claims to be the provider's data
        root = message.envelope.root
        if not any(etree.QName(el).localname == "SenderProvidedResponseData"
                   for el in root.iter() if isinstance(el.tag, str)):
            return
        result = verdict(smev_signatures.check(message, "smev3", signers=grant.provider_signing_certificates,
                                               at=datetime.now(UTC)))
        if result.status != "valid":
            log.warning("answer of %s refused: signature-%s", decision.sid, result.status)
            flow.response = deny_response(replace(decision, reason="response-signature-invalid"), flow.request)

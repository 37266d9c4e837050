"""Response signing (R11) at the provider's sidecar: the SMEV 3 answers of a `signed_messages`
service leave signed by the provider's signer (`signatures.signer`), as
`SenderInformationSystemSignature` over `SenderProvidedResponseData`, unless the provider's system
signed them itself. Works on the response check's one parse (proxy.addons.responses); an answer
without sender-provided data (an Ack, a Fault) is forwarded as it is. A signer failure replaces the
answer with `signing-failed`: an unsigned answer never leaves in place of a signed one.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lxml import etree  # type: ignore[import-untyped]
from mitmproxy import http

from proxy.addons._responses import BUNDLE, DECISION, DIRECTION, RESPONSE_PAYLOAD, deny_response
from proxy.addons.responses import ResponseFacts
from proxy.bundles import ActiveBundle
from proxy.policy import Decision
from proxy.soap.errors import SignatureError
from proxy.soap.signing import Signer, sign_smev3

log = logging.getLogger(__name__)
_DATA = "SenderProvidedResponseData"
_HOLDERS = frozenset({"CallerInformationSystemSignature", "SenderInformationSystemSignature"})


class ResponseSigning:
    """Signs the allowed SMEV 3 answers of signed services on the inbound side."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        facts: ResponseFacts | None = flow.metadata.get(RESPONSE_PAYLOAD)
        if (decision is None or not decision.allowed or flow.metadata.get(DIRECTION) == "outbound"
                or facts is None or facts.message is None or flow.response is None):
            return
        bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
        service = bundle.policy.services.get(decision.sid or "") if bundle is not None else None
        if service is None or not service.signed_messages or service.profile != "smev3":
            return
        root = facts.message.envelope.root
        names = {etree.QName(el).localname for el in root.iter() if isinstance(el.tag, str)}
        if _DATA not in names or names & _HOLDERS or facts.message.multipart:
            return
        try:
            sign_smev3(root, self.signer)
        except SignatureError as e:
            log.warning("response signing of %s failed: %s", decision.sid, e.code)
            flow.response = deny_response(replace(decision, reason="signing-failed"), flow.request)
            return
        flow.response.content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

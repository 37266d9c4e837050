"""Outbound signing and answer verification (R11) at the consumer's sidecar.

`OutboundSigning`: requests to services that require signed messages are signed by the profile
(proxy.soap.authorship): SMEV 3 and SMEV 2 with the agency's ЭП-ОВ signer (`signatures.signer`:
a key file or an external command), `plain` with the key of the sidecar's client certificate
(`outbound.client_bundle`), so agency systems need not sign themselves. Runs after
OutboundEnforce has allowed the call and parsed the message once: the signature goes into that
parse and the request body becomes its serialisation, which the journal then digests and the
provider's sidecar verifies. A request that already carries its profile's signature (the agency
signed it itself) is checked instead — cryptography and, for `plain`, our client certificate —
and refused locally when it does not hold. An MTOM request is refused (`signing-failed`:
re-serialising would lose its parts), and so is one no signer is configured for or the signer
fails on. The request record's `signature_check` says what was made or found. Nothing about the
key reaches logs or the caller.

`OutboundResponseVerify`: the answer of a signed service must be signed by the provider.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped]
from mitmproxy import http

from proxy.addons._responses import (
    BUNDLE,
    DECISION,
    DIRECTION,
    JOURNAL_HEADER,
    PROVIDER_JOURNAL_HEADER,
    RESPONSE_SIGNATURE,
    SIGNATURE,
    deny_response,
    refuse,
)
from proxy.bundles import ActiveBundle
from proxy.policy import Decision, Grant
from proxy.soap import authorship
from proxy.soap.errors import MessageError, SignatureError
from proxy.soap.message import read_message

log = logging.getLogger(__name__)


def _signed_grant(flow: http.HTTPFlow, decision: Decision | None) -> Grant | None:
    if flow.metadata.get(DIRECTION) != "outbound" or decision is None or not decision.allowed:
        return None
    bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
    grant = bundle.policy.grants.get(decision.sid or "") if bundle is not None else None
    return grant if grant is not None and grant.signed_messages and grant.protocol == "soap" else None


class OutboundSigning:
    """Signs allowed outbound SOAP requests of `signed_messages` grants, by their profile."""

    def __init__(self, signers: authorship.Signers) -> None:
        self.signers = signers

    def request(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        grant = _signed_grant(flow, decision)
        if grant is None or decision is None or decision.message is None:
            return
        message = decision.message
        root = message.envelope.root
        if authorship.already_signed(root, grant.profile):
            tls = self.signers.tls.certificate if self.signers.tls is not None else b""
            result = authorship.check(message, grant.profile, certificate=tls, signers=None, at=datetime.now(UTC))
            flow.metadata[SIGNATURE] = result.journal
            if result.reason is not None:
                return refuse(flow, replace(decision, reason=result.reason))
            return None
        if message.multipart:
            return refuse(flow, _failed(decision))
        try:
            made = authorship.sign(root, grant.profile, self.signers.for_profile(grant.profile))
        except SignatureError as e:
            log.warning("outbound signing of %s failed: %s", decision.sid, e.code)
            return refuse(flow, _failed(decision))
        flow.metadata[SIGNATURE] = made.journal
        flow.request.content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return None


def _failed(decision: Decision) -> Decision:
    return replace(decision, reason="signing-failed")


class OutboundResponseVerify:
    """The consumer's sidecar checks that a signed service's answer is the provider's (R11).

    - `smev3`: an answer carrying `SenderProvidedResponseData` must hold a valid
      `SenderInformationSystemSignature` by one of the provider's registered signing
      certificates (`provider_signing_certificates` of the grant); answers without
      sender-provided data (an Ack, a status) pass as they are.
    - `smev2`: every 2xx answer must carry the provider's WS-Security GOST signature over its
      Body, by one of those certificates.
    - `plain`: every 2xx answer must carry an XMLDSig signature over its Body in the Header by the
      key of the TLS server certificate the provider's sidecar presented (pinned to its registered
      certificates by proxy.addons.outbound_tls).

    An empty answer (a one-way operation's 202) claims nothing and passes. For any other that
    fails, the agency's system gets `response-signature-invalid` (502) instead of the answer; the
    response record's `signature_check` says why, and the refusal keeps the provider's journal id
    (`Reestr-Provider-Journal-Id`).
    """

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        grant = _signed_grant(flow, decision)
        response = flow.response
        if grant is None or decision is None or response is None or not 200 <= response.status_code < 300:
            return
        body = response.raw_content or b""
        if not body:
            return  # a one-way operation's empty 202 / 204 claims nothing
        try:
            message = read_message(body, response.headers.get("content-type"), [], grant.profile)
        except MessageError:
            if grant.profile == "smev3":
                return  # not an SMEV 3 message: nothing that claims to be the provider's data
            return self._refuse(flow, decision, "the answer is not a SOAP message")
        if grant.profile == "smev3" and "SenderProvidedResponseData" not in authorship.names(message.envelope.root):
            return
        result = authorship.check(message, grant.profile, certificate=_server_leaf(flow),
                                  signers=grant.provider_signing_certificates, at=datetime.now(UTC))
        flow.metadata[RESPONSE_SIGNATURE] = result.journal
        if result.status != "valid":
            self._refuse(flow, decision, f"signature-{result.status}")

    @staticmethod
    def _refuse(flow: http.HTTPFlow, decision: Decision, why: str) -> None:
        log.warning("answer of %s refused: %s", decision.sid, why)
        flow.metadata.setdefault(RESPONSE_SIGNATURE, "invalid")
        theirs = flow.response.headers.get(JOURNAL_HEADER) if flow.response is not None else None
        flow.response = deny_response(replace(decision, reason="response-signature-invalid"), flow.request)
        if theirs is not None:  # both ends of the refused exchange stay matchable
            flow.response.headers[PROVIDER_JOURNAL_HEADER] = theirs


def _server_leaf(flow: http.HTTPFlow) -> bytes:
    """DER of the provider sidecar's TLS leaf certificate (b"" if none: then nothing verifies)."""
    certs = flow.server_conn.certificate_list
    return certs[0].to_cryptography().public_bytes(Encoding.DER) if certs else b""

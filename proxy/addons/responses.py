"""Responses: the service's classification marked on every response (R14), and the response
payload checked against the operation's response schema.

R14 (seed 002 5.4, docs/sidecar.md): the provider's sidecar sets `Reestr-Classification` to the
service's classification on every response of a known service (the upstream's own header of that
name is replaced); the consumer's sidecar sets it from its own bundle on what it passes to the
agency's system, so the marking never depends on the other side.

Response payloads (inbound side, 2xx only — errors are not the operation's answer) are checked by
`mode`: `enforce` answers 502 `response-payload-invalid` instead of a violating response,
`record` (default) forwards it and journals `payload_check: invalid`, `off` skips the check. A
SOAP response is read with the same parser and profile as requests, once; its identifiers and
payload name go to the journal (`RESPONSE_PAYLOAD` in the flow's metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mitmproxy import http

from proxy.addons._responses import (
    BUNDLE,
    CLASSIFICATION_HEADER,
    DECISION,
    DIRECTION,
    RESPONSE_PAYLOAD,
    deny_response,
)
from proxy.bundles import ActiveBundle
from proxy.payloads import Violation
from proxy.policy import Decision, replace
from proxy.soap.errors import MessageError
from proxy.soap.message import Message, read_message

Mode = Literal["enforce", "record", "off"]


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the response check read: the SOAP message (if any) and the schema check's result."""

    message: Message | None
    check: Literal["valid", "invalid"] | None


class ResponseCheck:
    def __init__(self, mode: Mode) -> None:
        self.mode = mode

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        response = flow.response
        if decision is None or response is None or decision.sid is None:
            return
        if decision.classification:
            response.headers[CLASSIFICATION_HEADER] = decision.classification
        if (not decision.allowed or flow.metadata.get(DIRECTION) == "outbound"
                or not 200 <= response.status_code < 300):
            return
        bundle: ActiveBundle = flow.metadata[BUNDLE]
        facts = self._read(bundle, decision, response)
        flow.metadata[RESPONSE_PAYLOAD] = facts
        if facts.check == "invalid" and self.mode == "enforce":
            refused = replace(decision, reason="response-payload-invalid", detail=None)
            flow.response = deny_response(refused, flow.request)

    def _read(self, bundle: ActiveBundle, decision: Decision, response: http.Response) -> ResponseFacts:
        op = decision.definition
        key = op.response_schema if op is not None and self.mode != "off" else None
        body = response.raw_content or b""
        if decision.protocol != "soap":
            if key is None:
                return ResponseFacts(message=None, check=None)
            return ResponseFacts(message=None, check=_result(bundle.payloads.check_json(key, body)))
        profile = decision.message.content.profile if decision.message else "plain"
        if profile == "smev3" and b"SenderProvided" not in body:
            # an SMEV 3 answer without sender-provided data (the transport's acknowledgement,
            # SendRequestResponse; a status) holds no payload and no identifiers: nothing to read
            return ResponseFacts(message=None, check=None)
        try:
            message = read_message(body, response.headers.get("content-type"), [], profile)
        except MessageError:
            return ResponseFacts(message=None, check="invalid" if key is not None else None)
        payload = message.content.payload
        if key is None or payload is None or _is_fault(message):
            return ResponseFacts(message=message, check=None)
        return ResponseFacts(message=message, check=_result(bundle.payloads.check_xml(key, payload)))


def _is_fault(message: Message) -> bool:
    return bool(message.envelope.content.tag.endswith("}Fault"))


def _result(violation: Violation | None) -> Literal["valid", "invalid"]:
    return "valid" if violation is None else "invalid"

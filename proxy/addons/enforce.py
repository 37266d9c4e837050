"""Enforce: decide every inbound call before anything is forwarded.

`requestheaders` pins the bundle in force for the whole exchange (a swap mid-request does not change
its rules), answers 503 when there is none, and 413 when Content-Length is over the limit.
`request` (body complete) identifies the caller by its client certificate and decides by SID and
operation. A SOAP request is read once (`proxy.soap`): whatever its SOAPAction, a message that
cannot be read unambiguously is `malformed-request`, the operation is the one its content names,
and a SOAPAction naming another is `operation-mismatch`. Then, for a service with
`signed_messages`, the signature against the client certificate (R11), and the request payload
against the operation's schema (`payload-invalid`). A denial becomes the flow's response, so
mitmproxy never opens an upstream connection (connection_strategy=lazy). The verdict is
`flow.metadata["reestr.decision"]`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import Encoding
from mitmproxy import connection, ctx, exceptions, http

from proxy.addons._responses import (
    BUNDLE,
    DECISION,
    DIRECTION,
    PAYLOAD_CHECK,
    REPLAY_ID,
    SIGNATURE,
    admit_headers,
    client_leaf,
    forget_client,
    forward_as_decided,
    policy_request,
    refuse,
)
from proxy.bundles import ActiveBundle, BundleStore
from proxy.identity import identify
from proxy.payloads import Violation
from proxy.policy import Decision, deny, evaluate, replace
from proxy.replay import ReplayGuard, identity
from proxy.soap.signatures import SignatureResult, check_signatures, requires_signature, verdict

FORWARDED_CONSUMER = "Reestr-Consumer"
FORWARDED_OPERATION = "Reestr-Operation"


class Enforce:
    """Identity + policy for the inbound side."""

    def __init__(self, store: BundleStore, replay: ReplayGuard | None = None) -> None:
        self.store = store
        self.replay = replay

    def load(self, loader: object) -> None:
        loader.add_option(  # type: ignore[attr-defined]
            "reestr_max_body_bytes", int, 1024 * 1024,
            "Largest request body the sidecar accepts; larger ones get 413 body-too-large.")

    def configure(self, updated: set[str]) -> None:
        if "reestr_max_body_bytes" in updated and ctx.options.reestr_max_body_bytes <= 0:
            raise exceptions.OptionsError(  # type: ignore[no-untyped-call]
                "reestr_max_body_bytes must be positive")

    def client_disconnected(self, client: connection.Client) -> None:
        forget_client(client)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(DIRECTION) == "outbound":
            return None
        admit_headers(flow, self.store)
        return None

    def request(self, flow: http.HTTPFlow) -> None:
        if DECISION in flow.metadata or flow.metadata.get(DIRECTION) == "outbound":
            return
        bundle: ActiveBundle | None = flow.metadata.get(BUNDLE)
        if bundle is None:  # pragma: no cover - requestheaders always runs first
            return refuse(flow, deny("no-valid-bundle"))
        if len(flow.request.raw_content or b"") > ctx.options.reestr_max_body_bytes:
            return refuse(flow, deny("body-too-large"))
        now = datetime.now(UTC)
        who = identify(bundle.policy, client_leaf(flow), now)
        if who.participant is None or who.reason is not None:
            return refuse(flow, deny(who.reason or "unknown-certificate", consumer=who.participant))
        decision = evaluate(bundle.policy, who.participant, policy_request(flow.request), now.date())
        if not decision.allowed:
            return refuse(flow, decision)
        if requires_signature(bundle.policy, decision.sid) and decision.message is not None:
            check = _check_signature(bundle, decision, _leaf_der(flow), now)  # R11
            flow.metadata[SIGNATURE] = check.journal
            if check.reason is not None:
                return refuse(flow, replace(decision, reason=check.reason))
            replayed = self._replayed(flow, decision, check, now)
            if replayed is not None:
                return refuse(flow, replace(decision, reason=replayed))
        violation = _check_payload(bundle, decision, flow.request.raw_content or b"")
        if violation is not None:
            flow.metadata[PAYLOAD_CHECK] = "invalid"
            return refuse(flow, replace(decision, reason="payload-invalid", detail=violation.text()))
        if decision.definition is not None and decision.definition.request_schema is not None:
            flow.metadata[PAYLOAD_CHECK] = "valid"
        flow.metadata[DECISION] = decision
        forward_as_decided(flow.request, decision)
        # upstream learns who calls from the sidecar only (proxy.addons.hygiene removed the
        # caller's own reestr-* headers)
        flow.request.headers[FORWARDED_CONSUMER] = decision.consumer or ""
        flow.request.headers[FORWARDED_OPERATION] = decision.operation or ""
        return None

    def _replayed(self, flow: http.HTTPFlow, decision: Decision, check: SignatureResult,
                  now: datetime) -> str | None:
        """A validly signed message is accepted once per service within the window (proxy.replay);
        its replay id is journaled as the request's `message_id` when the message names none."""
        if self.replay is None or decision.message is None or decision.sid is None:
            return None
        who = identity(decision.message, check)
        if who.key is not None and who.key != decision.message.content.message_id:
            flow.metadata[REPLAY_ID] = who.key
        reason = self.replay.check_identity(decision.sid, who, now)
        if reason is None:
            self.replay.remember(decision.sid, who.key, now)
        return reason


def _check_signature(bundle: ActiveBundle, decision: Decision, leaf: bytes, now: datetime) -> SignatureResult:
    """The message's signatures by the service's profile; the author's certificate must be one
    the caller registered for signing (`spec.signing_certificates`), valid now."""
    service = bundle.policy.services[decision.sid or ""]
    caller = service.callers.get(decision.consumer or "")
    signers = caller.signing_certificates if caller is not None else {}
    assert decision.message is not None
    return verdict(check_signatures(decision.message, service.profile, client_certificate=leaf,
                                    signers=signers, at=now))


def _check_payload(bundle: ActiveBundle, decision: Decision, body: bytes) -> Violation | None:
    """The request payload against the operation's request schema, if it registered one."""
    op = decision.definition
    if op is None or op.request_schema is None:
        return None
    if decision.message is None:
        return bundle.payloads.check_json(op.request_schema, body)
    payload = decision.message.content.payload
    if payload is None:  # pragma: no cover - an operation is only matched by its payload element
        return Violation(where="/", line=None, message="no payload")
    return bundle.payloads.check_xml(op.request_schema, payload)


def _leaf_der(flow: http.HTTPFlow) -> bytes:
    """DER of the client's leaf certificate; identity has already required one."""
    return flow.client_conn.certificate_list[0].to_cryptography().public_bytes(Encoding.DER)

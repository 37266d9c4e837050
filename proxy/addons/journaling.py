"""Journaling: no journal, no traffic (R11, DESIGN §7).

The request record is made durable (awaited) before the flow may go upstream; the response record
before the response goes back to the caller. If either cannot be written, the caller gets 503
`journal-unavailable` and nothing is forwarded. Every response the sidecar returns carries the id of
its response record in `Reestr-Journal-Id`; the upstream gets the request record's id in the same
header. On the outbound side the provider's id is kept as `Reestr-Provider-Journal-Id`, so both ends
of one call can be matched. Bodies are not stored, only their size and SHA-256 (personal data stays
out of the journal). `signature_check` is set on the request record of a call to a service with
`signed_messages` (the check of the request body on the inbound side; on the outbound side,
the signature this sidecar made, or the check of the one the agency's system made); a response
record carries the
`signature_check` of the answer — the signature the provider's sidecar made (or checked, when
the provider's system signed itself), and on the consumer's side the check of the provider's
signature. It stays null otherwise. A signed message that names no SMEV 3 `MessageID` (SMEV 2,
`plain`) has its replay id (proxy.replay) as `message_id`. Responses mitmproxy
makes by itself (upstream unreachable, a body over its hard cap) go through `error`: recorded with
decision "error", but they carry no journal header.

Records are format 2 (docs/journal-format.md): they also carry the service's classification (R14)
and what the message layer read — the profile, the payload's qualified name, the SMEV 3
`MessageID` / `ReferenceMessageID` / `TransactionCode` and the payload schema check — of the
request on request records and of the upstream's answer on response records (for an answer
refused by `payloads.responses: enforce`, of the answer that was refused).

Records of calls that were not allowed keep bounded fields (issue 10, finding 2): a client with no
certificate sent long request targets, each journaled in full in two records, and grew the journal
by megabytes per request. On a deny or error record, `method`, `path` and `sid` longer than
`BOUNDS` are stored as their first characters plus `…sha256:<hex>` of the whole value (UTF-8), so
an auditor can still match a value he holds, and the journal grows by a bounded amount per refusal.
Allowed calls come from authenticated callers with targets under the sidecar's cap: kept whole.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from mitmproxy import http

from proxy.addons._responses import (
    BUNDLE,
    DECISION,
    DIRECTION,
    JOURNAL_HEADER,
    PAYLOAD_CHECK,
    PROVIDER_JOURNAL_HEADER,
    REPLAY_ID,
    REQUEST_RECORD,
    RESPONSE_PAYLOAD,
    RESPONSE_RECORD,
    RESPONSE_SIGNATURE,
    SIGNATURE,
    client_leaf,
    deny_response,
)
from proxy.addons.responses import ResponseFacts
from proxy.journal import Journal, JournalError, Record, sidecar_record, utc_now
from proxy.policy import Decision, deny


class Journaling:
    """Durable request and response records around every exchange."""

    def __init__(self, journal: Journal, participant: str) -> None:
        self.journal = journal
        self.participant = participant

    async def request(self, flow: http.HTTPFlow) -> None:
        if REQUEST_RECORD in flow.metadata:
            return
        rid = await self._durable(flow, "request")
        if rid is None:
            self._unavailable(flow)
            return
        flow.metadata[REQUEST_RECORD] = rid
        if flow.response is None:
            flow.request.headers[JOURNAL_HEADER] = str(rid)

    async def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or RESPONSE_RECORD in flow.metadata:
            return
        if REQUEST_RECORD not in flow.metadata:  # a response made before our request hook ran
            await self.request(flow)
            if RESPONSE_RECORD in flow.metadata:
                return  # the journal failed: the 503 is already in place
        rid = await self._durable(flow, "response")
        if rid is None:
            self._unavailable(flow)
            return
        flow.metadata[RESPONSE_RECORD] = rid
        if flow.metadata.get(DIRECTION) == "outbound" and JOURNAL_HEADER in flow.response.headers:
            flow.response.headers[PROVIDER_JOURNAL_HEADER] = flow.response.headers[JOURNAL_HEADER]
        flow.response.headers[JOURNAL_HEADER] = str(rid)

    async def error(self, flow: http.HTTPFlow) -> None:
        """Upstream unreachable, or mitmproxy refused the body: record the exchange as an error."""
        if RESPONSE_RECORD in flow.metadata:
            return
        if REQUEST_RECORD not in flow.metadata:
            rid = await self._durable(flow, "request")
            if rid is None:
                return
            flow.metadata[REQUEST_RECORD] = rid
        rid = await self._durable(flow, "error")
        if rid is not None:
            flow.metadata[RESPONSE_RECORD] = rid

    async def _durable(self, flow: http.HTTPFlow, kind: Literal["request", "response", "error"]) -> int | None:
        """The id of the flow's `kind` record once it is durable, or None if the journal failed."""
        try:
            return await self.journal.append(self._record(flow, kind))
        except JournalError:
            return None

    def _unavailable(self, flow: http.HTTPFlow) -> None:
        decision = deny("journal-unavailable", **_ids(flow.metadata.get(DECISION)))
        flow.metadata[DECISION] = decision
        flow.metadata[RESPONSE_RECORD] = None
        flow.response = deny_response(decision, flow.request)

    def _record(self, flow: http.HTTPFlow, kind: Literal["request", "response", "error"]) -> Record:
        decision: Decision | None = flow.metadata.get(DECISION)
        bundle = flow.metadata.get(BUNDLE)
        leaf = client_leaf(flow)
        if kind == "request":
            body: bytes = flow.request.raw_content or b""
            status = None
        elif kind == "response" and flow.response is not None:
            body = flow.response.raw_content or b""
            status = flow.response.status_code
        else:  # mitmproxy answered by itself: upstream failed, or a body over its hard cap
            body = b""
            status = 413 if decision is not None and decision.reason == "body-too-large" else 502
        outbound = flow.metadata.get(DIRECTION) == "outbound"
        verdict: Literal["allow", "deny", "error"] = "error" if kind == "error" else (
            "allow" if decision is not None and decision.allowed else "deny")
        method, path = flow.request.method, flow.request.path
        sid = decision.sid if decision else None
        if verdict != "allow":  # bounded: nothing a stranger sends is journaled at length
            method, path = bounded(method, BOUNDS["method"]), bounded(path, BOUNDS["path"])
            sid = bounded(sid, BOUNDS["sid"]) if sid is not None else None
        return sidecar_record(  # keyword arguments; see sidecar_record for what is not re-checked
            time=utc_now(), direction="outbound" if outbound else "inbound",
            kind="request" if kind == "request" else "response", exchange=flow.id, decision=verdict,
            method=method, path=path, size=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            consumer=decision.consumer if decision else None,
            provider=(decision.provider if decision else None) or (None if outbound else self.participant),
            sid=sid,
            operation=decision.operation if decision else None,
            reason=(decision.reason if decision else None) if kind != "error" else (
                decision.reason if decision and decision.reason else "upstream-error"),
            status=status,
            signature_check=flow.metadata.get(SIGNATURE if kind == "request" else RESPONSE_SIGNATURE),
            bundle_serial=bundle.serial if bundle is not None else None,
            grant=decision.grant if decision else None,
            client_fingerprint=leaf.sha256 if leaf else None,
            classification=decision.classification if decision else None,
            **_message_fields(flow, decision, kind),
        )


def _message_fields(flow: http.HTTPFlow, decision: Decision | None,
                    kind: Literal["request", "response", "error"]) -> dict[str, Any]:
    """The message layer's facts for a record (format 2): the profile, the payload's qualified
    name, the SMEV 3 identifiers and the schema check — of the request for request records (its
    one parse, `Decision.message`), of the upstream's answer for response records (the response
    check's parse, when it made one)."""
    if decision is None or kind == "error":
        return {}
    if kind == "request":
        message, check = decision.message, flow.metadata.get(PAYLOAD_CHECK)
    else:
        facts: ResponseFacts | None = flow.metadata.get(RESPONSE_PAYLOAD)
        message, check = (facts.message, facts.check) if facts is not None else (None, None)
    fields: dict[str, Any] = {"payload_check": check}
    if decision.protocol == "soap":
        fields["profile"] = decision.message.content.profile if decision.message else None
    if message is not None:
        content = message.content
        payload = bounded(content.element, BOUNDS["path"]) if content.element is not None else None  # a caller's name
        message_id = content.message_id or (flow.metadata.get(REPLAY_ID) if kind == "request" else None)
        fields.update(profile=content.profile, payload=payload, message_id=message_id,
                      reference_message_id=content.reference_message_id,
                      transaction_code=content.transaction_code)
    return fields


BOUNDS = {"method": 96, "path": 256, "sid": 96}  # characters kept on deny and error records
_DIGEST_MARK = "…sha256:"


def bounded(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first characters and the SHA-256 of
    all of it (UTF-8; bytes mitmproxy kept with surrogateescape as they came), `limit` in total."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    return text[: max(0, limit - len(_DIGEST_MARK) - len(digest))] + _DIGEST_MARK + digest


def _ids(decision: Decision | None) -> dict[str, Any]:
    if decision is None:
        return {}
    return {"sid": decision.sid, "operation": decision.operation, "consumer": decision.consumer,
            "protocol": decision.protocol}

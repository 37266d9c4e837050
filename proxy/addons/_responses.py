"""The bodies the sidecar answers with itself: RFC 9457 problem+json, or a SOAP Fault in the
caller's SOAP version (1.1 `soap:Client`/`soap:Server`, 1.2 `env:Sender`/`env:Receiver`)."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from mitmproxy import ctx, http

from proxy.bundles import BundleStore
from proxy.identity import Leaf, leaf_of
from proxy.policy import REASONS, Decision, Request
from proxy.policy import deny as deny_decision
from proxy.soap.envelope import SOAP11_ENV, SOAP12_ENV, media_type

# metadata keys shared by the addons
DECISION = "reestr.decision"
DIRECTION = "reestr.direction"  # "outbound" on the consumer-side listener; absent = inbound
BUNDLE = "reestr.bundle"
REQUEST_RECORD = "reestr.request_record"
RESPONSE_RECORD = "reestr.response_record"
LEAF = "reestr.leaf"
SIGNATURE = "reestr.signature_check"  # SignatureResult.journal: "valid ALG SHA256", "absent"... (R11)
RESPONSE_SIGNATURE = "reestr.response_signature_check"  # the same, of the answer (made or checked here)
REPLAY_ID = "reestr.replay_id"  # a signed message's replay id when it names no MessageID (proxy.replay)
PAYLOAD_CHECK = "reestr.payload_check"  # "valid" | "invalid": the request's payload against its schema
RESPONSE_PAYLOAD = "reestr.response_payload"  # what the response check read (proxy.addons.responses)
JOURNAL_HEADER = "Reestr-Journal-Id"
CLASSIFICATION_HEADER = "Reestr-Classification"  # R14 (002 5.4): the marking travels with messages
PROVIDER_JOURNAL_HEADER = "Reestr-Provider-Journal-Id"


# client_conn.id -> its leaf, for connections whose TLS handshake is done: the certificate cannot
# change for the life of a connection, so its SHA-256 fingerprint is computed once per connection,
# not once per request. Validity dates are still compared on every request (`identify`).
# `forget_client` (Enforce.client_disconnected) removes the entry when the connection closes.
_LEAVES: dict[str, Leaf | None] = {}


def client_leaf(flow: http.HTTPFlow) -> Leaf | None:
    """The caller's leaf certificate, computed once per TLS connection (enforce and journal need it)."""
    metadata = flow.metadata
    if LEAF in metadata:
        leaf: Leaf | None = metadata[LEAF]
        return leaf
    conn = flow.client_conn
    if conn.tls_established:
        try:
            leaf = _LEAVES[conn.id]
        except KeyError:
            leaf = _LEAVES[conn.id] = leaf_of(conn)
    else:
        leaf = leaf_of(conn)
    metadata[LEAF] = leaf
    return leaf


def forget_client(client_conn: object) -> None:
    """Drop the cached leaf of a closed connection."""
    _LEAVES.pop(getattr(client_conn, "id", ""), None)


def wants_soap(decision: Decision, request: http.Request) -> bool:
    """SOAP services get Faults; when the service is unknown, judge by the request itself."""
    if decision.protocol == "soap":
        return True
    if decision.sid is not None and decision.operation is not None:
        return False
    ctype = request.headers.get("content-type", "").lower()
    return "soapaction" in request.headers or "xml" in ctype


def policy_request(request: http.Request) -> Request:
    """What the policy reads of a request (both directions): method, path, body and the headers
    that frame a SOAP message (all SOAPAction headers, so two of them can be refused)."""
    return Request(method=request.method, path=request.path, body=request.raw_content or b"",
                   content_type=request.headers.get("content-type"),
                   soap_actions=tuple(request.headers.get_all("soapaction")))


def refuse(flow: http.HTTPFlow, decision: Decision) -> None:
    """Answer the flow ourselves with the denial; the journal addon records it."""
    flow.metadata[DECISION] = decision
    flow.response = deny_response(decision, flow.request)


def admit_headers(flow: http.HTTPFlow, store: BundleStore) -> None:
    """The checks that need only the headers, in both directions: a bundle in force (pinned on the
    flow, so a swap mid-request cannot change its rules) and a declared body within the limit."""
    bundle = store.in_force()
    if bundle is None:
        return refuse(flow, deny_decision("no-valid-bundle"))
    flow.metadata[BUNDLE] = bundle
    if DECISION in flow.metadata:  # already refused (proxy.addons.hygiene)
        return None
    length = flow.request.headers.get("content-length", "")
    if length.isdigit() and int(length) > ctx.options.reestr_max_body_bytes:
        refuse(flow, deny_decision("body-too-large"))
    return None


def deny_response(decision: Decision, request: http.Request) -> http.Response:
    """The answer to a denied call: status by reason, the stable reason code in the body."""
    assert decision.reason is not None
    status, title = REASONS[decision.reason]
    headers: dict[str, Any]
    if wants_soap(decision, request):
        version = decision.message.version if decision.message else _soap_version(request)
        body = _soap_fault(version, decision.reason, title, decision.detail, server=status >= 500).encode()
        headers = {"Content-Type": f"{'application/soap+xml' if version == '1.2' else 'text/xml'}; charset=utf-8"}
    else:
        problem = {"type": f"urn:reestr:problem:{decision.reason}", "title": title, "status": status,
                   "code": decision.reason, "sid": decision.sid, "operation": decision.operation,
                   "violation": decision.detail}
        body = json.dumps({k: v for k, v in problem.items() if v is not None}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/problem+json"}
    if decision.classification:
        headers[CLASSIFICATION_HEADER] = decision.classification
    if status in (413, 414, 431):
        headers["Connection"] = "close"  # the rest of an oversized body is not worth reading
    if request.method.upper() == "HEAD":  # no body on a HEAD answer (HTTP/2 clients reject one)
        body = b""
    return http.Response.make(status, body, headers)


def _soap_version(request: http.Request) -> str:
    """The SOAP version a caller speaks when its message could not be read: by media type."""
    ctype, params = media_type(request.headers.get("content-type"))
    if ctype == "multipart/related":
        ctype = media_type(params.get("start-info") or params.get("type"))[0]
    return "1.2" if ctype == "application/soap+xml" else "1.1"


def _soap_fault(version: str, code: str, title: str, detail: str | None, server: bool) -> str:
    ns = 'xmlns:reestr="urn:reestr"'
    extra = f"<reestr:violation {ns}>{escape(detail)}</reestr:violation>" if detail else ""
    info = f"<reestr:code {ns}>{escape(code)}</reestr:code>{extra}"
    if version == "1.2":
        value = "env:Receiver" if server else "env:Sender"
        return (f'<?xml version="1.0" encoding="utf-8"?>'
                f'<env:Envelope xmlns:env="{SOAP12_ENV}"><env:Body><env:Fault>'
                f"<env:Code><env:Value>{value}</env:Value></env:Code>"
                f'<env:Reason><env:Text xml:lang="en">{escape(title)}</env:Text></env:Reason>'
                f"<env:Detail>{info}</env:Detail>"
                f"</env:Fault></env:Body></env:Envelope>")
    fault = "soap:Server" if server else "soap:Client"
    return (f'<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body><soap:Fault>'
            f"<faultcode>{fault}</faultcode><faultstring>{escape(title)}</faultstring>"
            f"<detail>{info}</detail>"
            f"</soap:Fault></soap:Body></soap:Envelope>")


def forward_as_decided(request: http.Request, decision: Decision) -> None:
    """Send upstream exactly the target that was decided on: origin form (no absolute URI whose
    authority an upstream would prefer to Host, issue 10 finding 3), canonical path (proxy.paths)."""
    if decision.path is not None:
        request.path = decision.path
    if not request.is_http2:
        request.authority = ""

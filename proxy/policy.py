"""The decision: which service and operation a call addresses, and whether the caller may make it.

Pure functions over a parsed bundle (`Policy`); no mitmproxy import, so every rule is unit-tested
without a proxy. A `Decision` is allow, or deny with a stable reason code and the HTTP status the
sidecar answers with. Reason codes are part of the contract (journal, metrics, problem+json `code`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from compiler.templates import Segment, TemplateError
from compiler.trust import TrustError, parse_time
from proxy.errors import PolicyFormatError
from proxy.paths import Target, parse_target, template_matches
from proxy.paths import compile_template as compile_template

OWNER_GRANT = "implicit:owner"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

# reason code -> (HTTP status, human title). Stable: journal, metrics and clients name them.
REASONS: dict[str, tuple[int, str]] = {
    "no-client-certificate": (403, "A client certificate is required"),
    "unknown-certificate": (403, "The client certificate is not registered"),
    "certificate-expired": (403, "The client certificate has expired"),
    "certificate-not-yet-valid": (403, "The client certificate is not valid yet"),
    "caller-suspended": (403, "The calling participant is suspended"),
    "caller-terminated": (403, "The calling participant's agreement has ended"),
    "provider-suspended": (403, "This participant is suspended"),
    "provider-terminated": (403, "This participant's agreement has ended"),
    "no-grant": (403, "The caller has no access to this service"),
    "operation-not-granted": (403, "The caller has no access to this operation"),
    "grant-expired": (403, "The caller's access to this service has expired"),
    "unknown-sid": (404, "No such service"),
    "unknown-operation": (404, "No such operation"),
    "malformed-request": (400, "The request cannot be parsed"),
    "body-too-large": (413, "The request body is over the limit"),
    "target-too-long": (414, "The request target is over the limit"),
    "headers-too-large": (431, "The request headers are over the limit"),
    "header-refused": (400, "The request carries a header that overrides the method or path"),
    "no-valid-bundle": (503, "No valid policy bundle is in force"),
    "journal-unavailable": (503, "The journal cannot be written"),
    "signature-absent": (403, "The message must be signed by the caller"),  # R11
    "signature-invalid": (403, "The message signature is not valid for the caller's certificate"),
    "signature-unsupported": (403, "The message signature uses an algorithm that is not supported"),
}

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                               huge_tree=False)
_SID_PATH = re.compile(r"^/(?P<sid>[^/?#]+)(?P<rest>/[^?#]*)?")


@dataclass(frozen=True)
class CertInfo:
    participant: str
    sha256: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Operation:
    name: str
    method: str | None
    path: str | None
    soap_action: str | None
    body_element: str | None
    template: tuple[Segment, ...] | None  # REST: the path template, matched in linear time


@dataclass(frozen=True)
class Caller:
    participant: str
    access: str
    operations: frozenset[str] | None
    grant: str
    valid_until: date | None
    ends_on: date | None  # R10: the first day without access
    status: str


@dataclass(frozen=True)
class Service:
    sid: str
    protocol: str
    operations: tuple[Operation, ...]
    callers: Mapping[str, Caller]
    signed_messages: bool = False  # R11: SOAP requests must carry the caller's signature


@dataclass(frozen=True)
class Grant:
    """One service the audience may call (outbound), and where its provider's sidecar listens."""

    sid: str
    provider: str
    provider_sidecar: str
    protocol: str
    access: str
    operations: frozenset[str] | None
    operation_defs: tuple[Operation, ...]
    grant: str
    valid_until: date | None
    provider_certificates: frozenset[str] = frozenset()  # outbound TLS accepts only these (sha256)


@dataclass(frozen=True)
class Policy:
    """The parts of a verified bundle the decisions need, indexed for per-request lookups."""

    audience: str
    status: str
    ends_on: date | None
    services: Mapping[str, Service]
    certificates: Mapping[str, CertInfo]  # lowercase sha256 -> registered certificate
    grants: Mapping[str, Grant]  # outbound side: what the audience may call


@dataclass(frozen=True)
class Decision:
    reason: str | None
    sid: str | None = None
    operation: str | None = None
    consumer: str | None = None
    grant: str | None = None
    protocol: str = "rest"
    provider: str | None = None
    target: str | None = None  # outbound: the provider's sidecar URL
    path: str | None = None  # allowed: the request target forwarded, in canonical origin form

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def status(self) -> int:
        return 200 if self.reason is None else REASONS[self.reason][0]


def parse_policy(signed: Mapping[str, Any]) -> Policy:
    """Index the `signed` part of a verified bundle; PolicyFormatError if a field is malformed."""
    try:
        participant = signed["participant"]
        table = {fp: _cert(fp, c) for fp, c in (signed.get("certificates") or {}).items()}
        certificates: dict[str, CertInfo] = {}
        _add_certs(certificates, table, participant["id"], participant.get("certificates") or [])
        services = {}
        for sid, svc in (signed.get("services") or {}).items():
            callers = {}
            for pid, c in (svc.get("callers") or {}).items():
                _add_certs(certificates, table, pid, c.get("certificates") or [])
                ops = c.get("operations")
                callers[pid] = Caller(
                    participant=pid, access=c["access"],
                    operations=frozenset(ops) if ops is not None else None,
                    grant=c.get("grant") or "", valid_until=_date(c.get("valid_until")),
                    ends_on=_date(c.get("ends_on", c.get("active_until"))),
                    status=c.get("status", "active"))
            operations = tuple(_operation(name, op) for name, op in
                               sorted((svc.get("operations") or {}).items()))
            services[sid] = Service(sid=sid, protocol=svc.get("protocol", "rest"),
                                    operations=operations, callers=callers,
                                    signed_messages=svc.get("signed_messages") is True)
        return Policy(audience=participant["id"], status=participant.get("status", "active"),
                      ends_on=_date(participant.get("ends_on")),
                      services=services, certificates=certificates,
                      grants={sid: _grant(sid, g, table) for sid, g in (signed.get("grants") or {}).items()})
    except (KeyError, TypeError, ValueError, AttributeError, re.error, TrustError,
            TemplateError) as e:
        raise PolicyFormatError(f"bundle content is malformed: {type(e).__name__}: {e}") from e


def _cert(fp: str, cert: Mapping[str, Any]) -> CertInfo:
    """An entry of the bundle's `certificates` table, parsed once however many entries name it."""
    return CertInfo(participant=cert["participant"], sha256=fp.lower(),
                    not_before=parse_time(cert["not_before"]), not_after=parse_time(cert["not_after"]))


def _add_certs(into: dict[str, CertInfo], table: Mapping[str, CertInfo], participant: str,
               fingerprints: list[str]) -> None:
    """Register the certificates `participant`'s entry names; each must be in the table, as its."""
    for fp in fingerprints:
        info = table[fp]
        if info.participant != participant:
            raise ValueError(f"certificate {fp} belongs to {info.participant}, named for {participant}")
        into[info.sha256] = info


def _grant(sid: str, g: Mapping[str, Any], table: Mapping[str, CertInfo]) -> Grant:
    ops = g.get("operations")
    pinned: dict[str, CertInfo] = {}
    _add_certs(pinned, table, g["provider"], g.get("provider_certificates") or [])
    return Grant(sid=sid, provider=g["provider"], provider_sidecar=str(g["provider_sidecar"]).rstrip("/"),
                 protocol=g.get("protocol", "rest"), access=g["access"],
                 operations=frozenset(ops) if ops is not None else None,
                 operation_defs=tuple(_operation(n, op) for n, op in
                                      sorted((g.get("operation_defs") or {}).items())),
                 grant=g.get("grant") or "", valid_until=_date(g.get("valid_until")),
                 provider_certificates=frozenset(pinned))


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _operation(name: str, op: Mapping[str, Any]) -> Operation:
    path = op.get("path")
    return Operation(name=name, method=(op.get("method") or "").upper() or None, path=path,
                     soap_action=op.get("soap_action"), body_element=op.get("body_element"),
                     template=compile_template(path) if path else None)


def ambiguous_path(path: str) -> bool:
    """True if the upstream might read the target differently than the templates do (see
    `proxy.paths`: one decoding pass, then dot segments, encoded separators, controls...)."""
    return parse_target(path) is None


def route(path: str) -> tuple[str, str] | None:
    """Split `/{SID}/rest?query` into (SID, /rest); None if the path names no SID."""
    m = _SID_PATH.match(path)
    if m is None:
        return None
    return m["sid"], m["rest"] or "/"


def soap_body_element(body: bytes) -> str:
    """Clark name of the first child of the SOAP Body. ValueError if not a safe SOAP envelope."""
    try:
        root = etree.fromstring(body, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML: {e}") from e
    if root.getroottree().docinfo.doctype:
        raise ValueError("DOCTYPE is not allowed in SOAP")
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP11_ENV, SOAP12_ENV):
        raise ValueError("not a SOAP envelope")
    body_el = root.find(f"{{{qname.namespace}}}Body")
    if body_el is None:
        raise ValueError("SOAP envelope without Body")
    for child in body_el:
        if isinstance(child.tag, str):
            return child.tag
    raise ValueError("empty SOAP Body")


def match_operation(service: Service | Grant, method: str, rest: str, soap_action: str | None,
                    body: bytes | None) -> Operation | None:
    """The operation a request addresses, as the service registered it; ValueError on bad SOAP."""
    operations = service.operations if isinstance(service, Service) else service.operation_defs
    if service.protocol == "soap":
        action = (soap_action or "").strip().strip('"') or None
        element: str | None = None
        for op in operations:
            if op.soap_action and action and op.soap_action == action:
                return op
        for op in operations:
            if op.body_element:
                if element is None:
                    element = soap_body_element(body or b"")
                if op.body_element == element:
                    return op
        return None
    method = method.upper()
    segments = tuple(rest[1:].split("/"))  # decoded segments hold no `/` (proxy.paths)
    for op in operations:
        if op.method == method and op.template is not None and template_matches(op.template, segments):
            return op
    return None


def decide(policy: Policy, consumer: str, sid: str, operation: str, today: date) -> Decision:
    """May `consumer` call `operation` of `sid` today? (R2 owner rights, R9/R10 status, grants)."""
    service = policy.services.get(sid)
    base = Decision(reason=None, sid=sid, operation=operation, consumer=consumer,
                    protocol=service.protocol if service else "rest", provider=policy.audience)
    if policy.status != "active":
        return _with(base, "provider-suspended")  # R9: a suspended participant is not called
    if policy.ends_on is not None and today >= policy.ends_on:
        return _with(base, "provider-terminated")  # R10
    caller = service.callers.get(consumer) if service else None
    if consumer == policy.audience and (caller is None or caller.grant == OWNER_GRANT):
        return _with(base, None, OWNER_GRANT)  # R2: the owner may always call its own services
    if caller is None:
        return _with(base, "no-grant")
    if caller.status == "suspended":
        return _with(base, "caller-suspended", caller.grant)  # R9
    if caller.ends_on is not None and today >= caller.ends_on:
        return _with(base, "caller-terminated", caller.grant)  # R10: no access from its end date
    if caller.valid_until is not None and today > caller.valid_until:
        return _with(base, "grant-expired", caller.grant)
    if caller.access != "full" and operation not in (caller.operations or frozenset()):
        return _with(base, "operation-not-granted", caller.grant)
    return _with(base, None, caller.grant)


def _with(base: Decision, reason: str | None, grant: str | None = None) -> Decision:
    return Decision(reason=reason, sid=base.sid, operation=base.operation, consumer=base.consumer,
                    grant=grant, protocol=base.protocol, provider=base.provider)


def deny(reason: str, **fields: Any) -> Decision:
    """A denial taken before a service/caller is known (no bundle, no certificate, unknown SID)."""
    return Decision(reason=reason, **fields)


def _locate[T](table: Mapping[str, T], path: str, consumer: str, missing: str) -> tuple[Target, T] | Decision:
    """The first steps of both directions: refuse ambiguous targets, route `/{SID}/...`, look the
    SID up in `table`; (target, entry), or the denial (`missing` when the SID is not in the table)."""
    target = parse_target(path)
    if target is None:
        return deny("malformed-request", consumer=consumer)
    entry = table.get(target.sid)
    if entry is None:
        return deny(missing, sid=target.sid or None, consumer=consumer)
    return target, entry


def evaluate(policy: Policy, consumer: str, method: str, path: str, soap_action: str | None,
             body: bytes | None, today: date) -> Decision:
    """Route `/{SID}/...`, find the operation, and decide; the whole inbound rule for one call."""
    located = _locate(policy.services, path, consumer, "unknown-sid")
    if isinstance(located, Decision):
        return located
    target, service = located
    sid = target.sid
    try:
        op = match_operation(service, method, "/" + "/".join(target.rest), soap_action, body)
    except ValueError:
        return deny("malformed-request", sid=sid, consumer=consumer, protocol=service.protocol)
    if op is None:
        return deny("unknown-operation", sid=sid, consumer=consumer, protocol=service.protocol)
    d = decide(policy, consumer, sid, op.name, today)
    if not d.allowed:
        return d
    return Decision(reason=None, sid=d.sid, operation=d.operation, consumer=d.consumer, grant=d.grant,
                    protocol=d.protocol, provider=d.provider, path=target.canonical)


def evaluate_outbound(policy: Policy, method: str, path: str, soap_action: str | None,
                      body: bytes | None, today: date) -> Decision:
    """May the audience itself call this (consumer side, DESIGN §7)? Allowed decisions name the
    provider's sidecar in `target`. An SID without a grant is `no-grant`: the consumer's bundle
    only knows the services it may call."""
    me = policy.audience
    located = _locate(policy.grants, path, me, "no-grant")
    if isinstance(located, Decision):
        return located
    target, grant = located
    sid = target.sid
    base = Decision(reason=None, sid=sid, consumer=me, protocol=grant.protocol,
                    provider=grant.provider, grant=grant.grant)
    if policy.status != "active":
        return _with(base, "caller-suspended", grant.grant)  # R9: a suspended participant cannot call
    if policy.ends_on is not None and today >= policy.ends_on:
        return _with(base, "caller-terminated", grant.grant)  # R10
    try:
        op = match_operation(grant, method, "/" + "/".join(target.rest), soap_action, body)
    except ValueError:
        return _with(base, "malformed-request", grant.grant)
    if op is None:
        return _with(base, "unknown-operation", grant.grant)
    allowed = Decision(reason=None, sid=sid, operation=op.name, consumer=me, grant=grant.grant,
                       protocol=grant.protocol, provider=grant.provider, target=grant.provider_sidecar,
                       path=target.canonical)
    if grant.valid_until is not None and today > grant.valid_until:
        return _with(allowed, "grant-expired", grant.grant)
    if grant.access != "full" and op.name not in (grant.operations or frozenset()):
        return _with(allowed, "operation-not-granted", grant.grant)
    return allowed

"""The decision: which service and operation a call addresses, and whether the caller may make it.

Pure functions over a parsed bundle (`Policy`); no mitmproxy import, so every rule is unit-tested
without a proxy. A `Decision` is allow, or deny with a stable reason code and the HTTP status the
sidecar answers with. Reason codes are part of the contract (journal, metrics, problem+json `code`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from compiler.templates import Segment, TemplateError
from compiler.trust import TrustError, parse_time
from proxy.errors import PolicyFormatError
from proxy.paths import Target, parse_target, template_matches
from proxy.paths import compile_template as compile_template
from proxy.soap.errors import MessageError
from proxy.soap.message import Message, read_message
from proxy.soap.profiles import PROFILES, Profile

OWNER_GRANT = "implicit:owner"

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
    "operation-mismatch": (403, "The SOAPAction names another operation than the message content"),
    "payload-invalid": (400, "The payload does not conform to the operation's schema"),
    "response-payload-invalid": (502, "The provider's response does not conform to the operation's schema"),
    "body-too-large": (413, "The request body is over the limit"),
    "target-too-long": (414, "The request target is over the limit"),
    "headers-too-large": (431, "The request headers are over the limit"),
    "header-refused": (400, "The request carries a header that overrides the method or path"),
    "no-valid-bundle": (503, "No valid policy bundle is in force"),
    "journal-unavailable": (503, "The journal cannot be written"),
    "signature-absent": (403, "The message must be signed by the caller"),  # R11
    "signature-invalid": (403, "The message signature is not valid for the caller's certificate"),
    "signature-unsupported": (403, "The message signature uses an algorithm that is not supported"),
    "signature-wrong-signer": (403, "The message is signed by a certificate the caller has not registered"),
    "signature-certificate-expired": (403, "The message's signing certificate is not valid now"),
    "signing-failed": (500, "The sidecar could not sign the message"),
    "internal-error": (500, "The sidecar failed while deciding on the message; nothing was forwarded"),
    "response-signature-invalid": (502, "The provider's answer is not signed by its registered signing certificate"),
    "replayed-message": (409, "The signed message was already received, or its time is outside the window"),
    "replay-check-failed": (503, "The sidecar could not check the message against those already received"),
}

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
    payload_element: str | None = None
    request_schema: str | None = None  # key into the bundle's `schemas` (provider side only)
    response_schema: str | None = None


@dataclass(frozen=True)
class Caller:
    participant: str
    access: str
    operations: frozenset[str] | None
    grant: str
    valid_until: date | None
    ends_on: date | None  # R10: the first day without access
    status: str
    signing_certificates: Mapping[str, CertInfo] = field(default_factory=dict)  # R11: sha256 -> cert


@dataclass(frozen=True)
class Service:
    sid: str
    protocol: str
    operations: tuple[Operation, ...]
    callers: Mapping[str, Caller]
    signed_messages: bool = False  # R11: SOAP requests must carry the caller's signature
    profile: Profile = "plain"
    classification: str | None = None  # R14: travels with every message of the service
    by_element: Mapping[str, Operation] = field(default_factory=dict)  # SOAP: content → operation


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
    profile: Profile = "plain"
    classification: str | None = None
    by_element: Mapping[str, Operation] = field(default_factory=dict)
    provider_certificates: frozenset[str] = frozenset()  # outbound TLS accepts only these (sha256)
    signed_messages: bool = False  # R11: the consumer's sidecar signs requests (smev3) with its signer
    provider_signing_certificates: Mapping[str, CertInfo] = field(default_factory=dict)  # R11: its answers


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
    definition: Operation | None = None  # the matched operation, as the bundle defines it
    message: Message | None = None  # SOAP: the one parse of the request (proxy.soap)
    classification: str | None = None  # R14
    detail: str | None = None  # payload-invalid: the first violation, for the caller

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def status(self) -> int:
        return 200 if self.reason is None else REASONS[self.reason][0]


def replace(decision: Decision, **changes: Any) -> Decision:
    """`dataclasses.replace` for a Decision without its per-field machinery: a copy of the
    instance dict with `changes` applied. The hot path makes several per request, and
    dataclasses.replace was a third of a REST decision's CPU (bench/soap_bench.py, in-process)."""
    new = object.__new__(Decision)
    new.__dict__.update(decision.__dict__)
    new.__dict__.update(changes)
    return new


def parse_policy(signed: Mapping[str, Any]) -> Policy:
    """Index the `signed` part of a verified bundle; PolicyFormatError if a field is malformed."""
    try:
        participant = signed["participant"]
        table = {fp: _cert(fp, c) for fp, c in (signed.get("certificates") or {}).items()}
        signing_table = {fp: _cert(fp, c) for fp, c in (signed.get("signing_certificates") or {}).items()}
        certificates: dict[str, CertInfo] = {}
        _add_certs(certificates, table, participant["id"], participant.get("certificates") or [])
        services = {}
        for sid, svc in (signed.get("services") or {}).items():
            callers = {}
            for pid, c in (svc.get("callers") or {}).items():
                _add_certs(certificates, table, pid, c.get("certificates") or [])
                signing: dict[str, CertInfo] = {}
                _add_certs(signing, signing_table, pid, c.get("signing_certificates") or [])
                ops = c.get("operations")
                callers[pid] = Caller(
                    participant=pid, access=c["access"],
                    operations=frozenset(ops) if ops is not None else None,
                    grant=c.get("grant") or "", valid_until=_date(c.get("valid_until")),
                    ends_on=_date(c.get("ends_on", c.get("active_until"))),
                    status=c.get("status", "active"), signing_certificates=signing)
            operations = tuple(_operation(name, op) for name, op in
                               sorted((svc.get("operations") or {}).items()))
            profile = _profile(svc)
            services[sid] = Service(sid=sid, protocol=svc.get("protocol", "rest"),
                                    operations=operations, callers=callers,
                                    signed_messages=svc.get("signed_messages") is True,
                                    profile=profile, classification=svc.get("classification"),
                                    by_element=_by_element(sid, profile, operations))
        return Policy(audience=participant["id"], status=participant.get("status", "active"),
                      ends_on=_date(participant.get("ends_on")),
                      services=services, certificates=certificates,
                      grants={sid: _grant(sid, g, table, signing_table)
                              for sid, g in (signed.get("grants") or {}).items()})
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


def _grant(sid: str, g: Mapping[str, Any], table: Mapping[str, CertInfo],
           signing_table: Mapping[str, CertInfo]) -> Grant:
    ops = g.get("operations")
    defs = tuple(_operation(n, op) for n, op in sorted((g.get("operation_defs") or {}).items()))
    profile = _profile(g)
    pinned: dict[str, CertInfo] = {}
    _add_certs(pinned, table, g["provider"], g.get("provider_certificates") or [])
    answers: dict[str, CertInfo] = {}
    _add_certs(answers, signing_table, g["provider"], g.get("provider_signing_certificates") or [])
    return Grant(sid=sid, provider=g["provider"], provider_sidecar=str(g["provider_sidecar"]).rstrip("/"),
                 protocol=g.get("protocol", "rest"), access=g["access"],
                 operations=frozenset(ops) if ops is not None else None,
                 operation_defs=defs,
                 grant=g.get("grant") or "", valid_until=_date(g.get("valid_until")),
                 profile=profile, classification=g.get("classification"),
                 by_element=_by_element(sid, profile, defs), provider_certificates=frozenset(pinned),
                 signed_messages=g.get("signed_messages") is True, provider_signing_certificates=answers)


def _profile(svc: Mapping[str, Any]) -> Profile:
    profile = svc.get("profile", "plain")
    if profile not in PROFILES:
        raise ValueError(f"unknown message profile {profile!r}")
    return profile  # type: ignore[no-any-return]


def _by_element(sid: str, profile: Profile, operations: tuple[Operation, ...]) -> dict[str, Operation]:
    """SOAP operations by the element that identifies them (body element, or SMEV 3 payload).

    Two operations on one element would make the choice depend on order: the bundle is refused
    (`reestr validate` reports it as OP-route-duplicate before anything is signed)."""
    out: dict[str, Operation] = {}
    for op in operations:
        element = op.payload_element if profile == "smev3" else op.body_element
        if element is None:
            continue
        if element in out:
            raise ValueError(f"{sid}: operations {out[element].name} and {op.name} share {element}")
        out[element] = op
    return out


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _operation(name: str, op: Mapping[str, Any]) -> Operation:
    path = op.get("path")
    return Operation(name=name, method=(op.get("method") or "").upper() or None, path=path,
                     soap_action=op.get("soap_action"), body_element=op.get("body_element"),
                     template=compile_template(path) if path else None,
                     payload_element=op.get("payload_element"),
                     request_schema=op.get("request_schema"), response_schema=op.get("response_schema"))


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


@dataclass(frozen=True, slots=True)
class Request:
    """What the decision reads of an HTTP request: nothing else of it can change the outcome."""

    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    soap_actions: tuple[str, ...] = ()  # every SOAPAction header, as sent


def match_rest(operations: tuple[Operation, ...], method: str, segments: tuple[str, ...]) -> Operation | None:
    """The REST operation a request addresses: method + path template, over the decoded segments
    after the SID (they hold no `/`: proxy.paths), in time linear in the path."""
    method = method.upper()
    for op in operations:
        if op.method == method and op.template is not None and template_matches(op.template, segments):
            return op
    return None


def match_soap(service: Service | Grant, request: Request) -> tuple[str | None, Operation | None, Message]:
    """Read the SOAP request once and find its operation by content (MessageError if unreadable).

    Returns (reason, operation, message): reason None with the operation, `unknown-operation`
    when no operation has the message's element, `operation-mismatch` when a SOAPAction was sent
    that does not name that same operation (a Body of one operation must not pass under the
    action of another, nor the reverse).
    """
    message = read_message(request.body, request.content_type, list(request.soap_actions), service.profile)
    if service.profile == "smev3" and message.version != "1.1":
        raise MessageError("SMEV 3 speaks SOAP 1.1")
    element = message.content.element
    op = service.by_element.get(element) if element is not None else None
    if op is None:
        return "unknown-operation", None, message
    if not _action_names(op, message, service.profile):
        return "operation-mismatch", op, message
    return None, op, message


def _action_names(op: Operation, message: Message, profile: Profile) -> bool:
    """A sent action must be the operation's own; without a registered one, SMEV 3 transport
    actions (`urn:SendRequest` for `SendRequestRequest` ...) are the only ones that fit."""
    action = message.action
    if action is None:
        return True
    if op.soap_action is not None:
        return action == op.soap_action
    if profile == "smev3":
        transport = message.content.transport.rpartition("}")[2]
        return action == "urn:" + transport.removesuffix("Request")
    return False


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
    return replace(base, reason=reason, grant=grant)


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


def evaluate(policy: Policy, consumer: str, request: Request, today: date) -> Decision:
    """Route `/{SID}/...`, find the operation, and decide; the whole inbound rule for one call."""
    located = _locate(policy.services, request.path, consumer, "unknown-sid")
    if isinstance(located, Decision):
        return located
    target, service = located
    sid = target.sid
    base = Decision(reason=None, sid=sid, consumer=consumer, protocol=service.protocol,
                    provider=policy.audience, classification=service.classification)
    op, reason, message = _match(service, request, target)
    if op is None or reason is not None:
        return replace(base, reason=reason or "unknown-operation", message=message,
                       operation=op.name if op else None)
    decision = replace(decide(policy, consumer, sid, op.name, today), definition=op, message=message,
                       classification=service.classification)
    return replace(decision, path=target.canonical) if decision.allowed else decision


def _match(service: Service | Grant, request: Request,
           target: Target) -> tuple[Operation | None, str | None, Message | None]:
    """(operation, refusal reason, SOAP message) of a request to one service."""
    if service.protocol != "soap":
        return match_rest(_operations(service), request.method, target.rest), None, None
    try:
        reason, op, message = match_soap(service, request)
    except MessageError:
        return None, "malformed-request", None
    return op, reason, message


def _operations(service: Service | Grant) -> tuple[Operation, ...]:
    return service.operations if isinstance(service, Service) else service.operation_defs


def evaluate_outbound(policy: Policy, request: Request, today: date) -> Decision:
    """May the audience itself call this (consumer side, DESIGN §7)? Allowed decisions name the
    provider's sidecar in `target`. An SID without a grant is `no-grant`: the consumer's bundle
    only knows the services it may call."""
    me = policy.audience
    located = _locate(policy.grants, request.path, me, "no-grant")
    if isinstance(located, Decision):
        return located
    target, grant = located
    sid = target.sid
    base = Decision(reason=None, sid=sid, consumer=me, protocol=grant.protocol,
                    provider=grant.provider, grant=grant.grant, classification=grant.classification)
    if policy.status != "active":
        return _with(base, "caller-suspended", grant.grant)  # R9: a suspended participant cannot call
    if policy.ends_on is not None and today >= policy.ends_on:
        return _with(base, "caller-terminated", grant.grant)  # R10
    op, reason, message = _match(grant, request, target)
    base = replace(base, message=message)
    if op is None or reason is not None:
        return replace(base, reason=reason or "unknown-operation", operation=op.name if op else None)
    allowed = replace(base, operation=op.name, target=grant.provider_sidecar, definition=op,
                      path=target.canonical)
    if grant.valid_until is not None and today > grant.valid_until:
        return _with(allowed, "grant-expired", grant.grant)
    if grant.access != "full" and op.name not in (grant.operations or frozenset()):
        return _with(allowed, "operation-not-granted", grant.grant)
    return allowed

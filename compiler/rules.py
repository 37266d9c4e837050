"""Domain rules on a loaded registry: references, uniqueness, dates, and R1–R10 of DESIGN §3.

`check` returns every problem at once, each pointing at the node that is wrong. It reads only the
Registry (and, for payload schema references, the files beside it); it never prints or raises
for bad content. Codes are stable: CI, docs and suppression lists name them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from compiler import certs, payload_schemas
from compiler.access import inactive_reason
from compiler.errors import Problem, Severity, excerpt
from compiler.models import (
    Access,
    Classification,
    Operation,
    Participant,
    ParticipantType,
    Profile,
    Protocol,
    Service,
    Status,
)
from compiler.registry import Registry, Source
from compiler.templates import template_problem

DEPRECATION_NOTICE = timedelta(days=30)        # R7, seed 000 2.2.13: one month
CLASSIFICATION_NOTICE = timedelta(days=60)     # R8, seed 002 6.6.1

WARNING = Severity.WARNING


def check(registry: Registry, today: date, repo_root: Path | None = None) -> list[Problem]:
    """Every domain problem of `registry` on `today`; payload schema files resolve under repo_root."""
    problems: list[Problem] = []
    fingerprints: dict[str, str] = {}
    for pid, participant in sorted(registry.participants.items()):
        problems += _participant(participant, registry.source("Participant", pid), today, fingerprints)
    for sid, service in sorted(registry.services.items()):
        problems += _service(service, registry, registry.source("Service", sid), repo_root)
    operations = {sid: {op.name: op for op in svc.spec.operations} for sid, svc in registry.services.items()}
    for consumer in sorted(registry.sheets):
        problems += _sheet(registry, consumer, today, operations)
    return sorted(problems)


# --- participants -------------------------------------------------------------------------------


def _participant(p: Participant, src: Source, today: date, seen: dict[str, str]) -> Iterator[Problem]:
    spec = p.spec
    if spec.status is Status.SUSPENDED and spec.suspension is None:
        yield Problem(*src.at("spec", "status"), "R9-suspension-record",
                      "a suspended participant needs `suspension: {since, reason}` (000 4.1–4.3)")
    if spec.status is Status.ACTIVE and spec.suspension is not None:
        yield Problem(*src.at("spec", "suspension"), "R9-suspension-record",
                      "`suspension` is set but status is active: reinstate by removing it")
    termination = spec.agreement.termination
    if termination is not None:
        if termination.notified < spec.agreement.signed or termination.end < termination.notified:
            yield Problem(*src.at("spec", "agreement", "termination"), "DATE-order",
                          "expected agreement signed ≤ termination notified ≤ end")
        elif termination.end - termination.notified < timedelta(days=spec.agreement.notice_days):
            yield Problem(*src.at("spec", "agreement", "termination", "end"), "R10-notice-too-short",
                          f"termination ends {(termination.end - termination.notified).days} days "
                          f"after notice; the agreement requires {spec.agreement.notice_days}")
    for i, cert in enumerate(spec.certificates):
        yield from _certificate(cert.pem, src, i, today, p.metadata.id, seen)
    for i, cert in enumerate(spec.signing_certificates):
        yield from _certificate(cert.pem, src, i, today, p.metadata.id, seen, "signing_certificates")


def _certificate(pem: str, src: Source, i: int, today: date, owner: str,
                 seen: dict[str, str], field: str = "certificates") -> Iterator[Problem]:
    where = src.at("spec", field, i, "pem")
    try:
        cert = certs.read(pem)
    except ValueError:
        yield Problem(*where, "CERT-invalid",
                      "not a PEM X.509 certificate: exactly one CERTIFICATE block, nothing around it")
        return
    fingerprint = cert.sha256
    if fingerprint in seen and seen[fingerprint] != owner:
        yield Problem(*where, "UNIQ-certificate",
                      f"certificate {fingerprint[:16]}… is already registered to {seen[fingerprint]}")
    seen.setdefault(fingerprint, owner)
    if cert.not_after.date() < today:
        yield Problem(*where, "CERT-expired", f"certificate expired on {cert.not_after.date().isoformat()}", WARNING)


# --- services -----------------------------------------------------------------------------------


def _service(svc: Service, registry: Registry, src: Source, repo_root: Path | None) -> Iterator[Problem]:
    spec = svc.spec
    owner = registry.participants.get(spec.owner)
    if owner is None and not registry.exists("Participant", spec.owner):
        yield Problem(*src.at("spec", "owner"), "REF-unknown-participant",
                      f"owner {spec.owner!r} is not a registered participant")
    elif owner is not None and owner.spec.sidecar is None:
        yield Problem(*src.at("spec", "owner"), "REF-sidecar-missing",
                      f"owner {spec.owner} has no sidecar address: consumers cannot reach {svc.metadata.sid}",
                      WARNING)
    if spec.classification is Classification.STATE_SECRET:
        yield Problem(*src.at("spec", "classification"), "R6-state-secret",
                      "messages with state secrets are never processed (004 §8)")
    planned = spec.planned_classification
    if planned is not None and planned.effective - planned.announced < CLASSIFICATION_NOTICE:
        yield Problem(*src.at("spec", "planned_classification", "effective"), "R8-classification-notice",
                      f"announced {(planned.effective - planned.announced).days} days ahead; "
                      "a classification change needs 60 (002 6.6.1)")
    names: dict[str, int] = {}
    for i, op in enumerate(spec.operations):
        at = ("spec", "operations", i)
        if op.name in names:
            yield Problem(*src.at(*at, "name"), "UNIQ-operation",
                          f"operation {op.name!r} is already defined (operation #{names[op.name] + 1})")
        names.setdefault(op.name, i)
        if op.deprecation is not None and op.deprecation.sunset - op.deprecation.announced < DEPRECATION_NOTICE:
            yield Problem(*src.at(*at, "deprecation", "sunset"), "R7-deprecation-notice",
                          f"sunset {(op.deprecation.sunset - op.deprecation.announced).days} days after "
                          "the announcement; a new version is announced a month ahead (000 2.2.13)")
    yield from _routes(svc, src)
    if repo_root is not None:
        yield from _payload_schemas(svc, src, payload_schemas.service_reader(repo_root, svc.metadata.sid))


# --- how a request finds its operation ----------------------------------------------------------

_REST_ONLY = ("method", "path")
_SOAP_ONLY = ("soap_action", "body_element", "payload_element")


def _routes(svc: Service, src: Source) -> Iterator[Problem]:
    """Each operation has the route its protocol and profile match on, and no two operations can
    match the same request, whatever their order (the sidecar must never have to choose).

    REST: method + path template. SOAP `plain`: the Body's element (a SOAPAction, when sent, must
    name the same operation, so it cannot identify one alone). SOAP `smev3`: the payload's root
    element; the SOAPAction is the transport's, the same for every kind of information, so
    operations may share it.
    """
    spec = svc.spec
    seen: dict[tuple[str, object], str] = {}
    for i, op in enumerate(spec.operations):
        at = ("spec", "operations", i)
        keys: list[tuple[str, object]] = []
        if spec.protocol is Protocol.REST:
            yield from _unexpected(op, src, at, _SOAP_ONLY, "a REST operation is matched by method + path")
            if op.method and op.path:
                keys.append(("method + path", (op.method, _template_shape(op.path))))
                if why := template_problem(op.path):  # matched in linear time, or refused
                    yield Problem(*src.at(*at, "path"), "OP-path-template", f"path template: {why}")
            else:
                yield Problem(*src.at(*at), "OP-route-missing", f"REST operation {op.name} needs method and path")
        else:
            yield from _unexpected(op, src, at, _REST_ONLY, "a SOAP operation is matched by its message")
            element_field = "payload_element" if spec.profile is Profile.SMEV3 else "body_element"
            other = "body_element" if element_field == "payload_element" else "payload_element"
            if getattr(op, other) is not None:
                why = ("in SMEV 3 the Body's element is the transport's (SendRequestRequest, ...): name "
                       "the payload's root element with payload_element" if spec.profile is Profile.SMEV3
                       else "payload_element is for services with profile smev3; a plain SOAP operation "
                       "is matched by body_element")
                yield Problem(*src.at(*at, other), "OP-route-unexpected", f"operation {op.name}: {why}")
            element = getattr(op, element_field)
            if element is None:
                yield Problem(*src.at(*at), "OP-route-missing",
                              f"SOAP operation {op.name} needs {element_field} ({{namespace}}Local): the "
                              "sidecar identifies an operation by the message, a SOAPAction alone does not")
            else:
                keys.append((element_field, element))
            if op.soap_action is not None and spec.profile is not Profile.SMEV3:
                keys.append(("soap_action", op.soap_action))
        for key in keys:
            if key in seen:
                node = (*at, key[0]) if key[0] in _SOAP_ONLY else at
                yield Problem(*src.at(*node), "OP-route-duplicate",
                              f"operation {op.name} matches the same requests as {seen[key]} "
                              f"(same {key[0]}): the sidecar could not tell them apart")
            else:
                seen[key] = op.name


def _unexpected(op: Operation, src: Source, at: tuple[str | int, ...], fields: tuple[str, ...],
                why: str) -> Iterator[Problem]:
    for field in fields:
        if getattr(op, field) is not None:
            yield Problem(*src.at(*at, field), "OP-route-unexpected",
                          f"operation {op.name}: {why}; {field} does not belong here")


def _payload_schemas(svc: Service, src: Source, read: payload_schemas.Reader) -> Iterator[Problem]:
    """Every registered schema lies in the service's folder, is of its protocol's kind, compiles
    with its whole include/import closure, and (SOAP requests) declares the operation's element."""
    spec = svc.spec
    sid = svc.metadata.sid
    for i, op in enumerate(spec.operations):
        for field in ("request_schema", "response_schema"):
            ref = getattr(op, field)
            if not ref:
                continue
            where = src.at("spec", "operations", i, field)
            try:
                schema = payload_schemas.load(sid, ref, spec.protocol.value, read)
                payload_schemas.check(schema)
            except payload_schemas.MissingSchemaError:
                yield Problem(*where, "REF-unknown-schema-file", f"{ref} does not exist")
                continue
            except payload_schemas.PayloadSchemaError as e:
                yield Problem(*where, "SCHEMA-payload-invalid", f"{ref}: {e}" if e.file not in (None, ref) else str(e))
                continue
            element = op.payload_element if spec.profile is Profile.SMEV3 else op.body_element
            if (field == "request_schema" and spec.protocol is Protocol.SOAP and element is not None
                    and element not in payload_schemas.global_elements(schema)):
                yield Problem(*where, "SCHEMA-payload-invalid",
                              f"{ref} (with its imports) declares no global element {element}: "
                              f"the request payload of {op.name} could never be valid")


def _template_shape(path: str | None) -> str:
    """A path template with parameter names erased: /a/{x} and /a/{y} match the same requests.

    A segment (between slashes) that starts with `{` and ends with `}` becomes `{}`.
    """
    path = path or ""
    return _PARAMETER.sub("{}", path) if "{" in path else path


_PARAMETER = re.compile(r"(?<![^/])\{[^/]*\}(?![^/])")


# --- legal basis ------------------------------------------------------------------------------

PLACEHOLDERS = frozenset({
    "нет", "не требуется", "не требуется.", "отсутствует", "нет основания", "без основания",
    "см. выше", "см выше", "тоже", "то же", "-", "—", "n/a", "na", "none", "no", "null", "tbd",
    "todo", "fixme", "xxx", "x", "?", "test", "тест", "основание", "закон", "нпа", "уточняется",
    "будет позже", "позже", "нд", "н/д", "...", "…",
})
"""Texts that stand in for an act instead of naming one, compared case-insensitively with the
whitespace collapsed (R4: the grant rests on a named normative act)."""


def placeholder(text: str) -> str | None:
    """Why `text` does not name an act (has no letter or digit, or is a common placeholder), or None."""
    folded = " ".join(text.split()).casefold()
    if not any(c.isalnum() for c in folded):
        return "has no letters or digits"
    if folded in PLACEHOLDERS:
        return f"is a placeholder ({excerpt(text)})"
    return None


# --- access sheets ------------------------------------------------------------------------------


def _sheet(registry: Registry, consumer: str, today: date,
           operations: dict[str, dict[str, Operation]]) -> Iterator[Problem]:
    """R1–R5, R7, R9/R10 and references of one access sheet; `operations`: by name, by SID."""
    sheet = registry.sheets[consumer]
    src = registry.source("AccessSheet", consumer)
    participant = registry.participants.get(consumer)
    if participant is None:
        if not registry.exists("Participant", consumer):  # else its own file reports its problems
            yield Problem(*src.at("metadata", "consumer"), "REF-unknown-participant",
                          f"consumer {consumer!r} is not a registered participant")
    elif participant.spec.type is ParticipantType.OPERATOR and sheet.spec.grants:
        yield Problem(*src.at("spec", "grants"), "R2-operator-grant",
                      "the operator's default rights are not written in access sheets (001 App. 2 note 2)")
    elif (state := inactive_reason(participant, today)) is not None and sheet.spec.grants:
        code = "R9-suspended-consumer" if state[0] == "suspended" else "R10-terminated-consumer"
        yield Problem(*src.at("metadata", "consumer"), code,
                      f"{consumer}: {state[1]}; its grants are not compiled", WARNING)
    granted: dict[str, int] = {}
    for i, grant in enumerate(sheet.spec.grants):
        at = ("spec", "grants", i)
        if grant.service in granted:
            yield Problem(*src.at(*at, "service"), "R1-duplicate-grant",
                          f"{grant.service} is already granted in this sheet (grant #{granted[grant.service] + 1}); "
                          "one row per service")
        granted.setdefault(grant.service, i)
        if not (grant.legal_basis or "").strip():
            yield Problem(*src.at(*at, "legal_basis") if grant.legal_basis is not None else src.at(*at),
                          "R4-legal-basis-missing",
                          "access is granted only with the normative act that gives the power (004 §13)")
        elif (why := placeholder(grant.legal_basis or "")) is not None:
            yield Problem(*src.at(*at, "legal_basis"), "R4-legal-basis-placeholder",
                          f"legal basis {why}: name the normative act that gives the power (004 §13)")
        if grant.access is Access.FULL and grant.operations is not None:
            yield Problem(*src.at(*at, "operations"), "R3-full-with-operations",
                          "access `full` lists no operations (001 App. 2 note 3)")
        if grant.access is Access.OPERATIONS and not grant.operations:
            yield Problem(*src.at(*at, "operations") if grant.operations is not None else src.at(*at, "access"),
                          "R3-operations-missing", "access `operations` must list at least one operation")
        if grant.valid_until is not None and grant.valid_until < today:
            yield Problem(*src.at(*at, "valid_until"), "GRANT-expired",
                          f"expired on {grant.valid_until.isoformat()}: it is not compiled", WARNING)
        service = registry.services.get(grant.service)
        if service is None:
            if not registry.exists("Service", grant.service):
                yield Problem(*src.at(*at, "service"), "REF-unknown-service", f"{grant.service} is not registered")
            continue
        yield from _grant_vs_service(grant.access, grant.operations or [], grant.justification, service,
                                     operations[grant.service], consumer, src, at, today)


def _grant_vs_service(access: Access, operations: list[str], justification: str | None, service: Service,
                      ops: dict[str, Operation], consumer: str, src: Source, at: tuple[str | int, ...],
                      today: date) -> Iterator[Problem]:
    if service.spec.owner == consumer:
        yield Problem(*src.at(*at, "service"), "R2-owner-grant",
                      f"{consumer} owns {service.metadata.sid}: the owner's rights are implicit (001 App. 2 note 2)")
    if (access is Access.FULL and service.spec.classification is Classification.PERSONAL_DATA
            and not justification):
        yield Problem(*src.at(*at, "access"), "R5-full-personal-data",
                      f"full access to {service.metadata.sid} (personal data) without `justification`: "
                      "grant only the operations needed (004 §13)", WARNING)
    for j, name in enumerate(operations):
        if name not in ops:
            yield Problem(*src.at(*at, "operations", j), "REF-unknown-operation",
                          f"{service.metadata.sid} has no operation {name!r}")
            continue
        deprecation = ops[name].deprecation
        if deprecation is not None and deprecation.sunset <= today:
            yield Problem(*src.at(*at, "operations", j), "R7-sunset-passed",
                          f"{name} reached its sunset on {deprecation.sunset.isoformat()}", WARNING)

"""What a registry change does to access: the plan a reviewer reads before approving a pull request.

`plan(base, head, today)` compares two loaded registries. Access is compared as it is *in force*
on `today` on both sides (`access.effective_rights`, the same logic the bundle compiler uses), so a
suspension or a termination shows up as the revocations it causes, and a new operation on a
service shows up as a widening for every consumer with `full` access to it.

Every change names who must approve it: the owner of each affected service (access is given in
agreement with the owner: 000 2.1.4, 001 2.1.4), the consumer when its own access sheet changed,
a participant for its own file, and the operator always. Rendering lives in `compiler.plan_render`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from compiler import certs
from compiler.access import IMPLICIT_OWNER, decide, effective_rights
from compiler.models import Classification, Operation, Participant, ParticipantType, Service, Status
from compiler.registry import Registry
from compiler.unloaded import reconcile

FORMAT_VERSION = 1

KINDS = (
    "access-granted", "access-widened", "classification-changed", "classification-planned",
    "access-narrowed", "access-revoked", "legal-basis-changed",
    "service-added", "service-removed", "service-owner-changed", "service-deprecated",
    "operation-added", "operation-removed", "operation-changed", "operation-deprecated",
    "participant-joined", "participant-suspended", "participant-reinstated",
    "participant-terminated", "participant-removed", "certificate-added", "certificate-removed",
    "grant-changed", "service-changed", "participant-changed",
)
"""Every change kind, in the order the plan lists them (widening first)."""

WIDENING = frozenset({"access-granted", "access-widened"})


@dataclass(frozen=True)
class Change:
    """One effective change. `approvers` pairs a participant id with why it must approve."""

    kind: str
    sid: str | None = None
    consumer: str | None = None
    participant: str | None = None
    operation: str | None = None
    operations: tuple[str, ...] = ()
    before: str | None = None
    after: str | None = None
    detail: str = ""
    where: str | None = None
    field: str | None = None  # grant-, service-, participant-changed: the field that changed
    widening: bool = False
    personal_data: bool = False
    approvers: tuple[tuple[str, str], ...] = ()

    def sort_key(self) -> tuple[Any, ...]:
        return (KINDS.index(self.kind), self.sid or "", self.consumer or self.participant or "",
                self.operation or "", self.field or "", self.before or "", self.after or "")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sid": self.sid, "consumer": self.consumer,
                "participant": self.participant, "operation": self.operation,
                "operations": list(self.operations), "before": self.before, "after": self.after,
                "detail": self.detail, "where": self.where, "field": self.field,
                "widening": self.widening,
                "personal_data": self.personal_data,
                "approvers": sorted({pid for pid, _ in self.approvers})}


@dataclass(frozen=True)
class Approver:
    """A participant whose review team must approve, why, and which changes (plan indices)."""

    participant: str
    review_team: str | None
    roles: tuple[str, ...]
    changes: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"participant": self.participant, "review_team": self.review_team,
                "roles": list(self.roles), "changes": list(self.changes)}


@dataclass(frozen=True)
class Plan:
    """The changes in plan order, the approvers by participant id, and warnings about the inputs."""

    today: date
    changes: tuple[Change, ...]
    approvers: tuple[Approver, ...]
    warnings: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # documents that did not load: the plan cannot judge the change

    def counts(self) -> dict[str, int]:
        return dict(Counter(c.kind for c in self.changes))

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "today": self.today.isoformat(),
                "summary": {"changes": len(self.changes), "by_kind": self.counts(),
                            "widening": sum(c.widening for c in self.changes),
                            "personal_data": sum(c.personal_data for c in self.changes),
                            "approvers": len(self.approvers)},
                "changes": [c.as_dict() for c in self.changes],
                "approvers": [a.as_dict() for a in self.approvers],
                "warnings": list(self.warnings), "blocked": list(self.blocked)}


@dataclass
class _Ctx:
    base: Registry
    head: Registry
    today: date
    operators: tuple[str, ...]
    changes: list[Change] = field(default_factory=list)

    def service(self, sid: str) -> Service | None:
        return self.head.services.get(sid) or self.base.services.get(sid)

    def owners(self, sid: str) -> list[tuple[str, str]]:
        found = {svc.spec.owner for svc in (self.base.services.get(sid), self.head.services.get(sid))
                 if svc is not None}
        return [(pid, f"owner of {sid}") for pid in sorted(found)]

    def add(self, change: Change, approvers: Iterable[tuple[str, str]]) -> None:
        everyone = {*approvers, *((pid, "operator") for pid in self.operators)}
        self.changes.append(replace(change, approvers=tuple(sorted(everyone))))


def plan(base: Registry, head: Registry, today: date) -> Plan:
    """The effective access change from `base` to `head` on `today`, with required approvers.

    A document that did not load on one side is compared as the other side has it (no change) and
    named in `blocked` (compiler.unloaded): the plan cannot judge the change until it loads."""
    both = reconcile(base, head)
    base, head = both.base, both.head
    operators = _operators(head) or _operators(base)
    ctx = _Ctx(base, head, today, operators)
    _access_changes(ctx)
    _legal_basis_changes(ctx)
    _grant_field_changes(ctx)
    _service_changes(ctx)
    _participant_changes(ctx)
    changes = tuple(sorted(ctx.changes, key=Change.sort_key))
    warnings = [f"{side}: {len(reg.problems)} problem(s) while loading; run `reestr validate`"
                for side, reg in (("base", base), ("head", head)) if reg.problems]
    if not operators:
        warnings.append("no participant of type operator: the operator's approval cannot be named")
    return Plan(today, changes, _approvers(ctx, changes), tuple(warnings), tuple(both.notice()))


def _operators(registry: Registry) -> tuple[str, ...]:
    return tuple(sorted(pid for pid, p in registry.participants.items()
                        if p.spec.type is ParticipantType.OPERATOR))


def _approvers(ctx: _Ctx, changes: tuple[Change, ...]) -> tuple[Approver, ...]:
    roles: dict[str, set[str]] = {pid: {"operator"} for pid in ctx.operators}
    indices: dict[str, set[int]] = {pid: set() for pid in ctx.operators}
    for i, change in enumerate(changes):
        for pid, role in change.approvers:
            roles.setdefault(pid, set()).add(role)
            indices.setdefault(pid, set()).add(i)
    out = []
    for pid in sorted(roles):
        participant = ctx.head.participants.get(pid) or ctx.base.participants.get(pid)
        team = participant.spec.review_team if participant is not None else None
        out.append(Approver(pid, team, tuple(sorted(roles[pid])), tuple(sorted(indices[pid]))))
    return tuple(out)


# --- access ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Access:
    full: bool
    ops: frozenset[str]
    where: str


def _in_force(registry: Registry, today: date) -> dict[tuple[str, str], _Access]:
    """(consumer, sid) → effective access today; implicit owner rights (R2) are left out."""
    kept, _ = effective_rights(registry, today)
    table: dict[tuple[str, str], _Access] = {}
    for right in kept:
        if right.where == IMPLICIT_OWNER:
            continue
        every = frozenset(op.name for op in registry.services[right.sid].spec.operations)
        ops = every if right.operations is None else right.operations & every
        if not ops and right.operations is not None:
            continue  # only unknown operations listed: nothing is callable
        key = (right.consumer, right.sid)
        prev = table.get(key)
        if prev is not None:
            table[key] = _Access(prev.full or right.operations is None, prev.ops | ops, prev.where)
        else:
            where = _where(registry, "AccessSheet", right.consumer, "spec", "grants", right.index or 0)
            table[key] = _Access(right.operations is None, ops, where or right.where)
    return table


def _label(access: _Access) -> str:
    return "full" if access.full else "operations"


def _access_changes(ctx: _Ctx) -> None:
    before, after = _in_force(ctx.base, ctx.today), _in_force(ctx.head, ctx.today)
    for consumer, sid in sorted(before.keys() | after.keys()):
        b, h = before.get((consumer, sid)), after.get((consumer, sid))
        service = ctx.service(sid)
        personal = (service is not None
                    and service.spec.classification is Classification.PERSONAL_DATA)
        approvers = ctx.owners(sid)
        if _sheet_changed(ctx, consumer, sid):
            approvers.append((consumer, "consumer"))  # the consumer for its own sheet (R1)
        proto = Change("access-granted", sid=sid, consumer=consumer)
        why = next((g.justification for g in _grants(ctx.head, consumer, sid) if g.justification), None)
        if b is None and h is not None:
            ctx.add(replace(proto, operations=tuple(sorted(h.ops)), after=_label(h), where=h.where,
                             detail=_describe(h, personal, why), widening=True, personal_data=personal),
                    approvers)
        elif b is not None and h is None:
            gone = decide(ctx.head, consumer, sid, None, ctx.today)
            ctx.add(replace(proto, kind="access-revoked", operations=tuple(sorted(b.ops)),
                             before=_label(b), where=f"base {b.where}",
                             detail=f"{gone.reason}: {gone.message}"), approvers)
        elif b is not None and h is not None:
            gained, lost = h.ops - b.ops, b.ops - h.ops
            if gained or (h.full and not b.full):
                ctx.add(replace(proto, kind="access-widened", operations=tuple(sorted(gained)),
                                 before=_label(b), after=_label(h), where=h.where,
                                 detail=_describe(h, personal, why), widening=True,
                                 personal_data=personal), approvers)
            if lost or (b.full and not h.full):
                ctx.add(replace(proto, kind="access-narrowed", operations=tuple(sorted(lost)),
                                 before=_label(b), after=_label(h), where=h.where,
                                 detail=_describe(h, personal)), approvers)


def _describe(access: _Access, personal: bool, justification: str | None = None) -> str:
    text = ("full access (all operations, present and future)" if access.full
            else "operations " + ", ".join(sorted(access.ops)))
    if personal:
        text += "; personal data (R5)"
        if access.full and not justification:
            text += ": full access needs a justification"
    if justification:
        text += f"; justification: {justification}"
    return text


def _grants(registry: Registry, consumer: str, sid: str) -> tuple[Any, ...]:
    sheet = registry.sheets.get(consumer)
    return () if sheet is None else tuple(g for g in sheet.spec.grants if g.service == sid)


def _sheet_changed(ctx: _Ctx, consumer: str, sid: str) -> bool:
    return _grants(ctx.base, consumer, sid) != _grants(ctx.head, consumer, sid)


GRANT_FIELDS = ("purpose", "justification", "valid_until")
SERVICE_FIELDS = ("name", "protocol", "profile", "signed_messages", "legal_basis", "tariff")
PARTICIPANT_FIELDS = ("name", "type", "review_team", "sidecar", "agreement")


def _show(value: Any) -> str | None:
    """A field's value as the plan shows it: enums by value, dates ISO, models as compact JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "model_dump"):
        import json
        return json.dumps(value.model_dump(mode="json", exclude_none=True), ensure_ascii=False,
                          sort_keys=True)
    return str(getattr(value, "value", value))


def _grant_field_changes(ctx: _Ctx) -> None:
    """Purpose, justification and validity of a grant kept on both sides: each change is a new
    decision about the same access (R4, R5), shown with the text before and after."""
    for consumer in sorted(ctx.base.sheets.keys() & ctx.head.sheets.keys()):
        head_rows = {g.service: (i, g) for i, g in enumerate(ctx.head.sheets[consumer].spec.grants)}
        for old in ctx.base.sheets[consumer].spec.grants:
            if old.service not in head_rows:
                continue
            i, new = head_rows[old.service]
            for name in GRANT_FIELDS:
                was, now = getattr(old, name), getattr(new, name)
                if was == now:
                    continue
                widening = name == "valid_until" and (now is None or (was is not None and now > was))
                service = ctx.service(old.service)
                personal = (service is not None
                            and service.spec.classification is Classification.PERSONAL_DATA)
                at = ("spec", "grants", i, name) if now is not None else ("spec", "grants", i)
                ctx.add(Change("grant-changed", sid=old.service, consumer=consumer, field=name,
                               before=_show(was), after=_show(now), widening=widening,
                               personal_data=personal and widening,
                               where=_where(ctx.head, "AccessSheet", consumer, *at),
                               detail=f"{name}: " + ("access lasts longer" if widening
                                                     else "removed" if now is None else "changed")),
                        [*ctx.owners(old.service), (consumer, "consumer")])


def _legal_basis_changes(ctx: _Ctx) -> None:
    """R4: the legal basis is what access rests on; a new one is a new decision to approve."""
    for consumer in sorted(ctx.base.sheets.keys() & ctx.head.sheets.keys()):
        sids = {g.service for g in ctx.head.sheets[consumer].spec.grants}
        for sid in sorted(sids):
            old = [g.legal_basis or "" for g in _grants(ctx.base, consumer, sid)]
            new = [g.legal_basis or "" for g in _grants(ctx.head, consumer, sid)]
            if old and new and old != new:
                ctx.add(Change("legal-basis-changed", sid=sid, consumer=consumer,
                               before=" | ".join(old), after=" | ".join(new),
                               where=_where(ctx.head, "AccessSheet", consumer, "spec", "grants"),
                               detail="the grant rests on a different legal basis (R4)"),
                        [*ctx.owners(sid), (consumer, "consumer")])


def _where(registry: Registry, kind: str, ident: str, *node: str | int) -> str | None:
    if (kind, ident) not in registry.sources:
        return None
    path, line, _ = registry.source(kind, ident).at(*node)
    return f"{path}:{line}"


# --- services and operations -------------------------------------------------------------------

def _signature(op: Operation) -> str:
    parts = [op.method.value if op.method else None, op.path, op.soap_action, op.body_element,
             op.payload_element, f"request {op.request_schema}" if op.request_schema else None,
             f"response {op.response_schema}" if op.response_schema else None]
    return " ".join(p for p in parts if p)


def _service_changes(ctx: _Ctx) -> None:
    for sid in sorted(ctx.base.services.keys() | ctx.head.services.keys()):
        b, h = ctx.base.services.get(sid), ctx.head.services.get(sid)
        owners = ctx.owners(sid)
        if h is not None and b is None:
            ctx.add(Change("service-added", sid=sid, after=h.spec.classification.value,
                           operations=tuple(op.name for op in h.spec.operations),
                           where=_where(ctx.head, "Service", sid, "metadata", "sid"),
                           detail=f"{h.spec.name}; owner {h.spec.owner}; {h.spec.protocol.value}"),
                    owners)
        elif b is not None and h is None:
            ctx.add(Change("service-removed", sid=sid, before=b.spec.classification.value,
                           operations=tuple(op.name for op in b.spec.operations),
                           where=_where(ctx.base, "Service", sid, "metadata", "sid"),
                           detail=f"{b.spec.name}; owner {b.spec.owner}"), owners)
        elif b is not None and h is not None:
            _service_diff(ctx, sid, b, h, owners)


def _service_diff(ctx: _Ctx, sid: str, b: Service, h: Service, owners: list[tuple[str, str]]) -> None:
    def at(*node: str | int) -> str | None:
        return _where(ctx.head, "Service", sid, *node)

    if b.spec.owner != h.spec.owner:
        ctx.add(Change("service-owner-changed", sid=sid, before=b.spec.owner, after=h.spec.owner,
                       where=at("spec", "owner"), detail="the new owner decides who may call it"),
                owners)
    if b.spec.classification != h.spec.classification:
        pd = h.spec.classification is Classification.PERSONAL_DATA
        ctx.add(Change("classification-changed", sid=sid, before=b.spec.classification.value,
                       after=h.spec.classification.value, where=at("spec", "classification"),
                       personal_data=pd,
                       detail="every consumer now receives personal data (R5, R8)" if pd else "R8"),
                owners)
    for name in SERVICE_FIELDS:
        was, now = getattr(b.spec, name), getattr(h.spec, name)
        if was != now:
            weaker = name == "signed_messages" and was and not now
            pd = h.spec.classification is Classification.PERSONAL_DATA
            ctx.add(Change("service-changed", sid=sid, field=name, before=_show(was), after=_show(now),
                           where=at("spec", name) if now is not None else at("spec"),
                           personal_data=weaker and pd,
                           detail=("messages need no signature any more (R11 authorship)" if weaker
                                   else name)), owners)
    planned = h.spec.planned_classification
    if planned is not None and planned != b.spec.planned_classification:
        ctx.add(Change("classification-planned", sid=sid, before=h.spec.classification.value,
                       after=planned.to.value, where=at("spec", "planned_classification"),
                       personal_data=planned.to is Classification.PERSONAL_DATA,
                       detail=f"announced {planned.announced}, effective {planned.effective} (R8)"),
                owners)
    old = {op.name: op for op in b.spec.operations}
    new = {op.name: (i, op) for i, op in enumerate(h.spec.operations)}
    for name in sorted(old.keys() - new.keys()):
        ctx.add(Change("operation-removed", sid=sid, operation=name, before=_signature(old[name]),
                       where=at("spec", "operations"), detail="R7: see `reestr breaking`"), owners)
    for name in sorted(new):
        i, op = new[name]
        prev = old.get(name)
        if prev is None:
            ctx.add(Change("operation-added", sid=sid, operation=name, after=_signature(op),
                           where=at("spec", "operations", i)), owners)
            continue
        if _signature(prev) != _signature(op):
            ctx.add(Change("operation-changed", sid=sid, operation=name, before=_signature(prev),
                           after=_signature(op), where=at("spec", "operations", i),
                           detail="R7: see `reestr breaking`"), owners)
        if op.deprecation is not None and prev.deprecation is None:
            d = op.deprecation
            ctx.add(Change("operation-deprecated", sid=sid, operation=name, after=d.sunset.isoformat(),
                           where=at("spec", "operations", i, "deprecation"),
                           detail=f"announced {d.announced}, sunset {d.sunset}"
                                  + (f", replaced by {d.replacement}" if d.replacement else "")),
                    owners)
    if (all(op.deprecation for op in h.spec.operations)
            and not all(op.deprecation for op in b.spec.operations)):
        last = max(op.deprecation.sunset for op in h.spec.operations if op.deprecation)
        ctx.add(Change("service-deprecated", sid=sid, after=last.isoformat(), where=at("spec"),
                       detail="every operation is deprecated; the last sunset is " + last.isoformat()),
                owners)


# --- participants and certificates ------------------------------------------------------------

def fingerprint(pem: str) -> tuple[str, str]:
    """(SHA-256 of the DER, lowercase hex; what else identifies it) of a PEM certificate: subject,
    issuer and validity, so two certificates of one participant can be told apart."""
    try:
        cert = certs.read(pem)
    except ValueError:
        return "unreadable:" + hashlib.sha256(pem.encode()).hexdigest()[:16], "unreadable PEM"
    return cert.sha256, (f"subject {cert.subject}; issuer {cert.issuer}; valid "
                         f"{cert.not_before.date().isoformat()} – {cert.not_after.date().isoformat()}")


def _certificates(p: Participant | None) -> dict[str, tuple[int, str]]:
    """fingerprint → (index in the participant's list, description)."""
    if p is None:
        return {}
    out: dict[str, tuple[int, str]] = {}
    for i, c in enumerate(p.spec.certificates):
        fp, text = fingerprint(c.pem)
        out.setdefault(fp, (i, text))
    return out


def _participant_changes(ctx: _Ctx) -> None:
    for pid in sorted(ctx.base.participants.keys() | ctx.head.participants.keys()):
        b, h = ctx.base.participants.get(pid), ctx.head.participants.get(pid)
        own = [(pid, "participant")]

        def at(*node: str | int, pid: str = pid) -> str | None:
            return _where(ctx.head, "Participant", pid, *node)

        if h is not None and b is None:
            ctx.add(Change("participant-joined", participant=pid, after=h.spec.type.value,
                           where=at("metadata", "id"),
                           detail=f"{h.spec.name}; agreement {h.spec.agreement.number}"), own)
        elif b is not None and h is None:
            ctx.add(Change("participant-removed", participant=pid, before=b.spec.type.value,
                           where=_where(ctx.base, "Participant", pid, "metadata", "id"),
                           detail=b.spec.name), own)
        elif b is not None and h is not None:
            was, now = b.spec.status is Status.SUSPENDED, h.spec.status is Status.SUSPENDED
            if now and not was:  # R9: the operator suspends at once
                s = h.spec.suspension
                ctx.add(Change("participant-suspended", participant=pid, before="active",
                               after="suspended", where=at("spec", "status"),
                               detail=f"since {s.since}: {s.reason}" if s else "R9"), [])
            elif was and not now:
                ctx.add(Change("participant-reinstated", participant=pid, before="suspended",
                               after="active", where=at("spec", "status"), detail="R9"), [])
            t = h.spec.agreement.termination
            if t is not None and b.spec.agreement.termination is None:
                ctx.add(Change("participant-terminated", participant=pid, after=t.end.isoformat(),
                               where=at("spec", "agreement", "termination"),
                               detail=f"notified {t.notified}, no access from {t.end} (R10)"
                                      + (f": {t.reason}" if t.reason else "")), own)
            for name in PARTICIPANT_FIELDS:
                was, now = getattr(b.spec, name), getattr(h.spec, name)
                if name == "agreement":  # the termination notice has its own kind
                    was, now = was.model_copy(update={"termination": None}), now.model_copy(
                        update={"termination": None})
                if was != now:
                    ctx.add(Change("participant-changed", participant=pid, field=name,
                                   before=_show(was), after=_show(now),
                                   where=at("spec", name) if now is not None else at("spec"),
                                   detail=_PARTICIPANT_WHY.get(name, name)), own)
        old, new = _certificates(b), _certificates(h)
        for fp in sorted(new.keys() - old.keys()):
            ctx.add(Change("certificate-added", participant=pid, after=fp, detail=new[fp][1],
                           where=at("spec", "certificates", new[fp][0])), own)
        for fp in sorted(old.keys() - new.keys()):
            ctx.add(Change("certificate-removed", participant=pid, before=fp, detail=old[fp][1],
                           where=f"base {_where(ctx.base, 'Participant', pid, 'spec', 'certificates', old[fp][0])}"),
                    own)


_PARTICIPANT_WHY = {
    "sidecar": "where consumers connect to its services: their traffic goes to the new address",
    "review_team": "who approves on its behalf (CODEOWNERS, `reestr approvals`)",
    "type": "an operator's type gives it the operator's approval",
}

"""Effective access: who may call which service operation on a given day, and why (not).

One place answers the question for every consumer of it: the bundle compiler (what to ship), the
plan (what a change does), and `reestr explain` (why a call is allowed or denied). The rules:
the owner may always call its own services (R2); a grant needs its consumer and the service's
owner to be active participants (R9 suspension, R10 termination) and must not have expired; a
`state-secret` service is never reachable (R6); `operations` access covers only listed operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from compiler.models import Access, Classification, Grant, Participant, Status
from compiler.registry import Registry

IMPLICIT_OWNER = "implicit:owner"
REGISTRY_PREFIX = "registry/"
"""Grant locations are repository paths (`registry/consumers/ved1.yaml:9`), as in plan, breaking
and pull-request annotations, so a journal record's grant is found at the bundle's commit as is."""


@dataclass(frozen=True)
class Right:
    """One consumer's access to one service, as granted (or implied for the owner)."""

    consumer: str
    sid: str
    access: Access
    operations: frozenset[str] | None
    where: str                      # "registry/consumers/<id>.yaml:line" of the grant, or IMPLICIT_OWNER
    legal_basis: str | None
    valid_until: date | None
    index: int | None               # position in the consumer's sheet; None for implicit rights


@dataclass(frozen=True)
class Exclusion:
    """A right (or a whole participant) left out on this day, and the reason code."""

    what: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Decision:
    """The answer to 'may CONSUMER call SID [OPERATION] today?'."""

    allowed: bool
    reason: str                     # stable code: allowed-grant, allowed-owner, no-grant, ...
    message: str
    right: Right | None = None


def inactive_reason(participant: Participant, today: date) -> tuple[str, str] | None:
    """('suspended', detail) or ('terminated', detail) when the participant has no access today."""
    spec = participant.spec
    if spec.status is Status.SUSPENDED:
        since = spec.suspension.since.isoformat() if spec.suspension else "unknown date"
        reason = spec.suspension.reason if spec.suspension else "no reason recorded"
        return "suspended", f"suspended since {since}: {reason}"
    termination = spec.agreement.termination
    if termination is not None and termination.end <= today:
        return "terminated", f"agreement terminated, no access from {termination.end.isoformat()}"
    return None


def services_by_owner(registry: Registry) -> dict[str, list[str]]:
    """SIDs grouped by owner, sorted: computed once so per-consumer lookups stay linear."""
    owned: dict[str, list[str]] = {}
    for sid in sorted(registry.services):
        owned.setdefault(registry.services[sid].spec.owner, []).append(sid)
    return owned


def rights_of(registry: Registry, consumer: str,
              owned: dict[str, list[str]] | None = None) -> list[Right]:
    """The rights written in CONSUMER's sheet plus its implicit owner rights (R2), unfiltered."""
    sids = (owned if owned is not None else services_by_owner(registry)).get(consumer, [])
    rights = [Right(consumer, sid, Access.FULL, None, IMPLICIT_OWNER, None, None, None) for sid in sids]
    sheet = registry.sheets.get(consumer)
    if sheet is None:
        return rights
    source = registry.source("AccessSheet", consumer)
    for i, grant in enumerate(sheet.spec.grants):
        _, line, _ = source.at("spec", "grants", i)
        rights.append(_right(consumer, grant, f"{REGISTRY_PREFIX}{source.rel}:{line}", i))
    return rights


def _right(consumer: str, grant: Grant, where: str, index: int) -> Right:
    ops = frozenset(grant.operations or ()) if grant.access is Access.OPERATIONS else None
    return Right(consumer, grant.service, grant.access, ops, where, grant.legal_basis,
                 grant.valid_until, index)


def effective_rights(registry: Registry, today: date) -> tuple[list[Right], list[Exclusion]]:
    """Every right in force today, and every right or participant left out with its reason."""
    kept: list[Right] = []
    states = {pid: inactive_reason(registry.participants[pid], today) for pid in sorted(registry.participants)}
    excluded = [Exclusion(f"participant {pid}", *state) for pid, state in states.items() if state is not None]
    owned = services_by_owner(registry)
    for consumer in states:
        for right in rights_of(registry, consumer, owned):
            reason = _exclusion(registry, right, today, states)
            if reason is None:
                kept.append(right)
            else:
                excluded.append(Exclusion(f"grant {consumer} → {right.sid}", *reason))
    return kept, excluded


def _exclusion(registry: Registry, right: Right, today: date,
               states: dict[str, tuple[str, str] | None]) -> tuple[str, str] | None:
    """Why `right` is not in force today, or None; `states` holds `inactive_reason` by participant
    (computed once per participant, not once per right)."""
    service = registry.services.get(right.sid)
    if service is None:
        return "unknown-service", f"{right.sid} is not registered"
    if service.spec.classification is Classification.STATE_SECRET:
        return "state-secret", "R6: state-secret services are never processed"
    for role, pid in (("consumer", right.consumer), ("owner", service.spec.owner)):
        if pid not in states:
            return "unknown-participant", f"{role} {pid} is not registered"
        state = states[pid]
        if state is not None:
            return f"{role}-{state[0]}", state[1]
    if right.valid_until is not None and right.valid_until < today:
        return "grant-expired", f"valid until {right.valid_until.isoformat()}"
    return None


def decide(registry: Registry, consumer: str, sid: str, operation: str | None,
           today: date) -> Decision:
    """Allowed or not, with the stable reason code and the right that decided it."""
    service = registry.services.get(sid)
    if service is None:
        return Decision(False, "unknown-service", f"{sid} is not registered")
    if consumer not in registry.participants:
        return Decision(False, "unknown-participant", f"{consumer} is not a registered participant")
    if operation is not None and operation not in {op.name for op in service.spec.operations}:
        return Decision(False, "unknown-operation", f"{sid} has no operation {operation!r}")
    candidates = [r for r in rights_of(registry, consumer) if r.sid == sid]
    if not candidates:
        return Decision(False, "no-grant", f"{consumer} has no grant for {sid} in its access sheet")
    states = {pid: inactive_reason(registry.participants[pid], today)
              for pid in (consumer, service.spec.owner) if pid in registry.participants}
    last: Decision | None = None
    for right in candidates:
        reason = _exclusion(registry, right, today, states)
        if reason is not None:
            last = Decision(False, reason[0], reason[1], right)
            continue
        if operation is not None and right.operations is not None and operation not in right.operations:
            listed = ", ".join(sorted(right.operations))
            last = Decision(False, "operation-not-granted",
                            f"{operation} is not among the granted operations ({listed})", right)
            continue
        code = "allowed-owner" if right.where == IMPLICIT_OWNER else "allowed-grant"
        what = "owner's implicit right (R2)" if code == "allowed-owner" else f"grant at {right.where}"
        return Decision(True, code, what, right)
    assert last is not None
    return last

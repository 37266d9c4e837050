"""Changes that break consumers without the notice the rules require: `reestr breaking`.

`breaking(base, head, today)` compares the registry at the base revision with the head and
returns one Problem per breaking change, located in the head where the head still has the node
(else in the base file that was removed). Stable codes:

- `R7-service-removed`, `R7-operation-removed`, `R7-operation-changed`: a service or operation
  that a live grant in base covers is gone or answers at another method/path/SOAPAction/body
  or payload element, and base did not announce it with a deprecation whose sunset is at least
  30 days after the announcement and already reached on `today` (R7, 000 2.2.13).
- `R8-classification-changed`: the classification changed without a `planned_classification` in
  base naming the new one, announced at least 60 days before it takes effect and effective by
  `today` (R8, 002 6.6.1).
- `R7-announced-backdated`, `R8-announced-backdated` (with the history from compiler.history, as
  the CLI passes it): an `announced` earlier than the day the announcement reached the base
  branch, or, for one new in this change, earlier than today; the notice runs from that day.
- `PARTICIPANT-removed-with-live-grants`: a participant file removed while base grants to or from
  it are live (R10: terminate with notice first, remove after the end date).
- `CERT-last-removed`: a participant's last certificate removed while base grants to or from it
  are live: its sidecar could neither call nor be called (the certificate names it on the wire);
  add the new certificate before removing the old one.
- `SCHEMA-payload-narrowed`: a payload schema registered in base (`request_schema`,
  `response_schema`) accepts less in head — JSON Schema: see `schema_narrowing`; XSD (with its
  include/import closure on both sides): see `compiler.xsd_narrowing`. The message names the
  consumers whose live grants cover the operation.

A grant is *live* when it has not expired and neither its consumer nor the service's owner has
reached the end of a termination. A suspended participant's grants stay live: a suspension is
temporary (R9), and the grants come back with reinstatement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from compiler import payload_schemas, xsd_narrowing
from compiler.access import IMPLICIT_OWNER, inactive_reason, rights_of
from compiler.errors import Problem
from compiler.models import Operation, Service
from compiler.registry import Registry

R7_NOTICE = timedelta(days=30)
R8_NOTICE = timedelta(days=60)

SchemaReader = Callable[[str, str], bytes | None]
"""(side 'base' or 'head', repository-relative path) → the file's bytes, or None when absent."""


def _live(registry: Registry, today: date) -> dict[str, dict[str, set[str]]]:
    """sid → consumer → operations covered by a live grant (see the module docstring)."""
    out: dict[str, dict[str, set[str]]] = {}
    for consumer in sorted(registry.participants):
        for right in rights_of(registry, consumer):
            service = registry.services.get(right.sid)
            if right.where == IMPLICIT_OWNER or service is None:
                continue
            if right.valid_until is not None and right.valid_until < today:
                continue
            ends = [inactive_reason(registry.participants[pid], today)
                    for pid in (consumer, service.spec.owner) if pid in registry.participants]
            if any(e is not None and e[0] == "terminated" for e in ends):
                continue
            ops = {op.name for op in service.spec.operations}
            covered = ops if right.operations is None else ops & right.operations
            out.setdefault(right.sid, {}).setdefault(consumer, set()).update(covered)
    return out


History = dict[tuple[str, str], date]
"""(sid, operation) or (sid, "classification:<to>") → the day it reached the base branch
(compiler.history); the notice runs from there, never from an earlier `announced`."""


def _announced(op: Operation, today: date, since: date | None = None) -> bool:
    """R7: a deprecation with a sunset ≥ 30 days after its announcement, already reached. The
    announcement is the later of the YAML's date and `since` (when it reached the base branch)."""
    d = op.deprecation
    if d is None:
        return False
    start = max(d.announced, since) if since is not None else d.announced
    return d.sunset - start >= R7_NOTICE and d.sunset <= today


def _consumers(users: dict[str, set[str]], op: str | None = None) -> str:
    names = sorted(c for c, ops in users.items() if op is None or op in ops)
    return ", ".join(names)


def breaking(base: Registry, head: Registry, today: date,
             read: SchemaReader | None = None, history: History | None = None) -> list[Problem]:
    """Every breaking change from `base` to `head`, sorted by location. `read` enables the
    payload schema check; without it only the registry documents are compared. `history` (from
    compiler.history) measures R7/R8 notice from the day an announcement reached the base branch
    and refuses backdated `announced` dates (R7-announced-backdated, R8-announced-backdated)."""
    problems: list[Problem] = []
    live = _live(base, today)
    if history is not None:
        problems.extend(_backdated(base, head, today, history))
    for sid, users in sorted(live.items()):
        old = base.services[sid]
        new = head.services.get(sid)
        if new is None:
            gone = [op.name for op in old.spec.operations
                    if any(op.name in ops for ops in users.values())
                    and not _announced(op, today, _since(history, sid, op.name))]
            if gone:
                problems.append(Problem(*base.source("Service", sid).at("metadata", "sid"),
                                        "R7-service-removed",
                                        f"{sid} is removed while granted to {_consumers(users)}; "
                                        f"operations {', '.join(gone)} carry no deprecation of "
                                        f"≥30 days whose sunset has passed (R7, 000 2.2.13)"))
            continue
        problems.extend(_operations(head, sid, old, new, users, today, history))
    for sid in sorted(base.services.keys() & head.services.keys()):
        problems.extend(_classification(base.services[sid], head, sid, today, history))
    problems.extend(_removed_participants(base, head, live))
    problems.extend(_last_certificates(base, head, live))
    if read is not None:
        problems.extend(_schemas(base, head, read, live))
    return sorted(problems)


def _since(history: History | None, sid: str, key: str) -> date | None:
    return None if history is None else history.get((sid, key))


def _backdated(base: Registry, head: Registry, today: date, history: History) -> list[Problem]:
    """An `announced` earlier than the day the announcement reached the base branch (or, new in
    this change, earlier than today: it reaches the branch when merged) is refused."""
    out = []
    for sid in sorted(head.services):
        source = head.source("Service", sid)
        for i, op in enumerate(head.services[sid].spec.operations):
            d = op.deprecation
            if d is None:
                continue
            since = history.get((sid, op.name), today)
            if d.announced < since:
                out.append(Problem(*source.at("spec", "operations", i, "deprecation", "announced"),
                                   "R7-announced-backdated",
                                   f"{sid} operation {op.name}: announced {d.announced} but on the base "
                                   f"branch only since {since}: the notice runs from {since} (R7)"))
        planned = head.services[sid].spec.planned_classification
        if planned is not None:
            since = history.get((sid, f"classification:{planned.to.value}"), today)
            if planned.announced < since:
                out.append(Problem(*source.at("spec", "planned_classification", "announced"),
                                   "R8-announced-backdated",
                                   f"{sid} classification to {planned.to.value}: announced "
                                   f"{planned.announced} but on the base branch only since {since}: "
                                   f"the notice runs from {since} (R8)"))
    return out


def _operations(head: Registry, sid: str, old: Service, new: Service,
                users: dict[str, set[str]], today: date, history: History | None = None) -> list[Problem]:
    source = head.source("Service", sid)
    index = {op.name: i for i, op in enumerate(new.spec.operations)}
    out = []
    for op in old.spec.operations:
        who = _consumers(users, op.name)
        if not who or _announced(op, today, _since(history, sid, op.name)):
            continue
        if op.name not in index:
            out.append(Problem(*source.at("spec", "operations", key=True), "R7-operation-removed",
                               f"{sid} operation {op.name} is removed while granted to {who}, "
                               f"without a deprecation of ≥30 days whose sunset has passed (R7)"))
            continue
        i = index[op.name]
        now = new.spec.operations[i]
        for attr in ("method", "path", "soap_action", "body_element", "payload_element"):
            was, became = getattr(op, attr), getattr(now, attr)
            if was != became:
                out.append(Problem(*source.at("spec", "operations", i, attr), "R7-operation-changed",
                                   f"{sid} operation {op.name}: {attr} {_show(was)} → {_show(became)} "
                                   f"while granted to {who}, without a deprecation of ≥30 days "
                                   f"whose sunset has passed (R7)"))
    return out


def _show(value: Any) -> str:
    return "(none)" if value is None else str(getattr(value, "value", value))


def _classification(old: Service, head: Registry, sid: str, today: date,
                    history: History | None = None) -> list[Problem]:
    new = head.services[sid]
    if old.spec.classification == new.spec.classification:
        return []
    planned = old.spec.planned_classification
    since = None if planned is None else _since(history, sid, f"classification:{planned.to.value}")
    start = None if planned is None else max(planned.announced, since) if since else planned.announced
    if (planned is not None and start is not None and planned.to == new.spec.classification
            and planned.effective - start >= R8_NOTICE and planned.effective <= today):
        return []
    return [Problem(*head.source("Service", sid).at("spec", "classification"),
                    "R8-classification-changed",
                    f"{sid} classification {old.spec.classification.value} → "
                    f"{new.spec.classification.value} without a planned_classification announced "
                    f"≥60 days ahead and effective by {today} (R8, 002 6.6.1)")]


def _removed_participants(base: Registry, head: Registry,
                          live: dict[str, dict[str, set[str]]]) -> list[Problem]:
    out = []
    for pid in sorted(base.participants.keys() - head.participants.keys()):
        ties = sorted({f"{consumer} → {sid}" for sid, users in live.items() for consumer in users
                       if consumer == pid or base.services[sid].spec.owner == pid})
        if ties:
            out.append(Problem(*base.source("Participant", pid).at("metadata", "id"),
                               "PARTICIPANT-removed-with-live-grants",
                               f"participant {pid} is removed while grants are live: "
                               f"{', '.join(ties)}; give termination notice first (R10)"))
    return out


def _last_certificates(base: Registry, head: Registry,
                       live: dict[str, dict[str, set[str]]]) -> list[Problem]:
    out = []
    for pid in sorted(base.participants.keys() & head.participants.keys()):
        if not base.participants[pid].spec.certificates or head.participants[pid].spec.certificates:
            continue
        ties = sorted({f"{consumer} → {sid}" for sid, users in live.items() for consumer in users
                       if consumer == pid or base.services[sid].spec.owner == pid})
        if ties:
            out.append(Problem(*head.source("Participant", pid).at("spec", "certificates"),
                               "CERT-last-removed",
                               f"{pid}'s last certificate is removed while grants are live: "
                               f"{', '.join(ties)}; register the new certificate first"))
    return out


# --- payload schemas ---------------------------------------------------------------------------

def _schemas(base: Registry, head: Registry, read: SchemaReader,
             live: dict[str, dict[str, set[str]]]) -> list[Problem]:
    out = []
    for sid in sorted(base.services.keys() & head.services.keys()):
        source = head.source("Service", sid)
        new_ops = {op.name: i for i, op in enumerate(head.services[sid].spec.operations)}
        for op in base.services[sid].spec.operations:
            for attr in ("request_schema", "response_schema"):
                path = getattr(op, attr)
                if not path:
                    continue
                findings = _xsd_findings(sid, path, read) if path.endswith(".xsd") else _json_findings(path, read)
                if not findings:
                    continue
                where = (source.at("spec", "operations", new_ops[op.name], attr)
                         if op.name in new_ops else source.at("spec", "operations"))
                who = _consumers(live.get(sid, {}), op.name)
                affected = f"consumers affected: {who}" if who else "no live grant covers the operation"
                out += [Problem(*where, "SCHEMA-payload-narrowed",
                                f"{path} ({sid} {op.name} {attr.split('_')[0]}): {finding} ({affected})")
                        for finding in findings]
    return out


def _json_findings(path: str, read: SchemaReader) -> list[str]:
    old, new = _json(read("base", path)), _json(read("head", path))
    return [] if old is None or new is None else schema_narrowing(old, new)


def _xsd_findings(sid: str, path: str, read: SchemaReader) -> list[str]:
    """Both sides' closures read through `read`; nothing to compare when either does not load
    (`reestr validate` reports that as SCHEMA-payload-invalid)."""
    sides = []
    for side in ("base", "head"):
        def reader(rel: str, side: str = side) -> bytes | None:
            return read(side, f"{payload_schemas.SERVICE_SCHEMAS}/{sid}/{rel}")
        try:
            sides.append(payload_schemas.load(sid, path, "soap", reader))
        except payload_schemas.PayloadSchemaError:
            return []
    old, new = sides
    return xsd_narrowing.narrowing(old.files, old.main, new.files, new.main)


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: `reestr validate` reports it, nothing to compare here


def _types(schema: dict[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else {x for x in t if isinstance(x, str)}


def schema_narrowing(old: Any, new: Any, at: str = "") -> list[str]:
    """What `new` no longer accepts that `old` did, by a deliberately simple structural walk:
    a property newly required, a property removed, a type narrowed (a type `old` allowed is gone),
    an enum that lost values (or appeared). It follows `properties` and `items`; `$ref`,
    combinators and formats are not interpreted, so a change there is not reported."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    where = at or "/"
    found = []
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        found.append(f"{where}: property {name!r} is newly required")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    if isinstance(old_props, dict) and isinstance(new_props, dict):
        for name in sorted(old_props.keys() - new_props.keys()):
            found.append(f"{where}: property {name!r} is removed")
        for name in sorted(old_props.keys() & new_props.keys()):
            found += schema_narrowing(old_props[name], new_props[name], f"{at}/{name}")
    old_t, new_t = _types(old), _types(new)
    if new_t is not None and (old_t is None or old_t - new_t):
        lost = "any" if old_t is None else ", ".join(sorted(old_t - new_t))
        found.append(f"{where}: type narrowed ({lost} no longer accepted)")
    if "enum" in new and isinstance(new["enum"], list):
        old_enum = old.get("enum")
        if not isinstance(old_enum, list):
            found.append(f"{where}: an enum now restricts the values")
        else:
            lost_values = [v for v in old_enum if v not in new["enum"]]
            if lost_values:
                found.append(f"{where}: enum lost {json.dumps(lost_values, ensure_ascii=False)}")
    found += schema_narrowing(old.get("items"), new.get("items"), f"{at}/items")
    return found

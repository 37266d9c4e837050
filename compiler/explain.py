"""`reestr explain`: why CONSUMER may (not) call SID [OPERATION]. Formatting only.

The decision is `access.decide`, the same logic the bundle compiler ships to the sidecars; this
module only adds what a person needs to act on it: the grant's file, line and legal basis, the
service and its owner, and the reason code with its message.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from compiler.access import IMPLICIT_OWNER, Decision, decide
from compiler.registry import Registry

FORMATS = ("text", "json")

REASONS = {
    "allowed-grant": "allowed by a grant in the consumer's access sheet",
    "allowed-owner": "allowed: the owner may always call its own service (R2)",
    "no-grant": "denied: no grant for this service in the consumer's access sheet",
    "operation-not-granted": "denied: access is by operations and this one is not listed (R3, R5)",
    "grant-expired": "denied: the grant's valid_until has passed",
    "consumer-suspended": "denied: the consumer is suspended (R9)",
    "owner-suspended": "denied: the service's owner is suspended (R9)",
    "consumer-terminated": "denied: the consumer's agreement has ended (R10)",
    "owner-terminated": "denied: the owner's agreement has ended (R10)",
    "state-secret": "denied: state-secret services are never processed (R6)",
    "unknown-service": "denied: no such service in the registry",
    "unknown-operation": "denied: the service has no such operation",
    "unknown-participant": "denied: no such participant in the registry",
}


def explain(registry: Registry, consumer: str, sid: str, operation: str | None,
            today: date) -> tuple[Decision, dict[str, Any]]:
    """The decision and everything shown about it, as a JSON-ready dict."""
    decision = decide(registry, consumer, sid, operation, today)
    service = registry.services.get(sid)
    data: dict[str, Any] = {
        "allowed": decision.allowed, "reason": decision.reason,
        "summary": REASONS.get(decision.reason, decision.reason), "message": decision.message,
        "consumer": consumer, "sid": sid, "operation": operation, "date": today.isoformat(),
        "service": None if service is None else {
            "name": service.spec.name, "owner": service.spec.owner,
            "classification": service.spec.classification.value},
        "grant": None,
    }
    right = decision.right
    if right is not None:
        grant: dict[str, Any] = {
            "implicit": right.where == IMPLICIT_OWNER, "access": right.access.value,
            "operations": sorted(right.operations) if right.operations is not None else None,
            "legal_basis": right.legal_basis, "purpose": None, "path": None, "line": None,
            "col": None,
            "valid_until": right.valid_until.isoformat() if right.valid_until else None}
        if right.index is not None:
            path, line, col = registry.source("AccessSheet", consumer).at("spec", "grants", right.index)
            grant.update(path=path, line=line, col=col,
                         purpose=registry.sheets[consumer].spec.grants[right.index].purpose)
        data["grant"] = grant
    return decision, data


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    verdict = "ALLOWED" if data["allowed"] else "DENIED"
    what = f"{data['consumer']} → {data['sid']}" + (f" {data['operation']}" if data["operation"] else "")
    lines = [f"{verdict}: {what} on {data['date']}",
             f"  reason: {data['reason']} — {data['summary']}"]
    if data["reason"] != "allowed-grant":  # its message only repeats the grant's location
        lines.append(f"  {data['message']}")
    service = data["service"]
    if service is not None:
        lines.append(f"  service: {service['name']} (owner {service['owner']}, "
                     f"classification {service['classification']})")
    grant = data["grant"]
    if grant is not None and not grant["implicit"]:
        ops = "all operations" if grant["operations"] is None else ", ".join(grant["operations"])
        lines += [f"  grant: {grant['path']}:{grant['line']}:{grant['col']} "
                  f"(access {grant['access']}: {ops})",
                  f"  legal basis: {grant['legal_basis'] or '(none — R4)'}",
                  f"  purpose: {grant['purpose']}"]
        if grant["valid_until"]:
            lines.append(f"  valid until: {grant['valid_until']}")
    return "\n".join(lines) + "\n"

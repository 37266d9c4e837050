"""`reestr explain` and the sidecar must agree on every call.

The compiler decides on the registry (`compiler.access.decide`); a sidecar decides on its signed
bundle (`proxy.policy.decide`). Both are checked here on every consumer × service × operation of
the example registry and of variants that exercise R9 (suspension), R10 (termination) and expiry,
so a rule added to one side and forgotten on the other fails this test.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler import access, bundle
from compiler.validate import validate
from proxy import policy

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 25)


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{rel}: {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# variant: edits, and how many (consumer, SID, operation) triples are allowed afterwards.
# The example allows 23: ved1 3+1+1, ved2 2, ved4 2, mvd-tyumen 2, and the owners' own 9 (ved3) + 3;
# a suspended ved3 takes its 9 and the 9 granted on its services with it.
ALLOWED = {"example": 23, "consumer-suspended": 21, "owner-suspended": 5, "consumer-terminated": 18,
           "owner-terminates-later": 23, "grant-expired": 21, "grant-valid-today": 23}
VARIANTS = {
    "example": [],
    "consumer-suspended": [("participants/ved2.yaml", "  agreement:",
                            "  status: suspended\n  suspension: {since: \"2026-11-20\", reason: перебор паролей}\n"
                            "  agreement:")],
    "owner-suspended": [("participants/ved3.yaml", "  agreement:",
                         "  status: suspended\n  suspension: {since: \"2026-11-20\", reason: атака}\n  agreement:")],
    "consumer-terminated": [("participants/ved1.yaml", "    notice_days: 90",
                             "    notice_days: 90\n    termination: {notified: \"2026-06-01\", end: \"2026-09-01\"}")],
    "owner-terminates-later": [("participants/ved3.yaml", "    notice_days: 90",
                                "    notice_days: 90\n"
                                "    termination: {notified: \"2026-11-01\", end: \"2027-02-01\"}")],
    "grant-expired": [("consumers/mvd-tyumen.yaml", "      access: operations",
                       "      access: operations\n      valid_until: \"2026-11-24\"")],
    "grant-valid-today": [("consumers/mvd-tyumen.yaml", "      access: operations",
                           "      access: operations\n      valid_until: \"2026-11-25\"")],
}


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_sidecar_and_explain_agree(tmp_path: Path, variant: str) -> None:
    root = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", root)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")  # the payload schemas the services register
    for rel, old, new in VARIANTS[variant]:
        _edit(root, rel, old, new)
    registry, problems = validate(root, TODAY)
    assert not [p for p in problems if p.severity == "error"], problems
    issued = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    files = bundle.build(registry, bundle.BuildInfo(1, issued, issued + timedelta(hours=6), None),
                         [Ed25519PrivateKey.generate()])
    policies = {pid: policy.parse_policy(json.loads(files[f"{pid}.json"])["signed"])
                for pid in registry.participants}

    checked = allowed = 0
    mismatches = []
    for sid, service in registry.services.items():
        provider = policies[service.spec.owner]
        for consumer in registry.participants:
            for op in service.spec.operations:
                expected = access.decide(registry, consumer, sid, op.name, TODAY)
                actual = policy.decide(provider, consumer, sid, op.name, TODAY)
                checked += 1
                allowed += actual.allowed
                if expected.allowed != actual.allowed:
                    mismatches.append((consumer, sid, op.name, expected.reason, actual.reason))
    assert mismatches == []
    assert allowed == ALLOWED[variant]
    assert checked == sum(len(s.spec.operations) for s in registry.services.values()) * len(registry.participants)

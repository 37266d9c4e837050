"""`reestr explain` on the example registry and on modified copies: one case per reason code."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from review_repo import EXAMPLE, REESTR, TODAY

from compiler.explain import REASONS, explain, render
from compiler.registry import load_directory

ROOT = EXAMPLE.parent
LB_VED1 = ("Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.1; административный регламент "
           "Ведомства 1 по предоставлению государственной услуги")
LB_210 = "Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.1"


def reestr(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REESTR), "explain", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


# (args, exit code, reason, grant location or None)
CASES = [
    (["ved1", "SID0003001"], 0, "allowed-grant", ("registry/consumers/ved1.yaml", 9)),
    (["ved1", "SID0003001", "operation2"], 0, "allowed-grant", ("registry/consumers/ved1.yaml", 9)),
    (["ved2", "SID0003001", "operation2"], 1, "operation-not-granted", ("registry/consumers/ved2.yaml", 9)),
    (["ved2", "SID0003001", "operation1"], 0, "allowed-grant", ("registry/consumers/ved2.yaml", 9)),
    (["ved1", "SID0003002", "operation2"], 0, "allowed-grant", ("registry/consumers/ved1.yaml", 17)),
    (["ved3", "SID0003001", "operation2"], 0, "allowed-owner", None),
    (["ved4", "SID0003001"], 1, "no-grant", None),
    (["ved1", "SID9999999"], 1, "unknown-service", None),
    (["ved2", "SID0003001", "operation9"], 1, "unknown-operation", None),
    (["nobody", "SID0003001"], 1, "unknown-participant", None),
]
IDS = ["full-grant", "full-grant-operation", "operation-not-granted", "operation-granted",
       "operations-grant-second-row", "owner", "no-grant", "unknown-service", "unknown-operation",
       "unknown-consumer"]


@pytest.mark.parametrize(("args", "code", "reason", "grant"), CASES, ids=IDS)
def test_example_registry(args: list[str], code: int, reason: str,
                          grant: tuple[str, int] | None) -> None:
    done = reestr(*args, "--registry", "registry", "--date", TODAY, "--format", "json")
    assert done.returncode == code, done.stderr
    data = json.loads(done.stdout)
    assert (data["allowed"], data["reason"], data["summary"]) == (code == 0, reason, REASONS[reason])
    where = None if data["grant"] is None or data["grant"]["implicit"] else (
        data["grant"]["path"], data["grant"]["line"])
    assert where == grant


def test_full_json_of_a_grant() -> None:
    done = reestr("ved1", "SID0003001", "--date", TODAY, "--format", "json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {
        "allowed": True, "reason": "allowed-grant", "summary": REASONS["allowed-grant"],
        "message": "grant at registry/consumers/ved1.yaml:9", "consumer": "ved1", "sid": "SID0003001",
        "operation": None, "date": TODAY,
        "service": {"name": "Веб-сервис А", "owner": "ved3", "classification": "personal-data"},
        "grant": {"implicit": False, "access": "full", "operations": None, "legal_basis": LB_VED1,
                  "purpose": "Проверка сведений о заявителе при предоставлении государственной услуги",
                  "path": "registry/consumers/ved1.yaml", "line": 9, "col": 7, "valid_until": None}}


def test_text_of_a_denial() -> None:
    done = reestr("ved2", "SID0003001", "operation2", "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"DENIED: ved2 → SID0003001 operation2 on {TODAY}",
        f"  reason: operation-not-granted — {REASONS['operation-not-granted']}",
        "  operation2 is not among the granted operations (operation1, operation3)",
        "  service: Веб-сервис А (owner ved3, classification personal-data)",
        "  grant: registry/consumers/ved2.yaml:9:7 (access operations: operation1, operation3)",
        f"  legal basis: {LB_210}",
        "  purpose: Получение сведений о заявителе и статуса запроса"]


def test_text_of_the_owner_right() -> None:
    done = reestr("ved3", "SID0003001", "--date", TODAY)
    assert (done.returncode, done.stdout.splitlines()) == (0, [
        f"ALLOWED: ved3 → SID0003001 on {TODAY}",
        f"  reason: allowed-owner — {REASONS['allowed-owner']}",
        "  owner's implicit right (R2)",
        "  service: Веб-сервис А (owner ved3, classification personal-data)"])


# --- modified copies ---------------------------------------------------------------------------

SUSPENSION = '  status: suspended\n  suspension:\n    since: "2026-11-20"\n    reason: Деструктивные действия\n'
TERMINATION = '    termination:\n      notified: "2026-08-01"\n      end: "2026-11-01"\n'
MODIFIED = [
    ("participants/ved2.yaml", SUSPENSION, ["ved2", "SID0003001", "operation1"], "consumer-suspended",
     "suspended since 2026-11-20: Деструктивные действия"),
    ("participants/ved3.yaml", SUSPENSION, ["ved1", "SID0003001"], "owner-suspended",
     "suspended since 2026-11-20: Деструктивные действия"),
    ("consumers/ved4.yaml", '      valid_until: "2026-06-30"\n', ["ved4", "SID0003003"], "grant-expired",
     "valid until 2026-06-30"),
    ("participants/ved4.yaml", TERMINATION, ["ved4", "SID0003003"], "consumer-terminated",
     "agreement terminated, no access from 2026-11-01"),
    ("participants/ved3.yaml", TERMINATION, ["ved4", "SID0003003"], "owner-terminated",
     "agreement terminated, no access from 2026-11-01"),
]


@pytest.mark.parametrize(("file", "append", "args", "reason", "message"), MODIFIED,
                         ids=["suspended", "owner-suspended", "expired", "terminated", "owner-terminated"])
def test_modified_copy(tmp_path: Path, file: str, append: str, args: list[str], reason: str,
                       message: str) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "registry")
    shutil.copytree(EXAMPLE.parent / "schemas", tmp_path / "schemas")
    with (tmp_path / "registry" / file).open("a", encoding="utf-8") as f:
        f.write(append)
    done = reestr(*args, "--date", TODAY, "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert (data["allowed"], data["reason"], data["message"]) == (False, reason, message)
    assert done.stderr == ""


def test_library_matches_decide() -> None:
    registry = load_directory(EXAMPLE)
    decision, data = explain(registry, "ved1", "SID0003002", "operation1", date.fromisoformat(TODAY))
    assert (decision.allowed, decision.reason) == (False, "operation-not-granted")
    assert render(data, "json") == json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(("args", "message"), [
    (["ved1", "SID0003001", "--date", "2026-13-01"],
     "Error: Invalid value for --date: '2026-13-01'"),
    (["ved1", "SID0003001", "--registry", "no-such-dir"], "reestr: no-such-dir: not a directory"),
    (["ved1"], "Error: Missing argument 'SID'."),
    (["ved1", "SID0003001", "--format", "xml"], "Error: Invalid value for '--format'"),
], ids=["bad-date", "no-registry", "missing-sid", "bad-format"])
def test_usage_errors(args: list[str], message: str) -> None:
    done = reestr(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr

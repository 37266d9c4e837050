"""`compiler.breaking` on real git repositories: R7, R8, participant removal, payload schema narrowing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from review_repo import TODAY, Repo

from compiler.breaking import breaking, schema_narrowing
from compiler.revisions import load_registry, read_file

DAY = date.fromisoformat(TODAY)
S1 = "registry/services/SID0003001.yaml"
S2 = "registry/services/SID0003002.yaml"
S7 = "registry/services/SID0007001.yaml"
OP2 = "    - name: operation2\n      description: Операция 2 — найти заявителей по СНИЛС\n" \
      "      method: POST\n      path: /applicants/search\n"
LIST_ISSUED = "    - name: listIssued\n      description: Заключения, выданные за период\n" \
              "      method: GET\n      path: /certificates\n"
W7 = "while granted to ved1, without a deprecation of ≥30 days whose sunset has passed (R7)"

Found = list[tuple[str, int, int, str, str]]


def run(repo: Repo, base: str) -> Found:
    old, new = load_registry(repo.root, base), load_registry(repo.root, None)
    revs = {"base": base, "head": None}
    found = breaking(old, new, DAY, lambda side, path: read_file(repo.root, revs[side], path))
    return [(p.path, p.line, p.col, p.code, p.message) for p in found]


def _deprecate_op2(repo: Repo, announced: str, sunset: str) -> str:
    repo.replace(S1, "      path: /applicants/search\n",
                 f'      path: /applicants/search\n      deprecation:\n        announced: "{announced}"\n'
                 f'        sunset: "{sunset}"\n')
    return repo.commit("deprecate operation2")


def remove_granted_operation(repo: Repo) -> tuple[str, Found]:
    repo.replace(S1, OP2, "")
    return repo.base, [(S1, 22, 3, "R7-operation-removed",
                        f"SID0003001 operation operation2 is removed {W7}")]


def remove_after_sunset(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-09-01", "2026-10-15")
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, []


def remove_before_sunset(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-11-01", "2026-12-15")
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, [(S1, 22, 3, "R7-operation-removed", f"SID0003001 operation operation2 is removed {W7}")]


def remove_after_short_notice(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-10-01", "2026-10-20")  # 19 days < 30 (R7)
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, [(S1, 22, 3, "R7-operation-removed", f"SID0003001 operation operation2 is removed {W7}")]


def remove_ungranted_operation(repo: Repo) -> tuple[str, Found]:
    repo.replace(S7, LIST_ISSUED, "")  # mvd-tyumen holds getCertificate and byDriver only
    return repo.base, []


def change_granted_path(repo: Repo) -> tuple[str, Found]:
    repo.replace(S1, "      path: /applicants/search\n", "      path: /v2/applicants/search\n")
    repo.replace(S1, "      method: POST\n", "      method: PUT\n")
    return repo.base, [
        (S1, 29, 15, "R7-operation-changed", "SID0003001 operation operation2: method POST → PUT " + W7),
        (S1, 30, 13, "R7-operation-changed",
         "SID0003001 operation operation2: path /applicants/search → /v2/applicants/search " + W7)]


def remove_granted_service(repo: Repo) -> tuple[str, Found]:
    repo.remove(S2)
    return repo.base, [(S2, 5, 8, "R7-service-removed",
                        "SID0003002 is removed while granted to ved1; operations operation2 carry "
                        "no deprecation of ≥30 days whose sunset has passed (R7, 000 2.2.13)")]


def remove_ungranted_service(repo: Repo) -> tuple[str, Found]:
    repo.replace("registry/consumers/ved1.yaml", "    - service: SID0003002\n      access: operations\n"
                 "      operations: [operation2]\n      legal_basis: Федеральный закон от 27.07.2010 "
                 "№ 210-ФЗ, ст. 7.1\n      purpose: Проверка действительности разрешения, представленного "
                 "заявителем\n", "")
    base = repo.commit("revoke first")
    repo.remove(S2)
    return base, []


def _r8(sid: str, old: str, new: str) -> str:
    return (f"{sid} classification {old} → {new} without a planned_classification announced "
            f"≥60 days ahead and effective by {TODAY} (R8, 002 6.6.1)")


def reclassify_without_notice(repo: Repo) -> tuple[str, Found]:
    repo.replace(S2, "classification: restricted", "classification: personal-data")
    return repo.base, [(S2, 11, 19, "R8-classification-changed",
                        _r8("SID0003002", "restricted", "personal-data"))]


def _plan_classification(repo: Repo, announced: str, effective: str) -> str:
    repo.replace(S2, "  classification: restricted\n",
                 "  classification: restricted\n  planned_classification:\n    to: personal-data\n"
                 f'    announced: "{announced}"\n    effective: "{effective}"\n')
    return repo.commit("announce reclassification")


def reclassify_after_notice(repo: Repo) -> tuple[str, Found]:
    base = _plan_classification(repo, "2026-08-01", "2026-10-01")
    repo.replace(S2, "  classification: restricted\n  planned_classification:\n    to: personal-data\n"
                 '    announced: "2026-08-01"\n    effective: "2026-10-01"\n',
                 "  classification: personal-data\n")
    return base, []


def reclassify_too_early(repo: Repo) -> tuple[str, Found]:
    base = _plan_classification(repo, "2026-11-01", "2027-01-01")
    repo.replace(S2, "  classification: restricted\n", "  classification: personal-data\n")
    return base, [(S2, 11, 19, "R8-classification-changed",
                   _r8("SID0003002", "restricted", "personal-data"))]


def remove_participant_with_grants(repo: Repo) -> tuple[str, Found]:
    repo.remove("registry/participants/ved4.yaml")
    repo.remove("registry/consumers/ved4.yaml")
    return repo.base, [("registry/participants/ved4.yaml", 5, 7, "PARTICIPANT-removed-with-live-grants",
                        "participant ved4 is removed while grants are live: ved4 → SID0003003; "
                        "give termination notice first (R10)")]


def remove_terminated_participant(repo: Repo) -> tuple[str, Found]:
    path = "registry/participants/ved4.yaml"
    repo.write(path, repo.path(path).read_text(encoding="utf-8")
               + '    termination:\n      notified: "2026-08-01"\n      end: "2026-11-01"\n')
    base = repo.commit("ved4 terminated")
    repo.remove(path)
    repo.remove("registry/consumers/ved4.yaml")
    return base, []


def widen_only(repo: Repo) -> tuple[str, Found]:
    repo.replace("registry/consumers/ved2.yaml", "        - operation3\n",
                 "        - operation3\n        - operation2\n")
    return repo.base, []


SCENARIOS: list[Callable[[Repo], tuple[str, Found]]] = [
    remove_granted_operation, remove_after_sunset, remove_before_sunset, remove_after_short_notice,
    remove_ungranted_operation, change_granted_path, remove_granted_service, remove_ungranted_service,
    reclassify_without_notice, reclassify_after_notice, reclassify_too_early,
    remove_participant_with_grants, remove_terminated_participant, widen_only]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_breaking(tmp_path: Path, scenario: Callable[[Repo], tuple[str, Found]]) -> None:
    repo = Repo(tmp_path)
    base, expected = scenario(repo)
    assert run(repo, base) == expected


# --- payload schemas ---------------------------------------------------------------------------

REQUEST = {"type": "object", "required": ["id"],
           "properties": {"id": {"type": ["string", "integer"]}, "kind": {"enum": ["a", "b", "c"]},
                          "note": {"type": "string"},
                          "tags": {"type": "array", "items": {"type": ["string", "null"]}}}}
NARROWER = {"type": "object", "required": ["id", "kind"],
            "properties": {"id": {"type": "string"}, "kind": {"enum": ["a", "b"]},
                           "tags": {"type": "array", "items": {"type": "string"}}}}
SCHEMA = "schemas/services/SID0003001/operation1.request.json"


def with_request_schema(tmp_path: Path, schema: dict[str, Any]) -> tuple[Repo, str]:
    """The example with `schema` registered as operation1's request schema, committed: (repo, base)."""
    repo = Repo(tmp_path)
    repo.write(SCHEMA, json.dumps(schema))
    repo.replace(S1, "      path: /applicants/{id}\n",
                 f"      path: /applicants/{{id}}\n      request_schema: {SCHEMA}\n")
    return repo, repo.commit("register a request schema")


def test_payload_schema_narrowed(tmp_path: Path) -> None:
    repo, base = with_request_schema(tmp_path, REQUEST)
    repo.write(SCHEMA, json.dumps(NARROWER))
    prefix = f"{SCHEMA} (SID0003001 operation1 request): "
    assert run(repo, base) == [(S1, 27, 23, "SCHEMA-payload-narrowed", prefix + message) for message in [
        "/: property 'kind' is newly required",
        "/: property 'note' is removed",
        "/id: type narrowed (integer no longer accepted)",
        "/kind: enum lost [\"c\"]",
        "/tags/items: type narrowed (null no longer accepted)"]]


def test_payload_schema_widened_is_fine(tmp_path: Path) -> None:
    repo, base = with_request_schema(tmp_path, NARROWER)
    repo.write(SCHEMA, json.dumps(REQUEST))
    assert run(repo, base) == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({}, {"type": "object"}, ["/: type narrowed (any no longer accepted)"]),
    ({"type": "string"}, {"enum": ["x"], "type": "string"}, ["/: an enum now restricts the values"]),
    ({"type": ["string", "null"]}, {"type": "string"}, ["/: type narrowed (null no longer accepted)"]),
    ({"type": "string"}, {"type": ["string", "null"]}, []),
    ({"required": ["a"]}, {"required": []}, []),
    ("not a schema", {"type": "object"}, []),
], ids=["type-added", "enum-added", "type-list-narrowed", "type-widened", "required-dropped", "non-dict"])
def test_schema_narrowing_cases(old: Any, new: Any, expected: list[str]) -> None:
    assert schema_narrowing(old, new) == expected


# --- the real console script -------------------------------------------------------------------

def test_cli_reports_and_exits_1(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    remove_granted_operation(repo)
    done = repo.run("breaking", "--against", "main", "--format", "json", "--date", TODAY)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {"errors": 1, "warnings": 0, "problems": [
        {"path": S1, "line": 22, "col": 3, "code": "R7-operation-removed", "severity": "error",
         "message": f"SID0003001 operation operation2 is removed {W7}"}]}
    github = repo.run("breaking", "--against", "main", "--format", "github", "--date", TODAY)
    assert github.stdout == (f"::error file={S1},line=22,col=3,title=R7-operation-removed::"
                             f"SID0003001 operation operation2 is removed {W7}\n")


def test_cli_clean_exits_0(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_only(repo)
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "breaking changes against main: 0\n")


def test_cli_head_revision(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    reclassify_without_notice(repo)
    head = repo.commit("reclassify")
    repo.replace(S2, "classification: personal-data", "classification: restricted")  # not in --head
    done = repo.run("breaking", "--against", repo.base, "--head", head, "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout == (f"{S2}:11:19: R8-classification-changed "
                           f"{_r8('SID0003002', 'restricted', 'personal-data')}\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--against", "no-such-branch"], "reestr: bad revision 'no-such-branch': no such commit in .\n"),
    (["--against", "main", "--head", "0000000"], "reestr: bad revision '0000000': no such commit in .\n"),
    (["--against", "-x"], "reestr: bad revision '-x': must not start with '-'\n"),
], ids=["bad-against", "bad-head", "option-as-revision"])
def test_cli_bad_revisions(tmp_path: Path, args: list[str], message: str) -> None:
    done = Repo(tmp_path).run("breaking", *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)

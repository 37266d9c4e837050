"""`compiler.plan` on real git repositories: every change kind, its approvers, and the CLI output."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from review_repo import TODAY, Repo, indent, new_certificate

from compiler.plan import Approver, Plan, plan
from compiler.plan_render import MARKER, render
from compiler.revisions import load_registry

DAY = date.fromisoformat(TODAY)
SHEET = {c: f"registry/consumers/{c}.yaml" for c in ("ved1", "ved2", "ved4", "mvd-tyumen")}
PART = {p: f"registry/participants/{p}.yaml" for p in ("ved1", "ved2", "ved3", "ved4")}
SVC = {s: f"registry/services/{s}.yaml" for s in ("SID0003001", "SID0003002", "SID0003003")}
VED2_OPS = "        - operation1\n        - operation3\n"
VED1_SID2 = ("    - service: SID0003002\n      access: operations\n      operations: [operation2]\n"
             "      legal_basis: Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.1\n"
             "      purpose: Проверка действительности разрешения, представленного заявителем\n")
OP3 = ("    - name: operation3\n      description: Операция 3 — статус обработки запроса\n"
       "      method: GET\n      path: /requests/{id}/status\n")
SUSPENSION = '  status: suspended\n  suspension:\n    since: "2026-11-20"\n    reason: Деструктивные действия\n'

Row = tuple[Any, ...]


def rows(p: Plan) -> list[Row]:
    """(kind, sid, consumer or participant, operation, operations, before, after, approvers)."""
    return [(c.kind, c.sid, c.consumer or c.participant, c.operation, c.operations, c.before, c.after,
             tuple(sorted({pid for pid, _ in c.approvers}))) for c in p.changes]


def fp_of(repo: Repo, rel: str) -> str:
    text = repo.path(rel).read_text(encoding="utf-8")
    pem = text[text.index("-----BEGIN"):text.index("-----END CERTIFICATE-----") + 25]
    pem = "\n".join(line.strip() for line in pem.splitlines()) + "\n"
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


ALL1 = ("operation1", "operation2", "operation3")
OWNER = ("citto", "ved3")
SHEET_AND_OWNER = {c: tuple(sorted(("citto", "ved3", c))) for c in ("ved1", "ved2", "ved4")}


def widen_operations(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved2"], VED2_OPS, VED2_OPS + "        - operation2\n")
    return None, [("access-widened", "SID0003001", "ved2", None, ("operation2",), "operations",
                   "operations", SHEET_AND_OWNER["ved2"])]


def widen_to_full(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved2"], "      access: operations\n      operations:\n" + VED2_OPS,
              "      access: full\n      justification: Все операции нужны по регламенту\n")
    return None, [("access-widened", "SID0003001", "ved2", None, ("operation2",), "operations", "full",
                   SHEET_AND_OWNER["ved2"]),
                  ("grant-changed", "SID0003001", "ved2", None, (), None,
                   "Все операции нужны по регламенту", SHEET_AND_OWNER["ved2"])]


def narrow_to_operations(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved1"], "    - service: SID0003001\n      access: full\n",
              "    - service: SID0003001\n      access: operations\n      operations: [operation1]\n")
    return None, [("access-narrowed", "SID0003001", "ved1", None, ("operation2", "operation3"), "full",
                   "operations", SHEET_AND_OWNER["ved1"])]


def revoke(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved1"], VED1_SID2, "")
    return None, [("access-revoked", "SID0003002", "ved1", None, ("operation2",), "operations", None,
                   SHEET_AND_OWNER["ved1"])]


def grant(r: Repo) -> tuple[str | None, list[Row]]:
    r.write(SHEET["ved4"], r.path(SHEET["ved4"]).read_text(encoding="utf-8")
            + "    - service: SID0003002\n      access: operations\n      operations: [operation1]\n"
              "      legal_basis: Федеральный закон № 131-ФЗ\n      purpose: Проверка разрешений\n")
    return None, [("access-granted", "SID0003002", "ved4", None, ("operation1",), None, "operations",
                   SHEET_AND_OWNER["ved4"])]


def suspend_owner(r: Repo) -> tuple[str | None, list[Row]]:
    r.write(PART["ved3"], r.path(PART["ved3"]).read_text(encoding="utf-8") + SUSPENSION)
    return None, [
        ("access-revoked", "SID0003001", "ved1", None, ALL1, "full", None, OWNER),
        ("access-revoked", "SID0003001", "ved2", None, ("operation1", "operation3"), "operations",
         None, OWNER),
        ("access-revoked", "SID0003002", "ved1", None, ("operation2",), "operations", None, OWNER),
        ("access-revoked", "SID0003003", "ved4", None, ("getReference", "listReferences"), "full",
         None, OWNER),
        ("access-revoked", "SID0003004", "ved1", None, ("publicPrintOut",), "operations", None, OWNER),
        ("participant-suspended", None, "ved3", None, (), "active", "suspended", ("citto",)),
    ]


def reinstate(r: Repo) -> tuple[str | None, list[Row]]:
    original = r.path(PART["ved2"]).read_text(encoding="utf-8")
    r.write(PART["ved2"], original + SUSPENSION)
    base = r.commit("suspend ved2")
    r.write(PART["ved2"], original)
    return base, [("access-granted", "SID0003001", "ved2", None, ("operation1", "operation3"), None,
                   "operations", OWNER),
                  ("participant-reinstated", None, "ved2", None, (), "suspended", "active", ("citto",))]


def _terminate(r: Repo, end: str) -> None:
    r.write(PART["ved4"], r.path(PART["ved4"]).read_text(encoding="utf-8")
            + f'    termination:\n      notified: "2026-08-01"\n      end: "{end}"\n')


def terminate_ended(r: Repo) -> tuple[str | None, list[Row]]:
    _terminate(r, "2026-11-01")
    return None, [("access-revoked", "SID0003003", "ved4", None, ("getReference", "listReferences"),
                   "full", None, OWNER),
                  ("participant-terminated", None, "ved4", None, (), None, "2026-11-01",
                   ("citto", "ved4"))]


def terminate_notice(r: Repo) -> tuple[str | None, list[Row]]:
    _terminate(r, "2027-02-01")
    return None, [("participant-terminated", None, "ved4", None, (), None, "2027-02-01",
                   ("citto", "ved4"))]


def deprecate(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SVC["SID0003001"], "      path: /applicants/search\n",
              '      path: /applicants/search\n      deprecation:\n        announced: "2026-11-01"\n'
              '        sunset: "2026-12-15"\n        replacement: operation1\n')
    return None, [("operation-deprecated", "SID0003001", None, "operation2", (), None, "2026-12-15",
                   OWNER)]


def add_operation(r: Repo) -> tuple[str | None, list[Row]]:
    r.write(SVC["SID0003001"], r.path(SVC["SID0003001"]).read_text(encoding="utf-8")
            + "    - name: operation4\n      method: GET\n      path: /applicants/{id}/history\n")
    return None, [("access-widened", "SID0003001", "ved1", None, ("operation4",), "full", "full", OWNER),
                  ("operation-added", "SID0003001", None, "operation4", (), None,
                   "GET /applicants/{id}/history", OWNER)]


def remove_operation(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SVC["SID0003001"], OP3, "")
    return None, [
        ("access-narrowed", "SID0003001", "ved1", None, ("operation3",), "full", "full", OWNER),
        ("access-narrowed", "SID0003001", "ved2", None, ("operation3",), "operations", "operations",
         OWNER),
        ("operation-removed", "SID0003001", None, "operation3", (), "GET /requests/{id}/status", None,
         OWNER)]


def change_operation(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SVC["SID0003001"], "      path: /applicants/{id}\n", "      path: /v2/applicants/{id}\n")
    return None, [("operation-changed", "SID0003001", None, "operation1", (), "GET /applicants/{id}",
                   "GET /v2/applicants/{id}", OWNER)]


def classify(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SVC["SID0003002"], "classification: restricted", "classification: personal-data")
    return None, [("classification-changed", "SID0003002", None, None, (), "restricted",
                   "personal-data", OWNER)]


def remove_service(r: Repo) -> tuple[str | None, list[Row]]:
    r.remove(SVC["SID0003003"])
    return None, [("access-revoked", "SID0003003", "ved4", None, ("getReference", "listReferences"),
                   "full", None, OWNER),
                  ("service-removed", "SID0003003", None, None, ("getReference", "listReferences"),
                   "public", None, OWNER)]


def legal_basis(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved2"], "№ 210-ФЗ, ст. 7.1\n", "№ 210-ФЗ, ст. 7.2\n")
    return None, [("legal-basis-changed", "SID0003001", "ved2", None, (),
                   "Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.1",
                   "Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.2", SHEET_AND_OWNER["ved2"])]


def join(r: Repo) -> tuple[str | None, list[Row]]:
    pem, fp = new_certificate("ved5")
    text = r.path(PART["ved4"]).read_text(encoding="utf-8").replace("ved4", "ved5")
    head, tail = text.split("      pem: |\n")
    r.write("registry/participants/ved5.yaml",
            head + "      pem: |\n" + indent(pem, 8) + tail[tail.index("  sidecar:"):])
    return None, [("participant-joined", None, "ved5", None, (), None, "municipal", ("citto", "ved5")),
                  ("certificate-added", None, "ved5", None, (), None, fp, ("citto", "ved5"))]


def rotate_certificate(r: Repo) -> tuple[str | None, list[Row]]:
    pem, fp = new_certificate("ved1-2027")
    r.replace(PART["ved1"], "  certificates:\n",
              "  certificates:\n    - note: ротация 2027\n      pem: |\n" + indent(pem, 8))
    return None, [("certificate-added", None, "ved1", None, (), None, fp, ("citto", "ved1"))]


def remove_participant(r: Repo) -> tuple[str | None, list[Row]]:
    fp = fp_of(r, PART["ved4"])
    r.remove(PART["ved4"])
    r.remove(SHEET["ved4"])
    return None, [("access-revoked", "SID0003003", "ved4", None, ("getReference", "listReferences"),
                   "full", None, SHEET_AND_OWNER["ved4"]),
                  ("participant-removed", None, "ved4", None, (), "municipal", None, ("citto", "ved4")),
                  ("certificate-removed", None, "ved4", None, (), fp, None, ("citto", "ved4"))]


def nothing(r: Repo) -> tuple[str | None, list[Row]]:
    r.replace(SHEET["ved1"], "# Технологический лист", "# Технологический лист (комментарий)")
    return None, []


SCENARIOS: list[Callable[[Repo], tuple[str | None, list[Row]]]] = [
    widen_operations, widen_to_full, narrow_to_operations, revoke, grant, suspend_owner, reinstate,
    terminate_ended, terminate_notice, deprecate, add_operation, remove_operation, change_operation,
    classify, remove_service, legal_basis, join, rotate_certificate, remove_participant, nothing]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_plan_between_commits(tmp_path: Path, scenario: Callable[[Repo], tuple[str | None, list[Row]]]
                              ) -> None:
    repo = Repo(tmp_path)
    base, expected = scenario(repo)
    head = repo.commit(scenario.__name__)
    result = plan(load_registry(repo.root, base or repo.base), load_registry(repo.root, head), DAY)
    assert rows(result) == expected
    assert result.warnings == ()


def test_working_tree_is_the_default_head(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    _, expected = widen_operations(repo)
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    assert rows(result) == expected
    assert result.changes[0].where == "registry/consumers/ved2.yaml:9"


def test_flags_and_reasons(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    suspend_owner(repo)
    grant(repo)  # granted on a suspended owner's service: not in force, so no change at all
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    revoked = result.changes[0]
    assert (revoked.detail, revoked.widening, revoked.personal_data) == (
        "owner-suspended: suspended since 2026-11-20: Деструктивные действия", False, False)
    assert [c.kind for c in result.changes].count("access-granted") == 0


def test_widening_on_personal_data_is_flagged(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_to_full(repo)
    change = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY).changes[0]
    assert (change.widening, change.personal_data, change.detail) == (
        True, True, "full access (all operations, present and future); "
                    "personal data (R5); justification: Все операции нужны по регламенту")


def test_approvers_name_review_teams_and_roles(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_operations(repo)
    classify(repo)
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    assert [c.kind for c in result.changes] == ["access-widened", "classification-changed"]
    assert result.approvers == (
        Approver("citto", "@reestr-registry/citto", ("operator",), (0, 1)),
        Approver("ved2", "@reestr-registry/ved2", ("consumer",), (0,)),
        Approver("ved3", "@reestr-registry/ved3", ("owner of SID0003001", "owner of SID0003002"),
                 (0, 1)),
    )


def test_markdown_puts_widening_and_personal_data_first(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_operations(repo)
    revoke(repo)
    text = render(plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY),
                  "markdown", "main", "pr")
    lines = text.splitlines()
    assert lines[:4] == [MARKER, "### reestr plan: `main` → `pr`", "",
                         "**2 change(s): 1 widened, 1 revoked** (effective on 2026-11-25)"]
    assert text.index("**Access widening**") < text.index("**Personal data exposure**") \
        < text.index("| # | change |") < text.index("#### Required approvers")
    approvers = [line for line in lines if line.startswith("- [ ]")]
    assert approvers == [
        "- [ ] **citto** @reestr-registry/citto — operator (changes 0, 1)",
        "- [ ] **ved1** @reestr-registry/ved1 — consumer (changes 1)",
        "- [ ] **ved2** @reestr-registry/ved2 — consumer (changes 0)",
        "- [ ] **ved3** @reestr-registry/ved3 — owner of SID0003001, owner of SID0003002 (changes 0, 1)"]


# --- the real console script -------------------------------------------------------------------

def test_cli_json(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_operations(repo)
    done = repo.run("plan", "--base", "main", "--format", "json", "--date", TODAY)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "approvers": [
            {"changes": [0], "participant": "citto", "review_team": "@reestr-registry/citto",
             "roles": ["operator"]},
            {"changes": [0], "participant": "ved2", "review_team": "@reestr-registry/ved2",
             "roles": ["consumer"]},
            {"changes": [0], "participant": "ved3", "review_team": "@reestr-registry/ved3",
             "roles": ["owner of SID0003001"]}],
        "base": "main",
        "blocked": [],
        "changes": [{
            "after": "operations", "approvers": ["citto", "ved2", "ved3"], "before": "operations",
            "consumer": "ved2", "detail": "operations operation1, operation2, operation3; "
                                          "personal data (R5)",
            "kind": "access-widened", "operation": None, "operations": ["operation2"],
            "field": None, "participant": None, "personal_data": True, "sid": "SID0003001",
            "where": "registry/consumers/ved2.yaml:9", "widening": True}],
        "format": 1,
        "head": "working tree",
        "merge_base": repo.base,
        "summary": {"approvers": 3, "by_kind": {"access-widened": 1}, "changes": 1,
                    "personal_data": 1, "widening": 1},
        "today": TODAY,
        "warnings": []}


def test_cli_head_revision_and_text(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    revoke(repo)
    head = repo.commit("revoke")
    repo.replace(SHEET["ved2"], VED2_OPS, "        - operation1\n")  # uncommitted: not in --head
    done = repo.run("plan", "--base", repo.base, "--head", head, "--date", TODAY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:5] == [
        f"reestr plan {repo.base} (merge base {repo.base[:12]}) → {head} (effective on 2026-11-25)",
        "1 change(s): 1 revoked", "",
        "  revoked                ved1 → SID0003002 [operation2]  operations",
        "    no-grant: ved1 has no grant for SID0003002 in its access sheet"]


@pytest.mark.parametrize(("args", "message"), [
    (["--base", "no-such-branch"], "reestr: bad revision 'no-such-branch': no such commit in ."),
    (["--base", "main", "--head", "deadbeef"], "reestr: bad revision 'deadbeef': no such commit in ."),
    (["--base", "--upload-pack=x"], "reestr: bad revision '--upload-pack=x': must not start with '-'"),
    (["--base", "main", "--registry-dir", "nowhere"], "reestr: nowhere: not a directory"),
    (["--base", "main", "--date", "25.11.2026"], "Error: Invalid value for --date: '25.11.2026'"),
], ids=["bad-base", "bad-head", "option-as-revision", "no-registry-dir", "bad-date"])
def test_cli_bad_inputs(tmp_path: Path, args: list[str], message: str) -> None:
    repo = Repo(tmp_path)
    done = repo.run("plan", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_cli_not_a_repository(tmp_path: Path) -> None:
    done = Repo(tmp_path / "r").run("plan", "--base", "main", "--repo", str(tmp_path))
    assert (done.returncode, done.stderr) == (2, f"reestr: {tmp_path}: not a git repository\n")


def test_a_file_that_does_not_load_is_named_and_not_removed(tmp_path: Path) -> None:
    """A typo in one sheet is not the revocation of its grants (no cascade, issue 11 finding 6)."""
    repo = Repo(tmp_path)
    repo.replace(SHEET["ved1"], "      access: full\n", "      access: ful\n")
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    assert result.changes == ()
    assert result.blocked == (
        "cannot judge the change until registry/consumers/ved1.yaml (head) loads: run `reestr validate`",)
    done = repo.run("plan", "--base", "main", "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout.startswith("error: cannot judge the change until registry/consumers/ved1.yaml")
    markdown = repo.run("plan", "--base", "main", "--date", TODAY, "--format", "markdown").stdout
    assert markdown.index("cannot judge the change yet") < markdown.index("no changes")


def test_a_service_that_fails_its_schema_is_not_removed(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.replace(SVC["SID0003001"], "protocol: rest", "protocol: rst")
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    assert [c.kind for c in result.changes] == []
    assert len(result.blocked) == 1


def test_a_branch_behind_main_shows_only_its_own_changes(tmp_path: Path) -> None:
    """The plan compares with the merge base: a change merged on main after the branch left it
    is not shown as the branch undoing it (issue 11, finding 9)."""
    repo = Repo(tmp_path)
    repo.git("checkout", "-q", "-b", "ved2-more")
    widen_operations(repo)
    branch = repo.commit("ved2 asks for operation2")
    repo.git("checkout", "-q", "main")
    revoke(repo)  # merged by another pull request meanwhile
    repo.commit("ved1 gives up SID0003002")
    done = repo.run("plan", "--base", "main", "--head", branch, "--format", "json", "--date", TODAY)
    data = json.loads(done.stdout)
    assert data["merge_base"] == repo.base
    assert [(c["kind"], c["consumer"]) for c in data["changes"]] == [("access-widened", "ved2")]


def _gap(kind: str, field: str, before: str | None, after: str | None,
         edit: Callable[[Repo], None]) -> Any:
    return pytest.param(kind, field, before, after, edit, id=f"{kind}-{field}")


GAPS = [
    _gap("grant-changed", "valid_until", None, "2027-12-31", lambda r: r.replace(
        SHEET["ved2"], "      purpose:", "      valid_until: \"2027-12-31\"\n      purpose:")),
    _gap("grant-changed", "purpose", "Получение сведений о заявителе и статуса запроса", "Любые цели",
         lambda r: r.replace(SHEET["ved2"], "Получение сведений о заявителе и статуса запроса",
                             "Любые цели")),
    _gap("grant-changed", "justification", None, "Нужно всё", lambda r: r.replace(
        SHEET["ved2"], "      purpose:", "      justification: Нужно всё\n      purpose:")),
    _gap("grant-changed", "justification",
         "Регламент требует все три сведения (карточка, поиск, статус) на каждом шаге услуги", None,
         lambda r: r.replace(SHEET["ved1"], "      justification: >-\n        Регламент требует все три "
                             "сведения (карточка, поиск, статус) на каждом шаге услуги\n", "")),
    _gap("participant-changed", "sidecar", "https://ved3.example.gov.ru:8443",
         "https://evil.example.org", lambda r: r.replace(
             PART["ved3"], "https://ved3.example.gov.ru:8443", "https://evil.example.org")),
    _gap("participant-changed", "review_team", "@reestr-registry/ved3", "@reestr-registry/ved2",
         lambda r: r.replace(PART["ved3"], "@reestr-registry/ved3", "@reestr-registry/ved2")),
    _gap("service-changed", "signed_messages", "true", "false", lambda r: (r.replace(
        SVC["SID0003001"], "signed_messages: false", "signed_messages: true"), r.commit("signed"),
        r.replace(SVC["SID0003001"], "signed_messages: true", "signed_messages: false"))),
    _gap("service-changed", "legal_basis", None, None, lambda r: r.replace(
        SVC["SID0003001"], "ст. 7.1\n", "ст. 7.2\n")),
]


@pytest.mark.parametrize(("kind", "field", "before", "after", "edit"), GAPS)
def test_every_field_that_changes_access_or_trust_is_in_the_plan(
        tmp_path: Path, kind: str, field: str, before: str | None, after: str | None,
        edit: Callable[[Repo], None]) -> None:
    repo = Repo(tmp_path)
    edit(repo)
    base = repo.git("rev-parse", "HEAD").strip()
    done = repo.run("plan", "--base", base, "--format", "json", "--date", TODAY)
    assert done.returncode == 0, done.stderr
    found = [c for c in json.loads(done.stdout)["changes"] if (c["kind"], c["field"]) == (kind, field)]
    assert len(found) == 1, done.stdout
    if before is not None or after is not None:
        assert (found[0]["before"], found[0]["after"]) == (before, after)
    assert found[0]["where"] and found[0]["where"].startswith(("registry/", "base registry/"))


def test_certificates_are_told_apart_and_located(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    pem, fp = new_certificate("ved2 rotation")
    repo.replace(PART["ved2"], "  certificates:\n", "  certificates:\n    - pem: |\n" + indent(pem, 8))
    result = plan(load_registry(repo.root, repo.base), load_registry(repo.root, None), DAY)
    added = [c for c in result.changes if c.kind == "certificate-added"]
    assert [c.after for c in added] == [fp]
    assert added[0].detail == ("subject CN=ved2 rotation; issuer CN=ved2 rotation; "
                               "valid 2026-01-01 – 2036-01-01")
    line = repo.path(PART["ved2"]).read_text(encoding="utf-8").splitlines().index("  certificates:") + 2
    assert added[0].where == f"{PART['ved2']}:{line}"


def test_every_kind_has_a_title() -> None:
    from compiler.plan import KINDS
    from compiler.plan_render import _TITLES

    assert set(KINDS) == set(_TITLES)

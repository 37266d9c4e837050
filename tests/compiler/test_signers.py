"""`reestr compile` with an external signer: a real signing service on 127.0.0.1, and a command.

The compile machine holds only the public key; the bundles it writes verify with `reestr verify`
against that key, byte for byte the same as when the key itself signs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
SERVICE = ROOT / "tests" / "tools" / "signing_service.py"
ISSUED = "2026-11-25T10:00:00Z"


def _reestr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REESTR, *args], capture_output=True, text=True, check=False, env=env)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    for name in ("operator", "other"):
        assert _reestr("keygen", "--out", str(tmp_path / name)).returncode == 0
    return {f"{name}.{ext}": tmp_path / f"{name}.{ext}" for name in ("operator", "other")
            for ext in ("key", "pub")}


@pytest.fixture
def service(keys: dict[str, Path]) -> Iterator[str]:
    """The signing service holding operator.key, behind a bearer token; yields its URL."""
    process = subprocess.Popen([sys.executable, str(SERVICE), str(keys["operator.key"]), "s3cret"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    try:
        yield f"http://127.0.0.1:{port}/sign"
    finally:
        process.terminate()
        process.wait()


def _compile(out: Path, *signing: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return _reestr("compile", str(ROOT / "registry"), "--out", str(out), "--serial", "7",
                   "--issued-at", ISSUED, "--expires-in", "3650d", *signing, env=env)


def _env(**extra: str) -> dict[str, str]:
    import os
    return {**os.environ, **extra}


def test_the_service_signs_and_the_bundles_equal_those_of_the_key(
        tmp_path: Path, keys: dict[str, Path], service: str) -> None:
    done = _compile(tmp_path / "remote", "--signer-url", service, "--signer-public", str(keys["operator.pub"]),
                    env=_env(REESTR_SIGNER_TOKEN="s3cret"))
    assert done.returncode == 0, done.stderr
    local = _compile(tmp_path / "local", "--key", str(keys["operator.key"]))
    assert local.returncode == 0, local.stderr
    names = sorted(p.name for p in (tmp_path / "local").glob("*.json"))
    assert names and names == sorted(p.name for p in (tmp_path / "remote").glob("*.json"))
    for name in names:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    ved3 = _reestr("verify", "--trusted", str(keys["operator.pub"]), "--audience", "ved3",
                   str(tmp_path / "remote" / "ved3.json"))
    assert ved3.returncode == 0, ved3.stdout


def test_the_command_signer_signs(tmp_path: Path, keys: dict[str, Path]) -> None:
    command = f"{sys.executable} {SERVICE} sign {keys['operator.key']}"
    done = _compile(tmp_path / "out", "--signer-command", command, "--signer-public", str(keys["operator.pub"]))
    assert done.returncode == 0, done.stderr
    assert _reestr("verify", "--trusted", str(keys["operator.pub"]), "--index",
                   str(tmp_path / "out" / "index.json")).returncode == 0


@pytest.mark.parametrize(("case", "message"), [
    ("no-token", "reestr: signer service: HTTP 401"),
    ("wrong-public-key", "reestr: signer service: the signature does not verify with --signer-public"),
    ("unreachable", "reestr: signer service: URLError: cannot reach it"),
], ids=["no-token", "wrong-public-key", "unreachable"])
def test_a_failing_service_stops_the_compile(tmp_path: Path, keys: dict[str, Path], service: str,
                                              case: str, message: str) -> None:
    url = "http://127.0.0.1:9/sign" if case == "unreachable" else service
    public = keys["other.pub"] if case == "wrong-public-key" else keys["operator.pub"]
    token = {} if case == "no-token" else {"REESTR_SIGNER_TOKEN": "s3cret"}
    done = _compile(tmp_path / "out", "--signer-url", url, "--signer-public", str(public), env=_env(**token))
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize(("command", "message"), [
    ("false", "reestr: signer command false: exit 1"),
    ("echo not-hex", "reestr: signer command echo: the answer is not a hex signature"),
    ("echo 00ff", "reestr: signer command echo: expected a 64-byte Ed25519 signature, got 2 bytes"),
], ids=["fails", "not-hex", "short"])
def test_a_failing_command_stops_the_compile(tmp_path: Path, keys: dict[str, Path], command: str,
                                              message: str) -> None:
    done = _compile(tmp_path / "out", "--signer-command", command, "--signer-public", str(keys["operator.pub"]))
    assert (done.returncode, done.stderr.strip()) == (2, message)


@pytest.mark.parametrize("args", [[], ["--signer-command", "x"], ["--signer-public", "x.pub"]],
                         ids=["nothing", "no-public", "public-alone"])
def test_signing_usage_errors(tmp_path: Path, args: list[str]) -> None:
    assert _compile(tmp_path / "out", *args).returncode == 2

"""The operator's TUF ceremonies through the real `reestr` console script (issue 14): init with a
2-of-3 root, compile into the repository, rotate the root (old and new thresholds sign), add and
revoke an online key, re-sign the timestamp, verify a bundle against the metadata; and the same
with a root key on a PKCS#11 token (SoftHSM2 from Debian, a token made in a temp dir)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
SOFTHSM_LIB = Path("/usr/lib/softhsm/libsofthsm2.so")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([REESTR, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = run(args, cwd, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    for name in ("root1", "root2", "root3", "root4", "targets", "online", "online2", "operator"):
        ok(["keygen", "--out", f"keys/{name}"], tmp_path)
    return tmp_path


def _init(ws: Path, *extra: str) -> None:
    ok(["tuf", "init", "repo", "--root-key", "keys/root1.pub", "--root-key", "keys/root2.pub",
        "--root-key", "keys/root3.pub", "--root-threshold", "2", "--targets-key", "keys/targets.pub",
        "--online-key", "keys/online.pub", "--bins", "16", "--sign", "keys/targets.key", *extra], ws)


def _status(ws: Path) -> dict[str, object]:
    return json.loads(ok(["tuf", "status", "repo"], ws))


def _keyid(ws: Path, role: str) -> str:
    roles = _status(ws)["root"]["roles"]  # type: ignore[index]
    return str(roles[role]["keyids"][0])


def test_ceremonies(ws: Path) -> None:
    refused = run(["tuf", "init", "repo", "--root-key", "keys/root1.pub", "--root-key", "keys/root2.pub",
                   "--root-threshold", "2", "--targets-key", "keys/targets.pub", "--online-key", "keys/online.pub",
                   "--sign", "keys/root1.key", "--sign", "keys/targets.key"], ws)
    assert refused.returncode == 2 and "root needs 2 signature(s)" in refused.stderr
    assert not (ws / "repo" / "metadata" / "1.root.json").exists()
    _init(ws, "--sign", "keys/root1.key", "--sign", "keys/root2.key")
    ok(["compile", "registry", "--serial", "5", "--out", "dist", "--tuf-repo", "repo",
        "--online-key", "keys/online.key"], ws)
    assert "vouched for by the TUF repository" in ok(
        ["verify", "dist/ved3.json", "--tuf-repo", "repo", "--audience", "ved3"], ws)

    # rotate the root: root1 leaves, root4 joins; the old root's 2 and the new root's 2 must sign
    new_set = ["--new-key", "keys/root2.pub", "--new-key", "keys/root3.pub", "--new-key", "keys/root4.pub"]
    ok(["tuf", "rotate-root", "repo", *new_set, "--threshold", "2",
        "--sign", "keys/root1.key", "--sign", "keys/root2.key", "--sign", "keys/root4.key"], ws)
    status = _status(ws)
    assert status["root"]["version"] == 2  # type: ignore[index]

    # the online key is compromised: add online2 to snapshot+timestamp+bins, revoke online
    old = _keyid(ws, "timestamp")
    for role in ("snapshot", "timestamp"):
        ok(["tuf", "add-key", "repo", "--role", role, "--key", "keys/online2.pub",
            "--sign", "keys/root3.key", "--sign", "keys/root4.key"], ws)
        ok(["tuf", "revoke-key", "repo", "--role", role, "--keyid", old,
            "--sign", "keys/root3.key", "--sign", "keys/root4.key"], ws)
    ok(["tuf", "add-key", "repo", "--role", "bins", "--key", "keys/online2.pub", "--sign", "keys/targets.key"], ws)
    ok(["tuf", "revoke-key", "repo", "--role", "bins", "--keyid", old, "--sign", "keys/targets.key"], ws)
    stolen = run(["tuf", "timestamp", "repo", "--sign", "keys/online.key"], ws)
    assert stolen.returncode == 2 and "timestamp needs 1 signature(s)" in stolen.stderr
    ok(["tuf", "publish", "repo", "--bundles", "dist", "--sign", "keys/online2.key"], ws)
    assert "timestamp v" in ok(["tuf", "timestamp", "repo", "--sign", "keys/online2.key", "--expires-in", "2h"], ws)
    status = _status(ws)
    assert status["root"]["version"] == 6 and status["targets"]["version"] == 3  # type: ignore[index]
    # a sidecar configured with root v1 walks 1 → 6 and accepts the bundle
    assert "ok: audience ved3" in ok(["verify", "dist/ved3.json", "--tuf-repo", "repo", "--root",
                                      "repo/metadata/1.root.json", "--audience", "ved3"], ws)


@pytest.mark.parametrize(("args", "message"), [
    (["--sign", "keys/root1.key"], "the old root needs 2 signature(s)"),  # one old key only
    (["--sign", "keys/root1.key", "--sign", "keys/root2.key"], "the new root needs 2 signature(s)"),
    (["--sign", "keys/root4.key", "--sign", "keys/root4.key", "--sign", "keys/online.key"],
     "the old root needs 2 signature(s)"),  # the same key twice counts once; the online key not at all
], ids=["one-old-key", "old-keys-only", "new-key-twice"])
def test_rotate_root_needs_both_thresholds(ws: Path, args: list[str], message: str) -> None:
    _init(ws, "--sign", "keys/root1.key", "--sign", "keys/root2.key")
    result = run(["tuf", "rotate-root", "repo", "--new-key", "keys/root4.pub", "--new-key", "keys/root3.pub",
                  "--threshold", "2", *args], ws)
    assert result.returncode == 2 and message in result.stderr
    assert not (ws / "repo" / "metadata" / "2.root.json").exists()


def test_verify_refuses_a_bundle_the_repository_does_not_name(ws: Path) -> None:
    _init(ws, "--sign", "keys/root1.key", "--sign", "keys/root2.key")
    ok(["compile", "registry", "--serial", "5", "--out", "dist", "--tuf-repo", "repo",
        "--online-key", "keys/online.key"], ws)
    ok(["compile", "registry", "--serial", "6", "--out", "other", "--key", "keys/operator.key"], ws)
    result = run(["verify", "other/ved3.json", "--tuf-repo", "repo", "--audience", "ved3"], ws)
    assert result.returncode == 1 and "not the bundle the repository names" in result.stdout
    (ws / "repo" / "metadata" / "timestamp.json").write_text("{}")
    result = run(["verify", "dist/ved3.json", "--tuf-repo", "repo", "--audience", "ved3"], ws)
    assert result.returncode == 1 and "metadata does not verify" in result.stdout


# --- PKCS#11: SoftHSM2 ----------------------------------------------------------------------------


@pytest.fixture
def token(tmp_path: Path) -> dict[str, str]:
    """A SoftHSM2 token `reestr` (user PIN 1234) in a temp dir holding an ECDSA P-256 key, id 02."""
    if shutil.which("softhsm2-util") is None or not SOFTHSM_LIB.exists():
        pytest.fail("SoftHSM2 is missing: `make softhsm` (Debian package softhsm2)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "reestr", "--so-pin", "0000",
                    "--pin", "1234"], check=True, capture_output=True, env=env)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "import.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    subprocess.run(["softhsm2-util", "--import", str(pem), "--token", "reestr", "--label", "root", "--id", "02",
                    "--pin", "1234"], check=True, capture_output=True, env=env)
    pem.unlink()  # from now on the key exists only in the token
    return {"SOFTHSM2_CONF": str(conf), "PYKCS11LIB": str(SOFTHSM_LIB), "REESTR_HSM_PIN": "1234"}


def test_root_key_in_a_pkcs11_token(ws: Path, token: dict[str, str]) -> None:
    hsm = "hsm:2?label=reestr"
    ok(["tuf", "init", "repo", "--root-key", hsm, "--root-key", "keys/root1.pub", "--root-threshold", "2",
        "--targets-key", "keys/targets.pub", "--online-key", "keys/online.pub", "--bins", "16",
        "--sign", hsm, "--sign", "keys/root1.key", "--sign", "keys/targets.key"], ws, token)
    root = json.loads((ws / "repo" / "metadata" / "1.root.json").read_text())
    schemes = {k["scheme"] for k in root["signed"]["keys"].values()}
    assert "ecdsa-sha2-nistp256" in schemes and len(root["signatures"]) == 2
    ok(["compile", "registry", "--serial", "5", "--out", "dist", "--tuf-repo", "repo",
        "--online-key", "keys/online.key"], ws)
    # the token signs a root rotation (with root1, old and new threshold): root2 replaces nothing, joins
    ok(["tuf", "add-key", "repo", "--role", "root", "--key", "keys/root2.pub",
        "--sign", hsm, "--sign", "keys/root1.key"], ws, token)
    assert "ok: audience ved3" in ok(["verify", "dist/ved3.json", "--tuf-repo", "repo", "--audience", "ved3"], ws)
    wrong = run(["tuf", "add-key", "repo", "--role", "root", "--key", "keys/root3.pub",
                 "--sign", hsm, "--sign", "keys/root1.key"], ws, {**token, "REESTR_HSM_PIN": "9999"})
    assert wrong.returncode == 2 and "PKCS#11" in wrong.stderr and "9999" not in wrong.stderr
    no_pin = run(["tuf", "add-key", "repo", "--role", "root", "--key", "keys/root3.pub", "--sign", hsm,
                  "--sign", "keys/root1.key"],
                 ws, {k: v for k, v in token.items() if k != "REESTR_HSM_PIN"} | {"REESTR_HSM_PIN": ""})
    assert no_pin.returncode == 2 and "REESTR_HSM_PIN" in no_pin.stderr

"""The benchmark's registry generator keeps producing registries that validate clean."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REESTR = Path(sys.executable).parent / "reestr"
_spec = importlib.util.spec_from_file_location("gen_registry", ROOT / "bench" / "gen_registry.py")
assert _spec is not None and _spec.loader is not None
gen_registry = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_registry)
generate = gen_registry.generate


@pytest.mark.parametrize(("services", "participants", "grants"),
                         [(30, 6, 60), (120, 25, 900)], ids=["tiny", "small"])
def test_generated_registry_validates_clean(tmp_path: Path, services: int, participants: int,
                                            grants: int) -> None:
    registry = tmp_path / "registry"
    counts = generate(registry, services, participants, grants, seed=7)
    assert counts == {"participants": participants, "services": services, "grants": grants}
    assert len(list((registry / "services").glob("*.yaml"))) == services
    assert len(list((registry / "participants").glob("*.yaml"))) == participants
    done = subprocess.run([str(REESTR), "validate", str(registry), "--strict"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 error(s), 0 warning(s)" in done.stderr


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    generate(first, 40, 8, 100, seed=3)
    generate(second, 40, 8, 100, seed=3)
    names = sorted(p.relative_to(first) for p in first.rglob("*.yaml"))
    assert names == sorted(p.relative_to(second) for p in second.rglob("*.yaml"))
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_cli_writes_the_requested_sizes(tmp_path: Path) -> None:
    out = tmp_path / "registry"
    done = subprocess.run([sys.executable, "bench/gen_registry.py", "--out", str(out), "--services", "20",
                           "--participants", "5", "--grants", "30", "--seed", "2"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "5 participants, 20 services, 30 grants" in done.stdout


def test_generated_registry_with_payload_schemas_validates_clean(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    generate(registry, 40, 8, 100, seed=7, payload_schemas=True)
    xsds = list((tmp_path / "schemas/services").glob("*/request.xsd"))
    assert xsds and all((x.parent / "common/types.xsd").is_file() for x in xsds)
    done = subprocess.run([str(REESTR), "validate", str(registry), "--strict"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_payload_schemas_flag_off_changes_nothing(tmp_path: Path) -> None:
    generate(tmp_path / "a", 40, 8, 100, seed=3)
    generate(tmp_path / "b" / "registry", 40, 8, 100, seed=3, payload_schemas=True)
    plain = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.yaml")}
    with_xsd = {p.relative_to(tmp_path / "b" / "registry"): p.read_bytes()
                for p in (tmp_path / "b" / "registry").rglob("*.yaml")}
    assert plain.keys() == with_xsd.keys()
    changed = [k for k in plain if plain[k] != with_xsd[k]]
    assert changed and all(k.parts[0] == "services" for k in changed)  # only SOAP services gain a line
    assert all(b"request_schema:" in with_xsd[k] for k in changed)

"""The bundle archive (`reestr archive`) and `reestr audit` on a real journal written by the real
sidecar journal writer; the full chain on the demo's journal is tested in tests/test_demo.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")


def _reestr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REESTR, *args], capture_output=True, text=True, check=False, cwd=ROOT)


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    assert _reestr("keygen", "--out", str(tmp_path / "op")).returncode == 0
    done = _reestr("compile", "registry", "--key", str(tmp_path / "op.key"), "--out", str(tmp_path / "b"),
                   "--serial", "11", "--expires-in", "3650d")
    assert done.returncode == 0, done.stderr
    return tmp_path / "b"


def test_an_archived_serial_is_never_overwritten(tmp_path: Path, bundles: Path) -> None:
    archive = tmp_path / "archive"
    assert _reestr("archive", "--bundles", str(bundles), "--archive", str(archive), "--pr", "7").returncode == 0
    assert _reestr("archive", "--bundles", str(bundles), "--archive", str(archive), "--pr", "7").returncode == 0
    record = json.loads((archive / "11" / "audit.json").read_text())
    assert (record["serial"], record["pull_request"]) == (11, 7)
    assert set(record["bundles"]) >= {"index.json", "ved3.json"}
    again = _reestr("archive", "--bundles", str(bundles), "--archive", str(archive), "--pr", "8")
    assert again.returncode == 2
    assert "serial 11 is archived with other content" in again.stderr
    assert json.loads((archive / "11" / "audit.json").read_text())["pull_request"] == 7


def test_an_altered_archive_breaks_the_chain(tmp_path: Path, bundles: Path) -> None:
    from compiler import bundle_archive

    archive = tmp_path / "archive"
    bundle_archive.write(bundles, archive)
    (archive / "11" / "ved3.json").write_bytes(b"{}")
    with pytest.raises(bundle_archive.ArchiveError, match="differs from its digest"):
        bundle_archive.read(archive, 11)
    with pytest.raises(bundle_archive.ArchiveError, match="serial 12 is not in the archive"):
        bundle_archive.read(archive, 12)


@pytest.mark.parametrize("args", [[], ["--id", "1"], ["--id", "1", "--grant", "a", "SID0000001"]],
                         ids=["nothing", "id-without-archive", "both"])
def test_audit_usage_errors(tmp_path: Path, args: list[str]) -> None:
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"")
    assert _reestr("audit", "--journal", str(journal), *args).returncode == 2

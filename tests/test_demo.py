"""README command 1 (`make demo`) end to end: it must decide every call as expected and exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_the_whole_path() -> None:
    result = subprocess.run([sys.executable, "-m", "demo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Demo OK: 15 calls decided as expected; journal verified." in out
    assert "UNEXPECTED" not in out
    assert "operation-not-granted" in out and "no-client-certificate" in out
    assert "intact: 30 records" in out
    assert "Traceback" not in out + result.stderr

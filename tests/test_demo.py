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
    assert "intact: 30 records" in out  # two per call
    assert "Traceback" not in out + result.stderr
    # the audit chain of record 1, from the archive the demo wrote (issue 11)
    chain = out[out.index("$ reestr audit --journal"):]
    for part in ("inbound request ved1 → ved3 SID0003001 operation1: allow", "bundle serial ",
                 "signed by keyid", "source: commit ", "grant: registry/consumers/ved1.yaml:9 at commit",
                 "legal basis: Федеральный закон от 27.07.2010 № 210-ФЗ", "purpose: Проверка сведений о заявителе",
                 "pull request: #42", "approved for citto @reestr-registry/citto (operator): orlov-citto APPROVED",
                 "signing triggered by: orlov-citto", "ved1 → SID0003001 in "):
        assert part in chain, part

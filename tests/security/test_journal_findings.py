"""Issue 10, finding 2 (journal flood without a certificate) and finding 12 (truncation made
visible), against a live sidecar and its real journal."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from compiler.trust import load_private_key
from proxy.journal import Journal, sidecar_record
from proxy.journal.anchor import anchor_text, write_anchor_file
from proxy.journal.chain import chain_hash
from proxy.journal.record import format_time
from tests.proxy.conftest import Keys, Pki
from tests.security.conftest import Live
from tests.security.helpers import raw_http1

pytestmark = pytest.mark.slow




FLOOD = {
    "finding-02-no-certificate-long-target": (None, "/SID0003001/" + "a" * 8000),
    "finding-02-unknown-certificate-long-target": ("unregistered", "/SID0003001/" + "b" * 8000),
    "finding-02-denied-caller-long-sid": ("stranger", "/" + "S" * 8000 + "/x"),
    "finding-02-over-the-cap": (None, "/SID0003001/" + "c" * 200_000),
}


@pytest.mark.parametrize(("who", "target"), FLOOD.values(), ids=FLOOD.keys())
def test_refused_requests_are_journaled_bounded(live: Live, pki: Pki, who: str | None, target: str) -> None:
    before = max(live.journal(), default=0)
    raw_http1(live.port, pki.client_context(who),
              f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    new = [r for rid, r in live.journal().items() if rid > before]
    assert new and all(r["decision"] != "allow" for r in new)
    for record in new:
        assert len(record["path"]) <= 256 and len(record["sid"] or "") <= 96
        if len(target) <= 8192:  # under the 414 cap mitmproxy hands the whole target over
            digest = hashlib.sha256(target.encode()).hexdigest()
            assert record["path"].endswith("…sha256:" + digest)
            assert target.startswith(record["path"].split("…sha256:")[0])


def test_finding_02_five_long_requests_grow_the_journal_little(live: Live, pki: Pki) -> None:
    before = max(live.journal(), default=0)
    for i in range(5):
        raw_http1(live.port, pki.client_context(None),
                  f"GET /SID0003001/{str(i) * 8000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    new = [r for rid, r in live.journal().items() if rid > before]
    assert len(new) == 10  # a request and a response record each
    assert sum(len(json.dumps(r)) for r in new) < 10 * 2048  # before: 10 × 8 KB of paths alone


# --- finding 12: a shortened journal does not verify ---------------------------------------------

HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def sidecar_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


@dataclass
class Written:
    path: Path
    pub: Path
    anchor: Path  # the anchor exported at the journal's last checkpoint


def _write_journal(d: Path, keys: Keys, records: int = 12) -> Written:
    """A journal of `records` records an hour old, a checkpoint every 5, closed (sealed); its anchor."""
    key = load_private_key(keys.sidecar_key)
    pub = d / "sidecar.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    path = d / "journal.sqlite"
    journal = Journal(path, key, checkpoint_every=5, checkpoint_interval=3600)
    journal.start()
    for i in range(records):
        moment = format_time(HOUR_AGO + timedelta(seconds=i))
        journal.append_blocking(sidecar_record(
            time=moment, direction="inbound", kind="request", exchange=f"x{i}", decision="deny",
            method="GET", path=f"/SID0003001/{i}", size=0, body_sha256="0" * 64))
    journal.close()
    assert journal.latest_checkpoint is not None and journal.latest_checkpoint.upto == records
    anchor = d / "anchor.json"
    write_anchor_file(anchor, anchor_text(journal.latest_checkpoint))
    return Written(path, pub, anchor)


def _sql(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path)
    with con:
        for statement in statements:
            con.execute(statement)
    con.close()


def _cut_unsealed_tail(w: Written) -> None:
    """The tail after checkpoint 2 (records 11, 12) unsealed by dropping the final checkpoint,
    then record 12 cut: what finding 12 did to the unsealed tail."""
    _sql(w.path, "DELETE FROM checkpoints WHERE id = 3", "DELETE FROM records WHERE id = 12")


def _drop_last_checkpoint_and_records(w: Written) -> None:
    _sql(w.path, "DELETE FROM checkpoints WHERE id = 3", "DELETE FROM records WHERE id > 10")


def _empty_checkpoints_rewrite_chain(w: Written) -> None:
    """No checkpoints; record 3 edited and every hash after it recomputed: a consistent chain."""
    con = sqlite3.connect(w.path)
    with con:
        con.execute("DELETE FROM checkpoints")
        rows = con.execute("SELECT id, prev_hash, record FROM records ORDER BY id").fetchall()
        prev = rows[0][1]
        for rid, _, text in rows:
            if rid == 3:
                text = text.replace("/SID0003001/2", "/SID0003001/9")
            digest = chain_hash(prev, text)
            con.execute("UPDATE records SET prev_hash = ?, hash = ?, record = ? WHERE id = ?",
                        (prev, digest, text, rid))
            prev = digest
    con.close()


SHORTENED = {
    "finding-12-unsealed-tail-cut": (_cut_unsealed_tail, False),
    "finding-12-unsealed-tail-cut-with-anchor": (_cut_unsealed_tail, True),
    "finding-12-last-checkpoint-and-records-deleted": (_drop_last_checkpoint_and_records, True),
    "finding-12-checkpoints-emptied-chain-rewritten": (_empty_checkpoints_rewrite_chain, False),
    "finding-12-checkpoints-emptied-chain-rewritten-with-anchor": (_empty_checkpoints_rewrite_chain, True),
}


@pytest.mark.parametrize(("tamper", "with_anchor"), SHORTENED.values(), ids=SHORTENED.keys())
def test_shortened_journal_fails_verify(tmp_path: Path, keys: Keys, tamper: Any, with_anchor: bool) -> None:
    w = _write_journal(tmp_path, keys)
    tamper(w)
    done = sidecar_cli("journal", "verify", str(w.path), "--key", str(w.pub),
                       *(["--anchor", str(w.anchor)] if with_anchor else []))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SHORTENED" in done.stdout or "TAMPERED" in done.stdout


def test_intact_journal_verifies_against_its_anchor(tmp_path: Path, keys: Keys) -> None:
    w = _write_journal(tmp_path, keys)
    done = sidecar_cli("journal", "verify", str(w.path), "--key", str(w.pub), "--anchor", str(w.anchor))
    assert done.returncode == 0 and "intact" in done.stdout, done.stdout + done.stderr


def test_anchor_signed_by_another_key_is_refused(tmp_path: Path, keys: Keys) -> None:
    w = _write_journal(tmp_path, keys)
    other = tmp_path / "other.pub"
    other.write_bytes(keys.other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    done = sidecar_cli("journal", "verify", str(w.path), "--key", str(other), "--anchor", str(w.anchor))
    assert done.returncode != 0 and "not signed" in done.stdout + done.stderr


def test_finding_12_live_anchor_endpoint_and_file(live: Live, pki: Pki, keys: Keys, tmp_path: Path) -> None:
    """The running sidecar exports its checkpoints: /journal/anchor verifies its journal by URL."""
    raw_http1(live.port, pki.client_context("ved1"),
              b"GET /SID0003001/certificates/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    url = f"http://127.0.0.1:{live.config.admin.port}/journal/anchor"
    deadline = time.monotonic() + 30  # the writer seals every 10 s; the exporter looks every second
    while live.admin("/journal/anchor").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    pub = tmp_path / "sidecar.pub"
    pub.write_bytes(load_private_key(keys.sidecar_key).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    done = sidecar_cli("journal", "verify", str(live.config.journal.path), "--key", str(pub),
                       "--anchor", url, "--max-unsealed-age", "3600")
    assert done.returncode == 0, done.stdout + done.stderr

"""`reestr-sidecar journal verify|export` and `stats`, run as the installed console script."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.trust import generate_keypair, load_private_key
from proxy.journal import Journal, Record

SIDECAR = Path(sys.executable).parent / "reestr-sidecar"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SIDECAR), *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "sidecar")


@pytest.fixture
def journal(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    """Twelve calls one second apart; every fourth one denied; checkpoints at 5, 10 and 12."""
    path = tmp_path / "journal.db"
    with Journal(path, load_private_key(keys[0]), checkpoint_every=5) as j:
        for n in range(12):
            denied = n % 4 == 3
            j.append_blocking(Record(
                time=f"2026-03-01T10:00:{n:02d}.000000Z", direction="inbound", kind="request",
                exchange=f"exchange-{n}", decision="deny" if denied else "allow", method="GET",
                path=f"/SID0003001/certificates/{n}", size=0, body_sha256=hashlib.sha256(b"").hexdigest(),
                consumer=f"vedomstvo-{1 + n % 2}", provider="vedomstvo-3" if n < 10 else "vedomstvo-5",
                sid="SID0003001" if n < 10 else "SID0005001", operation="get",
                reason="R-no-grant" if denied else None, status=403 if denied else None))
    return path


def test_verify_intact_exits_0(journal: Path, keys: tuple[Path, Path]) -> None:
    result = run("journal", "verify", journal, "--key", keys[1])
    assert result.returncode == 0, result.stderr
    assert "intact: 12 records, 3 checkpoints" in result.stdout and "unsealed tail 0" in result.stdout


def test_verify_hand_edited_exits_1_naming_the_first_bad_record(journal: Path, keys: tuple[Path, Path]) -> None:
    with contextlib.closing(sqlite3.connect(journal)) as conn, conn:
        conn.execute("UPDATE records SET record = replace(record, '\"deny\"', '\"allow\"') WHERE id = 8")
        conn.execute("DELETE FROM records WHERE id = 11")
    result = run("journal", "verify", journal, "--key", keys[1])
    assert result.returncode == 1
    assert "TAMPERED: first bad record 8: record-modified" in result.stdout
    assert "record 11: record-missing" in result.stdout


def test_verify_with_another_key_exits_1(journal: Path, tmp_path: Path) -> None:
    _, other = generate_keypair(tmp_path / "other")
    result = run("journal", "verify", journal, "--key", other)
    assert result.returncode == 1
    assert "first bad record 5: checkpoint-unknown-key" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["journal", "verify", "{tmp}/missing.db", "--key", "{pub}"], "no such file", id="missing-journal"),
    pytest.param(["journal", "verify", "{pub}", "--key", "{pub}"], "not a database", id="not-a-journal"),
    pytest.param(["journal", "verify", "{db}", "--key", "{db}"], "not a PEM public key", id="bad-key-file"),
    pytest.param(["journal", "verify", "{db}", "--key", "{tmp}/none.pub"], "No such file", id="missing-key"),
    pytest.param(["journal", "verify", "{db}"], "Missing option '--key'", id="no-key-option"),
    pytest.param(["journal", "export", "{db}", "--since", "last week"], "not an ISO 8601 time", id="bad-since"),
    pytest.param(["journal", "export", "{db}", "--format", "csv"], "Invalid value for '--format'", id="bad-format"),
    pytest.param(["stats", "--journal", "{tmp}/missing.db"], "no such file", id="stats-missing-journal"),
])
def test_usage_and_unreadable_input_exit_2_without_traceback(journal: Path, keys: tuple[Path, Path],
                                                             tmp_path: Path, args: list[str],
                                                             message: str) -> None:
    result = run(*(a.format(tmp=tmp_path, pub=keys[1], db=journal) for a in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_export_jsonl_with_since_until_to_file(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run("journal", "export", journal, "--format", "jsonl", "--since", "2026-03-01T10:00:03Z",
                 "--until", "2026-03-01T13:00:06+03:00", "-o", out)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == [4, 5, 6]
    assert lines[0]["decision"] == "deny" and lines[0]["reason"] == "R-no-grant"
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_export_to_stdout(journal: Path) -> None:
    result = run("journal", "export", journal)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 12


def test_stats_text_and_json_per_provider(journal: Path) -> None:
    text = run("stats", "--journal", journal, "--provider", "vedomstvo-3")
    assert text.returncode == 0, text.stderr
    assert text.stdout.split("\n")[1].split() == ["SID0003001", "get", "vedomstvo-1", "allow", "5"]
    assert text.stdout.split("\n")[-2].split() == ["total", "10"]
    as_json = run("stats", "--journal", journal, "--since", "2026-03-01T10:00:08Z", "--format", "json")
    assert json.loads(as_json.stdout) == [
        {"sid": "SID0003001", "operation": "get", "consumer": "vedomstvo-1", "decision": "allow", "calls": 1},
        {"sid": "SID0003001", "operation": "get", "consumer": "vedomstvo-2", "decision": "allow", "calls": 1},
        {"sid": "SID0005001", "operation": "get", "consumer": "vedomstvo-1", "decision": "allow", "calls": 1},
        {"sid": "SID0005001", "operation": "get", "consumer": "vedomstvo-2", "decision": "deny", "calls": 1},
    ]


def test_archive_verify_prune_export_with_archives(journal: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    made = run("journal", "archive", journal, "--to", archives, "--before", "2026-03-01T10:00:07Z")
    assert made.returncode == 0, made.stderr
    assert "records 1–5 (5), sealed by checkpoint 1" in made.stdout  # 6–10 holds 10:00:09 and later
    assert run("journal", "archive", journal, "--to", archives).stdout.count("records 6–12") == 1
    verified = run("journal", "verify", journal, "--key", keys[1], "--archives", archives)
    assert verified.returncode == 0, verified.stdout
    assert "2 archive(s) up to record 12" in verified.stdout
    pruned = run("journal", "prune", journal, "--key", keys[1], "--archives", archives, "--before", "2026-03-02")
    assert pruned.returncode == 0, pruned.stderr
    assert "records 1–12 pruned (12 deleted)" in pruned.stdout
    assert run("journal", "export", journal).stdout == ""
    assert len(run("journal", "export", journal, "--archives", archives).stdout.splitlines()) == 12
    assert json.loads(run("stats", "--journal", journal, "--archives", archives, "--format", "json").stdout)
    again = run("journal", "verify", journal, "--key", keys[1], "--archives", archives)
    assert again.returncode == 0 and "records 1–12 pruned" in again.stdout
    alone = run("journal", "verify", "--key", keys[1], "--archives", archives)  # the journal not needed
    assert alone.returncode == 0 and "2 archive(s) up to record 12" in alone.stdout, alone.stdout
    from_archives = [json.loads(line) for line in run("journal", "export", "--archives", archives,
                                                       "--since", "2026-03-01T10:00:03Z").stdout.splitlines()]
    assert [r["id"] for r in from_archives] == list(range(4, 13))
    for manifest in archives.glob("*-000000000001-*.manifest.json"):
        manifest.unlink()
    broken = run("journal", "verify", journal, "--key", keys[1], "--archives", archives)
    assert broken.returncode == 1 and "archive-missing" in broken.stdout
    alone = run("journal", "verify", "--key", keys[1], "--archives", archives)
    assert alone.returncode == 1 and "first bad record 1: archive-missing" in alone.stdout


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["journal", "verify", "--key", "{pub}"], "give a journal file PATH or --dsn", id="no-journal"),
    pytest.param(["journal", "verify", "{db}", "--dsn", "postgresql://x@127.0.0.1:1/x", "--key", "{pub}"],
                 "one of them", id="path-and-dsn"),
    pytest.param(["journal", "prune", "{db}", "--key", "{pub}", "--archives", "{tmp}/none", "--before", "2026-01-01"],
                 "no such directory", id="prune-without-archives"),
    pytest.param(["journal", "verify", "--dsn", "postgresql://reestr:s3cret@127.0.0.1:1/x", "--key", "{pub}"],
                 "cannot connect", id="dsn-unreachable"),
    pytest.param(["journal", "export", "--dsn", "postgresql://reestr:s3cret@[::1"], "cannot connect",
                 id="dsn-unparsable-uri"),
    pytest.param(["journal", "export", "--dsn", "host=127.0.0.1 port=1 password=s3cret sslmode=bogus"],
                 "cannot connect", id="dsn-bad-option"),
    pytest.param(["stats", "--dsn", "garbage=1 password=s3cret"], "cannot connect", id="dsn-unknown-option"),
])
def test_journal_target_errors_exit_2(journal: Path, keys: tuple[Path, Path], tmp_path: Path, args: list[str],
                                      message: str) -> None:
    result = run(*(a.format(tmp=tmp_path, pub=keys[1], db=journal) for a in args))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "s3cret" not in result.stderr and "Traceback" not in result.stderr


def _price_list(tmp_path: Path) -> tuple[Path, Path]:
    """A signed bundle for vedomstvo-3 in which SID0003001 costs 1.25 RUB a call, and its key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from compiler.trust import sign_envelope

    operator = Ed25519PrivateKey.generate()
    signed = {"type": "reestr-bundle", "format": 1, "audience": "vedomstvo-3", "serial": 42,
              "issued_at": "2026-02-01T00:00:00Z", "expires_at": "2026-02-02T00:00:00Z",  # long expired
              "services": {"SID0003001": {"name": "A", "protocol": "rest", "classification": "public",
                                          "signed_messages": False,
                                          "tariff": {"currency": "RUB", "per_call": "1.25"}},
                           "SID0005001": {"name": "B", "protocol": "rest", "classification": "public",
                                          "signed_messages": False}},
              "grants": {}}
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(sign_envelope(signed, [operator]))
    from cryptography.hazmat.primitives import serialization
    key = tmp_path / "operator.pub"
    key.write_bytes(operator.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return bundle, key


def test_stats_priced_multiplies_allowed_calls_by_the_tariff(journal: Path, tmp_path: Path) -> None:
    bundle, key = _price_list(tmp_path)
    result = run("stats", "--journal", journal, "--priced", "--bundle", bundle, "--trusted-key", key,
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # SID0003001: calls 0-9, every fourth (3, 7) denied: ved1 has 0,2,4,6,8 -> 5; ved2 has 1,5,9 -> 3
    assert data["bundle_serial"] == 42
    assert [(r["consumer"], r["calls"], r["amount"]) for r in data["rows"]] == [
        ("vedomstvo-1", 5, "6.25"), ("vedomstvo-2", 3, "3.75")]
    assert data["totals"] == {"RUB": "10.00"}  # SID0005001 has no tariff: not priced
    text = run("stats", "--journal", journal, "--priced", "--bundle", bundle, "--trusted-key", key)
    assert "tariffs of bundle serial 42" in text.stdout and text.stdout.split("\n")[-2].split() == [
        "total", "10.00", "RUB"]


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param([], "--priced needs --bundle and --trusted-key", id="no-bundle"),
    pytest.param(["--bundle", "{bundle}", "--trusted-key", "{pub}"], "signature", id="bundle-not-signed-by-key"),
])
def test_stats_priced_refuses_an_unverified_price_list(journal: Path, keys: tuple[Path, Path], tmp_path: Path,
                                                       extra: list[str], message: str) -> None:
    bundle, _ = _price_list(tmp_path)
    result = run("stats", "--journal", journal, "--priced",
                 *(a.format(bundle=bundle, pub=keys[1]) for a in extra))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_prune_refuses_with_exit_1_when_the_journal_does_not_verify(journal: Path, keys: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    assert run("journal", "archive", journal, "--to", archives).returncode == 0
    with contextlib.closing(sqlite3.connect(journal)) as conn, conn:
        conn.execute("UPDATE records SET record = replace(record, '\"deny\"', '\"allow\"') WHERE id = 4")
    result = run("journal", "prune", journal, "--key", keys[1], "--archives", archives, "--before", "2027-01-01")
    assert result.returncode == 1 and "refusing to prune" in result.stderr and "record 4" in result.stderr
    assert len(run("journal", "export", journal).stdout.splitlines()) == 12


def test_stats_counts_the_journals_of_several_sidecars_together(journal: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    shutil.copyfile(journal, other)
    one = json.loads(run("stats", "--journal", journal, "--format", "json").stdout)
    both = run("stats", "--journal", journal, "--journal", other, "--format", "json")
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout) == [{**row, "calls": 2 * row["calls"]} for row in one]
    ambiguous = run("stats", "--journal", journal, "--journal", other, "--archives", tmp_path)
    assert ambiguous.returncode == 2 and "--archives belongs to one journal" in ambiguous.stderr

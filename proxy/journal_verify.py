"""Verify a journal file: the hash chain in id order and the signed checkpoints over it (R11).

`verify_journal` opens the file read-only (`mode=ro`), so verifying never changes it, reads
records and checkpoints in one snapshot, and returns a `VerifyReport` listing every problem; it
prints nothing. What it detects:

- a record whose text no longer matches its stored hash (a field was edited);
- a gap in the ids (records deleted), including sealed records deleted from the end;
- a record whose prev_hash is not its predecessor's hash (moved, reordered, inserted);
- a row whose id differs from the id inside its hashed text (renumbered);
- a checkpoint with a bad signature or signed by another key than the one given;
- a checkpoint whose signed head is not the chain's hash at that record: the chain was rewritten
  consistently (hashes recomputed) after the checkpoint was signed.

Records after the last good checkpoint are the "unsealed tail": not an error (a process killed
with SIGKILL leaves one), but nothing proves they were not changed or cut off.

Speed matters (≥ 200,000 records/s): records are fetched in batches and each batch is checked
with C-level operations (see `_walk`); a batch with a problem goes to a slow path that explains it.
The id inside a record's text is compared with its row id only on that slow path: ids contiguous
from 1 plus intact links already pin every genuine record to its row, so a mismatch cannot occur
without another finding (or a forged, re-hashed chain, which only a checkpoint can reveal).
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compiler.trust import keyid, sha256_hex
from proxy.journal_format import (
    GENESIS_HASH,
    JournalError,
    checkpoint_payload,
    open_readonly,
    schema_problem,
)

_BATCH = 4096
_MAX_PROBLEMS = 1000


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. `record_id` is the first record it makes untrustworthy (its chain position)."""

    record_id: int
    code: str
    message: str
    checkpoint_id: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify_journal` found: counts, the sealed part, and every problem in chain order."""

    path: str
    records: int
    last_record: int
    checkpoints: int
    last_sealed_record: int
    problems: tuple[Problem, ...]
    problem_count: int

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def first_bad_record(self) -> int | None:
        return self.problems[0].record_id if self.problems else None

    @property
    def unsealed_tail(self) -> int:
        """Records after the last checkpoint that is valid and matches the chain."""
        return max(0, self.last_record - self.last_sealed_record)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    id: int
    upto: int
    head: str
    time: str
    keyid: str
    signature: str


@dataclass(slots=True)
class _Walk:
    """The chain walk's result: counts, stored hashes at sealed positions, and problems."""

    count: int = 0
    last_id: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    def add(self, problems: Iterable[Problem], *, capped: bool = True) -> None:
        """Keep the first _MAX_PROBLEMS record problems; checkpoint problems are few and always kept."""
        for problem in problems:
            self.problem_count += 1
            if not capped or len(self.problems) < _MAX_PROBLEMS:
                self.problems.append(problem)


def verify_journal(path: str | Path, public_key: Ed25519PublicKey) -> VerifyReport:
    """Walk the chain and check every checkpoint against `public_key`; raise JournalError if unreadable."""
    conn = open_readonly(path)
    try:
        conn.execute("BEGIN")  # one snapshot, even while a sidecar keeps writing
        changed = schema_problem(conn)
        checkpoints = _load_checkpoints(conn)
        heads: dict[int, str] = {}
        walk = _walk(conn, {cp.upto for cp in checkpoints}, heads)
        if changed is not None:
            walk.add([Problem(1, "schema-modified", changed)], capped=False)
        conn.execute("ROLLBACK")
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot read journal: {e}") from e
    finally:
        conn.close()
    sealed = _check_checkpoints(checkpoints, heads, walk, public_key)
    problems = sorted(walk.problems, key=lambda p: (p.record_id, p.checkpoint_id or 0))
    return VerifyReport(path=str(path), records=walk.count, last_record=walk.last_id,
                        checkpoints=len(checkpoints), last_sealed_record=sealed,
                        problems=tuple(problems), problem_count=walk.problem_count)


def _load_checkpoints(conn: sqlite3.Connection) -> list[_Checkpoint]:
    rows = conn.execute(f"SELECT id, CAST(upto_record_id AS INTEGER), {_text('head_hash')}, {_text('time')}, "
                        f"{_text('keyid')}, {_text('signature')} FROM checkpoints ORDER BY id").fetchall()
    return [_Checkpoint(*row) for row in rows]


def _text(column: str) -> str:
    """A column as text: no-op on the STRICT schema; keeps a hand-changed table from crashing the walk."""
    return f"ifnull(CAST({column} AS TEXT), '')"


# The chain input `prev_hash || record` as UTF-8 bytes (the database encoding), concatenated by
# SQLite: the same bytes `proxy.journal_format.chain_hash` hashes, without a Python step per row.
_SELECT = (f"SELECT id, {_text('prev_hash')}, {_text('hash')}, "
           f"CAST({_text('prev_hash')} || {_text('record')} AS BLOB) FROM records ORDER BY id")


def _walk(conn: sqlite3.Connection, sealed_ids: set[int], heads: dict[int, str]) -> _Walk:
    """Check ids, links and hashes a batch at a time; a batch that fails goes record by record.

    The batch check runs in C: one tuple comparison for the ids, one for the links (each
    prev_hash equals the hash before it), one map of SHA-256 over the chain inputs. Only a
    batch with a problem pays for a Python step per record, in `_walk_records`.
    """
    walk = _Walk()
    sealed = sorted(sealed_ids)
    prev, prev2, expected = GENESIS_HASH, "", 1
    cursor = conn.execute(_SELECT)
    while batch := cursor.fetchmany(_BATCH):
        ids, prevs, digests, inputs = zip(*batch, strict=True)
        end = expected + len(ids)
        if (ids == tuple(range(expected, end)) and prevs[0] == prev and prevs[1:] == digests[:-1]
                and tuple(map(sha256_hex, inputs)) == digests):
            for rid in sealed[bisect_left(sealed, expected):bisect_left(sealed, end)]:
                heads[rid] = digests[rid - expected]
            prev2 = digests[-2] if len(digests) > 1 else prev
            prev, expected = digests[-1], end
        else:
            prev, prev2, expected = _walk_records(walk, batch, sealed_ids, heads, prev, prev2, expected)
        walk.count += len(ids)
    walk.last_id = expected - 1
    return walk


def _walk_records(walk: _Walk, batch: list[tuple[int, str, str, bytes]], sealed_ids: set[int],
                  heads: dict[int, str], prev: str, prev2: str, expected: int) -> tuple[str, str, int]:
    """The slow path over one batch: find which records are wrong and say why."""
    for rid, prev_hash, digest, chain_input in batch:
        if rid != expected or prev_hash != prev or sha256_hex(chain_input) != digest:
            walk.add(_diagnose(rid, expected, prev_hash, digest, chain_input, prev, prev2))
        if rid in sealed_ids:
            heads[rid] = digest
        prev2, prev, expected = prev, digest, rid + 1
    return prev, prev2, expected


def _diagnose(rid: int, expected: int, prev_hash: str, digest: str, chain_input: bytes, prev: str,
              prev2: str) -> list[Problem]:
    """Say what is wrong with one record that failed the checks."""
    problems = []
    if rid != expected:
        span = f"record {expected} is" if rid == expected + 1 else f"records {expected}–{rid - 1} are"
        problems.append(Problem(expected, "record-missing", f"{span} missing (deleted)"))
    elif prev_hash != prev and prev2 and prev_hash == prev2:
        problems.append(Problem(rid - 1, "record-inserted",
                                f"record {rid - 1} was inserted: record {rid} follows record {rid - 2}"))
    elif prev_hash != prev:
        before = "the genesis hash" if rid == 1 else f"record {rid - 1}'s hash"
        problems.append(Problem(rid, "record-chain-broken",
                                f"prev_hash is not {before}: records were moved, inserted or rewritten"))
    if sha256_hex(chain_input) != digest:
        problems.append(Problem(rid, "record-modified", "the record does not match its stored hash (edited)"))
    inner = _inner_id(chain_input[len(prev_hash.encode("utf-8")):])
    if inner != rid:
        problems.append(Problem(rid, "record-id-mismatch", f"row {rid} holds the record with id {inner}"))
    return problems


def _inner_id(text: bytes) -> object:
    try:
        data = json.loads(text)
    except ValueError:
        return "unreadable"
    return data.get("id") if isinstance(data, dict) else "unreadable"


def _check_checkpoints(checkpoints: list[_Checkpoint], heads: dict[int, str], walk: _Walk,
                       public_key: Ed25519PublicKey) -> int:
    """Check signatures and signed heads; return the last record sealed by a good checkpoint."""
    expected_keyid = keyid(public_key)
    last_good, previous_upto, expected = 0, 0, 1
    for cp in checkpoints:
        if cp.id != expected:
            walk.add([Problem(previous_upto + 1, "checkpoint-missing",
                              f"checkpoints {expected}–{cp.id - 1} are missing (deleted)", cp.id)], capped=False)
        previous_upto, expected = cp.upto, cp.id + 1
        problem = _checkpoint_problem(cp, heads, walk, expected_keyid, public_key, last_good)
        if problem is None:
            last_good = max(last_good, cp.upto)
        else:
            walk.add([problem], capped=False)
    return last_good


def _checkpoint_problem(cp: _Checkpoint, heads: dict[int, str], walk: _Walk, expected_keyid: str,
                        public_key: Ed25519PublicKey, last_good: int) -> Problem | None:
    where = f"checkpoint {cp.id} (records up to {cp.upto})"
    if cp.keyid != expected_keyid:
        return Problem(cp.upto, "checkpoint-unknown-key",
                       f"{where} is signed by key {cp.keyid[:16]}…, not by the given key "
                       f"{expected_keyid[:16]}…", cp.id)
    try:
        payload = checkpoint_payload(cp.id, cp.upto, cp.head, cp.time, cp.keyid)
        public_key.verify(bytes.fromhex(cp.signature), payload)
    except (InvalidSignature, ValueError, TypeError):
        return Problem(cp.upto, "checkpoint-bad-signature", f"{where} has an invalid signature", cp.id)
    if cp.upto > walk.last_id:
        first = walk.last_id + 1
        return Problem(first, "record-missing",
                       f"records {first}–{cp.upto} sealed by checkpoint {cp.id} are missing (deleted)", cp.id)
    head = heads.get(cp.upto)
    if head is None:
        return Problem(cp.upto, "record-missing", f"record {cp.upto} sealed by checkpoint {cp.id} is missing",
                       cp.id)
    if head != cp.head:
        first = _first_problem_between(walk, last_good, cp.upto) or last_good + 1
        return Problem(first, "checkpoint-head-mismatch",
                       f"{where} signed chain head {cp.head[:16]}…, the journal has {head[:16]}… at record "
                       f"{cp.upto}: records {last_good + 1}–{cp.upto} were rewritten", cp.id)
    return None


def _first_problem_between(walk: _Walk, after: int, upto: int) -> int | None:
    """The first record problem the walk found in (after, upto]: it explains a head mismatch best."""
    found = [p.record_id for p in walk.problems
             if after < p.record_id <= upto and p.checkpoint_id is None]
    return min(found) if found else None

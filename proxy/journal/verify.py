"""Verify a journal: the hash chain in id order and the signed checkpoints over it (R11).

Backend-independent: it reads a `proxy.journal.store.Store` (opened read-only, so verifying never
changes it) inside one snapshot and returns a `VerifyReport` per chain listing every problem; it
prints nothing. What it detects:

- a record whose text no longer matches its stored hash (a field was edited);
- a gap in the ids (records deleted), including sealed records deleted from the end;
- a record whose prev_hash is not its predecessor's hash (moved, reordered, inserted);
- a row whose id differs from the id inside its hashed text (renumbered);
- a checkpoint with a bad signature or signed by another key than the ones given;
- a checkpoint whose signed head is not the chain's hash at that record: the chain was rewritten
  consistently (hashes recomputed) after the checkpoint was signed.

Records after the last good checkpoint are the "unsealed tail": not an error (a process killed
with SIGKILL leaves one), but nothing proves they were not changed or cut off. A chain whose
first records were pruned (after archiving, `proxy.journal.archive`) starts after the pruned
prefix, linked to its last hash; `verify --archives` proves that prefix.

Speed matters (≥ 200,000 records/s): records are fetched in batches and each batch is checked
with C-level operations (see `walk`); a batch with a problem goes to a slow path that explains it.
The id inside a record's text is compared with its row id only on that slow path: ids contiguous
from 1 plus intact links already pin every genuine record to its row, so a mismatch cannot occur
without another finding (or a forged, re-hashed chain, which only a checkpoint can reveal).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compiler.trust import keyid, sha256_hex
from proxy.journal.archive import Archive, archive_inputs, check_pruned_against_archives, file_sha256, load_archives
from proxy.journal.chain import GENESIS_HASH, Checkpoint
from proxy.journal.record import JournalError
from proxy.journal.sqlite import SqliteStore
from proxy.journal.store import ChainInput, Store

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
    """What verify found on one chain: counts, the sealed part, and every problem in chain order.

    `pruned` records (1..pruned) were archived and removed from the store; `records` counts the
    ones present."""

    path: str
    records: int
    last_record: int
    checkpoints: int
    last_sealed_record: int
    problems: tuple[Problem, ...]
    problem_count: int
    chain: str | None = None
    pruned: int = 0
    archives: int = 0
    archived: int = 0

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
        return max(0, self.last_record - max(self.last_sealed_record, self.pruned))


@dataclass(slots=True)
class Walk:
    """A chain walk's result: counts, stored hashes at sealed positions, and problems."""

    count: int = 0
    last_id: int = 0
    last_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    def add(self, problems: Iterable[Problem], *, capped: bool = True) -> None:
        """Keep the first _MAX_PROBLEMS record problems; checkpoint problems are few and always kept."""
        for problem in problems:
            self.problem_count += 1
            if not capped or len(self.problems) < _MAX_PROBLEMS:
                self.problems.append(problem)


def verify_journal(target: str | Path | Store, public_key: Ed25519PublicKey) -> VerifyReport:
    """Verify a single-chain journal (a SQLite file, or a store's only chain); raise JournalError
    if it is unreadable."""
    reports = verify_store(target if isinstance(target, Store) else SqliteStore(target), [public_key])
    return reports[0]


def verify_store(store: Store, public_keys: Sequence[Ed25519PublicKey],
                 archives: Path | None = None) -> list[VerifyReport]:
    """Verify every chain of a store; a checkpoint must be signed by one of `public_keys`. With
    `archives`, each chain is proven from record 1 through its archives into the store."""
    archived = load_archives(archives) if archives is not None else None
    store.open_reader()
    try:
        with store.snapshot():
            changed = store.schema_problem()
            chains = store.chains()
            if archived is not None:
                chains = sorted(set(chains) | set(archived), key=lambda c: (c is not None, c or ""))
            return [_verify_chain(store, chain, public_keys, changed,
                                  None if archived is None else archived.get(chain, []))
                    for chain in chains]
    finally:
        store.close()


def verify_archives(directory: Path, public_keys: Sequence[Ed25519PublicKey]) -> list[VerifyReport]:
    """Verify an archive directory alone (the journal it came from is gone or elsewhere): every
    chain from record 1 through its last archive."""
    reports = []
    for chain, archives in sorted(load_archives(directory).items(), key=lambda i: (i[0] is not None, i[0] or "")):
        walk = Walk()
        last = _walk_archives(archives, chain, walk, public_keys)
        problems = sorted(walk.problems, key=lambda p: (p.record_id, p.checkpoint_id or 0))
        reports.append(VerifyReport(path=str(directory), records=0, last_record=last, checkpoints=0,
                                    last_sealed_record=last, problems=tuple(problems),
                                    problem_count=walk.problem_count, chain=chain, pruned=0,
                                    archives=len(archives), archived=last))
    return reports


def _verify_chain(store: Store, chain: str | None, public_keys: Sequence[Ed25519PublicKey],
                  changed: str | None, archives: list[Archive] | None) -> VerifyReport:
    checkpoints = store.checkpoints(chain)
    pruned, pruned_head = store.pruned(chain)
    walk = Walk()
    archived_last = 0
    if archives is not None:
        archived_last = _walk_archives(archives, chain, walk, public_keys)
        mismatch = check_pruned_against_archives(archives, pruned, pruned_head)
        if mismatch is not None:
            walk.add([Problem(pruned, "archive-live-mismatch", mismatch)], capped=False)
    ends = {a.last: a.last_hash for a in archives or [] if a.last > pruned}
    heads: dict[int, str] = {}
    walk_chain(walk, store.chain_inputs(chain), {cp.upto for cp in checkpoints} | set(ends), heads,
               start=pruned + 1, prev=pruned_head)
    for end, digest in sorted(ends.items()):
        if end <= walk.last_id and heads.get(end) != digest:
            walk.add([Problem(end, "archive-live-mismatch", f"record {end} in the journal differs from "
                                                            "the archive that ends with it")], capped=False)
    if archived_last > max(walk.last_id, pruned):
        walk.add([Problem(walk.last_id + 1, "archive-live-mismatch",
                          f"archives hold records up to {archived_last}, the journal ends at {walk.last_id}")],
                 capped=False)
    if changed is not None:
        walk.add([Problem(1, "schema-modified", changed)], capped=False)
    sealed = check_checkpoints(checkpoints, heads, walk, public_keys,
                               first_id=checkpoints[0].id if (pruned and checkpoints) else 1)
    problems = sorted(walk.problems, key=lambda p: (p.record_id, p.checkpoint_id or 0))
    return VerifyReport(path=store.label, records=walk.count, last_record=walk.last_id,
                        checkpoints=len(checkpoints), last_sealed_record=sealed,
                        problems=tuple(problems), problem_count=walk.problem_count, chain=chain,
                        pruned=pruned, archives=len(archives or []), archived=archived_last)


def _walk_archives(archives: list[Archive], chain: str | None, walk: Walk,
                   public_keys: Sequence[Ed25519PublicKey]) -> int:
    """Check a chain's archives in order; return the last record id they prove."""
    expected, prev, previous = 1, GENESIS_HASH, None
    for archive in archives:
        name = archive.file.name
        if archive.first > expected:
            walk.add([Problem(expected, "archive-missing",
                              f"records {expected}–{archive.first - 1} are in no archive")], capped=False)
        elif archive.first < expected or archive.prev_hash != prev or archive.previous != previous:
            walk.add([Problem(archive.first, "archive-missing",
                              f"{name} does not continue the previous archive (one was removed, replaced "
                              "or reordered)")], capped=False)
        problem = _archive_problem(archive, chain, walk, public_keys)
        if problem is not None:
            walk.add([Problem(archive.first, "archive-modified", f"{name}: {problem}")], capped=False)
        expected, prev, previous = archive.last + 1, archive.last_hash, archive.manifest_sha256
    return expected - 1


def _archive_problem(archive: Archive, chain: str | None, walk: Walk,
                     public_keys: Sequence[Ed25519PublicKey]) -> str | None:
    if not archive.file.is_file():
        return "the archive file is missing"
    if file_sha256(archive.file) != archive.sha256:
        return "the file's SHA-256 is not the one its manifest names"
    inner = Walk()
    heads: dict[int, str] = {}
    try:
        walk_chain(inner, archive_inputs(archive), {archive.last}, heads, start=archive.first,
                   prev=archive.prev_hash)
    except JournalError as e:
        return str(e)
    walk.add(inner.problems)
    if inner.problems:
        return f"its records do not verify ({inner.problems[0].code} at record {inner.problems[0].record_id})"
    cp = archive.checkpoint
    keys = {keyid(key): key for key in public_keys}
    if inner.last_id != archive.last or inner.count != archive.records:
        return f"it holds records {archive.first}–{inner.last_id}, its manifest says {archive.first}–{archive.last}"
    if cp.upto != archive.last or cp.head != heads.get(archive.last) or cp.head != archive.last_hash:
        return "its checkpoint does not seal its last record"
    if cp.chain != chain:
        return "its checkpoint belongs to another chain"
    key = keys.get(cp.keyid)
    if key is None or not cp.signed_by(key):
        return "its checkpoint is not signed by a given key"
    return None


def walk_chain(walk: Walk, batches: Iterable[Sequence[ChainInput]], sealed_ids: set[int],
               heads: dict[int, str], *, start: int = 1, prev: str = GENESIS_HASH) -> None:
    """Check ids, links and hashes a batch at a time; a batch that fails goes record by record.

    The batch check runs in C: one tuple comparison for the ids, one for the links (each
    prev_hash equals the hash before it), one map of SHA-256 over the chain inputs. Only a
    batch with a problem pays for a Python step per record, in `_walk_records`. `start` and
    `prev` say where the chain is expected to begin (after an archived or pruned prefix).
    """
    sealed = sorted(sealed_ids)
    prev2, expected = "", start
    for batch in batches:
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
    walk.last_hash = prev


def _walk_records(walk: Walk, batch: Sequence[ChainInput], sealed_ids: set[int],
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


def check_checkpoints(checkpoints: Sequence[Checkpoint], heads: dict[int, str], walk: Walk,
                      public_keys: Sequence[Ed25519PublicKey], *, first_id: int = 1, last_good: int = 0) -> int:
    """Check signatures and signed heads; return the last record sealed by a good checkpoint."""
    keys = {keyid(key): key for key in public_keys}
    previous_upto, expected = last_good, first_id
    for cp in checkpoints:
        if cp.id != expected:
            walk.add([Problem(previous_upto + 1, "checkpoint-missing",
                              f"checkpoints {expected}–{cp.id - 1} are missing (deleted)", cp.id)], capped=False)
        previous_upto, expected = cp.upto, cp.id + 1
        problem = _checkpoint_problem(cp, heads, walk, keys, last_good)
        if problem is None:
            last_good = max(last_good, cp.upto)
        else:
            walk.add([problem], capped=False)
    return last_good


def _checkpoint_problem(cp: Checkpoint, heads: dict[int, str], walk: Walk,
                        keys: dict[str, Ed25519PublicKey], last_good: int) -> Problem | None:
    where = f"checkpoint {cp.id} (records up to {cp.upto})"
    key = keys.get(cp.keyid)
    if key is None:
        given = ", ".join(f"{k[:16]}…" for k in sorted(keys))
        return Problem(cp.upto, "checkpoint-unknown-key",
                       f"{where} is signed by key {cp.keyid[:16]}…, not by the given key {given}", cp.id)
    if not cp.signed_by(key):
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


def _first_problem_between(walk: Walk, after: int, upto: int) -> int | None:
    """The first record problem the walk found in (after, upto]: it explains a head mismatch best."""
    found = [p.record_id for p in walk.problems
             if after < p.record_id <= upto and p.checkpoint_id is None]
    return min(found) if found else None

"""Archives and retention: sealed ranges of a chain in compressed files, pruned from the store only
once they are archived and verified (R11: the history is kept for years, intact).

An archive is two files in the archive directory, named after the chain and the range:

- `<chain>-<first>-<last>.jsonl.gz`: gzip'd JSON lines; line 1 a header (type, format, chain,
  first, last, prev_hash: the hash record `first` links to), then one line per record
  `{"id", "prev_hash", "hash", "record"}` (`record` the canonical text exactly as hashed), and a last
  line `{"checkpoint": …}`: the signed checkpoint of the journal that seals record `last`;
- `<chain>-<first>-<last>.manifest.json`: chain, range, record count, time span, the archive's
  SHA-256, the signed checkpoint, and the SHA-256 of the chain's previous manifest (`previous`),
  so the manifests of a chain form a hash-linked list. The manifest is written last: an archive
  without one is incomplete and ignored (a crash while archiving leaves nothing half-valid).

`archive` only cuts ranges that end at a checkpoint and checks every record it copies (ids, links,
hashes, the checkpoint's head) before writing. `verify` with archives (`verify.verify_store(…,
archives=…)`) proves continuity from record 1 in the first archive through the live chain: each
archive's digest, its records, its checkpoint's signature, the link to the previous archive, and the
live chain's first record (or pruned prefix) against the archives. `prune` deletes a chain's
records only up to the end of an archive whose records are all older than the given time, and only
if the whole chain, archives included, verifies.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compiler.trust import canonical_json
from proxy.journal.chain import CHAIN_RE, Checkpoint, chain_hash
from proxy.journal.record import JournalError
from proxy.journal.store import ChainInput, Row, Store

ARCHIVE_TYPE = "reestr-journal-archive"
MANIFEST_TYPE = "reestr-journal-archive-manifest"
FORMAT = 1
SINGLE_CHAIN = "journal"  # the file name of a single-chain store's (SQLite's) chain
_NAME = re.compile(r"(?P<chain>.+)-(?P<first>\d{12})-(?P<last>\d{12})\.manifest\.json")


class ArchiveError(JournalError):
    """Archiving or pruning was refused: the chain does not verify, or the directory is unusable."""

    code = "journal-archive"


class PruneRefusedError(ArchiveError):
    """Nothing was pruned: a chain or an archive does not verify."""

    code = "journal-prune-refused"


@dataclass(frozen=True, slots=True)
class Archive:
    """One archive as its manifest describes it."""

    chain: str | None
    first: int
    last: int
    records: int
    prev_hash: str
    last_hash: str
    first_time: str
    last_time: str
    sha256: str
    previous: str | None
    checkpoint: Checkpoint
    file: Path
    manifest: Path
    manifest_sha256: str


def chain_file_name(chain: str | None) -> str:
    return SINGLE_CHAIN if chain is None else chain


def load_archives(directory: Path) -> dict[str | None, list[Archive]]:
    """Every complete archive in `directory`, per chain, ordered by first record id."""
    if not directory.is_dir():
        raise ArchiveError(f"{directory}: no such directory")
    found: dict[str | None, list[Archive]] = {}
    for manifest in sorted(directory.glob("*.manifest.json")):
        archive = _read_manifest(manifest)
        found.setdefault(archive.chain, []).append(archive)
    for archives in found.values():
        archives.sort(key=lambda a: (a.first, a.last))
    return found


def _read_manifest(path: Path) -> Archive:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
        cp = data["checkpoint"]
        chain = data["chain"]
        return Archive(
            chain=chain, first=int(data["first"]), last=int(data["last"]), records=int(data["records"]),
            prev_hash=str(data["prev_hash"]), last_hash=str(data["last_hash"]), first_time=str(data["first_time"]),
            last_time=str(data["last_time"]), sha256=str(data["sha256"]), previous=data["previous"],
            checkpoint=Checkpoint(int(cp["id"]), int(cp["upto"]), str(cp["head"]), str(cp["time"]),
                                  str(cp["keyid"]), str(cp["signature"]), cp.get("chain")),
            file=path.with_name(str(data["file"])), manifest=path,
            manifest_sha256=hashlib.sha256(raw).hexdigest())
    except (ValueError, KeyError, TypeError) as e:
        raise ArchiveError(f"{path}: not an archive manifest: {e}") from e


def read_archive(archive: Archive) -> Iterator[list[Row]]:
    """The archive's records in file order, in batches; raises ArchiveError if unreadable."""
    try:
        with gzip.open(archive.file, "rt", encoding="utf-8") as lines:
            header = json.loads(next(lines))
            if header.get("type") != ARCHIVE_TYPE:
                raise ArchiveError(f"{archive.file}: not an archive")
            batch: list[Row] = []
            for line in lines:
                item = json.loads(line)
                if "checkpoint" in item:
                    break
                batch.append((int(item["id"]), str(item["prev_hash"]), str(item["hash"]), str(item["record"])))
                if len(batch) == 4096:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except (OSError, EOFError, ValueError, KeyError, TypeError, StopIteration, gzip.BadGzipFile) as e:
        raise ArchiveError(f"{archive.file}: unreadable archive: {e}") from e


def archive_inputs(archive: Archive) -> Iterator[list[ChainInput]]:
    for batch in read_archive(archive):
        yield [(rid, prev, digest, (prev + text).encode("utf-8")) for rid, prev, digest, text in batch]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- archiving ----------------------------------------------------------------------------------


def archive(store: Store, directory: Path, before: str | None = None) -> list[Archive]:
    """Archive every chain's sealed records not yet archived (only those up to a checkpoint whose
    record is older than `before`, if given); return the archives written."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = load_archives(directory)
    written = []
    store.open_reader()
    try:
        with store.snapshot():
            for chain in store.chains():
                made = _archive_chain(store, chain, directory, existing.get(chain, []), before)
                if made is not None:
                    written.append(made)
    finally:
        store.close()
    return written


def _archive_chain(store: Store, chain: str | None, directory: Path, done: list[Archive],
                   before: str | None) -> Archive | None:
    if chain is not None and not CHAIN_RE.fullmatch(chain):
        raise ArchiveError(f"{store.label}: refusing to archive a chain named {chain!r}: not a chain name a "
                           "sidecar can have (written into the database by hand?)")
    after, prev = (done[-1].last, done[-1].last_hash) if done else store.pruned(chain)
    if not done and after:
        raise ArchiveError(f"{store.label}: chain {chain_file_name(chain)} was pruned up to record {after} "
                           f"but {directory} holds no archive of it")
    target = _target_checkpoint(store, chain, after, before)
    if target is None:
        return None
    name = f"{chain_file_name(chain)}-{after + 1:012d}-{target.upto:012d}"
    data_path, manifest_path = directory / f"{name}.jsonl.gz", directory / f"{name}.manifest.json"
    if data_path.exists() or manifest_path.exists():  # never overwrite an archive (another journal's?)
        raise ArchiveError(f"{data_path}: exists already: give each SQLite journal its own archive directory")
    temporary = data_path.with_suffix(".tmp")
    start_prev = prev
    count, first_time, last_time, expected = 0, "", "", after + 1
    with gzip.open(temporary, "wt", encoding="utf-8", compresslevel=6) as out:
        out.write(canonical_json({"type": ARCHIVE_TYPE, "format": FORMAT, "chain": chain, "first": after + 1,
                                  "last": target.upto, "prev_hash": prev}).decode() + "\n")
        for batch in store.rows(chain, after, target.upto):
            for rid, prev_hash, digest, text in batch:
                if rid != expected or prev_hash != prev or chain_hash(prev_hash, text) != digest:
                    temporary.unlink()
                    raise ArchiveError(f"{store.label}: refusing to archive chain {chain_file_name(chain)}: "
                                       f"record {expected} does not verify (run journal verify)")
                time = json.loads(text).get("time") or ""
                first_time = first_time or time
                last_time = time
                out.write(canonical_json({"id": rid, "prev_hash": prev_hash, "hash": digest,
                                          "record": text}).decode() + "\n")
                prev, expected, count = digest, rid + 1, count + 1
        if expected != target.upto + 1 or prev != target.head:
            out.close()
            temporary.unlink()
            raise ArchiveError(f"{store.label}: refusing to archive chain {chain_file_name(chain)}: checkpoint "
                               f"{target.id} does not seal the records (run journal verify)")
        out.write(canonical_json({"checkpoint": _checkpoint_json(target)}).decode() + "\n")
    os.replace(temporary, data_path)
    manifest = {"type": MANIFEST_TYPE, "format": FORMAT, "chain": chain, "first": after + 1, "last": target.upto,
                "records": count, "prev_hash": start_prev,
                "last_hash": target.head, "first_time": first_time, "last_time": last_time,
                "file": data_path.name, "sha256": file_sha256(data_path),
                "previous": done[-1].manifest_sha256 if done else None, "checkpoint": _checkpoint_json(target)}
    temporary = manifest_path.with_suffix(".tmp")
    temporary.write_bytes(json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n")
    os.replace(temporary, manifest_path)
    return _read_manifest(manifest_path)


def _target_checkpoint(store: Store, chain: str | None, after: int, before: str | None) -> Checkpoint | None:
    """The last checkpoint past `after` whose sealed record is older than `before`."""
    for cp in reversed(store.checkpoints(chain)):
        if cp.upto <= after:
            return None
        if before is None:
            return cp
        rows = [row for batch in store.rows(chain, cp.upto - 1, cp.upto) for row in batch]
        if rows and (json.loads(rows[0][3]).get("time") or "") < before:
            return cp
    return None


def _checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    return asdict(cp)


# --- retention ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pruned:
    chain: str | None
    upto: int
    deleted: int


def prune(store: Store, maintenance: Store, directory: Path, public_keys: Sequence[Ed25519PublicKey],
          before: str) -> list[Pruned]:
    """Delete records archived in `directory` whose archive holds only records older than `before`,
    after verifying every chain with its archives; `maintenance` is a second handle on the same
    store that may write. Refuses (ArchiveError) if anything does not verify."""
    from proxy.journal.verify import verify_store

    reports = verify_store(store, public_keys, archives=directory)
    bad = [r for r in reports if not r.ok]
    if bad:
        first = bad[0].problems[0]
        raise PruneRefusedError(f"refusing to prune: chain {chain_file_name(bad[0].chain)} does not verify: record "
                           f"{first.record_id}: {first.code}: {first.message}")
    archives = load_archives(directory)
    done = []
    maintenance.open_maintenance()
    try:
        for report in reports:
            eligible = [a for a in archives.get(report.chain, []) if a.last_time < before
                        and report.pruned < a.last <= report.last_record]
            if not eligible:
                continue
            last = eligible[-1]
            deleted = maintenance.prune(report.chain, last.last, last.last_hash)
            done.append(Pruned(report.chain, last.last, deleted))
    finally:
        maintenance.close()
    return done


def check_pruned_against_archives(chain_archives: list[Archive], pruned: int, pruned_head: str) -> str | None:
    """Why the store's pruned prefix does not match the archives, or None."""
    if not pruned:
        return None
    ends = {a.last: a.last_hash for a in chain_archives}
    if pruned not in ends:
        return f"records 1–{pruned} were pruned but no archive ends at record {pruned}"
    if ends[pruned] != pruned_head:
        return f"the pruned prefix ends in hash {pruned_head[:16]}…, the archive has {ends[pruned][:16]}…"
    return None

"""Anchors: the latest checkpoint kept outside the journal, so that a shortened journal shows.

Why (issue 10, finding 12): a hash chain with signed checkpoints proves that what it holds was not
changed, but not that nothing was cut off its end. Whoever can write the journal file can drop the
unsealed tail, or the last checkpoint together with the records it sealed, or even empty the
checkpoints and rewrite the chain: what remains is a valid, shorter journal. Two things make that
visible:

- **Tail age.** The writer seals by count and by time (`checkpoint_interval`, 10 s), with or
  without traffic. An unsealed record older than that means the writer stopped (a crash) or
  that checkpoints were removed: `journal verify` fails when the oldest unsealed record is older
  than `--max-unsealed-age` (default twice the interval). After a crash, that failure is the
  honest answer: the tail cannot be told from a tampered one.
- **The anchor.** Each new checkpoint is also exported (`anchor_text`): served by the admin
  port at `/journal/anchor`, written atomically to `journal.anchor_file` (put it on another
  volume, or let a collector fetch the endpoint), and logged as one line at most once a minute.
  `journal verify --anchor FILE|URL` checks the anchor's signature and fails when the journal
  ends before the anchor's record, holds fewer checkpoints, or hashes differently at that record.

What this cannot prove: the records written after the newest anchor someone kept (at most one
checkpoint interval when anchors are collected continuously), and anything done by whoever holds
the sidecar's signing key. X-Road's message log answers the same question with signed timestamps
from an outside timestamping authority and archives; an anchor collected by another party plays
that part here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from proxy.journal.chain import Checkpoint
from proxy.journal.record import JournalError, record_data
from proxy.journal.store import Store

ANCHOR_TYPE = "reestr-journal-anchor"
MAX_ANCHOR_BYTES = 64 * 1024


class AnchorError(JournalError):
    """An anchor cannot be read, is malformed, or is not signed by a given key."""

    code = "journal-anchor"


def anchor_text(cp: Checkpoint) -> str:
    """The exported form of a checkpoint: one line of JSON, verifiable with the sidecar's key."""
    return json.dumps({"type": ANCHOR_TYPE, "chain": cp.chain, "checkpoint": cp.id, "upto": cp.upto,
                       "head": cp.head, "time": cp.time, "keyid": cp.keyid, "signature": cp.signature},
                      sort_keys=True, separators=(",", ":"))


def parse_anchor(text: bytes, public_keys: Sequence[Ed25519PublicKey]) -> Checkpoint:
    """The checkpoint an anchor names, once its signature verifies with one of `public_keys`."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("type") != ANCHOR_TYPE:
            raise ValueError("not a reestr journal anchor")
        cp = Checkpoint(int(data["checkpoint"]), int(data["upto"]), str(data["head"]), str(data["time"]),
                        str(data["keyid"]), str(data["signature"]),
                        None if data.get("chain") is None else str(data["chain"]))
    except (ValueError, KeyError, TypeError) as e:
        raise AnchorError(f"anchor is malformed: {type(e).__name__}") from e
    if not any(cp.signed_by(key) for key in public_keys):
        raise AnchorError("anchor is not signed by a given key")
    return cp


def load_anchor(source: str) -> bytes:
    """An anchor's bytes from a file or an http(s) URL, at most MAX_ANCHOR_BYTES."""
    if source.startswith(("http://", "https://")):
        try:
            with httpx.stream("GET", source, timeout=10, follow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise AnchorError(f"{source}: HTTP {resp.status_code}")
                data = b""
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANCHOR_BYTES:
                        raise AnchorError(f"{source}: over {MAX_ANCHOR_BYTES} bytes")
                return data
        except httpx.HTTPError as e:
            raise AnchorError(f"{source}: {type(e).__name__}") from e
    try:
        with open(source, "rb") as f:
            data = f.read(MAX_ANCHOR_BYTES + 1)
    except OSError as e:
        raise AnchorError(f"{source}: {e.strerror}") from e
    if len(data) > MAX_ANCHOR_BYTES:
        raise AnchorError(f"{source}: over {MAX_ANCHOR_BYTES} bytes")
    return data


def write_anchor_file(path: Path, text: str) -> None:
    """Replace the anchor file atomically (a reader sees the old anchor or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class ChainEnd:
    """What the anchor and tail checks need of one chain, besides what verify reported."""

    last_record: int
    checkpoints: int
    hash_at: str | None  # the stored hash of the record the anchor names, if present
    oldest_unsealed: str | None  # time of the first record after the last good checkpoint


def chain_end(store: Store, chain: str | None, last_record: int, last_sealed: int,
              at: int | None) -> ChainEnd:
    """Read the few rows the checks need: the tail's first record and the anchor's record."""
    store.open_reader()
    try:
        with store.snapshot():
            first_tail = next((b[0] for b in store.rows(chain, after=last_sealed, upto=last_sealed + 1)
                               if b), None)
            row = None if at is None else next((b[0] for b in store.rows(chain, after=at - 1, upto=at)
                                                if b), None)
            count = len(store.checkpoints(chain))
    finally:
        store.close()
    return ChainEnd(last_record=last_record, checkpoints=count,
                    hash_at=row[2] if row is not None else None,
                    oldest_unsealed=record_data(first_tail[3])["time"] if first_tail is not None else None)


def anchor_problems(anchor: Checkpoint, end: ChainEnd, pruned: int) -> list[str]:
    """Why the chain does not reach the anchor (each a sentence), or [] when it does."""
    problems = []
    if end.last_record < anchor.upto:
        problems.append(f"the journal ends at record {end.last_record}, before the anchor "
                        f"(checkpoint {anchor.id} of {anchor.time}, up to record {anchor.upto})")
    if end.checkpoints < anchor.id and pruned == 0:
        problems.append(f"the journal has {end.checkpoints} checkpoint(s), the anchor is checkpoint "
                        f"{anchor.id}: checkpoints were removed")
    if end.hash_at is not None and end.hash_at != anchor.head:
        problems.append(f"record {anchor.upto} does not hash to the anchor's head: the chain was rewritten")
    return problems


def tail_problem(end: ChainEnd, max_age: float, now: datetime | None = None) -> str | None:
    """Why the unsealed tail is suspicious (older than `max_age` seconds), or None."""
    if end.oldest_unsealed is None:
        return None
    started = datetime.strptime(end.oldest_unsealed, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - started).total_seconds()
    if age <= max_age:
        return None
    return (f"unsealed tail since {end.oldest_unsealed} ({age:,.0f} s): older than {max_age:g} s, so "
            "checkpoints are missing: the writer stopped (a crash) or the journal was cut")


class AnchorExporter:
    """Publishes the journal's latest durable checkpoint: `current` (the admin endpoint), the
    anchor file if configured, and a log line on stderr at most every `log_seconds`."""

    def __init__(self, latest: Callable[[], Checkpoint | None], anchor_file: Path | None,
                 log_seconds: float = 60.0) -> None:
        self.latest = latest
        self.anchor_file = anchor_file
        self.log_seconds = log_seconds
        self.current: str | None = None
        self._seen: Checkpoint | None = None
        self._logged = -log_seconds

    def export(self, *, force_log: bool = False) -> None:
        """Publish the latest checkpoint if it is new (blocking: file write and fsync)."""
        cp = self.latest()
        if cp is None or cp is self._seen:
            return
        self._seen = cp
        text = anchor_text(cp)
        self.current = text
        if self.anchor_file is not None:
            try:
                write_anchor_file(self.anchor_file, text)
            except OSError as e:
                print(f"reestr-sidecar: journal anchor file {self.anchor_file}: {e.strerror}",
                      file=sys.stderr)
        now = time.monotonic()
        if force_log or now - self._logged >= self.log_seconds:
            self._logged = now
            print(f"reestr-sidecar: journal anchor {text}", file=sys.stderr, flush=True)

    async def run(self, every: float = 1.0) -> None:
        """Export until cancelled, checking for a new checkpoint every `every` seconds."""
        while True:
            await asyncio.sleep(every)
            await asyncio.to_thread(self.export)

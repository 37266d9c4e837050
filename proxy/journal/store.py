"""The store protocol: what the writer, verify, export, stats and archives need from a database.

A backend (`proxy.journal.sqlite`, `proxy.journal.postgres`) implements `Store`; nothing above it
writes SQL. A store holds one or more chains (`chains()`); the writer appends to one. Rows are
`(id, prev_hash, hash, text)` with the record's canonical text exactly as it was hashed, so every
check is done by the backend-independent code (`proxy.journal.verify`) on the same bytes.

`chain_inputs` is the one place a backend may take a shortcut: the verifier only needs
`prev_hash || text` as UTF-8 bytes, which SQLite concatenates in SQL. The default builds them in
Python from `rows`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from proxy.journal.chain import Checkpoint

Row = tuple[int, str, str, str]
"""One stored record: id, prev_hash, hash, the record's canonical text."""

ChainInput = tuple[int, str, str, bytes]
"""What verify needs of a row: id, prev_hash, hash, and `prev_hash || text` as UTF-8."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records a reader wants: a time range (record spelling; since inclusive, until
    exclusive), a message id (records naming it as `message_id` or `reference_message_id`, plus
    the other records of their exchanges), requests only, one provider."""

    since: str | None = None
    until: str | None = None
    message_id: str | None = None
    requests_only: bool = False
    provider: str | None = None
    events_only: bool = False  # only event records (kind `event`, record format 3: service health)

    def matches(self, data: dict[str, object]) -> bool:
        """The same filter on a decoded record (archives have no index); message_id excluded."""
        time = str(data.get("time") or "")
        return ((self.since is None or time >= self.since) and (self.until is None or time < self.until)
                and (not self.requests_only or data.get("kind") == "request")
                and (not self.events_only or data.get("kind") == "event")
                and (self.provider is None or data.get("provider") == self.provider))

    def clauses(self, column: Callable[[str], str], mark: str) -> tuple[list[str], list[object]]:
        """The same filter as SQL conditions (message_id excluded), for a backend that spells a
        record field as `column(name)` and a parameter as `mark` (`?` SQLite, `%s` psycopg)."""
        clauses = [f"{column('kind')} = 'request'"] if self.requests_only else []
        if self.events_only:
            clauses.append(f"{column('kind')} = 'event'")
        params: list[object] = []
        for name, op, value in (("time", ">=", self.since), ("time", "<", self.until),
                                ("provider", "=", self.provider)):
            if value is not None:
                clauses.append(f"{column(name)} {op} {mark}")
                params.append(value)
        return clauses, params


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Calls (requests) to one service operation from one consumer with one decision."""

    sid: str | None
    operation: str | None
    consumer: str | None
    decision: str
    calls: int


StatsKey = tuple[str | None, str | None, str | None, str]


class Store(ABC):
    """A journal database. Writers call `open_writer` once; readers call `open_reader` once and
    read inside `snapshot()`. Every method raises `JournalError` (never a driver's exception)."""

    label: str
    """How messages name the store (a path, or a DSN without its password)."""
    chain: str | None = None
    """The chain this store's writer appends to (None: the store holds one chain)."""

    # --- writing (one chain) ------------------------------------------------------------------

    @abstractmethod
    def open_writer(self) -> None:
        """Connect, create or migrate the schema, refuse a store that is not a journal or whose
        schema was changed by hand, and claim this writer's chain."""

    @abstractmethod
    def head(self) -> tuple[int, str]:
        """The writer chain's last id and hash, read from the store ((0, GENESIS) if empty)."""

    @abstractmethod
    def last_sealed(self) -> int:
        """The highest record id a checkpoint of the writer chain seals."""

    @abstractmethod
    def append(self, rows: Sequence[Row]) -> None:
        """Commit the rows to the writer chain in one durable transaction, or raise. An id that
        is already taken must make it fail (the chain must never fork)."""

    @abstractmethod
    def seal(self, sign: Callable[[int, int, str], Checkpoint]) -> Checkpoint:
        """In one transaction: read the head and the next checkpoint id, insert
        `sign(checkpoint_id, upto, head)`; return it."""

    @abstractmethod
    def reset(self) -> None:
        """After a failure: drop whatever transaction or connection is left (the next call
        reconnects)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection(s); safe to call twice."""

    # --- reading ------------------------------------------------------------------------------

    @abstractmethod
    def open_reader(self) -> None:
        """Open read-only (nothing a reader does can change the store); check it is a journal."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """A context in which every read sees one consistent state, even while a writer writes."""

    @abstractmethod
    def chains(self) -> list[str | None]:
        """Every chain the store holds, in a stable order (`[None]` for a single-chain store)."""

    @abstractmethod
    def schema_problem(self) -> str | None:
        """How the schema differs from what the writer makes, or None."""

    @abstractmethod
    def rows(self, chain: str | None, after: int = 0, upto: int | None = None) -> Iterator[list[Row]]:
        """The chain's rows with after < id ≤ upto, in id order, in batches."""

    def chain_inputs(self, chain: str | None) -> Iterator[list[ChainInput]]:
        """The chain in id order as verify reads it; see the module docstring."""
        for batch in self.rows(chain):
            yield [(rid, prev, digest, (prev + text).encode("utf-8")) for rid, prev, digest, text in batch]

    @abstractmethod
    def checkpoints(self, chain: str | None) -> list[Checkpoint]:
        """The chain's checkpoints in id order (fields as stored, even if malformed)."""

    @abstractmethod
    def select(self, chain: str | None, where: Filter) -> Iterator[list[Row]]:
        """Rows of the chain matching `where`, in id order, using the store's indexes."""

    @abstractmethod
    def stats(self, where: Filter) -> dict[StatsKey, int]:
        """Request counts per (sid, operation, consumer, decision) over every chain."""

    def open_maintenance(self) -> None:
        """Open for `prune` (the default: as a writer)."""
        self.open_writer()

    @abstractmethod
    def pruned(self, chain: str | None) -> tuple[int, str]:
        """(k, hash of record k) if records 1..k were pruned after archiving, else (0, GENESIS)."""

    @abstractmethod
    def prune(self, chain: str | None, upto: int, head: str) -> int:
        """In one transaction: delete the chain's records with id ≤ upto and the checkpoints
        sealing only them, and note (upto, head) as the pruned prefix; return how many records
        went. The caller has checked that they are archived and verified; the record at `upto`
        must still have the hash `head`, or nothing is deleted (JournalWriteError)."""

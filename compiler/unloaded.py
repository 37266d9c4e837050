"""Documents that did not load are neither absent nor changed: the comparison waits for them.

A typo in one access sheet used to make `plan` report every grant of that sheet as revoked, and
`breaking` a service that fails its schema as `R7-service-removed` (issue 11, finding 6): a
document that does not load is not a document that was removed. `reconcile` puts the other side's
version in its place on both sides, so the comparison says nothing about it, and lists the files
that block a judgement; `plan` and `breaking` print those first and exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from compiler.errors import Problem
from compiler.registry import Registry

_TABLE = {"Participant": "participants", "Service": "services", "AccessSheet": "sheets"}


@dataclass(frozen=True)
class Reconciled:
    """The two sides to compare, and (side, path) of every document that did not load."""

    base: Registry
    head: Registry
    blocked: tuple[tuple[str, str], ...]

    def notice(self) -> list[str]:
        """What the commands print first when they cannot judge the change."""
        return [message(side, path) for side, path in self.blocked]

    def problems(self) -> list[Problem]:
        """The same, as problems (`LOAD-blocked`) for `breaking`'s formats (annotations)."""
        return [Problem(path, 1, 1, "LOAD-blocked", message(side, path)) for side, path in self.blocked]


def message(side: str, path: str) -> str:
    return f"cannot judge the change until {path} ({side}) loads: run `reestr validate`"


def reconcile(base: Registry, head: Registry) -> Reconciled:
    """(base, head) with each document that failed on one side taken from the other side."""
    blocked = [(side, path) for side, reg in (("base", base), ("head", head))
               for path in sorted(reg.not_loaded)]
    return Reconciled(_fill(base, head), _fill(head, base), tuple(blocked))


def _fill(target: Registry, other: Registry) -> Registry:
    missing = {key for key in target.not_loaded.values() if key not in target.sources}
    if not missing:
        return target
    tables: dict[str, dict[str, Any]] = {name: dict(getattr(target, name)) for name in _TABLE.values()}
    sources = dict(target.sources)
    for kind, ident in sorted(missing):
        doc = getattr(other, _TABLE[kind]).get(ident)
        if doc is not None:
            tables[_TABLE[kind]][ident] = doc
            sources[(kind, ident)] = other.sources[(kind, ident)]
    return replace(target, sources=sources, participants=tables["participants"],
                   services=tables["services"], sheets=tables["sheets"])

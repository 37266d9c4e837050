"""Pause the cyclic garbage collector while building large acyclic structures.

Loading a registry creates millions of small objects (YAML nodes, positions, models) that all stay
alive; each automatic collection rescans the ever-growing heap, which costs as much as the parsing
itself on a large registry. Nothing built there forms reference cycles that must be reclaimed
early, so the collector is paused for the duration and any cyclic garbage is collected normally
afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused(*, freeze: bool = False) -> Iterator[None]:
    """Disable automatic garbage collection inside the block (re-enabled only if it was on).

    With `freeze`, everything alive at the end moves to the permanent generation (`gc.freeze`):
    for a registry that lives as long as the command, so that no later collection scans its
    millions of objects again (the first one after loading cost a second on the benchmark). They
    are still freed by reference counting; only reference cycles among them would stay.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()

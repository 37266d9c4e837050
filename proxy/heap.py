"""Keep the long-lived heap out of the garbage collector's way (docs/performance.md).

A sidecar holds its bundle for hours: with 10,000 grants that is ~180,000 objects (policy tables,
certificates, compiled schemas), besides mitmproxy's and the modules' own. CPython's cyclic
collector scans every tracked object in each full (generation 2) collection; measured on the
benchmark's sidecar, each one stopped the event loop for 50–390 ms, every several seconds under
load. Those objects live until the next bundle replaces them and do not need the collector (when
they become garbage, reference counting frees them).

`settle()` runs when a bundle comes into force: collect once (what earlier bundles left in
cycles), then move everything alive to the permanent generation (`gc.freeze`), which later
collections skip. The previous freeze is undone first, so an old bundle that still had cycles is
collected then, not kept: at most the bundle in force and the one before it are ever frozen.
The collection is one pause per bundle swap, instead of one per few thousand requests.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()

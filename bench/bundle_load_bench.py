"""Bundle load alone (issue 3: a bundle with 10,000 grants loaded and verified in ≤ 100 ms).

    .venv/bin/python bench/bundle_load_bench.py [--grants 10000] [--runs 15]

Part 2 of `bench/sidecar_bench.py` without wrk, stunnel or any sidecar process, so it takes seconds:
the same grown bundle (`build_big_bundle`, one place for its generation) and the same timing
(`time_bundle_load`: `BundleStore.offer` into a fresh state directory, then `verify_envelope` and
`parse_policy` alone). Prints the medians, wall and CPU time. Outputs go to bench/out/bundle-load/.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidecar_bench import (
    LOAD_TARGET_MS,
    ROOT,
    _loadavg,
    _nproc,
    build_big_bundle,
    time_bundle_load,
)

OUT = ROOT / "bench" / "out" / "bundle-load"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grants", type=int, default=10_000, help="grants in the big bundle")
    ap.add_argument("--runs", type=int, default=15, help="load repetitions (median)")
    args = ap.parse_args()
    if not 1 <= args.runs <= 1000:
        ap.error("runs 1..1000")
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "keys").mkdir(parents=True)
    print(f"load average before: {_loadavg()} ({_nproc()} cores)", flush=True)
    big = build_big_bundle(OUT, args.grants)
    load = time_bundle_load(big, OUT / "keys" / "operator.pub", args.runs)
    med = statistics.median
    print(f"bundle: {load.bytes / 1e6:.2f} MB, {load.entries:,} grants (service × caller entries) = "
          f"{load.pairs:,} (caller, operation) pairs, {load.certs:,} certificates")
    print(f"BundleStore.offer, median of {args.runs}: {med(load.offer_ms):.1f} ms wall "
          f"[target ≤ {LOAD_TARGET_MS:g} ms] (min {min(load.offer_ms):.1f}, max {max(load.offer_ms):.1f}), "
          f"{med(load.offer_cpu_ms):.1f} ms CPU")
    print(f"  verify_envelope {med(load.verify_ms):.1f} ms + parse_policy {med(load.parse_ms):.1f} ms "
          "+ persisting (bundle.json, state.json with fsync)")
    print(f"load average after: {_loadavg()}")
    return 0 if med(load.offer_ms) <= LOAD_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())

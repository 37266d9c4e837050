"""Bundle load alone (issue 3: a bundle with 10,000 grants loaded and verified in ≤ 100 ms; issue 8:
a bundle carrying 100 compiled XSD schema sets loaded in ≤ 1 s).

    .venv/bin/python bench/bundle_load_bench.py [--grants 10000] [--runs 15] [--schemas 100]
        [--schema-runs 7]

Part 2 of `bench/sidecar_bench.py` without wrk, stunnel or any sidecar process, so it takes seconds:
the same grown bundle (`build_big_bundle`, one place for its generation) and the same timing
(`time_bundle_load`: `BundleStore.offer` into a fresh state directory, then `verify_envelope` and
`parse_policy` alone). Prints the medians, wall and CPU time.

Schemas (issue 8): Ведомство 3's bundle from the same compiled example registry (which has the SMEV 3
service SID0003004 with its two XSD sets) with `--schemas` copies of that service added
(`bench/soap_bench.py`'s `with_smev3_services`), each with its own copy of the real ЕГРЗ schema set
(publicprintout.xsd + common/gis-egrz-types.xsd, 107 KB; each copy's two files carry a distinct
comment, so every copy has a different schema key and nothing is shared: 100 copies = 200 more
files to verify under the signature and 100 more XSDs to compile). Compiled XSDs are cached per
process by content key (`compiler.payload_schemas.compile_xsd`), so the load a sidecar makes when it
starts is timed in a fresh Python process each run: `BundleStore.offer` into a fresh state directory
(verify + index + compiling every schema + persisting), the median of `--schema-runs`, wall and CPU.
`compile_schemas` alone is timed the same way. Then, in this process: the same offer again (every
schema already compiled), and the offer of the next serial with the same schemas to the
store that holds the first (what a poll that brings a new bundle costs). Outputs go to
bench/out/bundle-load/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidecar_bench import (
    LOAD_TARGET_MS,
    ROOT,
    _loadavg,
    _nproc,
    build_big_bundle,
    time_bundle_load,
)
from soap_bench import with_smev3_services, write_signed

from compiler.trust import load_public_key
from proxy.bundles import BundleStore

OUT = ROOT / "bench" / "out" / "bundle-load"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grants", type=int, default=10_000, help="grants in the big bundle")
    ap.add_argument("--runs", type=int, default=15, help="load repetitions (median)")
    ap.add_argument("--schemas", type=int, default=100, help="SMEV 3 services, each its own XSD set")
    ap.add_argument("--schema-runs", type=int, default=7, help="schema bundle load repetitions (median)")
    args = ap.parse_args()
    if not 1 <= args.runs <= 1000 or not 1 <= args.schema_runs <= 100 or not 1 <= args.schemas <= 1000:
        ap.error("runs 1..1000, schema runs 1..100, schemas 1..1000")
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
    ok_schemas = schema_section(args.schemas, args.schema_runs)
    print(f"load average after: {_loadavg()}")
    return 0 if med(load.offer_ms) <= LOAD_TARGET_MS and ok_schemas else 1


def _offer(store: BundleStore, data: bytes, origin: str) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread) of one accepted `BundleStore.offer`."""
    t0, c0 = time.perf_counter(), time.thread_time()
    accepted = store.offer(data, origin)
    wall, cpu = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
    if not accepted:
        raise RuntimeError(f"the schema bundle was refused: {store.last_refusal}")
    return wall, cpu


_FRESH = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from compiler.trust import load_public_key
from proxy.bundles import BundleStore
from proxy.payloads import compile_schemas
mode, data = sys.argv[2], Path(sys.argv[3]).read_bytes()
if mode == "compile":
    signed = json.loads(data)["signed"]
    t0, c0 = time.perf_counter(), time.process_time()
    compile_schemas(signed)
    ok, refusal = True, None
else:
    with tempfile.TemporaryDirectory(dir=sys.argv[5]) as state:
        store = BundleStore("ved3", [load_public_key(Path(sys.argv[4]))], 1, Path(state))
        store.load_state()
        t0, c0 = time.perf_counter(), time.process_time()
        ok = store.offer(data, sys.argv[3])
        refusal = None if ok else str(store.last_refusal)
wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
print(json.dumps({"wall": wall, "cpu": cpu, "refusal": refusal}))
"""


def _fresh(mode: str, path: Path, trusted_pub: Path) -> dict[str, Any]:
    """`BundleStore.offer` of `path` (mode "offer") or `compile_schemas` of its signed part (mode
    "compile") in a new Python process: nothing compiled yet, as when a sidecar starts."""
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(ROOT), mode, str(path), str(trusted_pub), str(OUT)],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the fresh-process load failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["refusal"]:
        raise RuntimeError(f"the schema bundle was refused: {result['refusal']}")
    return result


def schema_section(count: int, runs: int) -> bool:
    """Time loading a bundle with `count` distinct compiled XSD sets; True if the target is met."""
    base = json.loads((OUT / "bundles" / "ved3.json").read_bytes())["signed"]
    signed: dict[str, Any] = with_smev3_services(base, count)
    path = write_signed(OUT, "ved3-schemas.json", signed)
    following = dict(signed, serial=signed["serial"] + 1)
    next_path = write_signed(OUT, "ved3-schemas-next.json", following)
    data, next_data = path.read_bytes(), next_path.read_bytes()
    pub = OUT / "keys" / "operator.pub"
    fresh = [_fresh("offer", path, pub) for _ in range(runs)]
    offer_ms = [r["wall"] for r in fresh]
    offer_cpu = [r["cpu"] for r in fresh]
    compile_ms = [_fresh("compile", path, pub)["wall"] for _ in range(max(1, runs // 2))]
    trusted = [load_public_key(pub)]
    again_ms, reuse_ms = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=OUT) as state:
            store = BundleStore("ved3", trusted, 1, Path(state))
            store.load_state()
            again_ms.append(_offer(store, data, str(path))[0])
            reuse_ms.append(_offer(store, next_data, str(next_path))[0])
    med = statistics.median
    files = len(signed["schema_files"])
    print(f"\nschema bundle: {len(data) / 1e6:.2f} MB; {count} copies of the SMEV 3 service, each with its own "
          f"copy of the real ЕГРЗ XSD set; {len(signed['schemas'])} compiled schema sets in all, {files} schema files")
    print(f"BundleStore.offer in a fresh process (nothing compiled yet), median of {runs}: {med(offer_ms):.0f} ms "
          f"wall (min {min(offer_ms):.0f}, max {max(offer_ms):.0f}), {med(offer_cpu):.0f} ms CPU; "
          f"compile_schemas alone, fresh process {med(compile_ms):.0f} ms "
          f"({med(compile_ms) / len(signed['schemas']):.2f} ms per XSD set)")
    print(f"in one process, every schema already compiled: the same offer {med(again_ms):.0f} ms; the next serial "
          f"with the same schemas, offered to the store holding the first: {med(reuse_ms):.0f} ms")
    ok = med(offer_ms) <= 1000.0
    print(f"loading a bundle that carries {count} compiled schemas ≤ 1 s: {'met' if ok else 'missed'} "
          f"({med(offer_ms) / 1000:.2f} s)")
    return ok


if __name__ == "__main__":
    sys.exit(main())

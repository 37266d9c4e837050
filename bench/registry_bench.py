"""Time a bare YAML parse, `validate` and `compile` (with signing) on the same generated registry.

    .venv/bin/python bench/registry_bench.py [--services 10000 --participants 2000 --grants 200000
                                             --repeat 3]

Generates the registry under bench/out/ (bench/gen_registry.py, seed 1), then measures each phase
`--repeat` times, every measurement in a fresh subprocess so that its peak RSS
(`ru_maxrss`) is its own and caches do not carry over; prints the medians:

- parse:    read every file and `yaml.load(..., Loader=yaml.CSafeLoader)` it — the baseline;
- parse-nogc: the same with the garbage collector off, for reference: our loader pauses the
            collector while it builds (compiler/gcpause.py), so this is the baseline with that
            advantage taken away (compile's ratio against it is printed too);
- validate: `compiler.validate.validate` (loader, shape, rules R1–R10), what `reestr validate` runs;
- compile:  what `reestr compile --serial N` runs: load the key, validate, refuse on errors,
            `compiler.bundle.build` (slices + canonical JSON + Ed25519), `compiler.bundle.write`.

Target (issue 2): compile+sign ≤ 1.5× the bare parse. Figures are printed, not asserted.
`--payload-schemas`: SOAP services also register request XSDs with an import; validate and
compile then read, compile (once per content) and bundle them; the bare parse stays YAML only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PHASES = ("parse", "parse-nogc", "validate", "compile")
TARGET = 1.5


def _phase(name: str, registry: Path, work: Path) -> dict[str, float]:
    """Run one phase in this (fresh) process; return its wall time and this process's peak RSS."""
    import resource
    from datetime import UTC, datetime, timedelta

    import yaml

    from compiler import bundle, trust
    from compiler.validate import failed, validate

    today = datetime.now(UTC).date()
    extra: dict[str, float] = {}
    if name == "parse-nogc":
        import gc

        gc.disable()
    cpu_start = _cpu()
    start = time.perf_counter()
    if name in ("parse", "parse-nogc"):
        for folder in ("participants", "services", "consumers"):
            for path in sorted((registry / folder).glob("*.yaml")):
                yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)  # the baseline
    elif name == "validate":
        _, problems = validate(registry, today)
        if failed(problems):
            raise SystemExit(f"the generated registry has {len(problems)} problem(s): {problems[:3]}")
    elif name == "compile":
        keys = [trust.load_private_key(work / "bench.key")]
        issued = datetime.now(UTC).replace(microsecond=0)
        reg, problems = validate(registry, issued.date())
        if failed(problems):
            raise SystemExit(f"the generated registry has {len(problems)} problem(s): {problems[:3]}")
        info = bundle.BuildInfo(serial=1, issued_at=issued, expires_at=issued + timedelta(hours=6),
                                commit=None)
        files = bundle.build(reg, info, keys)
        bundle.write(files, work / "bundles")
        sizes = [len(data) for name_, data in files.items() if name_ != "index.json"]
        extra = {"largest_bundle": max(sizes), "total_bundles": sum(sizes) + len(files["index.json"]),
                 "bundles": len(sizes)}
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "cpu": cpu, "peak_mib": peak_kib / 1024, **extra}


def _cpu() -> float:
    """User + system CPU seconds of this process: steadier than wall time on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(name: str, registry: Path, work: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--phase", name, "--registry", str(registry),
                           "--work", str(work)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--grants", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--payload-schemas", action="store_true",
                        help="SOAP services register request XSDs (validate and compile read and compile them)")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--registry", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:  # child: one measurement
        sys.path.insert(0, str(ROOT))
        print(json.dumps(_phase(args.phase, args.registry, args.work)))
        return 0

    sys.path.insert(0, str(ROOT))
    from bench.gen_registry import generate
    from compiler import trust

    schemas = "-xsd" if args.payload_schemas else ""
    work = OUT / f"run-{args.services}-{args.participants}-{args.grants}-{args.seed}{schemas}"
    registry = work / "registry"
    started = time.perf_counter()
    counts = generate(registry, args.services, args.participants, args.grants, args.seed, args.payload_schemas)
    files = [p for p in registry.rglob("*.yaml")]
    size = sum(p.stat().st_size for p in files)
    print(f"registry: {counts['participants']} participants, {counts['services']} services, "
          f"{counts['grants']} grants in {len(files)} files ({_mib(size)}), "
          f"generated in {time.perf_counter() - started:.1f} s"
          + (f"; {len(list((work / 'schemas/services').glob('*/request.xsd')))} services with a request XSD"
             if args.payload_schemas else ""))
    if not (work / "bench.key").exists():
        trust.generate_keypair(work / "bench")

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PHASES}
    for i in range(args.repeat):
        for name in PHASES:  # interleaved, so a slow moment of the machine hits every phase
            runs[name].append(_measure(name, registry, work))
        print(f"  run {i + 1}/{args.repeat}: " + ", ".join(
            f"{name} {runs[name][-1]['seconds']:.2f} s (cpu {runs[name][-1]['cpu']:.2f})" for name in PHASES),
              flush=True)

    med = {name: statistics.median(r["seconds"] for r in runs[name]) for name in PHASES}
    cpu = {name: statistics.median(r["cpu"] for r in runs[name]) for name in PHASES}
    peak = {name: max(r["peak_mib"] for r in runs[name]) for name in PHASES}
    base = med["parse"]
    last = runs["compile"][-1]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmedian of {args.repeat} run(s), each in a fresh process; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {load} (wall time suffers on a busy machine, cpu less)")
    print(f"{'phase':<26}{'wall s':>8}{'× parse':>9}{'cpu s':>8}{'× parse':>9}{'peak RSS':>12}")
    labels = {"parse": "bare parse (CSafeLoader)", "parse-nogc": "  the same, GC off (ref.)",
              "validate": "validate", "compile": "compile + sign + write"}
    for name in PHASES:
        print(f"{labels[name]:<26}{med[name]:>8.2f}{med[name] / base:>8.2f}×{cpu[name]:>8.2f}"
              f"{cpu[name] / cpu['parse']:>8.2f}×{peak[name]:>8.0f} MiB")
    print(f"bundles: {int(last['bundles'])} + index; largest {_mib(last['largest_bundle'])}, "
          f"total {_mib(last['total_bundles'])}")
    ratio = med["compile"] / base
    print(f"target compile+sign ≤ {TARGET}× parse: {'met' if ratio <= TARGET else 'NOT met'} "
          f"({ratio:.2f}× wall, {cpu['compile'] / cpu['parse']:.2f}× cpu); against the parse with the "
          f"garbage collector off: {med['compile'] / med['parse-nogc']:.2f}× wall, "
          f"{cpu['compile'] / cpu['parse-nogc']:.2f}× cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())

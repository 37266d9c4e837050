"""In-process cost of reestr's stages per request, through mitmproxy's own addon manager.

    .venv/bin/python bench/pipeline_bench.py [--bundle BUNDLE --trusted PUB] [--calls 3000]

No network, no TLS, no HTTP parsing: a REST call (Ведомство 1 `GET /SID0003001/applicants/42`,
allowed) is driven through mitmproxy's `AddonManager.handle_lifecycle` for the four flow hooks a
proxied request raises (requestheaders, request, responseheaders, response; each followed by
mitmproxy's `update` event), with mitmproxy's addons as the sidecar loads them (`tlsconfig` left
out: it needs a certificate store and costs both layouts the same) and:

  mitmproxy only      no reestr addon: the baseline;
  separate addons     the sidecar's provider-side stages as separate mitmproxy addons (how
                      `main` ran them until the pipeline);
  pipeline            the same stages as ONE addon (`proxy/addons/pipeline.py`, what runs now).

Then the pipeline's stages timed one by one (CPU time of each stage's hooks, summed per request):
which stage costs what, and what the hardening stages (issue 10: header hygiene, timeouts) add.
The heap is frozen first, as in the sidecar (`proxy/heap.py`).
The journal is replaced by one that answers at once (the writer's own cost and the durability
wait are measured by `bench/journal_bench.py` and `bench/sidecar_bench.py`). CPU time is
`time.process_time`, median of 5 repeats of `--calls` calls, caches hot (a lower bound for the
sidecar, where mitmproxy's own work between two requests' stages cools the caches).

Used by `bench/sidecar_bench.py` at the end of its run (same bundle), and standalone: without
`--bundle` the example registry is compiled with a fresh key into a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mitmproxy import http, options  # noqa: E402
from mitmproxy.certs import Cert  # noqa: E402
from mitmproxy.master import Master  # noqa: E402
from mitmproxy.proxy.layers.http import (  # noqa: E402
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import tflow  # noqa: E402

from compiler.trust import generate_keypair, load_public_key  # noqa: E402
from proxy import heap  # noqa: E402
from proxy.addons.enforce import Enforce  # noqa: E402
from proxy.addons.hygiene import Hygiene  # noqa: E402
from proxy.addons.journaling import Journaling  # noqa: E402
from proxy.addons.metrics import Metrics  # noqa: E402
from proxy.addons.pipeline import Pipeline  # noqa: E402
from proxy.addons.responses import ResponseCheck  # noqa: E402
from proxy.addons.timeouts import Timeouts  # noqa: E402
from proxy.admin import SidecarMetrics  # noqa: E402
from proxy.bundles import BundleStore  # noqa: E402
from proxy.headers import HeadLimits  # noqa: E402
from proxy.runner import mitmproxy_addons  # noqa: E402

PATH = "/SID0003001/applicants/42"
HARDENING = ("Timeouts", "Hygiene")  # the stages issue 10 added
ANSWER = b'{"path":"/applicants/42","answer":"ok"}'
_HOOKS = (HttpRequestHeadersHook, HttpRequestHook, HttpResponseHeadersHook, HttpResponseHook)


class _InstantJournal:
    """Answers every append at once with the next id: the stages' own work, not the disk's."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.queue_depth = 0

    async def append(self, record: object) -> int:
        return next(self._ids)


def _stages(store: BundleStore) -> list[Any]:
    return [Timeouts(30, 60), Hygiene(HeadLimits()), Enforce(store, None), ResponseCheck("record"),
            Journaling(_InstantJournal(), "ved3"),  # type: ignore[arg-type]
            Metrics(SidecarMetrics(store, lambda: 0.0))]


class _Flows:
    """Fresh flows of one TLS connection of Ведомство 1 (the leaf is computed once per connection)."""

    def __init__(self) -> None:
        self.client = tflow.tflow().client_conn
        self.client.certificate_list = [Cert.from_pem((ROOT / "demo" / "pki" / "ved1.crt").read_bytes())]
        self.client.tls = True
        self.client.timestamp_tls_setup = time.time()
        self.answer = http.Response.make(200, ANSWER, {"content-type": "application/json"})

    def make(self, n: int) -> list[http.HTTPFlow]:
        flows = []
        for _ in range(n):
            f = tflow.tflow(resp=False)
            f.client_conn = self.client
            f.request.method, f.request.path, f.request.host = "GET", PATH, "127.0.0.1"
            f.request.headers.clear()
            f.request.headers.update({"host": "ved3", "user-agent": "wrk"})
            f.request.content = b""
            flows.append(f)
        return flows


async def _drive(master: Master, flows: list[http.HTTPFlow], answer: http.Response) -> float:
    t0 = time.process_time()
    for f in flows:
        await master.addons.handle_lifecycle(_HOOKS[0](f))
        await master.addons.handle_lifecycle(_HOOKS[1](f))
        if f.response is None:
            f.response = answer.copy()
        await master.addons.handle_lifecycle(_HOOKS[2](f))
        await master.addons.handle_lifecycle(_HOOKS[3](f))
    return (time.process_time() - t0) / len(flows) * 1e6


def _master(*addons: Any) -> Master:
    master = Master(options.Options())
    master.addons.add(*[a for a in mitmproxy_addons() if type(a).__name__ != "TlsConfig"], *addons)
    return master


def _check(flows: list[http.HTTPFlow]) -> None:
    for f in flows:
        if f.response is None or f.response.status_code != 200 or "Reestr-Journal-Id" not in f.response.headers:
            raise RuntimeError(f"the call was not allowed and journaled: {f.response and f.response.content!r}")


class _Timed:
    """A stage whose hooks add their CPU time to `spent`."""

    def __init__(self, stage: Any, spent: dict[str, float]) -> None:
        name = type(stage).__name__
        for hook in ("requestheaders", "request", "responseheaders", "response"):
            method = getattr(stage, hook, None)
            if callable(method):
                setattr(self, hook, _timer(method, name, spent))
        for hook in ("load", "configure", "running", "done", "client_connected", "client_disconnected"):
            if callable(getattr(stage, hook, None)):
                setattr(self, hook, getattr(stage, hook))


def _timer(method: Callable[..., Any], name: str, spent: dict[str, float]) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(method):
        async def timed_async(flow: http.HTTPFlow) -> None:
            t0 = time.process_time_ns()
            await method(flow)
            spent[name] = spent.get(name, 0.0) + (time.process_time_ns() - t0) / 1000
        return timed_async

    def timed(flow: http.HTTPFlow) -> None:
        t0 = time.process_time_ns()
        method(flow)
        spent[name] = spent.get(name, 0.0) + (time.process_time_ns() - t0) / 1000
    return timed


def stage_costs(store: BundleStore, calls: int = 3000, repeats: int = 5) -> dict[str, Any]:
    """µs per request: mitmproxy only, separate addons, pipeline; and µs per stage in the pipeline."""
    flows = _Flows()

    async def layout(make: Callable[[], list[Any]]) -> float:
        master = _master(*make())
        warm = flows.make(200)
        await _drive(master, warm, flows.answer)
        if make is not _none:
            _check(warm)
        return statistics.median([await _drive(master, flows.make(calls), flows.answer) for _ in range(repeats)])

    def _none() -> list[Any]:
        return []

    async def per_stage() -> dict[str, float]:
        spent: dict[str, float] = {}
        master = _master(Pipeline(*[_Timed(s, spent) for s in _stages(store)]))
        await _drive(master, flows.make(200), flows.answer)
        spent.clear()
        await _drive(master, flows.make(calls), flows.answer)
        return {name: us / calls for name, us in spent.items()}

    async def run() -> dict[str, Any]:
        heap.settle()  # as the sidecar does once its bundle is in force (proxy/heap.py)
        base = await layout(_none)
        separate = await layout(lambda: _stages(store))
        pipeline = await layout(lambda: [Pipeline(*_stages(store))])
        return {"mitmproxy": base, "separate": separate, "pipeline": pipeline, "stages": await per_stage()}

    return asyncio.run(run())


def print_costs(costs: dict[str, Any], loop_us: float | None = None) -> None:
    """The table; with `loop_us` (the sidecar's loop CPU per request from a wrk run of the same
    run), the hardening stages' share of it too."""
    base = costs["mitmproxy"]
    print("in-process CPU per request through mitmproxy's addon manager (4 flow hooks, hot caches, "
          "median of 5; no network, TLS or HTTP parsing):")
    print(f"  mitmproxy's addons only                    {base:8.1f} µs")
    for key, label in (("separate", "+ reestr's stages as separate addons"),
                       ("pipeline", "+ the same as ONE addon (pipeline)")):
        print(f"  {label:<42} {costs[key]:8.1f} µs   reestr's share {costs[key] - base:6.1f} µs")
    print("  per stage in the pipeline:  " + " · ".join(f"{n} {us:.1f}" for n, us in costs["stages"].items()) + " µs")
    hardening = sum(us for n, us in costs["stages"].items() if n in HARDENING)
    line = f"  hardening stages (issue 10: {', '.join(HARDENING)}): {hardening:.1f} µs per request"
    if loop_us:
        line += f" = {hardening / loop_us:.1%} of the sidecar's loop CPU per request ({loop_us:,.0f} µs) [target ≤ 5%]"
    print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a signed bundle for ved3 (default: compile the example)")
    ap.add_argument("--trusted", type=Path, help="the operator's public key of --bundle")
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle, trusted = args.bundle, args.trusted
        if bundle is None:
            generate_keypair(Path(tmp) / "operator")
            subprocess.run([str(Path(sys.executable).parent / "reestr"), "compile", str(ROOT / "registry"),
                            "--key", f"{tmp}/operator.key", "--out", f"{tmp}/bundles", "--expires-in", "1h"],
                           check=True, capture_output=True)
            bundle, trusted = Path(tmp) / "bundles" / "ved3.json", Path(tmp) / "operator.pub"
        if trusted is None:
            ap.error("--trusted is needed with --bundle")
        print_costs(stage_costs(load_store(bundle, trusted, Path(tmp) / "state"), args.calls))
    return 0


def load_store(bundle: Path, trusted: Path, state: Path) -> BundleStore:
    store = BundleStore("ved3", [load_public_key(trusted)], 1, state)
    store.load_state()
    if not store.offer(bundle.read_bytes(), str(bundle)):
        raise RuntimeError(f"{bundle}: refused: {store.last_refusal}")
    return store


if __name__ == "__main__":
    sys.exit(main())

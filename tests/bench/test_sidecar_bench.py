"""The sidecar benchmark's helpers: the grown bundle is one the sidecar accepts, the upstream answers."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from compiler.trust import format_time, generate_keypair, load_private_key, load_public_key, sign_envelope
from proxy.bundles import BundleStore
from proxy.policy import Request, evaluate

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sidecar_bench", ROOT / "bench" / "sidecar_bench.py")
assert _spec is not None and _spec.loader is not None
sidecar_bench = importlib.util.module_from_spec(_spec)
sys.modules["sidecar_bench"] = sidecar_bench  # dataclasses look their module up there
_spec.loader.exec_module(sidecar_bench)


def _base() -> dict[str, object]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {"type": "reestr-bundle", "format": 1, "audience": "ved3", "serial": 4,
            "issued_at": format_time(now), "expires_at": format_time(now + timedelta(hours=1)),
            "source": {"commit": None, "registry_digest": "sha256:" + "0" * 64},
            "participant": {"id": "ved3", "name": "Ведомство 3", "status": "active", "ends_on": None,
                            "sidecar": "https://ved3.example:8443", "certificates": []},
            "services": {}, "grants": {}}


def test_grown_bundle_has_the_grants_and_is_accepted(tmp_path: Path) -> None:
    signed = sidecar_bench.grow_bundle(_base(), 1200)
    entries, pairs, certs = sidecar_bench.count_grants(signed)
    assert entries == 1200 and pairs >= entries and certs > 0
    assert signed["serial"] == 5
    generate_keypair(tmp_path / "op")
    data = sign_envelope(signed, [load_private_key(tmp_path / "op.key")])
    store = BundleStore("ved3", [load_public_key(tmp_path / "op.pub")], 1, tmp_path / "state")
    store.load_state()
    assert store.offer(data, "test"), store.last_refusal
    bundle = store.in_force()
    assert bundle is not None
    sid, svc = next(iter(signed["services"].items()))
    caller = next(iter(svc["callers"]))
    decision = evaluate(bundle.policy, caller, Request("GET", f"/{sid}/records/7/part1"), datetime.now(UTC).date())
    assert decision.operation == "operation1"


def test_fast_upstream_answers_pipelined_requests() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(port), "20"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the upstream did not listen"
                time.sleep(0.05)
        with conn:
            conn.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            data = b""
            while data.count(b"HTTP/1.1 200 OK") < 2:
                chunk = conn.recv(65536)
                assert chunk, f"connection closed after {data!r}"
                data += chunk
        assert data.count(b'"answer":"ok"') == 2
    finally:
        proc.terminate()
        proc.wait(10)


def _run(requests: int, loop_s: float) -> object:
    return sidecar_bench.WrkResult(requests=requests, seconds=10, errors=0, non2xx=0, p50_ms=1, p99_ms=2,
                                   mean_ms=1, loop_cpu_s=loop_s)


def test_target_ratios_pair_the_rows_of_each_round() -> None:
    """The machine slows down between rounds: the verdict is the median of each round's own
    ratio, so the drift cancels and one odd round does not move it."""
    runs = {("a", 10): [_run(800, 1.0), _run(600, 1.0), _run(400, 1.0)],
            ("b", 10): [_run(1000, 1.0), _run(750, 1.0), _run(900, 1.0)]}
    assert round(sidecar_bench.paired(runs, "a", "b", 10), 6) == 0.8  # rounds: 80%, 80%, 44%
    runs[("a", 10)] = [_run(1000, 1.2), _run(1000, 1.5), _run(1000, 3.0)]
    runs[("b", 10)] = [_run(1000, 1.0), _run(1000, 1.25), _run(1000, 2.0)]
    assert round(sidecar_bench.paired(runs, "a", "b", 10, "loop_us_per_req"), 6) == 1.2  # 120%, 120%, 150%

"""The `--workers N` row of bench/sidecar_bench.py (issue 13): one sidecar with N worker processes.

The row's process is the supervisor; the work is done by its workers, so the CPU figures are
those of the worker processes (read from /proc, pids from the supervisor's status file
`state/workers/supervisor.json`): CPU per request over all workers, and each worker's loop (main
thread) CPU per request it answered — the requests of each worker are read from its own admin
port (`reestr_requests_total` of that process) before and after the run. The supervisor's own
CPU is shown apart: it does no per-request work.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class WorkerSample:
    pid: int
    cpu: float
    loop: float
    requests: float


def _status(state_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((state_dir / "workers" / "supervisor.json").read_text())
    return data


def _requests(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("reestr_requests_total{"))


class WorkersTarget:
    def __init__(self, state_dir: Path, cpu_seconds: object) -> None:
        self.state_dir = state_dir
        self.cpu_seconds = cpu_seconds  # sidecar_bench.cpu_seconds(pid, main_thread_only)

    def wait_all_ready(self, workers: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ws = _status(self.state_dir)["workers"]
                if isinstance(ws, list) and len(ws) == workers and all(w["ready"] for w in ws):
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the {workers} workers were not ready within {timeout}s")

    def sample(self) -> list[WorkerSample]:
        ws = _status(self.state_dir)["workers"]
        assert isinstance(ws, list)
        cpu = self.cpu_seconds  # type: ignore[assignment]
        return [WorkerSample(w["pid"], cpu(w["pid"]), cpu(w["pid"], True), _requests(w["admin_port"]))  # type: ignore[operator]
                for w in ws]


def deltas(before: list[WorkerSample], after: list[WorkerSample]) -> tuple[float, list[float], list[float]]:
    """(CPU seconds of all workers, loop µs per request of each worker, requests of each worker).

    A worker restarted during the run (another pid) is counted from zero."""
    cpu = 0.0
    loops: list[float] = []
    reqs: list[float] = []
    for b, a in zip(before, after, strict=True):
        same = a.pid == b.pid
        d_cpu = a.cpu - (b.cpu if same else 0.0)
        d_loop = a.loop - (b.loop if same else 0.0)
        d_req = a.requests - (b.requests if same else 0.0)
        cpu += d_cpu
        reqs.append(d_req)
        loops.append(d_loop / d_req * 1e6 if d_req else 0.0)
    return cpu, loops, reqs

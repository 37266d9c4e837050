"""One worker process of a `workers: N` sidecar, started by `proxy.supervisor` (never by hand).

It runs an ordinary `proxy.runner.Sidecar` on the config `proxy.workers.worker_config` derives
for its index (its own journal chain and state, the bundle the supervisor handed over), with:

- the listening sockets inherited from the supervisor (`proxy.listeners`), shared by all workers;
- its admin listener on a socket the supervisor bound (127.0.0.1, an ephemeral port), which the
  supervisor asks for /healthz and /readyz;
- metrics in prometheus-client's multiprocess mode (the supervisor sets PROMETHEUS_MULTIPROC_DIR;
  its admin port serves the sum of all workers);
- replay protection shared with the other workers (`proxy.replay_shared`);
- SIGTERM: drain (`proxy.drain`), then stop; SIGHUP: read the handed-over bundle now; SIGINT is
  ignored (a Ctrl-C reaches the whole process group: the supervisor turns it into a drain);
- it ends itself when the supervisor dies (PR_SET_PDEATHSIG on Linux, and a check of its parent).

What the supervisor passes, in the environment: REESTR_WORKER (JSON: config path, overrides,
index, admin_fd) and REESTR_LISTEN_FDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from typing import Any

from proxy import listeners
from proxy.config import load_config
from proxy.drain import Drain
from proxy.errors import SidecarError
from proxy.replay_shared import FILE as REPLAY_FILE
from proxy.workers import worker_config, workers_dir

ENV = "REESTR_WORKER"
_PR_SET_PDEATHSIG = 1


def spec(config_path: str, overrides: dict[str, Any], index: int, admin_fd: int) -> str:
    return json.dumps({"config": config_path, "overrides": overrides, "index": index, "admin_fd": admin_fd})


def main() -> None:
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # pragma: no cover - the supervisor died before prctl
        sys.exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(json.loads(os.environ[ENV]))
    except SidecarError as e:
        print(f"reestr-sidecar worker: {e}", file=sys.stderr)
        sys.exit(2)


def run(worker: dict[str, Any]) -> None:
    from proxy.runner import Sidecar  # after the environment is read: prometheus-client's mode

    config = load_config(worker["config"], worker["overrides"])
    index = int(worker["index"])
    listeners.use_inherited(listeners.parse(os.environ.get(listeners.ENV, "")))
    sidecar = Sidecar(worker_config(config, index), own_process=True)
    drain = Drain()
    sidecar.extra_addons.append(drain)
    sidecar.multiprocess_metrics = True
    sidecar.probe_health = index == 0
    sidecar.health_dir = config.state_dir
    sidecar.replay_file = workers_dir(config) / REPLAY_FILE
    sidecar.admin_sock = socket.socket(fileno=int(worker["admin_fd"]))
    sidecar.admin_sock.setblocking(False)

    async def stop() -> None:
        while not sidecar.started.is_set():  # still starting: drain once it listens
            await asyncio.sleep(0.05)
        if sidecar.master is not None:
            finished = await drain.drain(sidecar.master, config.drain_seconds)
            if not finished:
                print(f"reestr-sidecar worker {index}: drain timed out with {drain.in_flight} call(s) "
                      "in flight", file=sys.stderr)
        sidecar.shutdown()

    async def amain() -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def on_term() -> None:
            if not stopping:  # a second SIGTERM does not start a second drain
                stopping.append(loop.create_task(stop()))

        loop.add_signal_handler(signal.SIGTERM, on_term)
        loop.add_signal_handler(signal.SIGHUP, sidecar.reload)
        await sidecar.run()

    asyncio.run(amain())

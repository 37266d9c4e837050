"""The supervisor of a `workers: N` sidecar: N worker processes sharing the listening ports.

`reestr-sidecar run` with `workers` > 1 runs this instead of one sidecar (`proxy.runner`):

- it binds the listening ports once (inbound, and outbound if configured) and every worker
  inherits them (`proxy.listeners`: one accept queue, so a worker's exit loses no waiting
  connection), plus one admin socket per worker on 127.0.0.1;
- it fetches and verifies the bundle (`bundle.source`, every `poll_seconds`, and at once on
  SIGHUP) into its own state directory, hands the accepted bytes to the workers
  (`proxy.workers.handoff_path`) and sends each a SIGHUP; each worker verifies the same bytes with
  the same keys and swaps them in atomically. A call is decided by the one bundle its worker had
  when the call arrived (the flow keeps it), never by a mix; calls in flight finish with theirs;
- it restarts a worker that dies (a crash, SIGKILL) with the same index — the same journal chain —
  after a back-off (0.1 s doubling to 5 s while restarts keep failing within a few seconds), and
  counts the restart (`reestr_worker_restarts_total`);
- SIGTERM or SIGINT: every worker drains (`proxy.drain`: stop accepting, finish the calls in flight,
  at most `drain_seconds`), then the supervisor exits; a worker still running after that is killed;
- its admin port serves /healthz (200 once every worker listens), /readyz (200 only when every
  worker is ready, else 503 naming the workers that are not), /metrics (all workers summed by
  prometheus-client's multiprocess mode, plus the supervisor's own), /journal/anchor (worker 0's
  latest checkpoint; each worker's chain has its anchor file, `proxy.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from compiler.trust import KeyFileError, load_public_key
from proxy import listeners
from proxy.admin import AdminServer
from proxy.bundles import BUNDLE_FILE, BundleStore, make_source, poll_once
from proxy.config import SidecarConfig
from proxy.errors import ConfigError, SidecarError
from proxy.worker import ENV as WORKER_ENV
from proxy.worker import spec
from proxy.workers import STATUS_FILE, handoff_path, workers_dir

STATUS_SECONDS = 0.2
BACKOFF_FIRST, BACKOFF_MAX, STABLE_SECONDS = 0.1, 5.0, 5.0
KILL_AFTER_DRAIN = 10.0
METRICS_DIR = "metrics"


@dataclass
class Worker:
    index: int
    admin: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    live: bool = False
    ready: str | None = "starting"  # None when ready
    anchor: str | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.admin.getsockname()[1])


class Supervisor:
    def __init__(self, config: SidecarConfig, config_path: Path, overrides: dict[str, Any] | None = None) -> None:
        if config.listen.port == 0 or (config.outbound is not None and config.outbound.listen.port == 0):
            raise ConfigError("config: workers > 1 needs fixed listen ports (not 0)")
        self.config = config
        self.config_path = config_path
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        try:
            trusted = [load_public_key(p) for p in config.bundle.trusted_keys]
        except KeyFileError as e:
            raise ConfigError(f"config: bundle.trusted_keys: {e}") from e
        self.store = BundleStore(config.participant, trusted, config.bundle.threshold, config.state_dir,
                                 config.bundle.max_bytes)
        self.store.load_state()
        self.source = make_source(config.bundle.source, config.bundle.max_bytes)
        self.metrics_dir = workers_dir(config) / METRICS_DIR
        self.registry = CollectorRegistry()
        self.restarts = Counter("reestr_worker_restarts", "Worker processes restarted after they died",
                                ["worker"], registry=self.registry)
        self.alive = Gauge("reestr_workers_alive", "Worker processes running", registry=self.registry)
        self.alive.set_function(lambda: float(sum(w.process is not None and w.process.poll() is None
                                                  for w in self.workers)))
        Gauge("reestr_workers", "Worker processes configured", registry=self.registry).set(config.workers)
        self.workers: list[Worker] = []
        self.sockets: dict[tuple[str, int], socket.socket] = {}
        self.stopping = asyncio.Event()
        self.admin: AdminServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.config
        self.sockets[(cfg.listen.host, cfg.listen.port)] = listeners.bind(cfg.listen.host, cfg.listen.port)
        if cfg.outbound is not None:
            out = cfg.outbound.listen
            self.sockets[(out.host, out.port)] = listeners.bind(out.host, out.port)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # counters start again with the supervisor
        self.metrics_dir.mkdir(parents=True)
        await self._poll_bundle(signal_workers=False)
        self.admin = AdminServer(cfg.admin.host, cfg.admin.port, self, self.not_ready, live=self.live,
                                 anchor=lambda: self.workers[0].anchor if self.workers else None,
                                 warning=lambda: self.store.expiry_warning(cfg.bundle.expiry_warning_seconds))
        try:
            await self.admin.start()
        except OSError as e:
            raise SidecarError(f"admin listener {cfg.admin.host}:{cfg.admin.port}: {e.strerror}") from e
        for i in range(cfg.workers):
            admin = listeners.bind("127.0.0.1", 0)
            self.workers.append(Worker(i, admin))
            self._spawn(self.workers[-1])
        tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._status()),
                 asyncio.create_task(self._poll_forever())]
        try:
            await self.stopping.wait()
            await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            await self.admin.stop()
            for sock in [*self.sockets.values(), *(w.admin for w in self.workers)]:
                sock.close()

    def request_stop(self) -> None:
        self.stopping.set()

    def request_reload(self) -> None:
        asyncio.get_running_loop().create_task(self._poll_bundle(signal_workers=True, always=True))

    def _spawn(self, worker: Worker) -> None:
        env = {**os.environ, listeners.ENV: listeners.spell(self.sockets),
               WORKER_ENV: spec(str(self.config_path), self.overrides, worker.index, worker.admin.fileno()),
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        fds = (*(s.fileno() for s in self.sockets.values()), worker.admin.fileno())
        worker.process = subprocess.Popen(
            [sys.executable, "-c", "from proxy.worker import main; main()"], env=env, pass_fds=fds,
            stdin=subprocess.DEVNULL)
        worker.pids.append(worker.process.pid)
        worker.started_at = time.monotonic()
        worker.live, worker.ready = False, "starting"

    async def _watch(self) -> None:
        """Restart dead workers (with back-off) until stopping."""
        from prometheus_client import multiprocess

        while not self.stopping.is_set():
            now = time.monotonic()
            for w in self.workers:
                proc = w.process
                if proc is not None and proc.poll() is not None:
                    multiprocess.mark_process_dead(proc.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                    quick = now - w.started_at < STABLE_SECONDS
                    w.failures = w.failures + 1 if quick else 0
                    w.restart_at = now + (min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (w.failures - 1))
                                          if w.failures else 0.0)
                    print(f"reestr-sidecar: worker {w.index} (pid {proc.pid}) exited with {proc.returncode}; "
                          "restarting", file=sys.stderr)
                    w.process, w.live, w.ready = None, False, "restarting"
                if w.process is None and now >= w.restart_at and not self.stopping.is_set():
                    self._spawn(w)
                    self.restarts.labels(str(w.index)).inc()
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
        for s in self.sockets.values():  # with the workers' copies closed too, new connections are refused
            s.close()
        running = [w for w in self.workers if w.process is not None and w.process.poll() is None]
        for w in running:
            assert w.process is not None
            with contextlib.suppress(ProcessLookupError):
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_seconds + KILL_AFTER_DRAIN
        while any(w.process is not None and w.process.poll() is None for w in running):
            if time.monotonic() > deadline:
                for w in running:
                    if w.process is not None and w.process.poll() is None:
                        print(f"reestr-sidecar: worker {w.index} did not stop; killing it", file=sys.stderr)
                        w.process.kill()
                break
            await asyncio.sleep(0.05)
        for w in running:
            if w.process is not None:
                await asyncio.to_thread(w.process.wait)

    # --- the bundle -------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.bundle.poll_seconds)
            await self._poll_bundle(signal_workers=True)

    async def _poll_bundle(self, *, signal_workers: bool, always: bool = False) -> None:
        try:
            swapped = await poll_once(self.store, self.source)
        except SidecarError as e:
            print(f"reestr-sidecar: bundle update: {e}", file=sys.stderr)
            return
        target = handoff_path(self.config)
        # at start always: a hand-over file left by an earlier run may be older than the state
        if self.store.current is not None and (swapped or not signal_workers or not target.exists()):
            self._hand_off(target)
            swapped = True
        if signal_workers and (swapped or always):
            for w in self.workers:
                if w.process is not None and w.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        w.process.send_signal(signal.SIGHUP)

    def _hand_off(self, target: Path) -> None:
        """The accepted bundle's bytes (as the store saved them) where every worker reads them."""
        try:
            data = (self.config.state_dir / BUNDLE_FILE).read_bytes()
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_bytes(target, data)
        except OSError as e:
            print(f"reestr-sidecar: cannot hand the bundle to the workers: {e.strerror}", file=sys.stderr)

    # --- admin ------------------------------------------------------------------------------------

    async def _status(self) -> None:
        last = ""
        while True:
            await asyncio.gather(*(self._ask(w) for w in self.workers))
            text = json.dumps(self.status(), indent=1)
            if text != last:  # what `reestr-sidecar status` shows
                last = text
                _write_text(workers_dir(self.config) / STATUS_FILE, text)
            await asyncio.sleep(STATUS_SECONDS)

    def status(self) -> dict[str, Any]:
        return {"supervisor_pid": os.getpid(), "workers": [
            {"index": w.index, "pid": w.process.pid if w.process is not None else None, "admin_port": w.port,
             "restarts": len(w.pids) - 1, "live": w.live, "ready": w.ready is None,
             "not_ready": w.ready} for w in self.workers]}

    async def _ask(self, w: Worker) -> None:
        if w.process is None or w.process.poll() is not None:
            w.live, w.ready = False, "not running"
            return
        live, _ = await _get(w.port, "/healthz")
        ready, body = await _get(w.port, "/readyz")
        w.live = live == 200
        w.ready = None if ready == 200 else (body.strip() or "no answer")
        status, anchor = await _get(w.port, "/journal/anchor") if w.index == 0 else (0, "")
        if status == 200:
            w.anchor = anchor.strip()

    def live(self) -> bool:
        return bool(self.workers) and all(w.live for w in self.workers)

    def not_ready(self) -> str | None:
        reasons = [f"worker {w.index}: {w.ready}" for w in self.workers if w.ready is not None]
        return "; ".join(reasons) if reasons else None

    def render(self) -> bytes:
        from prometheus_client import multiprocess

        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        return generate_latest(shared) + generate_latest(self.registry)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    try:
        _write_bytes(path, text.encode())
    except OSError as e:
        print(f"reestr-sidecar: cannot write {path}: {e.strerror}", file=sys.stderr)


async def _get(port: int, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path → (status, body); (0, "") when it does not answer."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = await reader.read(-1)
    except (OSError, TimeoutError):
        return 0, ""
    finally:
        if writer is not None:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, body.decode("utf-8", "replace")


def run_supervisor(config: SidecarConfig, config_path: Path, overrides: dict[str, Any] | None = None) -> None:
    """Run in the foreground until SIGTERM/SIGINT; SIGHUP fetches and hands over the bundle now."""
    supervisor = Supervisor(config, config_path, overrides)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.request_stop)
        loop.add_signal_handler(signal.SIGHUP, supervisor.request_reload)
        await supervisor.run()

    asyncio.run(main())

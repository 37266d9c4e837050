"""Build and run one sidecar: mitmproxy in-process with the reestr addons (DESIGN §7, §7a).

Usable from Python for tests, the demo and the benchmark:

    from proxy.config import load_config
    from proxy.runner import Sidecar, start_in_thread, start_subprocess

    handle = start_in_thread(load_config("sidecar.yaml"))   # returns once it listens
    ...; handle.stop()

    proc = start_subprocess("sidecar.yaml")                 # `reestr-sidecar run` in a child
    ...; proc.stop()                                        # SIGTERM; proc.kill() for SIGKILL

Only one in-process sidecar per Python process at a time: mitmproxy keeps its options in a global
context (run more as subprocesses). `start_subprocess` waits on the config's admin port, so flags
given in ARGS must not move it.

The config file (full reference in `proxy.config`; relative paths are relative to the file)::

    participant: ved3
    listen: {host: 0.0.0.0, port: 8443}      # inbound mTLS, reverse proxy to upstream
    admin: {host: 127.0.0.1, port: 9100}     # /healthz /readyz /metrics
    upstream: http://127.0.0.1:8080
    tls: {server_bundle: tls/server.pem}     # key + certificate + chain
    bundle: {source: https://bundles.example/ved3.json, poll_seconds: 30,
             trusted_keys: [keys/operator.pub], threshold: 1}
    state_dir: state
    journal: {path: state/journal.sqlite, signing_key: keys/sidecar.key, synchronous: FULL}
    # or: journal: {backend: postgres, dsn: "postgresql://…", chain: ved3-a, signing_key: …}
    limits: {max_body_bytes: 1048576}
    outbound:                                 # optional consumer side
      listen: {host: 127.0.0.1, port: 8088}
      client_bundle: tls/client.pem
      provider_ca: tls/ca.pem

With `workers: N` (N > 1) `run_forever` runs `proxy.supervisor` instead: N processes, each an
ordinary `Sidecar` configured by `proxy.worker` through the hooks set before `run()`
(`extra_addons`, `multiprocess_metrics`, `probe_health`, `health_dir`, `admin_sock`,
`replay_file`). SIGHUP makes a running sidecar fetch its bundle at once (`reload`).

Everything that can be checked is checked before anything listens (`Sidecar.__init__`): keys,
the TLS bundle, the state directory. Then `run()` opens the journal, fetches the bundle once, binds
the admin port and starts mitmproxy in reverse mode in front of the upstream; /healthz answers 200
(and the bundle poller starts) only once mitmproxy reports it is running, so a healthy sidecar's
proxy port listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from mitmproxy import options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig, update_alt_svc
from mitmproxy.master import Master

from compiler import certs
from compiler.trust import KeyFileError, load_private_key, load_public_key
from proxy import heap
from proxy.addons.enforce import Enforce
from proxy.addons.hygiene import Hygiene
from proxy.addons.journaling import Journaling
from proxy.addons.metrics import Metrics
from proxy.addons.outbound import OutboundEnforce
from proxy.addons.outbound_signing import OutboundResponseVerify, OutboundSigning
from proxy.addons.outbound_tls import ProviderPinning
from proxy.addons.pipeline import Pipeline
from proxy.addons.response_signing import ResponseSigning
from proxy.addons.responses import ResponseCheck
from proxy.addons.timeouts import Timeouts
from proxy.admin import AdminServer, SidecarMetrics
from proxy.bundles import BundleStore, Source, make_source, poll_forever, poll_once
from proxy.config import SidecarConfig, load_config
from proxy.errors import ConfigError, SidecarError
from proxy.headers import HeadLimits
from proxy.journal import Journal, JournalError
from proxy.journal.anchor import AnchorExporter
from proxy.journal.query import export
from proxy.journal.record import format_time
from proxy.journal.target import store_for as journal_store
from proxy.replay import ReplayGuard
from proxy.soap.authorship import Signers
from proxy.soap.errors import SignatureError
from proxy.soap.header_signing import PemSigner
from proxy.soap.signing import CommandSigner, KeyFileSigner, Signer, xmldsig_method

# the outbound listener's nominal upstream; every allowed flow is re-targeted at its provider
_PLACEHOLDER = "127.0.0.1:9"

GIL_SWITCH_INTERVAL = 0.001
"""Seconds a busy thread keeps the GIL when another wants it (CPython's default is 0.005).

The journal writer thread takes the GIL back after every wait on its database, while mitmproxy's
loop thread is busy: with the default it waits up to 5 ms each time, and a commit needs one such
wait with SQLite and a few with PostgreSQL. bench/journal_bench.py measures a commit of 20 records
while another thread is busy: SQLite 13.4 → 1.9 ms, PostgreSQL 25.4 → 7.7 ms (one run, 2026-12-01).
Only a thread that wants the GIL causes a switch, so the loop pays nothing while the writer is
idle."""


class SidecarStartError(SidecarError):
    """mitmproxy could not start (a port in use, an unreadable certificate...)."""


class Sidecar:
    """One sidecar process's parts, validated at construction, run by `run()`."""

    def __init__(self, config: SidecarConfig, *, own_process: bool = False) -> None:
        self.config = config
        # the process is this sidecar's alone (`reestr-sidecar run`): it may freeze the heap
        # after each bundle swap (proxy.heap); a sidecar in a thread of another program does not
        self.settle_heap: Callable[[], None] = heap.settle if own_process else _nothing
        try:
            self.trusted = [load_public_key(p) for p in config.bundle.trusted_keys]
        except KeyFileError as e:
            raise ConfigError(f"config: bundle.trusted_keys: {e}") from e
        root = _bootstrap_root(config.bundle.root) if config.bundle.root is not None else None
        try:
            self.signing_key = load_private_key(config.journal.signing_key)
        except KeyFileError as e:
            raise ConfigError(f"config: journal.signing_key: {e}") from e
        if root is None and len(self.trusted) < config.bundle.threshold:
            raise ConfigError(f"config: bundle.threshold {config.bundle.threshold} is more than "
                              f"the {len(self.trusted)} trusted key(s)")
        _check_pem_bundle(config.tls.server_bundle, "tls.server_bundle")
        if config.outbound is not None:
            _check_pem_bundle(config.outbound.client_bundle, "outbound.client_bundle")
            if not config.outbound.provider_ca.is_file():
                raise ConfigError(f"config: outbound.provider_ca: {config.outbound.provider_ca}: "
                                  "no such file")
        self.internal_clients = _internal_clients(config)
        self.signer = _signer(config)
        self.server_signer = _tls_signer(config.tls.server_bundle)
        self.client_signer = _tls_signer(config.outbound.client_bundle) if config.outbound is not None else None
        self.store = BundleStore(config.participant, self.trusted, config.bundle.threshold,
                                 config.state_dir, config.bundle.max_bytes, tuf=root is not None)
        self.store.load_state()
        self.source: Source = make_source(config.bundle.source, config.bundle.max_bytes) if root is None \
            else _tuf_source(config, root)
        self.journal: Journal | None = None
        self.master: Any = None  # mitmproxy's Master; its API is only partly typed
        self.admin: AdminServer | None = None
        self.anchors: AnchorExporter | None = None
        self.started = threading.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        # set by a worker process (proxy.worker) before run(): more addons, metrics in
        # prometheus-client's multiprocess mode, whether this process probes service health
        self.extra_addons: list[Any] = []
        self.multiprocess_metrics = False
        self.probe_health = True
        self.health_dir = config.state_dir  # where health.json goes (a worker: the supervisor's)
        self.metrics: SidecarMetrics | None = None
        self.admin_sock: Any = None  # a worker: the admin socket its supervisor bound
        self.replay_file: Path | None = None  # a worker: the replay ledger all workers share

    def ready(self) -> str | None:
        """None when ready to serve; otherwise why not (for /readyz)."""
        reason = self.store.not_ready_reason()
        if reason is None and self.journal is not None and not self.journal.healthy:
            reason = f"journal cannot be written: {self.journal.problem}"
        return reason

    async def run(self) -> None:
        """Serve until `shutdown()`; closes the journal on the way out."""
        cfg = self.config
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        window = timedelta(seconds=cfg.signatures.replay_window_seconds)
        if self.replay_file is not None:  # workers share one ledger (proxy.replay_shared)
            from proxy.replay_shared import SharedReplayGuard

            replay: ReplayGuard = SharedReplayGuard(window, self.replay_file)
        else:
            replay = ReplayGuard(window)
        _seed_replay(replay, cfg)  # before the writer starts: the journal as the last run left it
        self.journal = Journal(journal_store(cfg), self.signing_key)
        self.journal.start()
        try:
            await poll_once(self.store, self.source)
            self.settle_heap()  # the bundle, the config, the modules: out of every later collection
            journal = self.journal
            warn_at = cfg.bundle.expiry_warning_seconds
            metrics = SidecarMetrics(self.store, lambda: float(journal.queue_depth), warn_at,
                                     multiprocess=self.multiprocess_metrics, journal=journal)
            self.metrics = metrics
            self.anchors = AnchorExporter(lambda: journal.latest_checkpoint, cfg.journal.anchor_file)
            anchors = self.anchors
            self.admin = AdminServer(cfg.admin.host, cfg.admin.port, metrics, self.ready,
                                     live=self.started.is_set, anchor=lambda: anchors.current,
                                     warning=lambda: self.store.expiry_warning(warn_at),
                                     sock=self.admin_sock)
            try:
                await self.admin.start()  # before mitmproxy, so a busy port is a clean error
            except OSError as e:
                raise SidecarStartError(
                    f"admin listener {cfg.admin.host}:{cfg.admin.port}: {e.strerror}") from e
            modes = [f"reverse:{cfg.upstream}"]
            lim = cfg.limits
            # worker hooks first (proxy.worker: the drain counter), then the sidecar's stages
            stages: list[Any] = [*self.extra_addons,
                                 Timeouts(lim.header_timeout_seconds, lim.idle_timeout_seconds)]
            extra: dict[str, Any] = {}
            if cfg.outbound is not None:  # consumer side: a second listener, same process
                out = cfg.outbound
                modes.append(f"reverse:https://{_PLACEHOLDER}@{out.listen.host}:{out.listen.port}")
                stages += [OutboundEnforce(self.store, modes[-1], self.internal_clients),
                           ProviderPinning(self.store, modes[-1])]
                stages += [OutboundSigning(Signers(self.signer, self.client_signer)),
                           OutboundResponseVerify()]
                extra = {"client_certs": str(out.client_bundle),
                         "ssl_verify_upstream_trusted_ca": str(out.provider_ca)}
            stages += [Hygiene(HeadLimits(lim.max_target_bytes, lim.max_header_bytes, lim.max_headers)),
                       Enforce(self.store, replay), ResponseCheck(cfg.payloads.responses),
                       ResponseSigning(Signers(self.signer, self.server_signer)),
                       Journaling(journal, cfg.participant), Metrics(metrics)]
            opts = options.Options(mode=modes, listen_host=cfg.listen.host,
                                   listen_port=cfg.listen.port,
                                   confdir=str(cfg.state_dir / "mitmproxy"))
            self.master = Master(opts)
            # the stages in this order, as one addon (proxy.addons.pipeline)
            self.master.addons.add(*mitmproxy_addons(), Pipeline(_Lifecycle(self), *stages))
            limit = cfg.limits.max_body_bytes
            self.master.options.update(
                certs=[f"*={cfg.tls.server_bundle}"], request_client_cert=True, connection_strategy="lazy",
                # mitmproxy's own hard cap; between limit and cap we answer a proper 413 ourselves
                body_size_limit=str(2 * limit + 65536), reestr_max_body_bytes=limit,
                tcp_timeout=max(1, round(lim.idle_timeout_seconds)), **extra)
            checker = self.master.addons.get("errorcheck")
            if checker is not None:
                checker.repeat_errors_on_stderr = True
            try:
                await self.master.run()
            except SystemExit as e:
                raise SidecarStartError("mitmproxy could not start (see the errors above)") from e
        finally:
            for task in self._tasks:
                task.cancel()
            if self.admin is not None:
                await self.admin.stop()
            try:
                self.journal.close()
            except JournalError as e:  # the process is ending anyway: say so, do not hide it
                print(f"reestr-sidecar: journal: {e}", file=sys.stderr)
            if self.anchors is not None:
                self.anchors.export(force_log=True)  # the final checkpoint close() wrote

    async def _on_running(self) -> None:
        self._tasks.append(asyncio.create_task(
            poll_forever(self.store, self.source, self.config.bundle.poll_seconds,
                         self.config.bundle.expiry_warning_seconds, on_swap=self.settle_heap)))
        if self.anchors is not None:
            self._tasks.append(asyncio.create_task(self.anchors.run()))
        assert self.metrics is not None and self.journal is not None
        self._tasks.append(asyncio.create_task(self.metrics.refresh_forever()))
        if self.config.health is not None and self.probe_health:
            from proxy.health import HealthProber

            prober = HealthProber(self.config.health, self.config.upstream, self.journal,
                                  self.metrics.health, self.config.participant, self.health_dir)
            self._tasks.append(asyncio.create_task(prober.run()))
        self.started.set()

    def reload(self) -> None:
        """SIGHUP: fetch the bundle now instead of at the next poll (loop thread only)."""
        async def poll() -> None:
            try:
                if await poll_once(self.store, self.source):
                    self.settle_heap()
            except SidecarError as e:
                print(f"reestr-sidecar: bundle update: {e}", file=sys.stderr)
        self._tasks.append(asyncio.create_task(poll()))

    def shutdown(self) -> None:
        """Thread-safe."""
        if self.master is not None:
            self.master.shutdown()


def _nothing() -> None:
    pass


def mitmproxy_addons() -> list[Any]:
    """mitmproxy's own addons the sidecar runs: the proxy itself, and nothing else.

    `DumpMaster` loads about thirty more (mitmproxy's defaults): the mitm.it onboarding app, a
    `scripts` option that loads Python files, flow and HAR saving (bodies with personal data on
    disk), replay, map/modify rules, proxy auth, global-address blocking. A sidecar needs none, and
    each is attack surface and work: mitmproxy offers every event of every request to every addon.
    Measured (bench/sidecar_bench.py): the defaults cost about a third of mitmproxy's CPU per
    request. Kept: options and commands (core), the listeners (proxyserver), protocol detection
    (next_layer), TLS with client certificates (tlsconfig), refusing h2c upgrades (disable_h2c),
    keeping upstream Alt-Svc from steering clients past the proxy (update_alt_svc), and startup
    errors reported (errorcheck).
    """
    return [core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),  # type: ignore[no-untyped-call]
            disable_h2c.DisableH2C(), update_alt_svc.UpdateAltSvc(), errorcheck.ErrorCheck()]


class _Lifecycle:
    """Starts the admin listener and the poller once mitmproxy's servers are up."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def running(self) -> None:
        await self.sidecar._on_running()


def _internal_clients(config: SidecarConfig) -> dict[str, str]:
    """sha256 -> name of the systems allowed on the outbound listener; ConfigError if a
    certificate file is unreadable, not exactly one certificate, or listed twice."""
    clients: dict[str, str] = {}
    for i, client in enumerate(config.outbound.clients if config.outbound else []):
        where = f"config: outbound.clients.{i}.certificate: {client.certificate}"
        try:
            cert = certs.read(client.certificate.read_text(encoding="ascii"))
        except OSError as e:
            raise ConfigError(f"{where}: {e.strerror}") from e
        except ValueError as e:  # UnicodeDecodeError included
            raise ConfigError(f"{where}: not one PEM certificate") from e
        if cert.sha256 in clients:
            raise ConfigError(f"{where}: the same certificate as {clients[cert.sha256]!r}")
        clients[cert.sha256] = client.name
    return clients


def _tuf_source(config: SidecarConfig, root: bytes) -> Source:
    """The TUF client source; python-tuf is imported by sidecars that use it only."""
    from proxy.tuf_source import TufSource

    return TufSource(config.bundle.source, config.participant, root, config.state_dir, config.bundle.max_bytes)


def _bootstrap_root(path: Path) -> bytes:
    """The configured root.json, checked to be a self-signed TUF root before anything listens."""
    from tuf.api.metadata import Metadata, Root

    try:
        data = path.read_bytes()
        md = Metadata.from_bytes(data)
        if not isinstance(md.signed, Root):
            raise ValueError(f"a {md.signed.type} metadata, not root")
        md.verify_delegate("root", md)
    except OSError as e:
        raise ConfigError(f"config: bundle.root: {path}: {e.strerror}") from e
    except Exception as e:  # python-tuf's deserialization and signature errors
        raise ConfigError(f"config: bundle.root: {path}: not a valid TUF root: {e}") from e
    return data


def _check_pem_bundle(path: Path, name: str) -> None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise ConfigError(f"config: {name}: {path}: {e.strerror}") from e
    if "PRIVATE KEY-----" not in text or "CERTIFICATE-----" not in text:
        raise ConfigError(f"config: {name}: {path}: needs a private key and a certificate")


# --- running it -------------------------------------------------------------------------------


def run_forever(config: SidecarConfig, config_path: Path | None = None,
                overrides: dict[str, Any] | None = None) -> None:
    """Run in the foreground until SIGTERM/SIGINT (what `reestr-sidecar run` does); SIGHUP
    fetches the bundle at once. With `workers` > 1: a supervisor and its workers
    (`proxy.supervisor`), which need the config file to start them."""
    if config.workers > 1:
        from proxy.supervisor import run_supervisor

        if config_path is None:
            raise ConfigError("config: workers > 1 needs the config file (reestr-sidecar run --config)")
        run_supervisor(config, config_path, overrides)
        return
    sidecar = Sidecar(config, own_process=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sidecar.shutdown)
        loop.add_signal_handler(signal.SIGHUP, sidecar.reload)
        await sidecar.run()

    asyncio.run(main())


@dataclass
class ThreadHandle:
    sidecar: Sidecar
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    @property
    def admin_port(self) -> int:
        assert self.sidecar.admin is not None
        return self.sidecar.admin.port

    def stop(self, timeout: float = 10.0) -> None:
        self.sidecar.shutdown()
        self.thread.join(timeout)


def start_in_thread(config: SidecarConfig, timeout: float = 15.0) -> ThreadHandle:
    """Start a sidecar on its own event loop in a daemon thread; return once it listens."""
    sidecar = Sidecar(config)
    handle = ThreadHandle(sidecar, threading.Thread(target=lambda: None))

    def target() -> None:
        try:
            asyncio.run(sidecar.run())
        except BaseException as e:  # reported to the starter below
            handle.errors.append(e)
            sidecar.started.set()

    handle.thread = threading.Thread(target=target, name="reestr-sidecar", daemon=True)
    handle.thread.start()
    if not sidecar.started.wait(timeout) or handle.errors:
        handle.stop()
        raise SidecarStartError(f"sidecar did not start: {handle.errors or 'timeout'}")
    return handle


@dataclass
class ProcessHandle:
    process: subprocess.Popen[bytes]
    config: SidecarConfig

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs (crash tests)."""
        self.process.kill()
        return self.process.wait()


def start_subprocess(config_path: str | Path, *args: str, timeout: float = 20.0,
                     env: dict[str, str] | None = None) -> ProcessHandle:
    """Run `reestr-sidecar run --config PATH ARGS` in a child; return once /healthz answers."""
    config = load_config(config_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from proxy.cli import main; main()", "run", "--config",
         str(config_path), *args],
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    handle = ProcessHandle(proc, config)
    url = f"http://{config.admin.host}:{config.admin.port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SidecarStartError(f"sidecar exited with {proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return handle
        time.sleep(0.05)
    handle.stop()
    raise SidecarStartError(f"sidecar did not answer {url} within {timeout}s")


def _seed_replay(replay: ReplayGuard, cfg: SidecarConfig) -> None:
    """The message ids the journal accepted within the replay window, so a restart forgets none."""
    now = datetime.now(UTC)
    since = format_time(now - replay.window)
    try:
        replay.seed(export(journal_store(cfg), since=since), now)
    except JournalError:  # pragma: no cover - a first start: no journal yet
        return


def _tls_signer(bundle: Path) -> Signer | None:
    """The signer of `plain` messages: the key of this side's TLS certificate (RSA / ECDSA); None
    for another kind of key (then signed `plain` services refuse with `signing-failed`)."""
    try:
        return PemSigner.load(bundle)
    except (OSError, SignatureError):
        return None


def _signer(cfg: SidecarConfig) -> Signer | None:
    """The outbound signer of `signatures.signer`, checked at start (a key that does not match its
    certificate is a ConfigError, never a refusal at the first call); the key is not kept as text."""
    conf = cfg.signatures.signer
    if conf is None:
        return None
    try:
        pem = conf.certificate.read_text(encoding="ascii")
        certs.read(pem)  # exactly one PEM certificate block, readable whole
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
        if conf.key_file is not None:
            return KeyFileSigner.load(conf.key_file, der)
        method = xmldsig_method(der)
        assert conf.command is not None  # the config model requires one of the two
        return CommandSigner(certificate=der, method=method, argv=tuple(conf.command))
    except (OSError, ValueError, UnicodeDecodeError, SignatureError) as e:
        raise ConfigError(f"config: signatures.signer: {getattr(e, 'strerror', None) or e}") from e

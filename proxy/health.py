"""Service health (004 §7д): the provider's sidecar probes its upstream per service.

`health: {interval, timeout, services: {SID: {method, path} | {tcp: true}}}` in the config
(`proxy.config.HealthConfig`). Every `interval` seconds, one round probes every configured service
at most `CONCURRENCY` at a time, each bounded by `timeout`, on the sidecar's event loop but off the
request path (a background task; no request waits for it). A probe is up when the upstream
answers the configured request with a status below 500 (an HTTP check) or accepts a TCP
connection (a TCP check); a timeout, a refused connection or a 5xx is down.

Per SID it exposes `reestr_service_up`, `reestr_service_probe_seconds` and
`reestr_service_probes_total{result}` on the admin port, and writes the latest state to
`<state_dir>/health.json` (what `reestr-sidecar status` shows). Each change of state — and the
first state a sidecar sees after it starts — is journaled as an event record (record format 3,
`proxy.journal.record.service_event`), so availability over a period can be computed from the
journal (`proxy.journal.availability`, `reestr-sidecar stats --availability`). An event the
journal cannot take now is journaled at a later round: the state is only changed once the event
is durable.

With `workers: N`, worker 0 alone probes (one event per change, in its chain).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from proxy.admin import HealthMetrics
from proxy.config import HealthCheck, HealthConfig
from proxy.journal import Journal, JournalError
from proxy.journal.record import service_event, utc_now

CONCURRENCY = 16
STATE_FILE = "health.json"
_MAX_DETAIL = 200


@dataclass(frozen=True)
class Probe:
    up: bool
    seconds: float
    status: int | None
    detail: str


@dataclass
class ServiceState:
    up: bool
    since: str
    checked_at: str
    latency_ms: float
    status: int | None
    detail: str


class HealthProber:
    def __init__(self, config: HealthConfig, upstream: str, journal: Journal, metrics: HealthMetrics,
                 participant: str, state_dir: Path) -> None:
        self.config = config
        self.upstream = upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self.journal = journal
        self.metrics = metrics
        self.participant = participant
        self.state_file = state_dir / STATE_FILE
        self.states: dict[str, ServiceState] = {}
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        """Rounds until cancelled."""
        timeout = httpx.Timeout(self.config.timeout)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False,
                                     trust_env=False) as client:
            while True:
                await self.round(client)
                await asyncio.sleep(self.config.interval)

    async def round(self, client: httpx.AsyncClient) -> None:
        sids = list(self.config.services)
        probes = await asyncio.gather(*(self._bounded(client, self.config.services[sid]) for sid in sids))
        for sid, probe in zip(sids, probes, strict=True):
            await self._record(sid, probe)
        self._save()

    async def _bounded(self, client: httpx.AsyncClient, check: HealthCheck) -> Probe:
        async with self._limit:
            began = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.timeout):
                    status = await (self._tcp() if check.tcp else self._http(client, check))
            except TimeoutError:
                return Probe(False, time.perf_counter() - began, None, "timeout")
            except (OSError, httpx.HTTPError) as e:
                return Probe(False, time.perf_counter() - began, None, _detail(e))
            took = time.perf_counter() - began
            if status is not None and status >= 500:
                return Probe(False, took, status, f"status {status}")
            return Probe(True, took, status, "ok" if status is None else f"status {status}")

    async def _http(self, client: httpx.AsyncClient, check: HealthCheck) -> int:
        response = await client.request(check.method, self.upstream + check.path,
                                        headers={"user-agent": "reestr-sidecar-health"})
        return response.status_code

    async def _tcp(self) -> None:
        _, writer = await asyncio.open_connection(self._host, self._port)
        writer.close()
        await writer.wait_closed()

    async def _record(self, sid: str, probe: Probe) -> None:
        check = self.config.services[sid]
        self.metrics.probes.labels(sid, "up" if probe.up else "down").inc()
        self.metrics.probe_seconds.labels(sid).set(probe.seconds)
        now = utc_now()
        old = self.states.get(sid)
        if old is None or old.up != probe.up:
            method, path = ("TCP", f"{self._host}:{self._port}") if check.tcp else (check.method, check.path)
            event = service_event(time=now, event="health-up" if probe.up else "health-down",
                                  exchange=str(uuid.uuid4()), sid=sid, provider=self.participant,
                                  method=method, path=path, status=probe.status)
            try:
                await self.journal.append(event)
            except JournalError as e:  # not durable: keep the old state, journal it next round
                print(f"reestr-sidecar: health {sid}: event not journaled: {e}", file=sys.stderr)
                return
            if old is not None:
                print(f"reestr-sidecar: health {sid}: {'up' if probe.up else 'down'} ({probe.detail})",
                      file=sys.stderr)
            since = now
        else:
            since = old.since
        self.metrics.up.labels(sid).set(1.0 if probe.up else 0.0)
        self.states[sid] = ServiceState(probe.up, since, now, round(probe.seconds * 1000, 3),
                                        probe.status, probe.detail)

    def _save(self) -> None:
        data = {"checked_at": utc_now(), "services": {sid: asdict(s) for sid, s in self.states.items()}}
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as e:
            print(f"reestr-sidecar: health: cannot write {self.state_file}: {e.strerror}", file=sys.stderr)


def _detail(error: BaseException) -> str:
    """A short reason for a failed probe, without anything the upstream sent."""
    if isinstance(error, httpx.ConnectError | ConnectionRefusedError):
        return "connect failed"
    if isinstance(error, httpx.HTTPError):
        return type(error).__name__
    return (getattr(error, "strerror", None) or type(error).__name__)[:_MAX_DETAIL]


def read_health(state_dir: Path) -> dict[str, object] | None:
    """The prober's last state (health.json) or None when there is none or it is unreadable."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def render_health(data: dict[str, object] | None) -> str:
    if data is None:
        return "health: no probes yet (or health not configured)"
    lines = [f"health (checked {data.get('checked_at')}):"]
    services = data.get("services")
    for sid, s in sorted(services.items()) if isinstance(services, dict) else []:
        if isinstance(s, dict):
            lines.append(f"  {sid:<12} {'up' if s.get('up') else 'DOWN':<5} since {s.get('since')}  "
                         f"{s.get('latency_ms')} ms  {s.get('detail')}")
    return "\n".join(lines)

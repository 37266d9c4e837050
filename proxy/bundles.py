"""The bundle in force: where it comes from, whether it is accepted, and what survives a restart.

Every candidate passes `compiler.trust.verify_envelope` — the one acceptance function the compiler's
`reestr verify` also uses — with the configured trusted keys and threshold, audience = our own
participant id, min_serial = the highest serial ever accepted, and pinned = (serial, digest) of that
bundle, so a rollback or an equal serial with other content is refused (DESIGN §6).

Accepted bundles replace one reference (`BundleStore.current`): a request that already took the old
`ActiveBundle` finishes with it, so a swap drops nothing. The last good bundle and the highest serial
are persisted in the state directory (`bundle.json`, `state.json`) and the store starts from them.
A refusal keeps the last good bundle and is recorded with its reason. No bundle, or the one in
force expired ⇒ `not_ready_reason()` says why and the sidecar answers 503 (fail closed).

With a TUF root instead of trusted keys (`tuf=True`, proxy.tuf_source), the bundle's bytes are
vouched for by the verified metadata and `compiler.trust.check_target` applies the same content
checks without the envelope's signatures; the bundle in force is then used only while the last
verified timestamp is unexpired (`set_freshness`): a repository that withholds updates cannot keep
a bundle alive past the timestamp's expiry, whatever the bundle's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compiler import gcpause
from compiler.trust import TrustError, Verified, check_target, format_time, parse_time, verify_envelope
from proxy.errors import BundleSourceError, PolicyFormatError, SidecarError, SourceRefusal, StateDirError
from proxy.payloads import PayloadSchemas, compile_schemas
from proxy.policy import Policy, parse_policy

if TYPE_CHECKING:  # imported by the runner only for a `bundle.tuf` sidecar: tuf, securesystemslib
    from proxy.tuf_source import TufSource, TufState

BUNDLE_FILE = "bundle.json"
STATE_FILE = "state.json"
# Largest bundle a source may deliver, checked before it is read (issue 10, finding 15: a 100 MB
# file was read whole, +100 MiB of memory, before it was refused). The largest bundle of the
# 2,000-participant benchmark registry is 1.5 MiB; the config's `bundle.max_bytes` overrides it.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024

# TrustError subclass name -> stable refusal code (status output, logs, metrics)
_REFUSAL_CODES = {
    "SignatureThresholdError": "bad-signature",
    "AudienceError": "wrong-audience",
    "ExpiredError": "expired",
    "RollbackError": "rollback",
    "SerialReuseError": "serial-reuse",
    "EnvelopeFormatError": "malformed",
    "PolicyFormatError": "malformed",
}


@dataclass(frozen=True)
class ActiveBundle:
    """A verified bundle and its indexed policy; immutable, so in-flight requests can keep it."""

    verified: Verified
    policy: Policy
    origin: str
    payloads: PayloadSchemas

    @property
    def serial(self) -> int:
        return self.verified.serial

    @property
    def expires_at(self) -> datetime:
        return self.verified.expires_at


@dataclass(frozen=True)
class Refusal:
    time: str
    origin: str
    code: str
    message: str


class BundleStore:
    """The bundle in force, the highest serial seen, the last refusal; persisted in `state_dir`."""

    def __init__(self, participant: str, trusted_keys: Sequence[Ed25519PublicKey], threshold: int,
                 state_dir: Path, max_bytes: int = MAX_BUNDLE_BYTES, *, tuf: bool = False) -> None:
        self.participant = participant
        self.tuf = tuf
        self.tuf_state: dict[str, Any] | None = None  # TufState.as_dict() of the last good refresh
        self.fresh_until: datetime | None = None  # TUF: the verified timestamp's expiry
        self.max_bytes = max_bytes
        self.trusted_keys = tuple(trusted_keys)
        self.threshold = threshold
        self.state_dir = Path(state_dir)
        self.current: ActiveBundle | None = None
        self.highest: tuple[int, str] | None = None  # (serial, digest) of the newest accepted
        self.last_refusal: Refusal | None = None
        self.last_fetch_error: str | None = None
        self._lock = threading.Lock()

    # --- startup ----------------------------------------------------------------------------

    def load_state(self, now: datetime | None = None) -> None:
        """Start from the persisted bundle and serial; an expired or bad one is recorded, not used."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateDirError(f"{self.state_dir}: cannot create state directory: {e.strerror}") from e
        state = read_state(self.state_dir)
        if isinstance(state.get("highest_serial"), int) and isinstance(state.get("highest_digest"), str):
            self.highest = (state["highest_serial"], state["highest_digest"])
        if isinstance(state.get("last_refusal"), dict):
            self.last_refusal = Refusal(**state["last_refusal"])
        if self.tuf and isinstance(state.get("tuf"), dict):
            self.tuf_state = state["tuf"]
            try:
                self.fresh_until = parse_time(str(state["tuf"].get("timestamp_expires")))
            except TrustError:
                self.fresh_until = None
        path = self.state_dir / BUNDLE_FILE
        if path.exists():
            try:
                data = read_capped(path, self.max_bytes)
            except (OSError, BundleSourceError) as e:
                raise StateDirError(f"{path}: cannot read the saved bundle: {e}") from e
            self.offer(data, f"state:{path}", now=now)

    # --- acceptance -------------------------------------------------------------------------

    def offer(self, data: bytes, origin: str, now: datetime | None = None) -> bool:
        """Verify `data`; swap it in and persist it if accepted. Returns whether it was accepted."""
        with self._lock:
            try:
                with gcpause.paused():  # ~200,000 acyclic objects for a big bundle (DESIGN §6 / issue 3)
                    floor = self.highest[0] if self.highest else None
                    verified = check_target(
                        data, audience=self.participant, now=now, min_serial=floor, pinned=self.highest,
                    ) if self.tuf else verify_envelope(
                        data, self.trusted_keys, threshold=self.threshold, audience=self.participant,
                        now=now, min_serial=floor, pinned=self.highest)
                    policy = parse_policy(verified.signed)
                    if self.current is not None and self.current.verified.digest == verified.digest:
                        return False  # the bundle in force, fetched again
                    payloads = compile_schemas(verified.signed,
                                               reuse=self.current.payloads if self.current else None)
            except (TrustError, PolicyFormatError) as e:
                self._refuse(origin, _REFUSAL_CODES.get(type(e).__name__, "refused"), str(e), now)
                return False
            active = ActiveBundle(verified=verified, policy=policy, origin=origin, payloads=payloads)
            if not origin.startswith("state:"):
                try:
                    _atomic_write(self.state_dir / BUNDLE_FILE, data)
                except OSError as e:  # not persisted: the swap must not happen either
                    raise StateDirError(f"{self.state_dir}: cannot save bundle: {e.strerror}") from e
            self.highest = (verified.serial, verified.digest)
            self.current = active  # the atomic swap: one reference
            self._persist()
            return True

    def refuse(self, origin: str, code: str, message: str, now: datetime | None = None) -> None:
        """Record a refusal made before the bundle was read (TUF metadata: SourceRefusal)."""
        with self._lock:
            self._refuse(origin, code, message, now)

    def set_freshness(self, state: TufState) -> None:
        """A refresh verified this metadata: the bundle in force may be used until the timestamp's expiry."""
        changed = state.as_dict() != self.tuf_state
        self.tuf_state = state.as_dict()
        self.fresh_until = state.timestamp_expires
        if changed:
            self._persist()

    def _refuse(self, origin: str, code: str, message: str, now: datetime | None) -> None:
        moment = now or datetime.now(UTC)
        self.last_refusal = Refusal(time=format_time(moment), origin=origin, code=code, message=message)
        self._persist()

    def _persist(self) -> None:
        cur = self.current
        state: dict[str, Any] = {
            "participant": self.participant,
            "highest_serial": self.highest[0] if self.highest else None,
            "highest_digest": self.highest[1] if self.highest else None,
            "in_force": None if cur is None else {
                "serial": cur.serial, "digest": cur.verified.digest, "origin": cur.origin,
                "expires_at": format_time(cur.expires_at),
                "issued_at": cur.verified.signed.get("issued_at"), "keyids": list(cur.verified.keyids),
                "commit": (cur.verified.signed.get("source") or {}).get("commit"),
                "registry_digest": (cur.verified.signed.get("source") or {}).get("registry_digest")},
            "last_refusal": None if self.last_refusal is None else vars(self.last_refusal),
            "last_fetch_error": self.last_fetch_error,
        }
        if self.tuf:
            state["tuf"] = self.tuf_state
        try:
            _atomic_write(self.state_dir / STATE_FILE,
                          json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")
        except OSError as e:
            raise StateDirError(f"{self.state_dir}: cannot write state: {e.strerror}") from e

    # --- what requests see --------------------------------------------------------------------

    def in_force(self, now: datetime | None = None) -> ActiveBundle | None:
        """The bundle requests are decided with, or None (fail closed) if none or expired."""
        cur = self.current
        moment = now or datetime.now(UTC)
        if cur is None or cur.expires_at <= moment or self._stale(moment):
            return None
        return cur

    def _stale(self, moment: datetime) -> bool:
        return self.tuf and (self.fresh_until is None or self.fresh_until <= moment)

    def not_ready_reason(self, now: datetime | None = None) -> str | None:
        cur = self.current
        if cur is None:
            why = f" (last refusal: {self.last_refusal.code}: {self.last_refusal.message})" \
                if self.last_refusal else ""
            return f"no valid bundle{why}"
        moment = now or datetime.now(UTC)
        if cur.expires_at <= moment:
            return f"bundle serial {cur.serial} expired at {format_time(cur.expires_at)}"
        if self._stale(moment):
            return self._stale_reason()
        return None

    def _stale_reason(self) -> str:
        why = f" (last refusal: {self.last_refusal.code}: {self.last_refusal.message})" \
            if self.last_refusal else ""
        fetch = f" (last fetch error: {self.last_fetch_error})" if self.last_fetch_error else ""
        if self.fresh_until is None:
            return f"no TUF timestamp verified yet{why}{fetch}"
        version = (self.tuf_state or {}).get("timestamp_version")
        return (f"TUF timestamp version {version} expired at {format_time(self.fresh_until)} and no newer "
                f"one verified: the repository is withholding updates or unreachable{why}{fetch}")

    def expiry_warning(self, margin_seconds: float | None = None, now: datetime | None = None) -> str | None:
        """Why to worry before the cliff: the bundle in force expires within the margin (default a
        quarter of its lifetime), so one more missed publication takes this sidecar down."""
        cur = self.current
        moment = now or datetime.now(UTC)
        if cur is None or cur.expires_at <= moment:
            return None
        left = (cur.expires_at - moment).total_seconds()
        issued = cur.verified.signed.get("issued_at")
        lifetime = ((cur.expires_at - parse_time(issued)).total_seconds()
                    if isinstance(issued, str) else 0.0)
        margin = margin_seconds if margin_seconds is not None else lifetime / 4
        if left > margin:
            return None
        return (f"bundle serial {cur.serial} expires in {int(left)} s at {format_time(cur.expires_at)} "
                f"(warning margin {int(margin)} s): is the publisher re-signing?")

    def record_fetch_error(self, message: str | None) -> None:
        if message != self.last_fetch_error:
            self.last_fetch_error = message
            self._persist()


def read_state(state_dir: Path) -> dict[str, Any]:
    """The persisted state (for `reestr-sidecar status`); {} if there is none yet."""
    path = Path(state_dir) / STATE_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise StateDirError(f"{path}: unreadable state: {e}") from e
    return data if isinstance(data, dict) else {}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- sources ------------------------------------------------------------------------------------


class FileSource:
    """A bundle file on disk; yields its bytes when they change. A file over `max_bytes` is refused
    from its size, and never more than `max_bytes` + 1 bytes are read."""

    def __init__(self, path: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._seen: str | None = None

    @property
    def origin(self) -> str:
        return str(self.path)

    async def fetch(self) -> bytes | None:
        try:
            data = await asyncio.to_thread(read_capped, self.path, self.max_bytes)
        except OSError as e:
            raise BundleSourceError(f"{self.path}: {e.strerror}") from e
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._seen:
            return None
        self._seen = digest
        return data


def read_capped(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`; BundleSourceError, without reading it, if it is over `max_bytes`."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise BundleSourceError(f"{path}: {max(size, len(data))} bytes, over the bundle limit "
                                f"of {max_bytes}")
    return data


class UrlSource:
    """An http(s) URL polled with If-None-Match; a 304 means nothing new. A body over
    `max_bytes` is refused from its Content-Length, or once that many bytes have arrived."""

    def __init__(self, url: str, timeout: float = 10.0, max_bytes: int = MAX_BUNDLE_BYTES) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self._etag: str | None = None
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @property
    def origin(self) -> str:
        return self.url

    async def fetch(self) -> bytes | None:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            async with self._client.stream("GET", self.url, headers=headers) as resp:
                if resp.status_code == 304:
                    return None
                if resp.status_code != 200:
                    raise BundleSourceError(f"{self.url}: HTTP {resp.status_code}")
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise BundleSourceError(f"{self.url}: {declared} bytes, over the bundle limit "
                                            f"of {self.max_bytes}")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise BundleSourceError(f"{self.url}: over the bundle limit of "
                                                f"{self.max_bytes} bytes")
        except httpx.HTTPError as e:
            raise BundleSourceError(f"{self.url}: {type(e).__name__}: {e}") from e
        self._etag = resp.headers.get("ETag")
        return bytes(body)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_source(source: str, max_bytes: int = MAX_BUNDLE_BYTES) -> FileSource | UrlSource:
    if source.startswith(("http://", "https://")):
        return UrlSource(source, max_bytes=max_bytes)
    return FileSource(Path(source), max_bytes)


type Source = FileSource | UrlSource | TufSource


async def poll_once(store: BundleStore, source: Source) -> bool:
    """Fetch and offer one candidate; verification runs off the event loop. True if swapped in."""
    try:
        data = await source.fetch()
    except SourceRefusal as e:
        store.refuse(source.origin, e.code, str(e))
        store.record_fetch_error(None)
        return False
    except BundleSourceError as e:
        store.record_fetch_error(str(e))
        return False
    finally:
        freshness = getattr(source, "state", None)  # a TufSource's last verified metadata
        if freshness is not None:
            store.set_freshness(freshness)
    store.record_fetch_error(None)
    if data is None:
        return False
    return await asyncio.to_thread(store.offer, data, source.origin)


async def poll_forever(store: BundleStore, source: Source, interval: float,
                       warning_seconds: float | None = None,
                       on_swap: Callable[[], None] | None = None) -> None:
    """Poll until cancelled; a failing state directory is reported, never ends the polling; the
    expiry warning (BundleStore.expiry_warning) is logged after each poll while it holds;
    `on_swap` runs after a new bundle came into force (the runner's `proxy.heap.settle`)."""
    while True:
        try:
            if await poll_once(store, source) and on_swap is not None:
                on_swap()
        except SidecarError as e:
            print(f"reestr-sidecar: bundle update: {e}", file=sys.stderr)
        if (warning := store.expiry_warning(warning_seconds)) is not None:
            print(f"reestr-sidecar: warning: {warning}", file=sys.stderr)
        await asyncio.sleep(interval)


def render_status(state: dict[str, Any]) -> str:
    """Human-readable `reestr-sidecar status` from the persisted state."""
    if not state:
        return "no state yet: the sidecar has not run with this state directory"
    cur = state.get("in_force")
    lines = [f"participant:   {state.get('participant')}"]
    if cur:
        expired = cur["expires_at"] <= format_time(datetime.now(UTC))
        lines += [f"in force:      serial {cur['serial']} from {cur['origin']}",
                  f"expires:       {cur['expires_at']}{'  (EXPIRED: serving 503)' if expired else ''}",
                  f"digest:        {cur['digest']}",
                  f"commit:        {cur.get('commit') or '(none recorded)'}"]
    else:
        lines.append("in force:      none (serving 503)")
    lines.append(f"highest serial seen: {state.get('highest_serial')}")
    tuf = state.get("tuf")
    if isinstance(tuf, dict):
        stale = str(tuf.get("timestamp_expires")) <= format_time(datetime.now(UTC))
        lines += [f"tuf root:      version {tuf.get('root_version')}",
                  f"tuf timestamp: version {tuf.get('timestamp_version')}, expires {tuf.get('timestamp_expires')}"
                  f"{'  (EXPIRED: serving 503, no fresh metadata)' if stale else ''}",
                  f"tuf snapshot:  version {tuf.get('snapshot_version')}"]
    elif "tuf" in state:
        lines.append("tuf:           no metadata verified yet (serving 503)")
    refusal = state.get("last_refusal")
    lines.append("last refusal:  " + (f"{refusal['time']} {refusal['code']} from {refusal['origin']}: "
                                      f"{refusal['message']}" if refusal else "none"))
    if state.get("last_fetch_error"):
        lines.append(f"last fetch error: {state['last_fetch_error']}")
    return "\n".join(lines)

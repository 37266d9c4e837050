"""The sidecar as a TUF client (issue 14): a real repository made by compiler.tuf_repo, served over
HTTP on 127.0.0.1, fetched through python-tuf's ngclient by the real BundleStore and by real
sidecars; the attacks a repository mirror (or a thief of the online key) can make are refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner

from compiler import tuf_repo
from proxy.bundles import BundleStore, poll_once, read_state
from proxy.config import load_config
from proxy.runner import start_in_thread
from proxy.tuf_source import TufSource
from tests.proxy.conftest import Keys, Pki, Upstream, sign, signed_bundle, write_config
from tests.proxy.test_runner import wait_until
from tests.proxy.tufrepo import Operator, RepoServer, bin_of, forge

PID = "ved3"


@pytest.fixture
def op(tmp_path: Path) -> Operator:
    return Operator(tmp_path / "repo")


@pytest.fixture
def server(op: Operator) -> Iterator[RepoServer]:
    srv = RepoServer(op.repo.path)
    yield srv
    srv.close()


class Client:
    """The sidecar's bundle store and TUF source, polled by hand."""

    def __init__(self, state: Path, url: str, root: Path, max_bytes: int = 1 << 20) -> None:
        self.store = BundleStore(PID, [], 1, state, max_bytes, tuf=True)
        self.store.load_state()
        self.source = TufSource(url, PID, root.read_bytes(), state, max_bytes)

    def poll(self) -> bool:
        return asyncio.run(poll_once(self.store, self.source))

    @property
    def serial(self) -> int | None:
        return self.store.current.serial if self.store.current else None

    @property
    def refusal(self) -> str | None:
        return self.store.last_refusal.code if self.store.last_refusal else None


@pytest.fixture
def client(tmp_path: Path, op: Operator, server: RepoServer) -> Client:
    return Client(tmp_path / "state", server.url, op.root_json)


def test_bundle_arrives_and_an_unchanged_poll_fetches_only_the_timestamp(op: Operator, server: RepoServer,
                                                                         client: Client, pki: Pki) -> None:
    op.publish({PID: signed_bundle(pki, serial=10)})
    assert client.poll() and client.serial == 10 and client.store.not_ready_reason() is None
    assert client.store.tuf_state is not None and client.store.tuf_state["root_version"] == 1
    server.served.clear()
    assert not client.poll()
    assert server.served == ["/metadata/2.root.json", "/metadata/timestamp.json"]  # 404, then unchanged


def test_a_sidecar_downloads_only_its_own_bin(op: Operator, server: RepoServer, client: Client, pki: Pki) -> None:
    others = {f"p{i:03d}": signed_bundle(pki, serial=10, audience=f"p{i:03d}") for i in range(40)}
    op.publish({PID: signed_bundle(pki, serial=10), **others})
    client.poll()
    op.publish({PID: signed_bundle(pki, serial=11), **others})
    server.served.clear()
    assert client.poll() and client.serial == 11
    bins = [p for p in server.served if ".bin-" in p]
    assert bins == [f"/metadata/2.{bin_of(op, PID)}.json"]
    assert [p for p in server.served if p.startswith("/targets/")] == \
        [p for p in server.served if p.endswith(f".{PID}.json")]


# --- attacks on the metadata: each refused, the bundle in force kept ------------------------------


def _snapshot_rollback(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """A thief of the online key signs a timestamp naming an older snapshot."""
    srv.directory = forge(op, tmp / "evil", op.online, snapshot_version=1)


def _bin_rollback(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """... or a snapshot naming an older version of the sidecar's bin (an older bundle)."""
    srv.directory = forge(op, tmp / "evil", op.online, bin_version={bin_of(op, PID): 1})


def _timestamp_rollback(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """A mirror replays the first timestamp (the sidecar has verified the second)."""
    srv.overrides["/metadata/timestamp.json"] = (tmp / "timestamp-1.json").read_bytes()


def _root_rollback(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """A mirror offers root v1 where the next root is looked for."""
    srv.overrides["/metadata/2.root.json"] = op.root_json.read_bytes()


def _mix_snapshot(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """Mix and match: a new timestamp with the snapshot of an earlier publication."""
    op.publish({PID: signed_bundle(pki, serial=12)})
    srv.overrides["/metadata/3.snapshot.json"] = (op.repo.metadata_dir / "2.snapshot.json").read_bytes()


def _mix_bin(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """Mix and match: the new snapshot with the bin of an earlier one."""
    op.publish({PID: signed_bundle(pki, serial=12)})
    name = bin_of(op, PID)
    srv.overrides[f"/metadata/3.{name}.json"] = (op.repo.metadata_dir / f"2.{name}.json").read_bytes()


def _foreign_key(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """Everything signed by a key the root never named."""
    srv.directory = forge(op, tmp / "evil", CryptoSigner(Ed25519PrivateKey.generate()),
                          bundles={PID: signed_bundle(pki, serial=99)})


def _tampered_bundle(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """The bundle's bytes changed on the mirror (its hash is in the verified bin)."""
    op.publish({PID: signed_bundle(pki, serial=12)})
    target = next((op.repo.targets_dir / "bundles").glob(f"*.{PID}.json"))
    for path in (op.repo.targets_dir / "bundles").glob(f"*.{PID}.json"):
        target = path if b'"serial":12' in path.read_bytes() else target
    srv.overrides[f"/targets/bundles/{target.name}"] = target.read_bytes().replace(b"REST service", b"REST servicf")


def _expired_timestamp(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """A timestamp already expired when it is served."""
    op.publish({PID: signed_bundle(pki, serial=12)}, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))


def _endless_timestamp(op: Operator, srv: RepoServer, tmp: Path, pki: Pki) -> None:
    """A timestamp that never ends: ngclient stops reading at its cap (16 KiB)."""
    srv.overrides["/metadata/timestamp.json"] = b"{" + b" " * 1_000_000


ATTACKS: list[tuple[Callable[[Operator, RepoServer, Path, Pki], None], str]] = [
    (_snapshot_rollback, "tuf-rollback"), (_bin_rollback, "tuf-rollback"),
    (_timestamp_rollback, "tuf-rollback"), (_root_rollback, "tuf-rollback"),
    (_mix_snapshot, "tuf-rollback"), (_mix_bin, "tuf-rollback"),
    (_foreign_key, "tuf-bad-signature"), (_tampered_bundle, "tuf-mismatch"),
    (_expired_timestamp, "tuf-expired"), (_endless_timestamp, "tuf-oversized"),
]


@pytest.mark.parametrize(("attack", "code"), ATTACKS, ids=[a.__name__.strip("_") for a, _ in ATTACKS])
def test_metadata_attacks_are_refused(attack: Callable[[Operator, RepoServer, Path, Pki], None], code: str,
                                      op: Operator, server: RepoServer, client: Client, pki: Pki,
                                      tmp_path: Path) -> None:
    op.publish({PID: signed_bundle(pki, serial=10)})
    client.poll()
    shutil.copy(op.repo.metadata_dir / "timestamp.json", tmp_path / "timestamp-1.json")
    op.publish({PID: signed_bundle(pki, serial=11)})
    assert client.poll() and client.serial == 11
    attack(op, server, tmp_path, pki)
    assert not client.poll()
    assert client.serial == 11 and client.refusal == code, client.store.last_refusal
    assert client.store.not_ready_reason() is None  # the last good bundle stays in force


# --- today's bundle checks still hold on top of TUF ---------------------------------------------


def _other_audience(pki: Pki) -> dict[str, Any]:
    return signed_bundle(pki, serial=12, audience="ved1")


def _same_serial_other_content(pki: Pki) -> dict[str, Any]:
    bundle = signed_bundle(pki, serial=11)
    bundle["services"]["SID0003001"]["name"] = "renamed"
    return bundle


BUNDLE_ATTACKS: list[tuple[Callable[[Pki], dict[str, Any]], str]] = [
    (_other_audience, "wrong-audience"),
    (lambda pki: signed_bundle(pki, serial=9), "rollback"),
    (_same_serial_other_content, "serial-reuse"),
    (lambda pki: signed_bundle(pki, serial=12, expires_in=dt.timedelta(seconds=-1)), "expired"),
]


@pytest.mark.parametrize(("make", "code"), BUNDLE_ATTACKS,
                         ids=["other-audience", "lower-serial", "same-serial-other-content", "expired-bundle"])
def test_bundle_checks_still_hold(make: Callable[[Pki], dict[str, Any]], code: str, op: Operator,
                                  client: Client, pki: Pki) -> None:
    op.publish({PID: signed_bundle(pki, serial=11)})
    assert client.poll()
    op.publish({PID: make(pki)})  # signed by the operator's own keys: TUF accepts, the sidecar does not
    assert not client.poll()
    assert client.serial == 11 and client.refusal == code


def test_oversized_bundle_is_refused_unread(op: Operator, server: RepoServer, tmp_path: Path, pki: Pki) -> None:
    client = Client(tmp_path / "state", server.url, op.root_json, max_bytes=4096)
    op.publish({PID: signed_bundle(pki, serial=11)})
    assert not client.poll() and client.serial is None
    assert "over the bundle limit of 4096" in str(client.store.last_fetch_error)
    assert not any(p.startswith("/targets/") for p in server.served)


def test_no_bundle_for_this_participant(op: Operator, client: Client, pki: Pki) -> None:
    op.publish({"ved1": signed_bundle(pki, audience="ved1")})
    assert not client.poll() and client.refusal == "tuf-no-target"
    assert "no valid bundle" in str(client.store.not_ready_reason())


def test_migration_from_trusted_keys_keeps_the_highest_serial(tmp_path: Path, op: Operator, server: RepoServer,
                                                              keys: Keys, pki: Pki) -> None:
    """A format-1 sidecar at serial 12 moved to the TUF root: serial 11 is a rollback, 12 again is
    the same content (same digest) and 13 moves on."""
    state = tmp_path / "state"
    old = BundleStore(PID, [keys.operator.public_key()], 1, state)
    old.load_state()
    assert old.offer(sign(signed_bundle(pki, serial=12), keys.operator), "file")
    client = Client(state, server.url, op.root_json)
    assert client.serial == 12 and client.store.highest is not None and client.store.highest[0] == 12
    assert "no TUF timestamp verified yet" in str(client.store.not_ready_reason())  # fail closed until one
    op.publish({PID: signed_bundle(pki, serial=11)})
    assert not client.poll() and client.refusal == "rollback"
    same = signed_bundle(pki, serial=12)
    op.publish({PID: same})
    client.poll()
    assert client.serial == 12 and client.store.not_ready_reason() is None
    op.publish({PID: signed_bundle(pki, serial=13)})
    assert client.poll() and client.serial == 13


# --- real sidecars ------------------------------------------------------------------------------


def _tuf_config(d: Path, pki: Pki, keys: Keys, upstream: Upstream, url: str, root: Path,
                participant: str = PID) -> Path:
    path = write_config(d, pki, keys, upstream.url, url, participant=participant,
                        bundle={"source": url, "root": str(root), "poll_seconds": 0.2})
    return path


def _status(config: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", "status", "--config",
                           str(config)], capture_output=True, text=True, check=True)
    return done.stdout


def test_sidecars_follow_two_root_rotations_without_a_config_change(tmp_path: Path, op: Operator, server: RepoServer,
                                                                    pki: Pki, keys: Keys, upstream: Upstream) -> None:
    op.publish({PID: signed_bundle(pki, serial=10), "ved1": signed_bundle(pki, serial=10, audience="ved1")})
    configs = [_tuf_config(tmp_path / who, pki, keys, upstream, server.url, op.root_json, who)
               for who in (PID, "ved1")]
    before = [c.read_bytes() for c in configs]
    handles = [start_in_thread(load_config(c)) for c in configs]
    try:
        stores = [h.sidecar.store for h in handles]

        def serials() -> list[int | None]:
            return [s.current.serial if s.current else None for s in stores]

        wait_until(lambda: serials() == [10, 10])
        op.rotate_root_keys(0)  # root v2: a root key holder leaves
        op.publish({PID: signed_bundle(pki, serial=11), "ved1": signed_bundle(pki, serial=11, audience="ved1")})
        wait_until(lambda: serials() == [11, 11])
        stolen = op.rotate_online_key()  # root v3 (and targets v2): the online key was compromised
        op.publish({PID: signed_bundle(pki, serial=12), "ved1": signed_bundle(pki, serial=12, audience="ved1")})
        wait_until(lambda: serials() == [12, 12])
        assert all(s.tuf_state and s.tuf_state["root_version"] == 3 for s in stores)
        # the thief publishes a bundle opening everything to everyone, signed with the revoked key
        evil = signed_bundle(pki, serial=50)
        evil["services"]["SID0003001"]["callers"]["unregistered"] = evil["services"]["SID0003001"]["callers"]["ved1"]
        server.directory = forge(op, tmp_path / "evil", stolen, bundles={PID: evil})
        wait_until(lambda: all(s.last_refusal is not None and s.last_refusal.code == "tuf-bad-signature"
                               for s in stores))
        assert serials() == [12, 12]
        admin = f"http://127.0.0.1:{handles[0].admin_port}"
        assert httpx.get(admin + "/readyz").status_code == 200
    finally:
        for h in handles:
            h.stop()
    assert [c.read_bytes() for c in configs] == before  # no sidecar config was touched
    status = _status(configs[0])
    assert "tuf root:      version 3" in status and "in force:      serial 12" in status
    priced = subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", "stats", "--config",
                             str(configs[0]), "--priced"], capture_output=True, text=True)
    assert priced.returncode == 0 and "tariffs of bundle serial 12" in priced.stdout, priced.stderr


def test_withheld_timestamp_fails_closed_after_its_expiry(tmp_path: Path, pki: Pki, keys: Keys,
                                                          upstream: Upstream) -> None:
    op = Operator(tmp_path / "repo")
    op.publish({PID: signed_bundle(pki, serial=10)})  # the bundle itself is valid for hours
    server = RepoServer(op.repo.path)
    config = _tuf_config(tmp_path / "sc", pki, keys, upstream, server.url, op.root_json)
    handle = start_in_thread(load_config(config))
    admin = f"http://127.0.0.1:{handle.admin_port}"
    store = handle.sidecar.store
    try:
        wait_until(lambda: httpx.get(admin + "/readyz").status_code == 200)
        metrics = httpx.get(admin + "/metrics").text
        assert "reestr_tuf_root_version 1.0" in metrics and "reestr_tuf_timestamp_expiry_seconds" in metrics
        short = tuf_repo.Lifetimes(timestamp=dt.timedelta(seconds=10))
        for _ in range(5):  # a timestamp of 10 s the sidecar has verified (again if it saw it expire first)
            stamp = tuf_repo.resign_timestamp(op.repo, signers=[op.online], lifetimes=short)
            try:
                wait_until(lambda v=stamp.signed.version: (store.tuf_state or {}).get("timestamp_version") == v,
                           timeout=8)
                break
            except AssertionError:
                continue
        version = stamp.signed.version
        server.freeze(tmp_path / "frozen")  # the mirror keeps serving what it has: updates withheld
        op.publish({PID: signed_bundle(pki, serial=11)})
        wait_until(lambda: "tuf-expired" in httpx.get(admin + "/readyz").text, timeout=40)
        ready = httpx.get(admin + "/readyz")
        body = ready.text
        assert ready.status_code == 503
        assert f"TUF timestamp version {version} expired at" in body and "withholding updates" in body
        assert "tuf-expired" in body  # the refusal of the stale timestamp, with ngclient's reason
        status = _status(config)
        assert "EXPIRED: serving 503, no fresh metadata" in status and f"tuf timestamp: version {version}," in status
        tuf_repo.resign_timestamp(op.repo, signers=[op.online])  # the cron job re-signs (1 h)
        server.directory = op.repo.path  # and updates flow again
        wait_until(lambda: httpx.get(admin + "/readyz").status_code == 200, timeout=40)
        # ready again once a fresh timestamp verifies; the new bundle follows in the same refresh
        # or the next poll
        wait_until(lambda: (cur := handle.sidecar.store.current) is not None and cur.serial == 11, timeout=40)
    finally:
        handle.stop()
        server.close()
    state = read_state(tmp_path / "sc" / "state")
    assert state["tuf"]["timestamp_version"] > version


def test_config_refuses_a_root_that_does_not_verify(tmp_path: Path, op: Operator, pki: Pki, keys: Keys,
                                                    upstream: Upstream) -> None:
    from proxy.errors import ConfigError
    from proxy.runner import Sidecar

    bad = tmp_path / "root.json"
    bad.write_bytes(op.root_json.read_bytes().replace(b'"version":1', b'"version":7'))
    config = load_config(_tuf_config(tmp_path / "sc", pki, keys, upstream, "http://127.0.0.1:9/", bad))
    with pytest.raises(ConfigError, match="not a valid TUF root"):
        Sidecar(config)
    assert yaml.safe_load((tmp_path / "sc" / "sidecar.yaml").read_text())["bundle"]["root"] == str(bad)

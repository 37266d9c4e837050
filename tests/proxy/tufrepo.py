"""A real TUF repository for the sidecar tests: made by compiler.tuf_repo, served over HTTP on
127.0.0.1 by a thread, with the operator's keys at hand for ceremonies and attacks."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Iterator, Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp

from compiler import tuf_repo
from compiler.trust import sign_envelope


class RepoServer:
    """Serves `directory` (a repository) on 127.0.0.1; `overrides` {url path: bytes} answer first
    (an attacker's files), `frozen` serves a copy taken at freeze() (updates withheld)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.overrides: dict[str, bytes] = {}
        self.served: list[str] = []
        self.bytes_served = 0
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.served.append(path)
                if path in server.overrides:
                    body = server.overrides[path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    server.bytes_served += len(body)
                    return
                self.directory = str(server.directory)  # type: ignore[misc]
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(directory)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def freeze(self, into: Path) -> None:
        shutil.copytree(self.directory, into)
        self.directory = into

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _signer() -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.generate())


class Operator:
    """The operator's side: root keys (2 of 3), a targets key, one online key (snapshot,
    timestamp, bins), and the repository they sign."""

    def __init__(self, directory: Path, bit_length: int = 3,
                 lifetimes: tuf_repo.Lifetimes | None = None) -> None:
        self.repo = tuf_repo.Repository(directory)
        self.lifetimes = lifetimes or tuf_repo.Lifetimes()
        self.root_keys = [_signer() for _ in range(3)]
        self.targets_key = _signer()
        self.online = _signer()
        keys = {"root": [s.public_key for s in self.root_keys], "targets": [self.targets_key.public_key],
                "snapshot": [self.online.public_key], "timestamp": [self.online.public_key],
                "bins": [self.online.public_key]}
        tuf_repo.init(self.repo, keys=keys, thresholds={"root": 2}, signers=[*self.root_keys[:2], self.targets_key],
                      bins_bit_length=bit_length, lifetimes=self.lifetimes)

    @property
    def root_json(self) -> Path:
        return self.repo.metadata_dir / "1.root.json"

    def publish(self, bundles: Mapping[str, dict[str, Any]], **kw: Any) -> tuf_repo.Published:
        """Bundles as `signed` contents, written as envelopes without signatures (TUF vouches)."""
        data = {pid: sign_envelope(signed, []) for pid, signed in bundles.items()}
        return tuf_repo.publish(self.repo, data, signers=[self.online], lifetimes=self.lifetimes, **kw)

    def rotate_online_key(self) -> CryptoSigner:
        """Revoke the online key everywhere (root: snapshot, timestamp; targets: bins) for a new one,
        as after its compromise: root needs 2 of the root keys, targets the targets key."""
        old, new = self.online, _signer()
        tuf_repo.change_root(self.repo, add=[("snapshot", new.public_key), ("timestamp", new.public_key)],
                             revoke=[("snapshot", old.public_key.keyid), ("timestamp", old.public_key.keyid)],
                             signers=self.root_keys[:2])
        tuf_repo.change_bins_keys(self.repo, add=[new.public_key], revoke=[old.public_key.keyid],
                                  signers=[self.targets_key])
        self.online = new
        return old

    def rotate_root_keys(self, replace: int) -> None:
        """Replace root key `replace` by a new one (2 of the old and 2 of the new sign)."""
        new = _signer()
        old = self.root_keys[replace]
        keep = [s for i, s in enumerate(self.root_keys) if i != replace]
        tuf_repo.change_root(self.repo, add=[("root", new.public_key)], revoke=[("root", old.public_key.keyid)],
                             signers=[*keep, new])
        self.root_keys = [*keep, new]


def served(directory: Path) -> Iterator[RepoServer]:
    server = RepoServer(directory)
    try:
        yield server
    finally:
        server.close()


# --- an attacker's repository: a copy of the real one with files of its own, signed by `signer` -------


def _expires(hours: float = 1) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).replace(microsecond=0)


def forge(op: Operator, into: Path, signer: CryptoSigner, *, bundles: Mapping[str, dict[str, Any]] | None = None,
          bin_version: Mapping[str, int] | None = None, snapshot_version: int | None = None) -> Path:
    """Copy the repository to `into` and add, signed by `signer` only: new bins holding `bundles`,
    a snapshot (naming `bin_version` where given), and a timestamp naming `snapshot_version`
    (default: the new snapshot). Returns `into`, to be served instead of the real one."""
    shutil.copytree(op.repo.path, into)
    repo = tuf_repo.Repository(into)
    succinct = repo.targets().signed.delegations.succinct_roles  # type: ignore[union-attr]
    old = repo.snapshot()
    assert old is not None and succinct is not None
    meta = dict(old.signed.meta)
    for pid, signed in (bundles or {}).items():
        data = sign_envelope(signed, [])
        path = tuf_repo.target_path(pid)
        info = TargetFile.from_data(path, data, ["sha256"])
        (into / "targets" / "bundles" / f"{info.hashes['sha256']}.{pid}.json").write_bytes(data)
        name = succinct.get_role_for_target(path)
        version = meta[f"{name}.json"].version + 1
        md = Metadata(Targets(version=version, expires=_expires(), targets={path: info}))
        md.sign(signer)
        repo.write_named(md, [f"{version}.{name}.json"])
        meta[f"{name}.json"] = MetaFile(version=version)
    for name, version in (bin_version or {}).items():
        meta[f"{name}.json"] = MetaFile(version=version)
    snapshot = Metadata(Snapshot(version=old.signed.version + 1, expires=_expires(), meta=meta))
    snapshot.sign(signer)
    repo.write(snapshot)
    stamp_version = repo.read("timestamp").signed.version + 1
    stamp = Metadata(Timestamp(version=stamp_version, expires=_expires(),
                               snapshot_meta=MetaFile(version=snapshot_version or snapshot.signed.version)))
    stamp.sign(signer)
    repo.write(stamp)
    return into


def bin_of(op: Operator, participant: str) -> str:
    succinct = op.repo.targets().signed.delegations.succinct_roles  # type: ignore[union-attr]
    assert succinct is not None
    return succinct.get_role_for_target(tuf_repo.target_path(participant))

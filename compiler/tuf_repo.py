"""The bundles as a TUF repository (The Update Framework, python-tuf's metadata API).

Layout of a repository directory (docs/bundle-format.md, "TUF repository")::

    metadata/N.root.json  root.json       every root version (clients walk them), the newest copy
    metadata/N.targets.json               top-level targets: delegates everything to the bins
    metadata/N.bin-XX.json                hashed bins (succinct delegation): bundles/<pid>.json
    metadata/N.snapshot.json              every targets/bin version in force
    metadata/timestamp.json               the newest snapshot version, short-lived
    targets/bundles/<sha256>.<pid>.json   the bundles, content as in format 1 (consistent snapshots)

Root and targets are signed offline (ceremonies: `init`, `change_root`, `change_bins_keys`);
snapshot, timestamp and the bins online in the publish job (`publish`, `resign_timestamp`).
Each function reads what is on disk, writes new versions atomically, and never rewrites an old
version, so a client that fetched the previous snapshot still finds what it names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from securesystemslib.signer import Key, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from compiler.errors import CompilerError

BIN_PREFIX = "bin"
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("snapshot", "timestamp", "bins")
_COMPACT = JSONSerializer(compact=True)


class TufRepoError(CompilerError):
    """The repository cannot be read or written, or the signers given cannot sign what is asked."""


@dataclass(frozen=True)
class Lifetimes:
    """How long each role's metadata is valid from its signing (docs/bundle-format.md, freshness)."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=365)
    bins: timedelta = timedelta(days=7)
    snapshot: timedelta = timedelta(days=1)
    timestamp: timedelta = timedelta(hours=1)


@dataclass
class Published:
    changed_bins: list[str] = field(default_factory=list)
    snapshot_version: int = 0
    timestamp_version: int = 0
    timestamp_expires: datetime | None = None


def target_path(participant: str) -> str:
    return f"bundles/{participant}.json"


class Repository:
    """One repository directory; reads the newest version of each role from disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metadata_dir = self.path / "metadata"
        self.targets_dir = self.path / "targets"

    def exists(self) -> bool:
        return (self.metadata_dir / "1.root.json").is_file()

    def newest_version(self, role: str) -> int:
        versions = [int(p.name.split(".", 1)[0]) for p in self.metadata_dir.glob(f"*.{role}.json")
                    if p.name.split(".", 1)[0].isdigit()]
        if not versions:
            raise TufRepoError(f"{self.metadata_dir}: no {role} metadata (run `reestr tuf init`)")
        return max(versions)

    def read(self, role: str, version: int | None = None) -> Metadata:  # type: ignore[type-arg]
        name = "timestamp.json" if role == "timestamp" else \
            f"{version if version is not None else self.newest_version(role)}.{role}.json"
        try:
            return Metadata.from_bytes((self.metadata_dir / name).read_bytes())
        except OSError as e:
            raise TufRepoError(f"{self.metadata_dir / name}: {e.strerror}") from e
        except Exception as e:  # python-tuf raises DeserializationError and friends
            raise TufRepoError(f"{self.metadata_dir / name}: {type(e).__name__}: {e}") from e

    def root(self) -> Metadata[Root]:
        return self.read("root")

    def targets(self) -> Metadata[Targets]:
        return self.read("targets")

    def snapshot(self) -> Metadata[Snapshot] | None:
        try:
            return self.read("snapshot")
        except TufRepoError:
            if any(self.metadata_dir.glob("*.snapshot.json")):
                raise
            return None

    def write(self, md: Metadata) -> None:  # type: ignore[type-arg]
        """`N.<role>.json` (a bin: `N.bin-XX.json`, given its name by `write_bin`); timestamp
        unversioned; root also as `root.json`."""
        name = md.signed.type
        names = ["timestamp.json"] if name == "timestamp" else [f"{md.signed.version}.{name}.json"]
        if name == "root":
            names.append("root.json")
        self.write_named(md, names)

    def write_named(self, md: Metadata, names: Iterable[str]) -> None:  # type: ignore[type-arg]
        data = md.to_bytes(_COMPACT)
        for name in names:
            _atomic_write(self.metadata_dir / name, data)


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise TufRepoError(f"{path}: cannot write: {e.strerror}") from e


def _expiry(now: datetime, lifetime: timedelta) -> datetime:
    return (now + lifetime).astimezone(UTC).replace(microsecond=0)


def _sign(md: Metadata, role: str, keyids: Sequence[str], threshold: int,  # type: ignore[type-arg]
          signers: Sequence[Signer]) -> None:
    """Sign with every given signer of `role`; TufRepoError if fewer than `threshold` match."""
    mine = [s for s in signers if s.public_key.keyid in keyids]
    distinct = {s.public_key.keyid: s for s in mine}
    if len(distinct) < threshold:
        raise TufRepoError(f"{role} needs {threshold} signature(s) from its keys "
                           f"{', '.join(k[:12] for k in sorted(keyids))}; the signers given hold "
                           f"{len(distinct)} of them")
    md.signatures.clear()
    for signer in distinct.values():
        _sign_one(md, signer)


def _sign_one(md: Metadata, signer: Signer) -> None:  # type: ignore[type-arg]
    """md.sign, with a failing signer (a token's wrong PIN) as one clear TufRepoError."""
    try:
        md.sign(signer, append=True)
    except UnsignedMetadataError as e:
        cause = e.__cause__ or e
        raise TufRepoError(f"signing {md.signed.type} failed: {cause}") from None


def _role_keys(root: Root, role: str) -> tuple[list[str], int]:
    r = root.get_delegated_role(role)
    return list(r.keyids), r.threshold


# --- offline ceremonies --------------------------------------------------------------------------


def init(repo: Repository, *, keys: Mapping[str, Sequence[Key]], thresholds: Mapping[str, int],
         signers: Sequence[Signer], bins_bit_length: int, lifetimes: Lifetimes = Lifetimes(),
         now: datetime | None = None) -> None:
    """Write root v1 and targets v1 (delegating bundles/* to 2**bins_bit_length hashed bins).

    `keys` has the public keys of root, targets, snapshot, timestamp and bins; `signers` must hold
    a threshold of the root keys and of the targets keys. Snapshot, timestamp and bins are written
    by the first `publish`."""
    if repo.exists():
        raise TufRepoError(f"{repo.path}: already a repository (root v1 exists)")
    if not 1 <= bins_bit_length <= 16:
        raise TufRepoError("bins: between 2 and 65536 (a power of two)")
    moment = now or datetime.now(UTC)
    root = Root(expires=_expiry(moment, lifetimes.root), consistent_snapshot=True)
    for role in TOP_ROLES:
        if not keys.get(role):
            raise TufRepoError(f"init: no {role} key given")
        for key in keys[role]:
            root.add_key(key, role)
        root.roles[role].threshold = _threshold(role, thresholds, len(keys[role]))
    root_md = Metadata(root)
    _sign(root_md, "root", *_role_keys(root, "root"), signers)
    targets_md = Metadata(Targets(expires=_expiry(moment, lifetimes.targets)))
    bins_keys = list(keys.get("bins") or ())
    if not bins_keys:
        raise TufRepoError("init: no bins key given")
    succinct = SuccinctRoles([k.keyid for k in bins_keys], _threshold("bins", thresholds, len(bins_keys)),
                             bins_bit_length, BIN_PREFIX)
    targets_md.signed.delegations = Delegations(keys={k.keyid: k for k in bins_keys}, roles=None,
                                                succinct_roles=succinct)
    _sign(targets_md, "targets", *_role_keys(root, "targets"), signers)
    repo.write(root_md)
    repo.write(targets_md)


def _threshold(role: str, thresholds: Mapping[str, int], count: int) -> int:
    n = thresholds.get(role, 1)
    if not 1 <= n <= count:
        raise TufRepoError(f"{role}: threshold {n} with {count} key(s)")
    return n


def change_root(repo: Repository, *, add: Sequence[tuple[str, Key]] = (),
                revoke: Sequence[tuple[str, str]] = (), thresholds: Mapping[str, int] | None = None,
                signers: Sequence[Signer], lifetimes: Lifetimes = Lifetimes(),
                now: datetime | None = None) -> Metadata[Root]:
    """A new root version: keys added to / revoked from roles, thresholds changed, expiry renewed.

    Signed by a threshold of the old root's root keys and of the new root's own (TUF 5.3.4): a
    client that trusts the old root accepts it, and the new root vouches for itself. Revoking a
    snapshot or timestamp key makes clients drop their cached snapshot/timestamp (the next
    `publish` or `reestr tuf timestamp` signs them with the remaining keys)."""
    old = repo.root()
    new = Metadata.from_bytes(old.to_bytes())
    root: Root = new.signed
    root.version += 1
    root.expires = _expiry(now or datetime.now(UTC), lifetimes.root)
    for role, key in add:
        _check_role(role, TOP_ROLES)
        root.add_key(key, role)
    for role, kid in revoke:
        _check_role(role, TOP_ROLES)
        if kid not in root.roles[role].keyids:
            raise TufRepoError(f"{role}: no key {kid} to revoke")
        root.revoke_key(kid, role)
    for role, n in (thresholds or {}).items():
        _check_role(role, TOP_ROLES)
        root.roles[role].threshold = n
    for role in TOP_ROLES:
        if not 1 <= root.roles[role].threshold <= len(root.roles[role].keyids):
            raise TufRepoError(f"{role}: threshold {root.roles[role].threshold} with "
                               f"{len(root.roles[role].keyids)} key(s)")
    old_ids, old_n = _role_keys(old.signed, "root")
    new_ids, new_n = _role_keys(root, "root")
    distinct = {s.public_key.keyid: s for s in signers if s.public_key.keyid in set(old_ids) | set(new_ids)}
    for ids, n, which in ((old_ids, old_n, "old"), (new_ids, new_n, "new")):
        if len([k for k in distinct if k in ids]) < n:
            raise TufRepoError(f"the {which} root needs {n} signature(s) from its root keys; the "
                               f"signers given hold {len([k for k in distinct if k in ids])}")
    for signer in distinct.values():
        _sign_one(new, signer)
    try:
        old.verify_delegate("root", new)
        new.verify_delegate("root", new)
    except UnsignedMetadataError as e:
        raise TufRepoError(f"the new root does not verify: {e}") from e
    repo.write(new)
    return new


def change_bins_keys(repo: Repository, *, add: Sequence[Key] = (), revoke: Sequence[str] = (),
                     threshold: int | None = None, signers: Sequence[Signer],
                     lifetimes: Lifetimes = Lifetimes(), now: datetime | None = None) -> Metadata[Targets]:
    """A new top-level targets version whose bin delegation has other keys (add/revoke the online
    bins key), signed by the targets keys; the next `publish` re-signs every bin with them."""
    root_md = repo.root()
    old = repo.targets()
    new: Metadata[Targets] = Metadata.from_bytes(old.to_bytes())
    targets = new.signed
    targets.version += 1
    targets.expires = _expiry(now or datetime.now(UTC), lifetimes.targets)
    delegations = targets.delegations
    assert delegations is not None and delegations.succinct_roles is not None
    succinct = delegations.succinct_roles
    for key in add:
        delegations.keys[key.keyid] = key
        if key.keyid not in succinct.keyids:
            succinct.keyids.append(key.keyid)
    for kid in revoke:
        if kid not in succinct.keyids:
            raise TufRepoError(f"bins: no key {kid} to revoke")
        succinct.keyids.remove(kid)
        delegations.keys.pop(kid, None)
    if threshold is not None:
        succinct.threshold = threshold
    if not 1 <= succinct.threshold <= len(succinct.keyids):
        raise TufRepoError(f"bins: threshold {succinct.threshold} with {len(succinct.keyids)} key(s)")
    _sign(new, "targets", *_role_keys(root_md.signed, "targets"), signers)
    repo.write(new)
    return new


def _check_role(role: str, allowed: Sequence[str]) -> None:
    if role not in allowed:
        raise TufRepoError(f"unknown role {role!r} (one of {', '.join(allowed)})")


# --- online: the publish job ----------------------------------------------------------------------


def publish(repo: Repository, bundles: Mapping[str, bytes], *, signers: Sequence[Signer],
            lifetimes: Lifetimes = Lifetimes(), now: datetime | None = None) -> Published:
    """Make `bundles` ({participant: bundle bytes}) the repository's targets.

    Bins whose targets changed (or whose delegation keys changed, or that pass half their
    lifetime) get a new version signed by the bins keys; the snapshot gets a new version when a
    bin or targets changed (or at half its lifetime); the timestamp always does. A participant
    missing from `bundles` is dropped from its bin (its sidecar then finds no bundle)."""
    moment = now or datetime.now(UTC)
    root = repo.root().signed
    targets = repo.targets()
    delegations = targets.signed.delegations
    if delegations is None or delegations.succinct_roles is None:
        raise TufRepoError("targets: no hashed-bin delegation (not a reestr repository)")
    succinct = delegations.succinct_roles
    old_snapshot = repo.snapshot()
    old_meta = old_snapshot.signed.meta if old_snapshot else {}
    resign_all = old_meta.get("targets.json") is None or old_meta["targets.json"].version != targets.signed.version
    by_bin: dict[str, dict[str, TargetFile]] = {name: {} for name in succinct.get_roles()}
    for pid, data in sorted(bundles.items()):
        path = target_path(pid)
        info = TargetFile.from_data(path, data, ["sha256"])
        by_bin[succinct.get_role_for_target(path)][path] = info
        name = f"{info.hashes['sha256']}.{pid}.json"
        dest = repo.targets_dir / "bundles" / name
        if not dest.exists():
            _atomic_write(dest, data)
    out = Published()
    meta: dict[str, MetaFile] = {"targets.json": MetaFile(version=targets.signed.version)}
    for name, wanted in by_bin.items():
        current = old_meta.get(f"{name}.json")
        if current is not None and not resign_all:
            old_bin: Metadata[Targets] = repo.read(name, current.version)
            same = {p: t.to_dict() for p, t in old_bin.signed.targets.items()} == \
                {p: t.to_dict() for p, t in wanted.items()}
            if same and not _past_half(old_bin.signed.expires, lifetimes.bins, moment):
                meta[f"{name}.json"] = current
                continue
        version = (current.version + 1) if current is not None else 1
        md = Metadata(Targets(version=version, expires=_expiry(moment, lifetimes.bins), targets=wanted))
        _sign(md, name, succinct.keyids, succinct.threshold, signers)
        repo.write_named(md, [f"{version}.{name}.json"])
        meta[f"{name}.json"] = MetaFile(version=version)
        out.changed_bins.append(name)
    snap_ids, snap_n = _role_keys(root, "snapshot")
    if old_snapshot is not None and {k: m.version for k, m in meta.items()} == \
            {k: m.version for k, m in old_meta.items()} and \
            not _past_half(old_snapshot.signed.expires, lifetimes.snapshot, moment) and \
            set(old_snapshot.signatures) <= set(snap_ids):
        snapshot = old_snapshot
    else:
        version = old_snapshot.signed.version + 1 if old_snapshot else 1
        snapshot = Metadata(Snapshot(version=version, expires=_expiry(moment, lifetimes.snapshot), meta=meta))
        _sign(snapshot, "snapshot", snap_ids, snap_n, signers)
        repo.write(snapshot)
    out.snapshot_version = snapshot.signed.version
    stamp = resign_timestamp(repo, signers=signers, lifetimes=lifetimes, now=moment,
                             snapshot_version=snapshot.signed.version)
    out.timestamp_version = stamp.signed.version
    out.timestamp_expires = stamp.signed.expires
    return out


def resign_timestamp(repo: Repository, *, signers: Sequence[Signer], lifetimes: Lifetimes = Lifetimes(),
                     now: datetime | None = None, snapshot_version: int | None = None) -> Metadata[Timestamp]:
    """A new timestamp version naming the newest snapshot, valid for `lifetimes.timestamp`: run
    well within that lifetime (a cron job), or sidecars fail closed when it expires."""
    moment = now or datetime.now(UTC)
    root = repo.root().signed
    if snapshot_version is None:
        snapshot_version = repo.newest_version("snapshot")
    try:
        old: Metadata[Timestamp] | None = repo.read("timestamp")
    except TufRepoError:
        old = None
    version = old.signed.version + 1 if old is not None else 1
    md = Metadata(Timestamp(version=version, expires=_expiry(moment, lifetimes.timestamp),
                            snapshot_meta=MetaFile(version=snapshot_version)))
    _sign(md, "timestamp", *_role_keys(root, "timestamp"), signers)
    repo.write(md)
    return md


def _past_half(expires: datetime, lifetime: timedelta, now: datetime) -> bool:
    return expires - now < lifetime / 2


def status(repo: Repository) -> dict[str, object]:
    """Versions, expiries and keys of each role (`reestr tuf status`)."""
    root = repo.root().signed
    out: dict[str, object] = {"root": {"version": root.version, "expires": root.expires.isoformat(),
                                       "roles": {r: {"keyids": list(root.roles[r].keyids),
                                                     "threshold": root.roles[r].threshold}
                                                 for r in TOP_ROLES}}}
    targets = repo.targets().signed
    succinct = targets.delegations.succinct_roles if targets.delegations else None
    out["targets"] = {"version": targets.version, "expires": targets.expires.isoformat(),
                      "bins": succinct.number_of_bins if succinct else 0,
                      "bins_keyids": list(succinct.keyids) if succinct else [],
                      "bins_threshold": succinct.threshold if succinct else 0}
    snapshot = repo.snapshot()
    if snapshot is not None:
        out["snapshot"] = {"version": snapshot.signed.version, "expires": snapshot.signed.expires.isoformat()}
        stamp = repo.read("timestamp").signed
        out["timestamp"] = {"version": stamp.version, "expires": stamp.expires.isoformat()}
    return out

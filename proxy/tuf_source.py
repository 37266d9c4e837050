"""The bundle as a TUF target: python-tuf's ngclient verifies the repository's metadata first.

Each poll builds an `Updater` over the state directory's `tuf/` folder and refreshes: the
timestamp (a few hundred bytes) always; the snapshot, the top-level targets and this sidecar's
own hashed bin only when the timestamp names a new snapshot (and only that one bin: succinct
delegation). The bundle `bundles/<participant>.json` is downloaded only when its hash in the
verified bin differs from the one last handed over. Whatever ngclient refuses (bad signature,
a rollback of any role, a snapshot that does not match, expired metadata, wrong length or hash)
is a `SourceRefusal` with a stable code; an unreachable repository a `BundleSourceError`.

The config's `root.json` is the bootstrap only: ngclient keeps every newer root it verified in
`tuf/root_history/` and starts from the newest, so root rotations need no config change.
After a successful refresh, `state` holds the root and timestamp versions and the timestamp's
expiry, which bounds how long the bundle in force may be used (`BundleStore.set_freshness`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, Timestamp
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from proxy.errors import BundleSourceError, SourceRefusal

_CODES: tuple[tuple[type[Exception], str], ...] = (
    (tuf_errors.ExpiredMetadataError, "tuf-expired"),
    (tuf_errors.BadVersionNumberError, "tuf-rollback"),
    (tuf_errors.EqualVersionNumberError, "tuf-rollback"),
    (tuf_errors.UnsignedMetadataError, "tuf-bad-signature"),
    (tuf_errors.LengthOrHashMismatchError, "tuf-mismatch"),
)


@dataclass(frozen=True)
class TufState:
    """What the last successful refresh verified."""

    root_version: int
    timestamp_version: int
    timestamp_expires: datetime
    snapshot_version: int
    target_sha256: str | None

    def as_dict(self) -> dict[str, Any]:
        from compiler.trust import format_time
        return {"root_version": self.root_version, "timestamp_version": self.timestamp_version,
                "timestamp_expires": format_time(self.timestamp_expires),
                "snapshot_version": self.snapshot_version, "target_sha256": self.target_sha256}


class TufSource:
    """`bundles/<participant>.json` of the TUF repository at `url` (metadata/ and targets/ under it)."""

    def __init__(self, url: str, participant: str, bootstrap_root: bytes, state_dir: Path,
                 max_bytes: int, fetcher: FetcherInterface | None = None) -> None:
        base = url.rstrip("/")
        self.metadata_url = f"{base}/metadata/"
        self.targets_url = f"{base}/targets/"
        self.target = f"bundles/{participant}.json"
        self.dir = Path(state_dir) / "tuf"
        self.bootstrap = bootstrap_root
        self.max_bytes = max_bytes
        self.fetcher = fetcher
        self.state: TufState | None = None
        self._seen: str | None = None

    @property
    def origin(self) -> str:
        return f"tuf:{self.metadata_url} {self.target}"

    async def fetch(self) -> bytes | None:
        return await asyncio.to_thread(self.fetch_sync)

    def fetch_sync(self) -> bytes | None:
        try:
            (self.dir / "targets").mkdir(parents=True, exist_ok=True)
            have_root = (self.dir / "root.json").exists()
            updater = Updater(str(self.dir), self.metadata_url, str(self.dir / "targets"), self.targets_url,
                              self.fetcher, UpdaterConfig(targets_max_length=self.max_bytes),
                              bootstrap=None if have_root else self.bootstrap)
            updater.refresh()
            info = updater.get_targetinfo(self.target)
            self.state = self._verified(info.hashes.get("sha256") if info else None)
            if info is None:
                raise SourceRefusal("tuf-no-target", f"the repository has no {self.target}")
            if info.length > self.max_bytes:
                raise BundleSourceError(f"{self.target}: {info.length} bytes, over the bundle limit "
                                        f"of {self.max_bytes}")
            sha = info.hashes.get("sha256")
            if sha is not None and sha == self._seen:
                return None
            path = updater.find_cached_target(info) or updater.download_target(info)
            data = Path(path).read_bytes()
        except tuf_errors.DownloadLengthMismatchError as e:  # metadata over ngclient's per-role cap
            raise SourceRefusal("tuf-oversized", f"{type(e).__name__}: {e}") from e
        except tuf_errors.DownloadError as e:
            raise BundleSourceError(f"{self.metadata_url}: {type(e).__name__}: {e}") from e
        except tuf_errors.RepositoryError as e:
            raise SourceRefusal(_code(e), f"{type(e).__name__}: {e}") from e
        except OSError as e:
            raise BundleSourceError(f"{self.dir}: {e.strerror}") from e
        self._seen = sha
        return data

    def _verified(self, sha: str | None) -> TufState:
        """Versions of what ngclient verified and stored (it writes only what it accepted)."""
        root: Metadata[Root] = Metadata.from_bytes((self.dir / "root.json").read_bytes())
        stamp: Metadata[Timestamp] = Metadata.from_bytes((self.dir / "timestamp.json").read_bytes())
        return TufState(root_version=root.signed.version, timestamp_version=stamp.signed.version,
                        timestamp_expires=stamp.signed.expires,
                        snapshot_version=stamp.signed.snapshot_meta.version, target_sha256=sha)

    async def aclose(self) -> None:
        return None


def _code(error: Exception) -> str:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return "tuf-refused"

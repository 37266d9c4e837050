"""`reestr verify --tuf-repo`: check a bundle against a TUF repository's metadata, as a sidecar would.

python-tuf's ngclient walks the repository from the trusted root (every root version, then
timestamp, snapshot, targets and the bundle's bin) over a local fetcher, so the same checks a
sidecar makes apply: signatures and thresholds, versions, expiry, snapshot consistency. The
bundle's bytes must then have the length and hash the verified bin names, and pass the same
content checks as in the sidecar (compiler.trust.check_target: audience, expiry, serial).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from compiler.trust import TrustError, Verified, check_target
from compiler.tuf_repo import target_path

BASE = "http://repository.invalid/"


class TufRefused(TrustError):
    """The TUF metadata does not vouch for the bundle (or does not verify at all)."""


class LocalFetcher(FetcherInterface):
    """Reads `BASE/...` from a repository directory (no network)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(BASE):
            raise tuf_errors.DownloadError(f"{url}: outside the repository")
        path = (self.directory / unquote(url[len(BASE):])).resolve()
        if self.directory not in path.parents:
            raise tuf_errors.DownloadError(f"{url}: outside the repository")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise tuf_errors.DownloadHTTPError(f"{url}: not found", 404) from None
        except OSError as e:
            raise tuf_errors.DownloadError(f"{url}: {e.strerror}") from e
        return iter([data])


def verify_with_repository(data: bytes, repo: Path, root: bytes, audience: str, *,
                           now: datetime | None = None, min_serial: int | None = None) -> Verified:
    """Accept `data` as `bundles/<audience>.json` of the repository at `repo`, or raise TufRefused."""
    with tempfile.TemporaryDirectory(prefix="reestr-verify-") as tmp:
        try:
            updater = Updater(tmp, BASE + "metadata/", tmp, BASE + "targets/", LocalFetcher(repo),
                              bootstrap=root)
            updater.refresh()
            info = updater.get_targetinfo(target_path(audience))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as e:
            raise TufRefused(f"the repository's metadata does not verify: {type(e).__name__}: {e}") from e
    if info is None:
        raise TufRefused(f"the repository has no {target_path(audience)}")
    try:
        info.verify_length_and_hashes(data)
    except tuf_errors.LengthOrHashMismatchError as e:
        raise TufRefused(f"not the bundle the repository names: {e}") from e
    return check_target(data, audience=audience, now=now, min_serial=min_serial)

"""The sidecar's one error root.

Every error the `proxy` package raises on purpose is a `SidecarError` subclass, so the CLI can turn
it into a message and an exit code; third-party errors are wrapped at the boundary (DESIGN §8).
"""

from __future__ import annotations


class SidecarError(Exception):
    """Root of every error the sidecar raises on purpose."""


# --- runtime (config, bundles, policy) ---------------------------------------------------------


class ConfigError(SidecarError):
    """The sidecar configuration is unreadable or invalid; the message names the file and field."""


class StateDirError(SidecarError):
    """The state directory (last good bundle, highest serial) cannot be read or written."""


class BundleSourceError(SidecarError):
    """The bundle source (file or URL) could not be fetched."""


class PolicyFormatError(SidecarError):
    """A verified bundle's content does not have the shape the sidecar needs."""


class SourceRefusal(BundleSourceError):
    """The source answered, and what it answered was refused before any bundle was read (TUF
    metadata that does not verify, roll back or expired); `code` is the stable refusal code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

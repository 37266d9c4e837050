"""The sidecar's one error root.

Every error the `proxy` package raises on purpose is a `SidecarError` subclass, so the CLI can turn
it into a message and an exit code; third-party errors are wrapped at the boundary (DESIGN §8).
"""

from __future__ import annotations


class SidecarError(Exception):
    """Root of every error the sidecar raises on purpose."""

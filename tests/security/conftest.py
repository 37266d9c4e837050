"""Fixtures of the security suite: the test PKI, a live sidecar (a real `reestr-sidecar run`
process) in front of a recording upstream, and its journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config import SidecarConfig, load_config
from proxy.journal.query import export
from proxy.runner import ProcessHandle, start_subprocess
from tests.proxy.conftest import Keys, Pki, keys, pki, sign, signed_bundle, write_config
from tests.security.helpers import RecordingUpstream

__all__ = ["keys", "pki"]  # the session PKI and keys of tests/proxy, shared, not made again


def security_bundle(pki: Pki) -> dict[str, Any]:
    """ved3's test bundle plus operations whose templates have a prefix and a suffix."""
    signed = signed_bundle(pki)
    ops = signed["services"]["SID0003001"]["operations"]
    ops["op4"] = {"method": "GET", "path": "/reports/{id}.json"}
    ops["op5"] = {"method": "DELETE", "path": "/certificates/{id}"}
    return signed


@dataclass
class Live:
    """A running sidecar, its config, and the upstream that records what reached it."""

    config: SidecarConfig
    proc: ProcessHandle
    upstream: RecordingUpstream

    @property
    def port(self) -> int:
        return self.config.listen.port

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.config.admin.port}{path}", timeout=10)

    def journal(self) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in export(self.config.journal.path)}


def start_live(d: Path, pki: Pki, keys: Keys, signed: dict[str, Any], **cfg: Any) -> Live:
    up = RecordingUpstream()
    (d / "bundle.json").write_bytes(sign(signed, keys.operator))
    path = write_config(d, pki, keys, up.url, str(d / "bundle.json"), **cfg)
    return Live(load_config(path), start_subprocess(path), up)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys) -> Iterator[Live]:
    site = start_live(tmp_path_factory.mktemp("live"), pki, keys, security_bundle(pki),
                      limits={"max_body_bytes": 4096, "header_timeout_seconds": 1,
                              "idle_timeout_seconds": 2})
    yield site
    site.proc.stop()
    site.upstream.close()

"""What each worker of a `workers: N` sidecar owns: the one home of the per-worker names.

A sidecar with `workers: N` (N > 1) is a supervisor (`proxy.supervisor`) and N worker processes
(`proxy.worker`). Worker `i` (0 … N-1) keeps, across restarts:

- its journal chain: SQLite `journal.path` for worker 0 and `<stem>-w<i><suffix>` beside it for the
  others (a file per worker); PostgreSQL chain `journal.chain` (default the participant id) for
  worker 0 and `<chain>-w<i>` for the others, all in the same database. Worker 0 continuing the
  single-process names means going from 1 to N workers continues the existing chain;
- its anchor file (`journal.anchor_file`, suffixed the same way);
- its state directory `<state_dir>/workers/<i>` (the bundle it verified, its highest serial).

The supervisor fetches and verifies the bundle from `bundle.source` into its own state directory
and hands the accepted bytes to every worker through one file, `<state_dir>/workers/bundle.json`;
each worker verifies those same bytes with the same keys, so all reach the same result.

No mitmproxy, no click: the CLI uses this to find every chain of a config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxy.config import SidecarConfig
from proxy.journal.store import Store
from proxy.journal.target import store_for

HANDOFF_FILE = "bundle.json"
STATUS_FILE = "supervisor.json"


def workers_dir(config: SidecarConfig) -> Path:
    return config.state_dir / "workers"


def handoff_path(config: SidecarConfig) -> Path:
    """The verified bundle the supervisor hands to its workers."""
    return workers_dir(config) / HANDOFF_FILE


def _suffixed(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.stem}-w{index}{path.suffix}")


def chain_name(config: SidecarConfig, index: int) -> str:
    """The PostgreSQL chain of worker `index`."""
    base = config.journal.chain or config.participant
    return base if index == 0 else f"{base}-w{index}"


def worker_config(config: SidecarConfig, index: int, admin_port: int = 0) -> SidecarConfig:
    """The config worker `index` runs with: its own journal, anchor and state, the handed-off
    bundle, an admin listener of its own on 127.0.0.1 (the supervisor asks it) and one worker."""
    journal = config.journal
    update: dict[str, object] = {}
    if journal.backend == "sqlite":
        assert journal.path is not None  # the config model requires it
        update["path"] = _suffixed(journal.path, index)
    else:
        update["chain"] = chain_name(config, index)
    if journal.anchor_file is not None:
        update["anchor_file"] = _suffixed(journal.anchor_file, index)
    bundle = config.bundle.model_copy(update={"source": str(handoff_path(config))})
    admin = config.admin.model_copy(update={"host": "127.0.0.1", "port": admin_port})
    return config.model_copy(update={
        "journal": journal.model_copy(update=update), "bundle": bundle, "admin": admin,
        "state_dir": workers_dir(config) / str(index), "workers": 1})


def journal_stores(config: SidecarConfig) -> list[Store]:
    """Every worker's journal store (one store when `workers` is 1; for PostgreSQL one store per
    chain of this sidecar)."""
    if config.workers == 1:
        return [store_for(config)]
    return [store_for(worker_config(config, i)) for i in range(config.workers)]


def read_status(config: SidecarConfig) -> dict[str, Any] | None:
    """The supervisor's last word on its workers (pids, restarts, readiness), or None."""
    try:
        data = json.loads((workers_dir(config) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

"""`reestr-sidecar` output for issue 13: `journal verify --config` over every worker's chain, and
`stats --availability` (service health events). Thin, like proxy.cli: parse, call, print, exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compiler.trust import load_public_key
from proxy.journal.store import Store


def _shown(chain: str) -> str:
    from proxy.cli import _shown as shown

    return shown(chain)


def verify_config(config_path: Path, key_paths: tuple[Path, ...], max_unsealed_age: float | None) -> None:
    """`journal verify --config`: every worker's chain of one sidecar (proxy.workers)."""
    from compiler.trust import load_private_key
    from proxy.config import load_config
    from proxy.journal import anchor as anchors
    from proxy.journal.verify import verify_store
    from proxy.journal.writer import CHECKPOINT_INTERVAL
    from proxy.workers import journal_stores, workers_dir

    config = load_config(config_path)
    keys = ([load_public_key(k) for k in key_paths] if key_paths
            else [load_private_key(config.journal.signing_key).public_key()])
    max_age = 2 * CHECKPOINT_INTERVAL if max_unsealed_age is None else max_unsealed_age
    bad = False
    for index, store in enumerate(journal_stores(config)):
        chain = store.chain  # PostgreSQL: this worker's chain only; SQLite: the file's one chain
        path = getattr(store, "path", None)
        if config.workers > 1 and isinstance(path, Path) and not path.exists():
            if (workers_dir(config) / str(index)).is_dir():  # the worker ran: its journal is gone
                bad = True
                click.echo(f"{store.label}: MISSING: worker {index} ran (its state exists) but its journal does not")
            else:
                click.echo(f"{store.label}: worker {index} has not run yet")
            continue
        reports = [r for r in verify_store(store, keys) if chain is None or r.chain == chain]
        if not reports:  # PostgreSQL: a chain appears with its first record
            click.echo(f"{store.label}: no chain {chain or ''} yet".rstrip())
            continue
        for report in reports:
            name = report.path if report.chain is None else f"{report.path}: chain {_shown(report.chain)}"
            end = anchors.chain_end(store, report.chain, report.last_record,
                                    max(report.last_sealed_record, report.pruned), None)
            if (why := anchors.tail_problem(end, max_age)) is not None:
                bad = True
                click.echo(f"{name}: SHORTENED: {why}")
            if report.ok:
                click.echo(f"{name}: intact: {report.records} records, {report.checkpoints} checkpoints")
            else:
                bad = True
                first = report.problems[0]
                click.echo(f"{name}: TAMPERED: first bad record {first.record_id}: {first.code}: {first.message}")
    sys.exit(1 if bad else 0)


def print_availability(stores: list[Store], since: str | None, until: str | None, fmt: str) -> None:
    from proxy.journal.availability import availability

    rows = availability(stores, since, until)
    if fmt == "json":
        click.echo(json.dumps([{"sid": r.sid, "availability": r.availability, "observed_seconds": r.observed_seconds,
                                "down_seconds": r.down_seconds, "downs": r.downs, "up_now": r.up_now}
                               for r in rows], indent=2))
        return
    click.echo(f"{'SID':<12} {'AVAILABILITY':>12} {'OBSERVED s':>12} {'DOWN s':>10} {'DOWNS':>6} NOW")
    for r in rows:
        share = "-" if r.availability is None else f"{100 * r.availability:.3f}%"
        click.echo(f"{r.sid:<12} {share:>12} {r.observed_seconds:>12.1f} {r.down_seconds:>10.1f} {r.downs:>6} "
                   + ("up" if r.up_now else "down"))


def print_status(config_path: Path, fmt: str) -> None:
    """`status`: the bundle state, and service health and workers where the config has them."""
    from proxy.bundles import read_state, render_status
    from proxy.config import load_config
    from proxy.health import read_health, render_health
    from proxy.workers import read_status

    config = load_config(config_path)
    state = read_state(config.state_dir)
    health = read_health(config.state_dir) if config.health is not None else None
    workers = read_status(config) if config.workers > 1 else None
    if fmt == "json":
        click.echo(json.dumps({**state, "health": health, "workers": workers}, indent=2))
        return
    click.echo(render_status(state))
    if config.health is not None:
        click.echo(render_health(health))
    if config.workers > 1:
        click.echo(f"workers: {config.workers}")
        for w in (workers or {}).get("workers", []):
            click.echo(f"  worker {w.get('index')}: pid {w.get('pid')}, restarts {w.get('restarts')}, "
                       + ("ready" if w.get("ready") else f"not ready ({w.get('not_ready')})"))

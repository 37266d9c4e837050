"""`reestr-sidecar`: run the sidecar, and read its journal (verify, export, stats).

Commands are thin: they parse options, call one library function, print, and choose the exit code
(0 ok, 1 problems found, 2 usage error or unreadable input). A SidecarError or CompilerError
(e.g. an unreadable key) becomes one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TextIO

import click

from compiler.errors import CompilerError
from compiler.trust import canonical_json, load_public_key
from proxy.errors import SidecarError
from proxy.journal.store import Store

_SHOWN = 20


def _clean_errors[F: Callable[..., Any]](fn: F) -> F:
    """Turn a SidecarError or CompilerError into `reestr-sidecar: message` and exit code 2."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SidecarError, CompilerError) as e:
            click.echo(f"reestr-sidecar: {e}", err=True)
            sys.exit(2)
    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reestr")
def main() -> None:
    """reestr-sidecar — enforce a policy bundle in front of an agency and journal every message."""


JOURNAL = click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
DSN = click.option("--dsn", metavar="DSN", help="A PostgreSQL journal (every chain in it) instead of a file PATH.")
SINCE = click.option("--since", metavar="ISO", help="Only records at or after this time (UTC if no zone).")
UNTIL = click.option("--until", metavar="ISO", help="Only records before this time (UTC if no zone).")
ARCHIVES = click.option("--archives", type=click.Path(file_okay=False, path_type=Path),
                        help="The archive directory (`journal archive --to`): read the archived records too.")
KEYS = click.option("--key", "key_paths", required=True, multiple=True,
                    type=click.Path(dir_okay=False, path_type=Path),
                    help="A sidecar's public key (PEM) that signs checkpoints; repeat for the sidecars of a --dsn.")


def _store(path: Path | None, dsn: str | None) -> Store:
    """The journal a command names: a SQLite file PATH or a PostgreSQL --dsn, exactly one."""
    from proxy.journal.postgres import PostgresStore
    from proxy.journal.sqlite import SqliteStore

    if (path is None) == (dsn is None):
        raise click.UsageError("give a journal file PATH or --dsn DSN (one of them)")
    return SqliteStore(path) if path is not None else PostgresStore(str(dsn))


def _shown(chain: str) -> str:
    """A chain name as printed: quoted if it is not one a sidecar can have (control characters…)."""
    from proxy.journal.chain import CHAIN_RE

    return chain if CHAIN_RE.fullmatch(chain) else repr(chain)


# --- journal (issues 3, 12) ---------------------------------------------------------------------


@main.group("journal")
def journal_group() -> None:
    """Read the tamper-evident journal: verify its chain, export its records."""


@journal_group.command("verify")
@JOURNAL
@DSN
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A sidecar's public key (PEM) that signs checkpoints; repeat for the sidecars of a --dsn. "
                   "Required unless --config.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A sidecar config: every chain it writes (one per worker), checked against the public "
                   "half of its journal.signing_key.")
@click.option("--archives", type=click.Path(file_okay=False, path_type=Path),
              help="Also prove the chain from record 1 through these archives into the journal "
                   "(alone: the archives).")
@click.option("--anchor", "anchor_source", metavar="FILE|URL",
              help="A checkpoint exported earlier (anchor file, or the admin /journal/anchor): fail "
                   "if the journal ends before it or differs at it.")
@click.option("--max-unsealed-age", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Fail if the oldest unsealed record is older than this (default: twice the "
                   "writer's checkpoint interval).")
@_clean_errors
def journal_verify_command(path: Path | None, dsn: str | None, key_paths: tuple[Path, ...],
                           config_path: Path | None, archives: Path | None, anchor_source: str | None,
                           max_unsealed_age: float | None) -> None:
    """Check the hash chain and signed checkpoints, that the journal reaches the anchor and has
    no stale unsealed tail; exit 1 naming the first problem.

    With --archives and no journal, the archive directory alone: every chain from record 1 through
    its last archive."""
    from proxy.journal import anchor as anchors
    from proxy.journal.verify import verify_store
    from proxy.journal.writer import CHECKPOINT_INTERVAL

    if config_path is not None:
        if path is not None or dsn is not None or archives is not None or anchor_source is not None:
            raise click.UsageError("--config names the journals: no PATH, --dsn, --archives or --anchor with it")
        from proxy.cli_workers import verify_config

        verify_config(config_path, key_paths, max_unsealed_age)
        return
    if not key_paths:
        raise click.UsageError("Missing option '--key' (a sidecar's public key), or give --config")
    keys = [load_public_key(k) for k in key_paths]
    anchor = anchors.parse_anchor(anchors.load_anchor(anchor_source), keys) if anchor_source else None
    store = None
    if path is None and dsn is None and archives is not None:  # the archives alone
        from proxy.journal.verify import verify_archives

        reports, label = verify_archives(archives, keys), str(archives)
    else:
        store = _store(path, dsn)
        reports, label = verify_store(store, keys, archives=archives), store.label
    max_age = 2 * CHECKPOINT_INTERVAL if max_unsealed_age is None else max_unsealed_age
    bad = False
    for report in reports:
        name = report.path if report.chain is None else f"{report.path}: chain {_shown(report.chain)}"
        if store is not None:  # truncation of a live journal: anchor and unsealed tail (issue 10)
            at = anchor.upto if anchor is not None and anchor.chain == report.chain else None
            end = anchors.chain_end(store, report.chain, report.last_record,
                                    max(report.last_sealed_record, report.pruned), at)
            cut = [*(anchors.anchor_problems(anchor, end, report.pruned) if anchor and at is not None else []),
                   *filter(None, [anchors.tail_problem(end, max_age)])]
            for why in cut:
                bad = True
                click.echo(f"{name}: SHORTENED: {why}")
        summary = (f"{report.records} records, {report.checkpoints} checkpoints, sealed up to record "
                   f"{report.last_sealed_record}, unsealed tail {report.unsealed_tail}"
                   + (f", records 1–{report.pruned} pruned" if report.pruned else "")
                   + (f", {report.archives} archive(s) up to record {report.archived}" if archives else ""))
        if report.ok:
            click.echo(f"{name}: intact: {summary}")
            continue
        bad = True
        first = report.problems[0]
        click.echo(f"{name}: TAMPERED: first bad record {first.record_id}: {first.code}: {first.message}")
        for problem in report.problems[1:_SHOWN]:
            click.echo(f"  record {problem.record_id}: {problem.code}: {problem.message}")
        if report.problem_count > _SHOWN:
            click.echo(f"  … and {report.problem_count - _SHOWN} more problem(s)")
        click.echo(summary)
    if not reports:
        click.echo(f"{label}: no chains")
    if anchor is not None and anchor.chain not in {r.chain for r in reports}:
        click.echo(f"{label}: SHORTENED: the anchor's chain {anchor.chain!r} is not in the journal")
        bad = True
    if bad:
        sys.exit(1)


@journal_group.command("export")
@JOURNAL
@DSN
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@SINCE
@UNTIL
@click.option("--message-id", metavar="ID",
              help="Only the records of this message (message_id or reference_message_id) and their exchanges.")
@ARCHIVES
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write here instead of standard output.")
@_clean_errors
def journal_export_command(path: Path | None, dsn: str | None, fmt: str, since: str | None, until: str | None,
                           message_id: str | None, archives: Path | None, output: TextIO) -> None:
    """Write records (with their hashes) as JSON lines, in id order (chain by chain); with --archives
    and no journal, the archived records alone."""
    from proxy.journal.query import export, export_archives

    records = (export_archives(archives, since=since, until=until, message_id=message_id)
               if path is None and dsn is None and archives is not None else
               export(_store(path, dsn), since=since, until=until, message_id=message_id, archives=archives))
    for record in records:
        output.write(canonical_json(record).decode("utf-8") + "\n")


@journal_group.command("stats")
@JOURNAL
@DSN
@SINCE
@UNTIL
@click.option("--provider", metavar="ID", help="Only services owned by this participant (R12).")
@ARCHIVES
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_clean_errors
def journal_stats_command(path: Path | None, dsn: str | None, since: str | None, until: str | None,
                          provider: str | None, archives: Path | None, fmt: str) -> None:
    """Calls per service, operation, consumer and decision over a period (R12)."""
    _print_stats(_store(path, dsn), since, until, provider, archives, fmt)


@journal_group.command("archive")
@JOURNAL
@DSN
@click.option("--to", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The archive directory (created if missing).")
@click.option("--before", metavar="ISO", help="Only sealed ranges whose last record is before this time.")
@_clean_errors
def journal_archive_command(path: Path | None, dsn: str | None, directory: Path, before: str | None) -> None:
    """Copy each chain's sealed records not yet archived into compressed, checkpoint-sealed archives."""
    from proxy.journal.archive import archive, chain_file_name
    from proxy.journal.record import parse_bound

    made = archive(_store(path, dsn), directory, parse_bound(before) if before else None)
    for item in made:
        click.echo(f"{item.file}: chain {chain_file_name(item.chain)}, records {item.first}–{item.last} "
                   f"({item.records}), sealed by checkpoint {item.checkpoint.id}")
    if not made:
        click.echo("nothing to archive: no sealed records after the last archive")


@journal_group.command("prune")
@JOURNAL
@DSN
@KEYS
@click.option("--archives", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The archive directory that holds the records to delete.")
@click.option("--before", required=True, metavar="ISO", help="Delete only archives whose records are all older.")
@_clean_errors
def journal_prune_command(path: Path | None, dsn: str | None, key_paths: tuple[Path, ...], directory: Path,
                          before: str) -> None:
    """Delete records that are archived and verified (chain, archives and all) and older than --before."""
    from proxy.journal.archive import PruneRefusedError, chain_file_name, prune
    from proxy.journal.record import parse_bound

    try:
        done = prune(_store(path, dsn), _store(path, dsn), directory, [load_public_key(k) for k in key_paths],
                     parse_bound(before))
    except PruneRefusedError as e:
        click.echo(f"reestr-sidecar: {e}", err=True)
        sys.exit(1)
    for item in done:
        click.echo(f"chain {chain_file_name(item.chain)}: records 1–{item.upto} pruned ({item.deleted} deleted)")
    if not done:
        click.echo("nothing to prune: no verified archive with records only before that time")


@main.command("stats")
@click.option("--journal", "paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A journal file; repeat to count the journals of several sidecars together.")
@DSN
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A sidecar config: its journal (unless --journal/--dsn), and for --priced its bundle in force.")
@SINCE
@UNTIL
@click.option("--provider", metavar="ID", help="Only services owned by this participant (R12).")
@ARCHIVES
@click.option("--priced", is_flag=True, help="Allowed calls times the tariff of each service (R13).")
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False, path_type=Path),
              help="For --priced: the signed bundle whose tariffs apply (default: the config's bundle in force).")
@click.option("--trusted-key", "trusted", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="For --bundle: an operator public key that signs bundles (repeatable).")
@click.option("--threshold", type=int, help="For --bundle: signatures required (default 1, or the config's).")
@click.option("--availability", is_flag=True,
              help="Per service: the share of the period its upstream answered its health check (004 §7д).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_clean_errors
def stats_command(paths: tuple[Path, ...], dsn: str | None, config_path: Path | None, since: str | None,
                  until: str | None, provider: str | None, archives: Path | None, priced: bool,
                  bundle_path: Path | None, trusted: tuple[Path, ...], threshold: int | None,
                  availability: bool, fmt: str) -> None:
    """Calls per service, operation, consumer and decision over a period (R12); --priced: what they
    cost (R13); --availability: how much of the period each service was up (from health events)."""
    config = None
    if config_path is not None:
        from proxy.config import load_config

        config = load_config(config_path)
    stores: list[Store]
    if not paths and dsn is None and config is not None:
        from proxy.workers import journal_stores

        stores = journal_stores(config)
    elif len(paths) > 1 and dsn is None:
        stores = [_store(path, None) for path in paths]
    else:
        stores = [_store(paths[0] if paths else None, dsn)]
    if availability:
        if priced or archives is not None or provider is not None:
            raise click.UsageError("--availability takes no --priced, --archives or --provider")
        from proxy.cli_workers import print_availability

        print_availability(stores, since, until, fmt)
        return
    if not priced:
        _print_stats(stores, since, until, provider, archives, fmt)
        return
    state_bundle = False
    if config is not None:
        state_bundle = bundle_path is None and not trusted and config.bundle.root is not None
        bundle_path = bundle_path or config.state_dir / "bundle.json"
        trusted = trusted or tuple(config.bundle.trusted_keys)
        threshold = threshold or config.bundle.threshold
    if state_bundle and bundle_path is not None:  # TUF: the saved bundle was a verified target
        _print_priced(stores, since, until, provider, archives, fmt, bundle_path, (), 0)
        return
    if bundle_path is None or not trusted:
        raise click.UsageError("--priced needs --bundle and --trusted-key, or --config")
    _print_priced(stores, since, until, provider, archives, fmt, bundle_path, trusted, threshold or 1)


def _print_stats(store: Store | list[Store], since: str | None, until: str | None, provider: str | None,
                 archives: Path | None, fmt: str) -> None:
    from dataclasses import asdict

    from proxy.journal.query import stats

    rows = stats(store, since=since, until=until, provider=provider, archives=archives)
    if fmt == "json":
        click.echo(json.dumps([asdict(row) for row in rows], ensure_ascii=False, indent=2))
        return
    click.echo(f"{'SID':<12} {'OPERATION':<24} {'CONSUMER':<24} {'DECISION':<8} {'CALLS':>8}")
    for row in rows:
        click.echo(f"{row.sid or '-':<12} {row.operation or '-':<24} {row.consumer or '-':<24} "
                   f"{row.decision:<8} {row.calls:>8}")
    click.echo(f"{'total':<70} {sum(row.calls for row in rows):>8}")


# --- run and status (issue 3: the sidecar runtime) ----------------------------------------------

CONFIG = click.option("--config", "config_path", required=True,
                      type=click.Path(dir_okay=False, path_type=Path), help="Sidecar config (YAML).")


@main.command("run")
@CONFIG
@click.option("--listen-port", type=int, help="Override listen.port.")
@click.option("--admin-port", type=int, help="Override admin.port.")
@click.option("--upstream", help="Override upstream (URL of the agency system).")
@click.option("--bundle-source", help="Override bundle.source (file path or URL).")
@click.option("--state-dir", help="Override state_dir.")
@click.option("--journal", "journal_path", help="Override journal.path.")
@_clean_errors
def run_command(config_path: Path, listen_port: int | None, admin_port: int | None,
                upstream: str | None, bundle_source: str | None, state_dir: str | None,
                journal_path: str | None) -> None:
    """Run the sidecar in the foreground until SIGTERM or Ctrl-C."""
    from proxy.config import load_config
    from proxy.runner import run_forever

    overrides = {"listen.port": listen_port, "admin.port": admin_port, "upstream": upstream,
                 "bundle.source": bundle_source, "state_dir": state_dir, "journal.path": journal_path}
    run_forever(load_config(config_path, overrides), config_path, overrides)


@main.command("verify-message")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A provider's signed bundle: signers must also be registered signing certificates.")
@click.option("--trusted-key", "trusted", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="For --bundle: an operator public key; without one the bundle's own signature is not checked.")
@click.option("--at", "at", metavar="ISO", help="Check certificate validity at this time (default: now).")
@_clean_errors
def verify_message_command(file: Path, bundle_path: Path | None, trusted: tuple[Path, ...], at: str | None) -> None:
    """Which signatures a saved SOAP message has, what each covers, by whom, valid or why not.

    Exit 0: at least one signature and all valid; 1: any is not; 2: the file cannot be read or parsed.
    """
    from proxy.soap.offline import OfflineError, read_bundle, verify_message, when

    try:
        data = file.read_bytes()
    except OSError as e:
        raise OfflineError(f"{file}: {e.strerror}") from e
    signed = read_bundle(bundle_path, trusted) if bundle_path is not None else None
    report = verify_message(data, at=when(at), signed_bundle=signed)
    for line in report.lines():
        click.echo(line)
    sys.exit(0 if report.ok else 1)


@main.command("status")
@CONFIG
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_clean_errors
def status_command(config_path: Path, fmt: str) -> None:
    """The bundle in force, its serial and expiry, the last refusal, service health, and the
    workers of a `workers: N` sidecar (from the state dir)."""
    from proxy.cli_workers import print_status

    print_status(config_path, fmt)


def _print_priced(store: list[Store], since: str | None, until: str | None, provider: str | None, archives: Path | None,
                  fmt: str, bundle_path: Path, trusted: tuple[Path, ...], threshold: int) -> None:
    from datetime import UTC, datetime

    from compiler.trust import check_target, verify_envelope
    from proxy.journal.pricing import priced, tariffs, totals
    from proxy.journal.query import stats

    try:
        data = bundle_path.read_bytes()
    except OSError as e:
        raise click.UsageError(f"{bundle_path}: {e.strerror}") from e
    # The signature is what matters for a price list; a bundle that has expired since still says
    # which tariffs were in force while it was.
    # threshold 0: the config's state dir under a TUF root holds a bundle ngclient verified.
    verified = verify_envelope(data, [load_public_key(k) for k in trusted], threshold=threshold,
                               now=datetime(1970, 1, 2, tzinfo=UTC)) if threshold else \
        check_target(data, now=datetime(1970, 1, 2, tzinfo=UTC))
    rows = priced(stats(store, since=since, until=until, provider=provider, archives=archives),
                  tariffs(verified.signed))
    sums = totals(rows)
    if fmt == "json":
        click.echo(json.dumps({"bundle_serial": verified.serial, "rows": [
            {"sid": r.sid, "operation": r.operation, "consumer": r.consumer, "calls": r.calls,
             "currency": r.currency, "per_call": str(r.per_call), "amount": str(r.amount)} for r in rows],
            "totals": {currency: str(amount) for currency, amount in sums.items()}}, ensure_ascii=False, indent=2))
        return
    click.echo(f"tariffs of bundle serial {verified.serial}; allowed calls only")
    click.echo(f"{'SID':<12} {'OPERATION':<24} {'CONSUMER':<24} {'CALLS':>8} {'PER CALL':>10} {'AMOUNT':>12} CUR")
    for r in rows:
        click.echo(f"{r.sid:<12} {r.operation or '-':<24} {r.consumer or '-':<24} {r.calls:>8} "
                   f"{r.per_call:>10} {r.amount:>12} {r.currency}")
    for currency, amount in sums.items():
        click.echo(f"{'total':<80} {amount:>12} {currency}")

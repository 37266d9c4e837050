"""`reestr tuf ...`: the bundles as a TUF repository, and the operator's ceremonies (issue 14).

Offline (root and targets keys, docs/operations.md): `init`, `add-key`, `revoke-key`,
`rotate-root`. Online (the publish job's snapshot/timestamp/bins key): `publish`, `timestamp`.
`status` reads the repository; `reestr verify --tuf-repo` checks a bundle against it.

Signers (`--sign`) and public keys (`--key`) are key files or `hsm:KEYID[?label=TOKEN]`
(compiler.tuf_keys). Exit codes as the rest of reestr: 0 done, 1 refused, 2 usage or error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from securesystemslib.signer import Key, Signer

from compiler import tuf_keys, tuf_repo
from compiler.cli import _clean_errors, _duration, main

REPO = click.argument("repo", type=click.Path(file_okay=False, path_type=Path))
SIGN = click.option("--sign", "sign_specs", multiple=True, metavar="KEY",
                    help="A signer: private key file (PEM) or hsm:KEYID[?label=TOKEN] (PIN from "
                         "REESTR_HSM_PIN); repeat for a threshold.")


def _lifetimes(**given: str | None) -> tuf_repo.Lifetimes:
    defaults = tuf_repo.Lifetimes()
    return tuf_repo.Lifetimes(**{role: _duration(text) if text else getattr(defaults, role)
                                 for role, text in given.items()})


def _signers(specs: tuple[str, ...]) -> list[Signer]:
    return [tuf_keys.load_signer(s) for s in specs]


@main.group("tuf")
def tuf_group() -> None:
    """The bundles as a TUF repository: publish, and the operator's key ceremonies."""


@tuf_group.command("init")
@REPO
@click.option("--root-key", "root", multiple=True, required=True, metavar="KEY",
              help="A root public key (PEM or hsm:...); repeat for several holders.")
@click.option("--root-threshold", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--targets-key", "targets", multiple=True, required=True, metavar="KEY")
@click.option("--targets-threshold", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--online-key", "online", multiple=True, metavar="KEY",
              help="The publish job's key: snapshot, timestamp and bins (unless given one by one).")
@click.option("--snapshot-key", "snapshot", multiple=True, metavar="KEY")
@click.option("--timestamp-key", "timestamp", multiple=True, metavar="KEY")
@click.option("--bins-key", "bins_keys", multiple=True, metavar="KEY")
@click.option("--bins", default=256, show_default=True, type=click.Choice([str(2 ** n) for n in range(1, 17)]),
              help="Number of hashed bins (a sidecar downloads only its own bin's metadata).")
@click.option("--root-expires-in", default="365d", show_default=True)
@click.option("--targets-expires-in", default="365d", show_default=True)
@SIGN
@_clean_errors
def init_command(repo: Path, root: tuple[str, ...], root_threshold: int, targets: tuple[str, ...],
                 targets_threshold: int, online: tuple[str, ...], snapshot: tuple[str, ...],
                 timestamp: tuple[str, ...], bins_keys: tuple[str, ...], bins: str, root_expires_in: str,
                 targets_expires_in: str, sign_specs: tuple[str, ...]) -> None:
    """Create the repository: root v1 and targets v1, signed by --sign (root and targets keys)."""
    keys = {"root": root, "targets": targets, "snapshot": snapshot or online,
            "timestamp": timestamp or online, "bins": bins_keys or online}
    for role, specs in keys.items():
        if not specs:
            raise click.UsageError(f"no {role} key: give --{role}-key or --online-key")
    tuf_repo.init(tuf_repo.Repository(repo), keys={r: [tuf_keys.load_public(s) for s in v] for r, v in keys.items()},
                  thresholds={"root": root_threshold, "targets": targets_threshold},
                  signers=_signers(sign_specs), bins_bit_length=int(bins).bit_length() - 1,
                  lifetimes=_lifetimes(root=root_expires_in, targets=targets_expires_in))
    click.echo(f"initialised {repo}: root v1 ({root_threshold} of {len(root)} root keys), targets v1, "
               f"{bins} bins; give sidecars {repo / 'metadata' / '1.root.json'} as bundle.root")


LIFETIMES = [click.option("--timestamp-expires-in", default="1h", show_default=True,
                          help="Bounds how long a withheld update goes unnoticed (docs/bundle-format.md)."),
             click.option("--snapshot-expires-in", default="1d", show_default=True),
             click.option("--bins-expires-in", default="7d", show_default=True)]


def _with_lifetimes[F: Callable[..., Any]](fn: F) -> F:
    for option in reversed(LIFETIMES):
        fn = option(fn)
    return fn


@tuf_group.command("publish")
@REPO
@click.option("--bundles", "bundles_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The output of `reestr compile`: <participant>.json files.")
@SIGN
@_with_lifetimes
@_clean_errors
def publish_command(repo: Path, bundles_dir: Path, sign_specs: tuple[str, ...], timestamp_expires_in: str,
                    snapshot_expires_in: str, bins_expires_in: str) -> None:
    """Make the compiled bundles the repository's targets (online key: bins, snapshot, timestamp)."""
    bundles = read_bundles(bundles_dir)
    done = tuf_repo.publish(tuf_repo.Repository(repo), bundles, signers=_signers(sign_specs),
                            lifetimes=_lifetimes(timestamp=timestamp_expires_in, snapshot=snapshot_expires_in,
                                                 bins=bins_expires_in))
    published(repo, len(bundles), done)


def read_bundles(directory: Path) -> dict[str, bytes]:
    try:
        return {p.name.removesuffix(".json"): p.read_bytes() for p in sorted(directory.glob("*.json"))
                if p.name != "index.json"}
    except OSError as e:
        raise tuf_repo.TufRepoError(f"{directory}: {e.strerror}") from e


def published(repo: Path, count: int, done: tuf_repo.Published) -> None:
    expires = done.timestamp_expires.isoformat() if done.timestamp_expires else "-"
    click.echo(f"published {count} bundle(s) into {repo}: {len(done.changed_bins)} bin(s) changed, "
               f"snapshot v{done.snapshot_version}, timestamp v{done.timestamp_version} expires {expires}")


@tuf_group.command("timestamp")
@REPO
@SIGN
@click.option("--expires-in", default="1h", show_default=True)
@_clean_errors
def timestamp_command(repo: Path, sign_specs: tuple[str, ...], expires_in: str) -> None:
    """Re-sign the timestamp (a cron job well within its lifetime; nothing else changes)."""
    md = tuf_repo.resign_timestamp(tuf_repo.Repository(repo), signers=_signers(sign_specs),
                                   lifetimes=_lifetimes(timestamp=expires_in))
    click.echo(f"timestamp v{md.signed.version} expires {md.signed.expires.isoformat()}")


ROLE = click.option("--role", required=True, type=click.Choice([*tuf_repo.TOP_ROLES, "bins"]))


@tuf_group.command("add-key")
@REPO
@ROLE
@click.option("--key", "key_spec", required=True, metavar="KEY", help="The public key to add.")
@click.option("--threshold", type=click.IntRange(min=1), help="The role's new threshold.")
@SIGN
@_clean_errors
def add_key_command(repo: Path, role: str, key_spec: str, threshold: int | None, sign_specs: tuple[str, ...]) -> None:
    """Add a key to a role: a new root (old and new root thresholds sign) or, for bins, a new targets."""
    key = tuf_keys.load_public(key_spec)
    _change(repo, role, sign_specs, threshold, add=key)
    click.echo(f"{role}: added key {key.keyid}")


@tuf_group.command("revoke-key")
@REPO
@ROLE
@click.option("--keyid", required=True, help="The keyid to revoke (`reestr tuf status` lists them).")
@click.option("--threshold", type=click.IntRange(min=1), help="The role's new threshold.")
@SIGN
@_clean_errors
def revoke_key_command(repo: Path, role: str, keyid: str, threshold: int | None, sign_specs: tuple[str, ...]) -> None:
    """Revoke a key (lost or compromised): what it signs is refused by every sidecar after its next poll."""
    _change(repo, role, sign_specs, threshold, revoke=keyid)
    click.echo(f"{role}: revoked key {keyid}")


def _change(repo: Path, role: str, sign_specs: tuple[str, ...], threshold: int | None,
            add: Key | None = None, revoke: str | None = None) -> None:
    r = tuf_repo.Repository(repo)
    if role == "bins":
        md = tuf_repo.change_bins_keys(r, add=[add] if add else [], revoke=[revoke] if revoke else [],
                                       threshold=threshold, signers=_signers(sign_specs))
        click.echo(f"targets v{md.signed.version} written; the next publish re-signs every bin")
        return
    root = tuf_repo.change_root(r, add=[(role, add)] if add else [], revoke=[(role, revoke)] if revoke else [],
                                thresholds={role: threshold} if threshold else None, signers=_signers(sign_specs))
    click.echo(f"root v{root.signed.version} written"
               + ("; run publish or `reestr tuf timestamp` with the new key" if role in tuf_repo.ONLINE_ROLES else ""))


@tuf_group.command("rotate-root")
@REPO
@click.option("--new-key", "new_keys", multiple=True, required=True, metavar="KEY",
              help="The new root keys (the whole set; repeat).")
@click.option("--threshold", required=True, type=click.IntRange(min=1))
@SIGN
@click.option("--root-expires-in", default="365d", show_default=True)
@_clean_errors
def rotate_root_command(repo: Path, new_keys: tuple[str, ...], threshold: int, sign_specs: tuple[str, ...],
                        root_expires_in: str) -> None:
    """Replace the root keys: the new root is signed by a threshold of the old keys and of the new."""
    r = tuf_repo.Repository(repo)
    keys = [tuf_keys.load_public(s) for s in new_keys]
    old = list(r.root().signed.roles["root"].keyids)
    wanted = {k.keyid for k in keys}
    md = tuf_repo.change_root(r, add=[("root", k) for k in keys if k.keyid not in old],
                              revoke=[("root", k) for k in old if k not in wanted],
                              thresholds={"root": threshold}, signers=_signers(sign_specs),
                              lifetimes=_lifetimes(root=root_expires_in))
    click.echo(f"root v{md.signed.version}: {threshold} of {len(keys)} root keys")


@tuf_group.command("status")
@REPO
@_clean_errors
def status_command(repo: Path) -> None:
    """Versions, expiries, keys and thresholds of every role."""
    click.echo(json.dumps(tuf_repo.status(tuf_repo.Repository(repo)), indent=2))

"""`reestr`: validate the registry, explain changes, compile and verify signed policy bundles.

Commands are thin: they parse options, call one library function, print, and choose the exit code
(0 ok, 1 problems found or refused, 2 usage error). Library errors (CompilerError) become one
clear line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

import click

from compiler import bundle, report, schemas, trust
from compiler.errors import CompilerError
from compiler.validate import failed
from compiler.validate import validate as check_registry


def _clean_errors[F: Callable[..., Any]](fn: F) -> F:
    """Turn a CompilerError into `reestr: message` and exit code 2."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CompilerError as e:
            click.echo(f"reestr: {e}", err=True)
            sys.exit(2)
    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reestr")
def main() -> None:
    """reestr — government interagency e-service access as code.

    The registry (participants, services, access sheets) is YAML in git; reestr validates it,
    shows what a change does to access, and compiles one signed policy bundle per participant
    for the reestr-sidecar in front of each agency.
    """


FORMAT = click.option("--format", "fmt", type=click.Choice(report.FORMATS), default="text",
                      show_default=True, help="Output format: text, json, or GitHub annotations.")
REGISTRY = click.argument("path", type=click.Path(file_okay=False, path_type=Path), default="registry")


# --- codeowners (issue 4) -----------------------------------------------------------------------


@main.command("codeowners")
@REGISTRY
@click.option("--write", is_flag=True, help="Write .github/CODEOWNERS beside the registry folder.")
@click.option("--check", is_flag=True, help="Exit 1 with a diff when the committed file is stale.")
@_clean_errors
def codeowners_command(path: Path, write: bool, check: bool) -> None:
    """Render .github/CODEOWNERS from the participants' review teams (printed by default)."""
    from compiler.codeowners import diff, expected_for
    from compiler.registry import load_directory

    if write and check:
        raise click.UsageError("--write and --check exclude each other")
    registry = load_directory(path)
    if registry.not_loaded:  # a file that did not load is not a file without owners (no cascade)
        for failed_path in sorted(registry.not_loaded):
            click.echo(f"reestr: cannot render CODEOWNERS until {_shown(Path(failed_path))} loads: "
                       "run `reestr validate`", err=True)
        sys.exit(1)
    target, expected = expected_for(path, registry)
    if write:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(expected, encoding="utf-8")
        click.echo(f"wrote {_shown(target)}")
    elif check:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != expected:
            click.echo(diff(current, expected), nl=False)
            click.echo(f"{_shown(target)} is stale: run `reestr codeowners --write` and commit it",
                       err=True)
            sys.exit(1)
        click.echo(f"{_shown(target)} is up to date")
    else:
        click.echo(expected, nl=False)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _today(value: str | None) -> date:
    if not value:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a day as YYYY-MM-DD", param_hint="--date") from None


@main.command()
@REGISTRY
@FORMAT
@click.option("--strict", is_flag=True, help="Fail on warnings too (R5, expired certificates, ...).")
@click.option("--date", "on", metavar="YYYY-MM-DD", help="Check as of this day (default: today, UTC).")
@_clean_errors
def validate(path: Path, fmt: str, strict: bool, on: str | None) -> None:
    """Check the registry at PATH: YAML, JSON Schema shape, references and rules R1–R10.

    Every problem is reported at once as `path:line:col: CODE message`. Exit 0 when clean,
    1 when there are errors (or warnings with --strict), 2 on a usage error.
    """
    _, problems = check_registry(path, _today(on))
    click.echo(report.render(problems, fmt), nl=False)
    if fmt == "text":
        click.echo(f"{path}: {report.summary(problems)}", err=True)
    sys.exit(1 if failed(problems, strict) else 0)


@main.command()
@click.option("--out", "prefix", required=True, metavar="PREFIX",
              help="Write PREFIX.key (private, mode 0600) and PREFIX.pub.")
@_clean_errors
def keygen(prefix: str) -> None:
    """Generate an Ed25519 signing key pair for bundles (operator) or journals (sidecar)."""
    key_path, pub_path = trust.generate_keypair(prefix)
    click.echo(f"wrote {key_path} (keep it secret) and {pub_path}\nkeyid "
               f"{trust.keyid(trust.load_public_key(pub_path))}")


@main.command(name="compile")
@REGISTRY
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Private signing key (PEM); repeat to sign with several keys (threshold).")
@click.option("--signer-command", metavar="COMMAND",
              help="External signer: reads the canonical bytes on stdin, prints the hex Ed25519 "
                   "signature (HSM/KMS; the key never reaches this machine).")
@click.option("--signer-url", metavar="URL",
              help='External signing service: POST the canonical bytes, answer {"sig": "<hex>"} '
                   "(bearer token from REESTR_SIGNER_TOKEN).")
@click.option("--signer-public", type=click.Path(dir_okay=False),
              help="The public key (PEM) the external signer signs for; every signature is checked.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("dist/bundles"),
              show_default=True, help="Output directory: <participant>.json and index.json.")
@click.option("--serial", type=click.IntRange(min=0),
              help="Bundle serial. Default: the git commit count of the registry.")
@click.option("--expires-in", default="6h", show_default=True, metavar="DURATION",
              help="Validity from issue time: 90m, 6h, 2d. Freshness is a security property.")
@click.option("--issued-at", metavar="ISO-TIME",
              help="Issue time (default now). Same registry + serial + key + issue time ⇒ same bytes.")
@click.option("--tuf-repo", type=click.Path(file_okay=False, path_type=Path),
              help="Also publish the bundles into this TUF repository (`reestr tuf init` made it); "
                   "--key is then optional (format-1 signatures for sidecars not yet migrated).")
@click.option("--online-key", "online_keys", multiple=True, metavar="KEY",
              help="With --tuf-repo: the snapshot/timestamp/bins signer (key file or hsm:...).")
@click.option("--timestamp-expires-in", default="1h", show_default=True,
              help="With --tuf-repo: the timestamp's lifetime (bounds a withheld update).")
@_clean_errors
def compile_(path: Path, key_paths: tuple[str, ...], signer_command: str | None, signer_url: str | None,
             signer_public: str | None, out: Path, serial: int | None, expires_in: str,
             issued_at: str | None, tuf_repo: Path | None, online_keys: tuple[str, ...],
             timestamp_expires_in: str) -> None:
    """Compile the registry at PATH into one signed policy bundle per participant.

    Sign with --key files, or with an external signer (--signer-command or --signer-url, with
    --signer-public), or both for a threshold of several keys."""
    from compiler import signers

    keys: list[trust.Signer] = [trust.load_private_key(k) for k in key_paths]
    if signer_command and signer_url:
        raise click.UsageError("give one of --signer-command and --signer-url")
    if (signer_command or signer_url) and not signer_public:
        raise click.UsageError("an external signer needs --signer-public (the key it signs for)")
    if signer_public and not (signer_command or signer_url):
        raise click.UsageError("--signer-public goes with --signer-command or --signer-url")
    if signer_public:
        public = trust.load_public_key(signer_public)
        keys.append(signers.CommandSigner(signer_command, public) if signer_command
                    else signers.HttpSigner(signer_url or "", public))
    if not keys and tuf_repo is None:
        raise click.UsageError("give --key, or an external signer (--signer-command / --signer-url), "
                               "or --tuf-repo")
    if online_keys and tuf_repo is None:
        raise click.UsageError("--online-key goes with --tuf-repo")
    issued = trust.parse_time(issued_at) if issued_at else datetime.now(UTC).replace(microsecond=0)
    registry, problems = check_registry(path, issued.date())
    if failed(problems):
        click.echo(report.render(problems, "text"), nl=False, err=True)
        click.echo(f"reestr: {path}: {report.summary(problems)}; nothing compiled", err=True)
        sys.exit(1)  # problems found, as validate: not a usage error
    source = bundle.git_source(path)
    if serial is None and source is None:
        raise bundle.BundleError("the registry is not in git: give --serial")
    info = bundle.BuildInfo(serial=serial if serial is not None else source[0],  # type: ignore[index]
                            issued_at=issued, expires_at=issued + _duration(expires_in),
                            commit=source[1] if source else None)
    files = bundle.build(registry, info, keys)
    bundle.write(files, out)
    click.echo(f"compiled {len(files) - 1} bundle(s) serial {info.serial} into {out}/, "
               f"expires {trust.format_time(info.expires_at)}")
    if tuf_repo is not None:
        from compiler import cli_tuf, tuf_keys
        from compiler import tuf_repo as repository

        done = repository.publish(
            repository.Repository(tuf_repo), cli_tuf.read_bundles(out),
            signers=[tuf_keys.load_signer(s) for s in online_keys],
            lifetimes=repository.Lifetimes(timestamp=_duration(timestamp_expires_in)), now=issued)
        cli_tuf.published(tuf_repo, len(files) - 1, done)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trusted", "trusted_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted public key (PEM); repeat for several (format 1).")
@click.option("--tuf-repo", type=click.Path(file_okay=False, path_type=Path),
              help="Instead of --trusted: check FILE against this TUF repository's metadata "
                   "(needs --audience; the walk starts from --root).")
@click.option("--root", "root_path", type=click.Path(dir_okay=False, path_type=Path),
              help="With --tuf-repo: the trusted root.json (default: the repository's metadata/1.root.json).")
@click.option("--threshold", default=1, show_default=True, type=click.IntRange(min=1),
              help="How many distinct trusted keys must have signed.")
@click.option("--audience", help="Refuse a bundle issued for another participant.")
@click.option("--min-serial", type=click.IntRange(min=0), help="Refuse a serial below this (rollback).")
@click.option("--index", "is_index", is_flag=True, help="FILE is an index.json, not a bundle.")
@_clean_errors
def verify(file: Path, trusted_paths: tuple[str, ...], tuf_repo: Path | None, root_path: Path | None,
           threshold: int, audience: str | None, min_serial: int | None, is_index: bool) -> None:
    """Verify a signed bundle with the same function the sidecar uses. Exit 0 accept, 1 refuse."""
    if bool(trusted_paths) == (tuf_repo is not None):
        raise click.UsageError("give --trusted (format 1) or --tuf-repo")
    if tuf_repo is not None and (audience is None or is_index):
        raise click.UsageError("--tuf-repo checks a participant's bundle: give --audience (and no --index)")
    keys = [trust.load_public_key(k) for k in trusted_paths]
    try:
        data = file.read_bytes()
        root = (root_path or (tuf_repo / "metadata" / "1.root.json")).read_bytes() if tuf_repo else b""
    except OSError as e:
        raise CompilerError(f"{e.filename}: {e.strerror}") from e
    try:
        if tuf_repo is not None:
            from compiler.tuf_verify import verify_with_repository

            ok = verify_with_repository(data, tuf_repo, root, audience or "", min_serial=min_serial)
            click.echo(f"{file}: ok: audience {audience}, serial {ok.serial}, expires "
                       f"{trust.format_time(ok.expires_at)}, vouched for by the TUF repository {tuf_repo}")
            return
        ok = trust.verify_envelope(data, keys, threshold=threshold, audience=audience, min_serial=min_serial,
                                   expected_type=trust.INDEX_TYPE if is_index else trust.BUNDLE_TYPE)
    except trust.TrustError as e:
        click.echo(f"{file}: refused: {type(e).__name__}: {e}")
        sys.exit(1)
    click.echo(f"{file}: ok: audience {ok.signed.get('audience', '-')}, serial {ok.serial}, "
               f"expires {trust.format_time(ok.expires_at)}, signed by {len(ok.keyids)} trusted key(s)")


@main.command(name="schemas")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"),
              show_default=True)
@click.option("--write", "do_write", is_flag=True, help="Regenerate the files (default: check only).")
@_clean_errors
def schemas_(directory: Path, do_write: bool) -> None:
    """Check (or --write) the JSON Schemas generated from the document models."""
    if do_write:
        for written in schemas.write_all(directory):
            click.echo(f"wrote {written}")
        return
    stale = schemas.stale(directory)
    for name in stale:
        click.echo(f"{directory / name}: stale: run `reestr schemas --write`")
    sys.exit(1 if stale else 0)


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = int(text[:-1])
        seconds = value * units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise click.BadParameter(f"{text!r}: expected a number and a unit s, m, h or d",
                                 param_hint="--expires-in") from None
    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--expires-in")
    return timedelta(seconds=seconds)


# --- scaffolding (issue 4) ----------------------------------------------------------------------

SCAFFOLD_REGISTRY = click.option("--registry", "registry_dir", default="registry", show_default=True,
                                 type=click.Path(file_okay=False, path_type=Path),
                                 help="The registry folder.")


def _scaffold_report(outcome: Any) -> None:
    """Print what was written, the registry's problems, and what to commit; exit 1 on errors."""
    from compiler.errors import Severity

    for path in outcome.changed:
        verb = outcome.action if path == outcome.changed[0] else "created" if path in outcome.created else "updated"
        click.echo(f"{verb} {_shown(path)}")
    if outcome.problems:
        click.echo(report.render(outcome.problems, "text"), nl=False)
        click.echo(report.summary(outcome.problems))
    if any(p.severity is Severity.ERROR for p in outcome.problems):
        click.echo("fix the errors above, then commit", err=True)
        sys.exit(1)
    click.echo("\nNext, commit and open a pull request:")
    click.echo(f"  git add {' '.join(_shown(p) for p in outcome.changed)}")
    click.echo(f"  git commit -m {_quote(outcome.title)}")
    click.echo(f"  pull request title: {outcome.title}")


def _quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


@main.group("new")
def new_group() -> None:
    """Create a registry file: a participant or a service."""


@new_group.command("participant")
@click.argument("pid", metavar="ID")
@click.option("--name", required=True, help="Full official name.")
@click.option("--type", "type_", required=True,
              type=click.Choice(["federal", "regional", "municipal", "fund", "mfc", "organization",
                                 "operator"]))
@click.option("--contact-name", required=True)
@click.option("--contact-email", required=True)
@click.option("--review-team", required=True, help="GitHub team that speaks for it, e.g. @org/team.")
@click.option("--sidecar", help="Public https address of its sidecar.")
@click.option("--certificate", type=click.File("r", encoding="utf-8"), help="PEM certificate file.")
@click.option("--agreement-number", required=True, help="Number of the participation agreement (R10).")
@click.option("--agreement-signed", required=True, help="Date the agreement was signed, YYYY-MM-DD.")
@SCAFFOLD_REGISTRY
@_clean_errors
def new_participant_command(pid: str, name: str, type_: str, contact_name: str, contact_email: str,
                            review_team: str, sidecar: str | None, certificate: Any,
                            agreement_number: str | None, agreement_signed: str | None,
                            registry_dir: Path) -> None:
    """Register participant ID: writes participants/ID.yaml and checks the registry."""
    from compiler import scaffold

    _scaffold_report(scaffold.new_participant(
        registry_dir, pid=pid, name=name, type_=type_, contact_name=contact_name,
        contact_email=contact_email, review_team=review_team, sidecar=sidecar,
        certificate_pem=certificate.read() if certificate else None,
        agreement_number=agreement_number, agreement_signed=agreement_signed))


@new_group.command("service")
@click.argument("sid", metavar="SID")
@click.option("--name", required=True)
@click.option("--owner", required=True, help="Participant id of the owner.")
@click.option("--description", required=True)
@click.option("--protocol", required=True, type=click.Choice(["rest", "soap"]))
@click.option("--classification", required=True, type=click.Choice(["public", "restricted", "personal-data"]),
              help="state-secret is never processed (R6).")
@click.option("--legal-basis", required=True, help="The act under which the service provides the data.")
@click.option("--contact-name", required=True)
@click.option("--contact-email", required=True)
@click.option("--profile", type=click.Choice(["plain", "smev2", "smev3"]), default="plain", show_default=True,
              help="SOAP message profile: plain (the Body's element names the operation) or smev3 "
                   "(the payload's root element inside MessagePrimaryContent does).")
@click.option("--operation", "operations", multiple=True, required=True,
              help="NAME:METHOD:PATH (rest) or NAME:{namespace}Element[:SOAPACTION] (soap: the Body's "
                   "element, or with --profile smev3 the payload's root); repeat for each operation.")
@click.option("--request-schema", "request_schemas", multiple=True, metavar="[OPERATION=]FILE",
              help="Payload schema of requests (XSD for soap, JSON Schema for rest), copied with its "
                   "includes/imports into schemas/services/SID/; for every operation unless named.")
@click.option("--response-schema", "response_schemas", multiple=True, metavar="[OPERATION=]FILE",
              help="Payload schema of responses, as --request-schema.")
@SCAFFOLD_REGISTRY
@_clean_errors
def new_service_command(sid: str, name: str, owner: str, description: str, protocol: str,
                        classification: str, legal_basis: str, contact_name: str, contact_email: str,
                        profile: str, operations: tuple[str, ...], request_schemas: tuple[str, ...],
                        response_schemas: tuple[str, ...], registry_dir: Path) -> None:
    """Register service SID: writes services/SID.yaml (and its schemas) and checks the registry."""
    from compiler import scaffold

    _scaffold_report(scaffold.new_service(
        registry_dir, sid=sid, name=name, owner=owner, description=description, protocol=protocol,
        classification=classification, legal_basis=legal_basis, contact_name=contact_name,
        contact_email=contact_email, operations=list(operations), profile=profile,
        request_schemas=list(request_schemas), response_schemas=list(response_schemas)))


@main.command("request-access")
@click.option("--consumer", required=True, help="Participant id that will call the service.")
@click.option("--service", "sid", required=True, help="SID of the service.")
@click.option("--operations", help="Comma-separated operations (access by operations; preferred, R5).")
@click.option("--full", is_flag=True, help="Full access (all operations).")
@click.option("--legal-basis", required=True, help="The act that gives the consumer this power (R4).")
@click.option("--purpose", required=True)
@click.option("--justification", help="Why full access is needed (R5, personal data).")
@click.option("--valid-until", help="Last day of access, YYYY-MM-DD.")
@SCAFFOLD_REGISTRY
@_clean_errors
def request_access_command(consumer: str, sid: str, operations: str | None, full: bool, legal_basis: str,
                           purpose: str, justification: str | None, valid_until: str | None,
                           registry_dir: Path) -> None:
    """Add or update a grant in the consumer's access sheet, keeping its comments and layout."""
    from compiler import scaffold

    if full == (operations is not None):
        raise click.UsageError("give exactly one of --operations a,b and --full")
    ops = None if full else [op.strip() for op in (operations or "").split(",") if op.strip()]
    _scaffold_report(scaffold.request_access(
        registry_dir, consumer=consumer, sid=sid, operations=ops, legal_basis=legal_basis,
        purpose=purpose, justification=justification, valid_until=valid_until))


# --- review flow: plan, breaking, explain (issue 4) ---------------------------------------------

REPO = click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                    show_default=True, help="The git repository holding the registry.")
REGISTRY_DIR = click.option("--registry-dir", default="registry", show_default=True,
                            help="The registry folder, relative to the repository.")
ON_DATE = click.option("--date", "on", metavar="YYYY-MM-DD",
                       help="Compare access in force on this day (default: today, UTC).")


@main.command()
@click.option("--base", required=True, metavar="REV", help="The revision the change starts from.")
@click.option("--head", metavar="REV", help="The revision with the change (default: working tree).")
@REPO
@REGISTRY_DIR
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="markdown is the pull-request comment; json is stable.")
@ON_DATE
@_clean_errors
def plan(base: str, head: str | None, repo: Path, registry_dir: str, fmt: str, on: str | None) -> None:
    """Show what a change does to access: grants, services, participants, approvers.

    Compares the merge base of BASE and HEAD with HEAD, so changes made on BASE since the branch
    left it are not shown. Exit 0; 1 when a document does not load
    (the plan cannot judge the change until it does)."""
    from compiler import plan_render
    from compiler.plan import plan as make_plan
    from compiler.revisions import load_registry, merge_base

    today = _today(on)
    start = merge_base(repo, base, head)
    old = load_registry(repo, start, registry_dir)
    new = load_registry(repo, head, registry_dir)
    result = make_plan(old, new, today)
    click.echo(plan_render.render(result, fmt, base, head or "working tree", start), nl=False)
    sys.exit(1 if result.blocked else 0)


@main.command()
@click.option("--against", required=True, metavar="REV", help="The base revision (e.g. origin/main).")
@click.option("--head", metavar="REV", help="The revision to check (default: working tree).")
@REPO
@REGISTRY_DIR
@FORMAT
@ON_DATE
@_clean_errors
def breaking(against: str, head: str | None, repo: Path, registry_dir: str, fmt: str,
             on: str | None) -> None:
    """Find changes that break consumers without notice (R7, R8, removals, payload schemas).

    Exit 1 when something breaks, 0 when nothing does, 2 on a usage error.
    """
    from compiler.breaking import breaking as find_breaking
    from compiler.history import announcements
    from compiler.revisions import load_registry, read_file
    from compiler.unloaded import reconcile

    today = _today(on)
    both = reconcile(load_registry(repo, against, registry_dir), load_registry(repo, head, registry_dir))
    revs = {"base": against, "head": head}
    problems = find_breaking(both.base, both.head, today,
                             lambda side, path: read_file(repo, revs[side], path),
                             announcements(repo, against, registry_dir))
    click.echo(report.render(both.problems() + problems, fmt), nl=False)
    if fmt == "text":
        click.echo(f"breaking changes against {against}: {len(problems)}"
                   + (f"; cannot judge until {len(both.blocked)} document(s) load" if both.blocked else ""),
                   err=True)
    sys.exit(1 if problems or both.blocked else 0)


@main.command()
@click.argument("consumer")
@click.argument("sid")
@click.argument("operation", required=False)
@click.option("--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("registry"), show_default=True, help="The registry folder.")
@ON_DATE
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_clean_errors
def explain(consumer: str, sid: str, operation: str | None, registry_dir: Path, on: str | None,
            fmt: str) -> None:
    """Say whether CONSUMER may call SID [OPERATION], and why. Exit 0 allowed, 1 denied."""
    from compiler import explain as explaining
    from compiler.registry import load_directory

    registry = load_directory(registry_dir)
    if registry.problems:
        click.echo(f"reestr: warning: {len(registry.problems)} problem(s) while loading "
                   f"{registry_dir}; run `reestr validate`", err=True)
    decision, data = explaining.explain(registry, consumer, sid, operation, _today(on))
    click.echo(explaining.render(data, fmt), nl=False)
    sys.exit(0 if decision.allowed else 1)


# --- catalog site (issue 4) ---------------------------------------------------------------------


@main.command("site")
@REGISTRY
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write index.html, services/, participants/ and assets/ into.")
@click.option("--on", "on", metavar="YYYY-MM-DD", help="Show access as in force on this day (default: today).")
@_clean_errors
def site_command(path: Path, out: Path, on: str | None) -> None:
    """Write the static catalog of the registry (works from the file system, no server)."""
    from datetime import date

    from compiler.registry import load_directory
    from compiler.site import build_site

    try:
        day = date.fromisoformat(on) if on else date.today()
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD", param_hint="--on") from None
    registry = load_directory(path)
    if registry.problems:
        click.echo(f"reestr: warning: {len(registry.problems)} problem(s) while loading {path}; "
                   "documents that failed to load are not in the catalog (run `reestr validate`)", err=True)
    from compiler.bundle import git_source

    source = git_source(path)
    files = build_site(registry, out, day, source[1] if source else None)
    click.echo(f"wrote {len(files)} files; open {_shown(out / 'index.html')}")


# The review-and-audit commands live beside this module; importing registers them on `main`.
from compiler import cli_audit, cli_tuf  # noqa: E402,F401

"""`reestr approvals`, `reestr archive`, `reestr audit`: the review GitHub enforces and the audit
chain from a journal record to its approvals (issue 11). Registered on `compiler.cli.main`.

Thin, as every command: parse options, call one library function (compiler.approvals,
compiler.bundle_archive, compiler.audit), print, choose the exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from compiler.cli import REPO, _clean_errors, _shown, main
from compiler.errors import CompilerError

# --- approvals (issue 11) -----------------------------------------------------------------------

JSON_FILE = click.Path(dir_okay=False, path_type=Path)


def _json_input(path: Path, what: str) -> Any:
    import json

    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CompilerError(f"{what} {path}: {e.strerror}") from e
    if len(raw) > 50_000_000:
        raise CompilerError(f"{what} {path}: larger than 50 MB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CompilerError(f"{what} {path}: not JSON ({type(e).__name__})") from None


@main.command("approvals")
@click.option("--plan", "plan_path", required=True, type=JSON_FILE, help="`reestr plan --format json` output.")
@click.option("--reviews", "reviews_path", required=True, type=JSON_FILE,
              help="GitHub's GET /repos/{owner}/{repo}/pulls/{n}/reviews (all pages, one list).")
@click.option("--members", "members_path", required=True, type=JSON_FILE,
              help='{"@org/team": [login, ...]} from GET /orgs/{org}/teams/{team}/members.')
@click.option("--head", required=True, metavar="SHA", help="The pull request's head commit.")
@_clean_errors
def approvals_command(plan_path: Path, reviews_path: Path, members_path: Path, head: str) -> None:
    """Say whether every approver the plan requires approved the head commit. Exit 0 yes, 1 no.

    Only each user's latest deciding review counts (APPROVED, CHANGES_REQUESTED, DISMISSED), and
    an approval counts only on the head commit: one given before a new push is stale.
    """
    from compiler import approvals

    verdicts, blocked = approvals.check(_json_input(plan_path, "plan"), _json_input(reviews_path, "reviews"),
                                        _json_input(members_path, "members"), head)
    click.echo(approvals.render(verdicts, blocked, head), nl=False)
    sys.exit(0 if not blocked and all(v.ok for v in verdicts) else 1)


# --- bundle archive and audit (issue 11) --------------------------------------------------------


@main.command("archive")
@click.option("--bundles", type=click.Path(file_okay=False, path_type=Path), default=Path("dist/bundles"),
              show_default=True, help="The compiled bundles (index.json names them).")
@click.option("--archive", "archive_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The archive folder: <serial>/ is added, never overwritten.")
@click.option("--pr", type=click.IntRange(min=1), help="The pull request that merged the commit.")
@click.option("--plan", "plan_path", type=JSON_FILE, help="Its plan (`reestr plan --format json`).")
@click.option("--reviews", "reviews_path", type=JSON_FILE, help="Its reviews (GitHub's reviews endpoint).")
@click.option("--members", "members_path", type=JSON_FILE, help="Review team members, as for approvals.")
@click.option("--head", metavar="SHA", help="The pull request's head commit the approvals are for.")
@click.option("--triggered-by", metavar="LOGIN", help="Who triggered the signing (GITHUB_ACTOR).")
@_clean_errors
def archive_command(bundles: Path, archive_dir: Path, pr: int | None, plan_path: Path | None,
                    reviews_path: Path | None, members_path: Path | None, head: str | None,
                    triggered_by: str | None) -> None:
    """Archive the bundles by serial with their audit record (commit, PR, plan, approvals)."""
    from compiler import approvals, bundle_archive

    plan = _json_input(plan_path, "plan") if plan_path else None
    approved = None
    if reviews_path or members_path or head:
        if not (plan_path and reviews_path and members_path and head):
            raise click.UsageError("--reviews, --members and --head go together, with --plan")
        reviews = _json_input(reviews_path, "reviews")
        verdicts, _ = approvals.check(plan, reviews, _json_input(members_path, "members"), head)
        latest = approvals.latest(approvals.parse_reviews(reviews))
        approved = [{"participant": v.participant, "team": v.team, "roles": list(v.roles),
                     "reviews": [{"login": login, "state": latest[login].state,
                                  "commit_id": latest[login].commit_id,
                                  "submitted_at": latest[login].submitted_at.isoformat()}
                                 for login in v.approved_by]} for v in verdicts]
    target = bundle_archive.write(bundles, archive_dir, pr=pr, plan=plan, approvals=approved,
                                  triggered_by=triggered_by)
    click.echo(f"archived {_shown(target)}")


@main.command("audit")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sidecar's SQLite journal.")
@click.option("--id", "record_id", type=click.IntRange(min=1), help="The record to explain.")
@click.option("--grant", nargs=2, metavar="CONSUMER SID", help="Who used this grant, how often.")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The bundle archive (reestr archive; needed with --id).")
@REPO
@click.option("--since", metavar="ISO-TIME", help="With --grant: from this time (inclusive).")
@click.option("--until", metavar="ISO-TIME", help="With --grant: up to this time (exclusive).")
@_clean_errors
def audit_command(journal: Path, record_id: int | None, grant: tuple[str, str] | None,
                  archive_dir: Path | None, repo: Path, since: str | None, until: str | None) -> None:
    """From a journal record to its grant, bundle, commit, pull request and approvals (--id),
    or who used a grant over a period (--grant CONSUMER SID). Exit 0, 1 when the chain breaks."""
    from compiler import audit

    if (record_id is None) == (grant is None):
        raise click.UsageError("give exactly one of --id N and --grant CONSUMER SID")
    if grant is not None:
        click.echo("\n".join(audit.grant_usage(journal, grant[0], grant[1], since, until)))
        return
    if archive_dir is None:
        raise click.UsageError("--id needs --archive DIR (the bundles by serial)")
    record = audit.find_record(journal, record_id or 0)
    try:
        lines = audit.chain(record, archive_dir, repo)
    except CompilerError as e:
        click.echo(f"reestr: the chain breaks: {e}", err=True)
        sys.exit(1)
    click.echo("\n".join(lines))

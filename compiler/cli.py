"""`reestr`: validate the registry, explain changes, compile and verify signed policy bundles.

Commands are thin: they parse options, call one library function, print, and choose the exit code
(0 ok, 1 problems found or refused, 2 usage error). Library errors (CompilerError) become one
clear line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from compiler import report
from compiler.errors import CompilerError

F = TypeVar("F", bound=Callable[..., Any])


def _clean_errors(fn: F) -> F:
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
    if registry.problems:
        click.echo(f"reestr: warning: {len(registry.problems)} problem(s) while loading {path}; "
                   "documents that failed to load are missing here (run `reestr validate`)", err=True)
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

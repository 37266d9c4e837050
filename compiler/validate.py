"""One validation run: load the registry, run the domain rules, and check what is generated from it.

Used by `reestr validate` and, before anything is signed, by `reestr compile`: a registry with
errors is never compiled.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from compiler import codeowners, rules, schemas
from compiler.errors import Problem, Severity
from compiler.registry import Registry, load_directory


def validate(root: Path, today: date) -> tuple[Registry, list[Problem]]:
    """The loaded registry and every problem in it; generated files are checked when present."""
    registry = load_directory(root)
    repo_root = root.resolve().parent
    problems = [*registry.problems, *rules.check(registry, today, repo_root)]
    schema_dir = repo_root / "schemas"
    if schema_dir.is_dir():
        problems += [Problem(str(schema_dir / name), 1, 1, "SCHEMA-stale",
                             f"{name} differs from the models: run `reestr schemas --write`")
                     for name in schemas.stale(schema_dir)]
    # A stale CODEOWNERS asks the wrong approvers; while a document does not load its owners are
    # unknown, and "stale" would advise deleting its line (no cascade: issue 11, finding 6).
    if (repo_root / ".github").is_dir() and not registry.not_loaded:
        problems += codeowners.codeowners_problems(registry, repo_root, root.resolve())
    return registry, sorted(problems)


def failed(problems: list[Problem], strict: bool = False) -> bool:
    """Errors always fail; warnings (R5, expired certificates...) only with --strict."""
    return any(strict or p.severity is Severity.ERROR for p in problems)

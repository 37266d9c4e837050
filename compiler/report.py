"""Problems as text, JSON or GitHub workflow annotations. Formatting only: no checks here."""

from __future__ import annotations

import json
from collections.abc import Sequence

from compiler.errors import Problem, Severity

FORMATS = ("text", "json", "github")


def render(problems: Sequence[Problem], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"problems": [p.as_dict() for p in problems],
                           "errors": sum(p.severity is Severity.ERROR for p in problems),
                           "warnings": sum(p.severity is Severity.WARNING for p in problems)},
                          ensure_ascii=False, indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(p) + "\n" for p in problems)
    return "".join(_text(p) + "\n" for p in problems)


def _text(p: Problem) -> str:
    tag = "" if p.severity is Severity.ERROR else " (warning)"
    return f"{p.path}:{p.line}:{p.col}: {p.code}{tag} {p.message}"


def _github(p: Problem) -> str:
    # Workflow command: ::error file=...,line=...,col=...,title=CODE::message (escaped per docs).
    level = "error" if p.severity is Severity.ERROR else "warning"
    message = p.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    path = p.path.replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
    return f"::{level} file={path},line={p.line},col={p.col},title={p.code}::{message}"


def summary(problems: Sequence[Problem]) -> str:
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    return f"{errors} error(s), {warnings} warning(s)"

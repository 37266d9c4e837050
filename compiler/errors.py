"""The compiler's error root and the Problem record every check reports.

Checks never raise for a problem in the registry: they return Problems, so one run reports every
problem at once. Exceptions (subclasses of CompilerError) are for conditions that stop a command:
an unreadable key, a bundle that fails verification, a path that is not a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class CompilerError(Exception):
    """Root of every error the compiler raises on purpose."""


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about the registry: where it is, its stable code, and what is wrong."""

    path: str
    line: int
    col: int
    code: str
    message: str
    severity: Severity = field(default=Severity.ERROR, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
        }


EXCERPT_CHARS = 24


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A document value as problems may show it: at most `limit` characters, controls and other
    unprintable characters escaped, quoted. Why: a file that is not what it should be (a private
    key linked or copied into registry/) must not be printed by `validate` or `compile` in CI logs
    (issue 10, finding 13); the first characters are enough to recognise a value."""
    text = value if isinstance(value, str) else repr(value)
    short = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return f"'{short}…'" if len(text) > limit else f"'{short}'"

"""REST path templates: the one grammar both `validate` and the sidecar read.

A template is `/`-separated segments; a segment is literal text, or at most one `{name}` with
optional literal text before and after it (`/{id}`, `/v{version}`, `/{id}.json`). A parameter
matches one or more characters of one segment, never a `/`.

Why at most one parameter per segment: `/{series}-{number}` as a regex (`[^/]+-[^/]+`) backtracks,
quadratic in the segment's length — one 100 KB request froze the sidecar (issue 10, finding 1).
With one parameter a segment matches by `startswith` + `endswith` + a length check, so matching a
request is linear in its length; `validate` refuses anything else (OP-path-template) and the
sidecar refuses a bundle that carries one (defence in depth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Segment:
    """One template segment: `prefix` alone when literal, else prefix{param}suffix."""

    prefix: str
    param: str | None = None
    suffix: str = ""

    def matches(self, text: str) -> bool:
        """Does one request segment (already percent-decoded) match? Linear in `text`."""
        if self.param is None:
            return text == self.prefix
        return (len(text) > len(self.prefix) + len(self.suffix) and text.startswith(self.prefix)
                and text.endswith(self.suffix))


class TemplateError(ValueError):
    """A path template the sidecar cannot match in linear time, or that is malformed."""


def parse_template(template: str) -> tuple[Segment, ...]:
    """The segments of `/a/{x}/b`; TemplateError names what is wrong (no request text in it)."""
    if not template.startswith("/"):
        raise TemplateError("a path template starts with /")
    segments = []
    for raw in template[1:].split("/"):
        opens, closes = raw.count("{"), raw.count("}")
        if opens == 0 and closes == 0:
            segments.append(Segment(raw))
            continue
        if opens != 1 or closes != 1:
            raise TemplateError("at most one {parameter} per path segment: several cannot be "
                                "matched in linear time (split them with /)")
        prefix, _, rest = raw.partition("{")
        name, _, suffix = rest.partition("}")
        if "}" in prefix or not _NAME.fullmatch(name):
            raise TemplateError("a parameter is {name}: a letter or _, then letters, digits or _")
        segments.append(Segment(prefix, name, suffix))
    return tuple(segments)


def template_problem(template: str) -> str | None:
    """None when the template is usable, else why not (for validation messages)."""
    try:
        parse_template(template)
    except TemplateError as e:
        return str(e)
    return None

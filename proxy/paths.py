"""Request targets: one decoding pass, the ambiguity check after it, and the one form forwarded.

Why: an upstream must read a path exactly as the sidecar decided on it. The sidecar percent-decodes
each segment once and refuses (malformed-request) whatever a server could read differently —
issue 10, findings 4 and 5:

- any byte outside visible ASCII in the target (spaces, tabs, CR/LF, controls, raw non-ASCII):
  an HTTP/2 `:path` with a space would become another HTTP/1.1 request line upstream;
- `#`, `\\`, `;` (`..;/` is a dot segment to Tomcat-style servers), empty segments (`//`);
- a `%` not followed by two hex digits, and decoded bytes that are not UTF-8;
- after decoding: `/ \\ ? # ; %` (so `%2f`, `%3F`, `%23` and double encoding `%252e` are refused),
  controls, whitespace, and the dot segments `.` and `..`.

What passes is forwarded in a canonical origin form (`canonical`): the decoded segments encoded
again with one fixed rule, and the query as it came. So `/%53ID/x` reaches the upstream as
`/SID/x`, the absolute form `http://host/SID/x` as `/SID/x` (finding 3), and what the journal
records is what the upstream receives. Linear in the length of the target; no regex backtracking.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes

from compiler.templates import Segment, parse_template

_HEX = frozenset("0123456789abcdefABCDEF")
_RAW_REFUSED = frozenset("#\\;")
_DECODED_REFUSED = frozenset("/\\?#;%")
_PCHAR_SAFE = "-._~!$&'()*+,=:@"  # RFC 3986 pchar without pct-encoded: left as they are
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/" + _PCHAR_SAFE)


class Target(NamedTuple):
    """A request target that passed: its decoded segments and the form forwarded upstream (a
    NamedTuple: built once per request, and cheaper to build than a frozen dataclass)."""

    segments: tuple[str, ...]  # decoded; the first is the SID
    query: str | None  # as received (visible ASCII), without the `?`
    canonical: str  # what the upstream receives: segments encoded with one rule, the query as is

    @property
    def sid(self) -> str:
        return self.segments[0]

    @property
    def rest(self) -> tuple[str, ...]:
        """The segments after the SID; `/SID` and `/SID/` both address the root `("",)`."""
        return self.segments[1:] or ("",)


def parse_target(target: str) -> Target | None:
    """The target of `METHOD target HTTP/x`, or None if any server could read it differently."""
    # visible ASCII only: isascii + isprintable (no controls, no DEL) + no space, at C speed
    if not target.startswith("/") or not target.isascii() or not target.isprintable() or " " in target:
        return None
    path, sep, query = target.partition("?")
    if "#" in query or any(c in _RAW_REFUSED for c in path):
        return None
    raw_segments = path[1:].split("/")
    plain = "%" not in path and _PLAIN.issuperset(path)  # the usual case: already canonical
    segments = []
    for i, raw in enumerate(raw_segments):
        if raw == "" and i < len(raw_segments) - 1:
            return None  # `//`: some servers merge slashes, some do not
        decoded = raw if plain or "%" not in raw else _decode(raw)
        if decoded is None or decoded in (".", ".."):
            return None
        segments.append(decoded)
    canonical = path if plain else "/" + "/".join(quote(s, safe=_PCHAR_SAFE) for s in segments)
    return Target(tuple(segments), query if sep else None,
                  canonical if not sep else f"{canonical}?{query}")


def _decode(raw: str) -> str | None:
    """One strict percent-decoding pass of one segment; None if malformed or if the result holds
    a character another decoding pass (or a path parser) would give a meaning."""
    i = raw.find("%")
    while i != -1:
        if i + 3 > len(raw) or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
            return None
        i = raw.find("%", i + 3)
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(c in _DECODED_REFUSED or c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0
           for c in text):
        return None
    return text


def compile_template(template: str) -> tuple[Segment, ...]:
    """The segments of a bundle's REST path template (relative to `/{SID}`); ValueError if the
    sidecar could not match it in linear time."""
    return parse_template(template)


def template_matches(template: tuple[Segment, ...], rest: tuple[str, ...]) -> bool:
    """Do the decoded segments after the SID match the template? Linear in the request."""
    return len(template) == len(rest) and all(
        seg.matches(text) for seg, text in zip(template, rest, strict=True))

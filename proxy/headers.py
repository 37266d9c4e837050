"""Header rules applied before anything is decided, forwarded or journaled at length.

Pure functions over the raw header fields (no mitmproxy import). Why each rule (issue 10):

- sizes (findings 1, 2): a request target over `max_target_bytes` is answered 414, a header block
  over `max_header_bytes` or `max_headers` fields 431 — before the path is matched or journaled;
- obs-fold and control characters (finding 8): mitmproxy joins a folded line into the value with
  CR LF; a value holding CR, LF, NUL or another control byte is refused, never forwarded verbatim;
- method and URL overrides (finding 6): `X-HTTP-Method-Override` and kin make a framework run
  another method than the one decided, `X-Original-URL` / `X-Rewrite-URL` another path: refused;
- the sidecar's own namespace (finding 7): names are compared after lower-casing and folding `_`
  to `-`, the way WSGI/CGI servers read them (`Reestr_Consumer` is `HTTP_REESTR_CONSUMER`), and
  every caller-sent `reestr-*` header is dropped; the sidecar sets its own afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

NAMESPACE = "reestr-"
OVERRIDES = frozenset({
    "x-http-method-override", "x-http-method", "x-method-override", "x-original-method",
    "x-original-url", "x-rewrite-url", "x-override-url",
})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class HeadLimits:
    """Caps on a request head; the config's `limits` section (docs/sidecar.md)."""

    max_target_bytes: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100


def fold(name: str | bytes) -> str:
    """A header name as a CGI/WSGI server would compare it: lower case, `_` read as `-`."""
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.lower().replace("_", "-")


def check_head(target: bytes, fields: Sequence[tuple[bytes, bytes]], limits: HeadLimits) -> str | None:
    """The reason code for refusing a request head, or None. Linear in the size of the head."""
    if len(target) > limits.max_target_bytes:
        return "target-too-long"
    if len(fields) > limits.max_headers or \
            sum(len(k) + len(v) + 4 for k, v in fields) > limits.max_header_bytes:
        return "headers-too-large"
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            return "malformed-request"  # obs-fold (CR LF inside a value), controls, bad names
        if fold(name) in OVERRIDES:
            return "header-refused"
    return None


def namespaced(names: Sequence[str | bytes]) -> list[str]:
    """The caller-sent names in the sidecar's namespace (after folding), to be removed."""
    return [n.decode("latin-1") if isinstance(n, bytes) else n for n in names if fold(n).startswith(NAMESPACE)]

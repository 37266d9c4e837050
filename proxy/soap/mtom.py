"""MTOM / XOP (`multipart/related`): the root part is the SOAP envelope, binary parts hang off it.

`split` takes the HTTP body apart by the boundary of its Content-Type; `resolve` replaces each
`xop:Include href="cid:..."` in the parsed root part with the base64 text of the part it names, so
payload validation and signature digests see the message as XOP defines it (the infoset with the
binary inlined). The bytes forwarded upstream are the caller's own, unchanged.

Refused (MessageError, `malformed-request`): no boundary, more than `MAX_PARTS` parts, a part
without headers, two parts with one Content-ID, a root part that is not `application/xop+xml`
with a SOAP `type` in `start-info`/`type`, an Include that names no part or a part already used,
an Include that is not the only content of its parent, and a part that no Include names (the
upstream might read what reestr did not check).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.envelope import media_type
from proxy.soap.errors import MessageError

XOP_NS = "http://www.w3.org/2004/08/xop/include"
XOP_INCLUDE = f"{{{XOP_NS}}}Include"
MAX_PARTS = 32


@dataclass(frozen=True, slots=True)
class Multipart:
    """The root part's bytes and SOAP media type, and the other parts by Content-ID."""

    root: bytes
    root_media_type: str
    parts: dict[str, bytes]


def split(body: bytes, params: dict[str, str]) -> Multipart:
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise MessageError("multipart/related without a usable boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(b"\r\n" + delimiter)
    first = sections[0]
    if first.startswith(delimiter):
        sections[0] = first[len(delimiter):]
    else:
        raise MessageError("multipart body does not start with its boundary")
    if not sections[-1].startswith(b"--"):
        raise MessageError("multipart body without its closing boundary")
    raw_parts = sections[:-1]
    if not raw_parts or len(raw_parts) > MAX_PARTS:
        raise MessageError(f"multipart body with {len(raw_parts)} parts (1..{MAX_PARTS} allowed)")
    parsed: list[tuple[dict[str, str], bytes]] = []
    for raw in raw_parts:
        if not raw.startswith(b"\r\n"):
            raise MessageError("multipart boundary not followed by a line break")
        head, sep, content = raw[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MessageError("multipart part without headers")
        parsed.append((_headers(head), content))
    by_id: dict[str, tuple[dict[str, str], bytes]] = {}
    for headers, content in parsed:
        cid = headers.get("content-id", "").strip().removeprefix("<").removesuffix(">")
        if cid:
            if cid in by_id:
                raise MessageError(f"two multipart parts with Content-ID {cid[:60]!r}")
            by_id[cid] = (headers, content)
    start = params.get("start", "").strip().removeprefix("<").removesuffix(">")
    if start:
        if start not in by_id:
            raise MessageError("the multipart start part is missing")
        root_headers, root_content = by_id.pop(start)
    else:
        root_headers, root_content = parsed[0]
        first_cid = root_headers.get("content-id", "").strip().removeprefix("<").removesuffix(">")
        by_id.pop(first_cid, None)
    if len(by_id) != len(parsed) - 1:
        raise MessageError("every part besides the root needs its own Content-ID")
    return Multipart(root=root_content, root_media_type=_root_media_type(root_headers, params),
                     parts={cid: _decoded(h, c) for cid, (h, c) in by_id.items()})


def resolve(root: etree._Element, parts: dict[str, bytes]) -> None:
    """Inline every part at its `xop:Include`, in the parse tree only; each part exactly once."""
    used: set[str] = set()
    for include in list(root.iter(XOP_INCLUDE)):
        href = include.get("href", "")
        cid = unquote(href.removeprefix("cid:"), errors="strict") if href.startswith("cid:") else ""
        if cid not in parts or cid in used:
            raise MessageError("xop:Include names no part, or a part already included")
        parent = include.getparent()
        if parent is None or len(parent) != 1 or (parent.text or "").strip() or (include.tail or "").strip():
            raise MessageError("xop:Include must be the only content of its element")
        used.add(cid)
        parent.remove(include)
        parent.text = base64.b64encode(parts[cid]).decode("ascii")
    if used != parts.keys():
        raise MessageError(f"{len(parts) - len(used)} multipart part(s) not referenced by xop:Include")


def _headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise MessageError("malformed multipart part header")
        key = name.decode("latin-1").lower()
        if key in out:
            raise MessageError(f"repeated multipart part header {key}")
        out[key] = value.decode("latin-1").strip()
    return out


def _root_media_type(headers: dict[str, str], params: dict[str, str]) -> str:
    """The SOAP media type carried by the root part (`application/xop+xml; type=...`)."""
    mtype, part_params = media_type(headers.get("content-type"))
    if mtype != "application/xop+xml" or params.get("type", "application/xop+xml").lower() != mtype:
        raise MessageError("the MTOM root part must be application/xop+xml")
    inner = (part_params.get("type") or params.get("start-info") or "").lower()
    return media_type(inner)[0]


def _decoded(headers: dict[str, str], content: bytes) -> bytes:
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding in ("binary", "8bit", "7bit"):
        return content
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(content.split()), validate=True)
        except ValueError as e:
            raise MessageError("a base64 multipart part does not decode") from e
    raise MessageError(f"multipart transfer encoding {encoding[:30]!r} is not supported")


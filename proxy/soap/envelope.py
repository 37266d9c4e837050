"""One safe parse of a SOAP envelope, and the checks that make its meaning unambiguous.

A SOAP message is read exactly once, here, by lxml with entities, DTDs and the network off
(docs/sidecar.md, "Routing"). What is refused, whatever the service's operations say:

- anything that is not well-formed XML, or nests deeper than libxml2's limit of 256 levels;
- a DOCTYPE (SOAP forbids it; an internal subset is how XXE and billion laughs arrive); without
  one no entity can be declared, and libxml2 refuses a reference to an undeclared one;
- a root other than a SOAP 1.1 / 1.2 `Envelope`; an Envelope whose element children are not
  exactly `[Header] Body` in the envelope's own namespace; a Body without exactly one element
  child, or with text beside it;
- a version the HTTP framing contradicts: SOAP 1.1 comes as `text/xml`, 1.2 as
  `application/soap+xml` (directly or as the root part of MTOM);
- more than one `SOAPAction` header, or in SOAP 1.2 a `SOAPAction` header that disagrees with
  the `action` parameter of `Content-Type`.

The action (`SOAPAction` for 1.1, `action=` for 1.2, quotes removed) is returned, not trusted:
the operation is identified by content, and the action must name the same one (proxy.policy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.errors import MessageError

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
VERSIONS: dict[str, Literal["1.1", "1.2"]] = {SOAP11_ENV: "1.1", SOAP12_ENV: "1.2"}
MEDIA_TYPES = {"1.1": "text/xml", "1.2": "application/soap+xml"}
_HEADER_BODY = {ns: (f"{{{ns}}}Header", f"{{{ns}}}Body") for ns in VERSIONS}

# The one parser for untrusted XML (DESIGN §7a): no entity expansion (XXE, billion laughs), no
# DTD loading, no network, libxml2's default limits (huge_tree off: depth 256, text node 10 MB).
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                              huge_tree=False, remove_comments=False)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed, checked SOAP envelope. `content` is the Body's one element child."""

    version: Literal["1.1", "1.2"]
    root: etree._Element
    header: etree._Element | None
    body: etree._Element
    content: etree._Element
    action: str | None


_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*')


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`type/subtype` in lower case and the parameters (RFC 9110 §8.3.1) of a Content-Type value.
    A parameter that does not parse, or one given twice, makes the whole value unreadable ("")."""
    value = content_type or ""
    mtype, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    position = 0
    rest = sep + rest
    while position < len(rest):
        m = _PARAM.match(rest, position)
        if m is None:
            return "", {}
        name, raw = m[1].lower(), m[2]
        if name in params:
            return "", {}
        params[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        position = m.end()
    return mtype.strip().lower(), params


def parse_xml(data: bytes) -> etree._Element:
    """The root element of `data`, parsed safely; MessageError for anything unsafe or broken."""
    try:
        root = etree.fromstring(data, parser=SAFE_PARSER)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise MessageError(f"not well-formed XML: {e}") from e
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MessageError("DOCTYPE is not allowed in SOAP")
    return root


def read_envelope(root: etree._Element, xml_media_type: str, action_param: str | None,
                  soap_actions: list[str]) -> Envelope:
    """Check the parsed root as a SOAP envelope framed by `xml_media_type` (the HTTP body's, or
    the MTOM root part's) and the action the HTTP headers declare. One pass over the Envelope's
    children and one over the Body's (the hot path of every SOAP call)."""
    ns, brace, local = root.tag[1:].partition("}")
    version = VERSIONS.get(ns) if brace and local == "Envelope" else None
    if version is None:
        raise MessageError("not a SOAP envelope")
    if MEDIA_TYPES[version] != xml_media_type:
        raise MessageError(f"SOAP {version} sent as {xml_media_type or 'no media type'}")
    header_tag, body_tag = _HEADER_BODY[ns]
    header = body = None
    text = bool((root.text or "").strip())
    for child in root:
        text = text or bool((child.tail or "").strip())
        tag = child.tag
        if tag.__class__ is not str:  # a comment or processing instruction
            continue
        if tag == header_tag and header is None and body is None:
            header = child
        elif tag == body_tag and body is None:
            body = child
        else:
            body = None
            break
    if body is None:
        raise MessageError("the envelope must hold [Header] and one Body, in its own namespace")
    if text:
        raise MessageError("text outside Header and Body")
    content = None
    count = 0
    text = bool((body.text or "").strip())
    for child in body:
        text = text or bool((child.tail or "").strip())
        if child.tag.__class__ is str:
            count += 1
            content = child
    if count != 1 or text or content is None:
        raise MessageError(f"the Body must hold exactly one element, found {count}")
    return Envelope(version=version, root=root, header=header, body=body, content=content,
                    action=_action(version, action_param, soap_actions))


def _action(version: str, action_param: str | None, soap_actions: list[str]) -> str | None:
    if len(soap_actions) > 1:
        raise MessageError(f"{len(soap_actions)} SOAPAction headers")
    header = _unquote(soap_actions[0]) if soap_actions else None
    if version == "1.1":
        return header or None
    param = _unquote(action_param) if action_param is not None else None
    if header and param is not None and header != param:
        raise MessageError("SOAPAction header and Content-Type action disagree")
    return param or header or None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.strip()

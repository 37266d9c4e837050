"""The SMEV 3 transform `urn://smev-gov-ru/xmldsig/transform` (applied after exclusive c14n).

Defined by the SMEV 3 methodical recommendations and their reference Java implementation
(docs/sidecar.md): the fragment is re-serialised so that two systems that produce the same
information produce the same bytes:

- whitespace-only text is dropped; comments and processing instructions are dropped;
- prefixes are regenerated `ns1`, `ns2`, ... with one counter for the whole fragment; a mapping
  holds for the element's subtree, and the element's own namespace is declared first, then those
  of its attributes, each only where first used; unused declarations disappear; an element or
  attribute without a namespace gets no prefix (no default namespace is ever declared);
- namespace-qualified attributes come first, sorted by (namespace, local name), then unqualified
  ones sorted by name;
- no self-closing tags.

Works on the one parse of the message (an lxml element): walking the tree gives the same result
as re-reading the exclusive c14n of it (entities are resolved, CDATA is text, comments gone).
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped]

URI = "urn://smev-gov-ru/xmldsig/transform"


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _attr(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\t", "&#x9;").replace("\n", "&#xA;").replace("\r", "&#xD;"))


class _Writer:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.counter = 0

    def element(self, el: etree._Element, scope: dict[str, str]) -> None:
        scope = dict(scope)
        decls: list[tuple[str, str]] = []

        def prefix(uri: str) -> str:
            if uri not in scope:
                self.counter += 1
                scope[uri] = f"ns{self.counter}"
                decls.append((scope[uri], uri))
            return scope[uri]

        qname = etree.QName(el)
        tag = f"{prefix(qname.namespace)}:{qname.localname}" if qname.namespace else qname.localname
        qualified: list[tuple[str, str, str]] = []
        plain: list[tuple[str, str, str]] = []
        for name, value in el.attrib.items():
            aq = etree.QName(name)
            (qualified if aq.namespace else plain).append((aq.namespace or "", aq.localname, value))
        qualified.sort(key=lambda a: (a[0], a[1]))
        plain.sort(key=lambda a: a[1])
        attrs = [(f"{prefix(ns)}:{local}", value) for ns, local, value in qualified]
        attrs += [(local, value) for _, local, value in plain]
        self.out.append("<" + tag)
        self.out.extend(f' xmlns:{p}="{_attr(u)}"' for p, u in decls)
        self.out.extend(f' {n}="{_attr(v)}"' for n, v in attrs)
        self.out.append(">")
        self._chars(el.text)
        for child in el:
            if isinstance(child.tag, str):
                self.element(child, scope)
            self._chars(child.tail)
        self.out.append(f"</{tag}>")

    def _chars(self, text: str | None) -> None:
        if text and text.strip():
            self.out.append(_text(text))


def apply(element: etree._Element) -> bytes:
    """The SMEV-transformed UTF-8 bytes of `element` and its subtree."""
    writer = _Writer()
    writer.element(element, {})
    return "".join(writer.out).encode("utf-8")

"""What a new version of an XSD no longer accepts that the old one did (`reestr breaking`).

A deliberately simple structural walk, as `breaking.schema_narrowing` is for JSON Schema. Named
top-level components (elements, complex and simple types, groups, attribute groups, attributes)
of the whole include/import closure are matched by kind and qualified name, and compared:

- a component removed;
- content: an element (or group) newly required — new with minOccurs ≥ 1 outside a choice, or
  minOccurs 0 → ≥ 1 —, removed, minOccurs raised, maxOccurs lowered, its `type` changed;
- attributes: newly required (new with use="required", or optional → required), removed;
- facets of a restriction: an enumeration that appears or loses values, a pattern added or
  changed, length / minLength / maxLength / totalDigits / fractionDigits / min/max Inclusive /
  Exclusive narrowed or added, the restriction's base changed.

Local elements and attributes are followed into their inline types; named types are compared
once, where they are declared, not at every use. Substitution groups, `xs:any`, identity
constraints, lists and unions are not interpreted: a change there is not reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation

from lxml import etree  # type: ignore[import-untyped]

from compiler.payload_schemas import XSD_NS, resolve_location, safe_parser

_KINDS = ("element", "complexType", "simpleType", "group", "attributeGroup", "attribute")
_UPPER = ("maxLength", "totalDigits", "fractionDigits", "maxInclusive", "maxExclusive")
_LOWER = ("minLength", "minInclusive", "minExclusive")
Particle = tuple[float, float, bool, etree._Element]  # minOccurs, maxOccurs, optional by context, node


def narrowing(old_files: Mapping[str, bytes], old_main: str,
              new_files: Mapping[str, bytes], new_main: str) -> list[str]:
    """Findings, one sentence each, in component order."""
    old, new = components(old_files, old_main), components(new_files, new_main)
    found: list[str] = []
    for key in sorted(old):
        kind, name = key
        label = f"{kind} {_local(name)}"
        if key not in new:
            found.append(f"{label} is removed")
        else:
            found += compare(old[key], new[key], label)
    return found


def components(files: Mapping[str, bytes], main: str) -> dict[tuple[str, str], etree._Element]:
    """{(kind, Clark name): declaration} over the closure of `main` (a chameleon include takes the
    including file's target namespace)."""
    out: dict[tuple[str, str], etree._Element] = {}
    seen: set[str] = set()

    def walk(rel: str, namespace: str | None) -> None:
        if rel in seen or rel not in files:
            return
        seen.add(rel)
        root = etree.fromstring(files[rel], safe_parser())
        tns = root.get("targetNamespace", namespace) or ""
        for child in _xs(root):
            kind = etree.QName(child).localname
            if kind in _KINDS and child.get("name"):
                out.setdefault((kind, f"{{{tns}}}{child.get('name')}"), child)
            elif kind in ("include", "import", "redefine", "override") and child.get("schemaLocation"):
                target = resolve_location(rel, child.get("schemaLocation"))
                if target is not None:
                    walk(target, None if kind == "import" else tns)
    walk(main, None)
    return out


def compare(old: etree._Element, new: etree._Element, label: str) -> list[str]:
    """What `new` (a declaration or inline type) accepts less than `old`, under `label`."""
    found: list[str] = []
    for attr in ("type", "base"):
        was, now = _qname(old, old.get(attr)), _qname(new, new.get(attr))
        if was and now and was != now:
            found.append(f"{label}: {attr} {_local(was)} → {_local(now)}")
    found += _facets(_restriction(old), _restriction(new), label)
    found += _particles(dict(_content(old)), dict(_content(new)), label)
    found += _attributes(dict(_attrs(old)), dict(_attrs(new)), label)
    return found


# --- content models ----------------------------------------------------------------------------


def _content(node: etree._Element, optional: bool = False) -> Iterator[tuple[str, Particle]]:
    """(key, particle) of the elements and group references `node`'s content model holds."""
    for child in _xs(node):
        tag = etree.QName(child).localname
        if tag in ("complexType", "complexContent", "extension", "restriction"):
            yield from _content(child, optional)
        elif tag in ("sequence", "all", "choice"):
            yield from _content(child, optional or tag == "choice" or _min(child) == 0)
        elif tag == "element" and node.tag != f"{{{XSD_NS}}}schema":
            name = child.get("name") or _local(_qname(child, child.get("ref")) or "?")
            yield f"element {name}", (_min(child), _max(child), optional, child)
        elif tag == "group" and child.get("ref"):
            yield f"group {_local(_qname(child, child.get('ref')) or '?')}", (
                _min(child), _max(child), optional, child)


def _particles(old: dict[str, Particle], new: dict[str, Particle], label: str) -> list[str]:
    found = []
    for key in sorted(new.keys() - old.keys()):
        lo, _, optional, _ = new[key]
        if lo >= 1 and not optional:
            found.append(f"{label}: {key} is newly required")
    for key in sorted(old.keys() - new.keys()):
        found.append(f"{label}: {key} is removed")
    for key in sorted(old.keys() & new.keys()):
        (old_min, old_max, old_opt, old_node), (new_min, new_max, new_opt, new_node) = old[key], new[key]
        was_required, now_required = old_min >= 1 and not old_opt, new_min >= 1 and not new_opt
        if now_required and not was_required:
            found.append(f"{label}: {key} is now required (minOccurs {_n(old_min)} → {_n(new_min)})")
        elif new_min > old_min:
            found.append(f"{label}: {key} minOccurs {_n(old_min)} → {_n(new_min)}")
        if new_max < old_max:
            found.append(f"{label}: {key} maxOccurs {_n(old_max)} → {_n(new_max)}")
        if key.startswith("element "):
            found += compare(old_node, new_node, f"{label}/{key.removeprefix('element ')}")
    return found


def _attrs(node: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    for child in _xs(node):
        tag = etree.QName(child).localname
        if tag in ("complexType", "complexContent", "simpleContent", "extension", "restriction"):
            yield from _attrs(child)
        elif tag == "attribute" and node.tag != f"{{{XSD_NS}}}schema":
            yield child.get("name") or _local(_qname(child, child.get("ref")) or "?"), child
        elif tag == "attributeGroup" and child.get("ref"):
            yield f"group {_local(_qname(child, child.get('ref')) or '?')}", child


def _attributes(old: dict[str, etree._Element], new: dict[str, etree._Element], label: str) -> list[str]:
    found = []
    for name in sorted(new.keys() - old.keys()):
        if new[name].get("use") == "required":
            found.append(f"{label}: attribute {name} is newly required")
    for name in sorted(old.keys() - new.keys()):
        if old[name].get("use") != "prohibited":
            found.append(f"{label}: attribute {name} is removed")
    for name in sorted(old.keys() & new.keys()):
        if old[name].get("use") != "required" and new[name].get("use") == "required":
            found.append(f"{label}: attribute {name} is now required")
        found += compare(old[name], new[name], f"{label}@{name}")
    return found


# --- facets -------------------------------------------------------------------------------------


def _restriction(node: etree._Element) -> etree._Element | None:
    """The restriction holding `node`'s facets: its own, its inline simple type's, its simple content's."""
    for child in _xs(node):
        tag = etree.QName(child).localname
        if tag == "restriction" and etree.QName(node).localname in ("simpleType", "simpleContent"):
            return child
        if tag in ("simpleType", "simpleContent") or (tag == "complexType" and
                                                       etree.QName(node).localname != "complexType"):
            found = _restriction(child)
            if found is not None:
                return found
    return None


def _facets(old: etree._Element | None, new: etree._Element | None, label: str) -> list[str]:
    if new is None:
        return []
    was, now = _facet_values(old), _facet_values(new)
    found = []
    if old is not None:
        old_base, new_base = _qname(old, old.get("base")), _qname(new, new.get("base"))
        if old_base and new_base and old_base != new_base:
            found.append(f"{label}: restriction base {_local(old_base)} → {_local(new_base)}")
    if now.get("enumeration"):
        if not was.get("enumeration"):
            found.append(f"{label}: an enumeration now restricts the values")
        else:
            lost = [v for v in was["enumeration"] if v not in now["enumeration"]]
            if lost:
                found.append(f"{label}: enumeration lost {', '.join(map(repr, lost))}")
    if now.get("pattern") and set(now["pattern"]) - set(was.get("pattern", [])):
        found.append(f"{label}: pattern {'changed' if was.get('pattern') else 'added'} "
                     f"({', '.join(map(repr, now['pattern']))})")
    for facet in ("length", *_UPPER, *_LOWER):
        if facet not in now:
            continue
        value = now[facet][0]
        if facet not in was:
            found.append(f"{label}: {facet} {value} added")
            continue
        before = was[facet][0]
        if before == value:
            continue
        tighter = _tighter(before, value, facet)
        if tighter is None or tighter:
            found.append(f"{label}: {facet} {before} → {value}")
    return found


def _facet_values(restriction: etree._Element | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for child in _xs(restriction) if restriction is not None else []:
        if child.get("value") is not None:
            out.setdefault(etree.QName(child).localname, []).append(child.get("value"))
    return out


def _tighter(before: str, after: str, facet: str) -> bool | None:
    """True when `after` narrows `before` for this facet, False when it widens, None unknown
    (not numbers, e.g. dates: any change is reported). `length` changed is always narrower."""
    if facet == "length":
        return True
    try:
        b, a = Decimal(before), Decimal(after)
    except InvalidOperation:
        return None
    return a < b if facet in _UPPER else a > b


# --- helpers ------------------------------------------------------------------------------------


def _xs(node: etree._Element) -> Iterator[etree._Element]:
    for child in node:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{XSD_NS}}}"):
            yield child


def _qname(node: etree._Element, value: str | None) -> str | None:
    """`prefix:local` in the node's scope, as a Clark name."""
    if not value:
        return None
    prefix, _, local = value.rpartition(":")
    namespace = node.nsmap.get(prefix or None, "")
    return f"{{{namespace}}}{local}"


def _local(clark: str) -> str:
    return clark.rpartition("}")[2]


def _min(node: etree._Element) -> float:
    return _occurs(node.get("minOccurs", "1"))


def _max(node: etree._Element) -> float:
    return _occurs(node.get("maxOccurs", "1"))


def _occurs(value: str) -> float:
    if value == "unbounded":
        return math.inf
    try:
        return float(int(value))
    except ValueError:
        return 1.0


def _n(value: float) -> str:
    return "unbounded" if value == math.inf else str(int(value))

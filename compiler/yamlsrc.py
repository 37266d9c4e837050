"""Safe YAML loading that keeps the source position of every node.

Why not `yaml.safe_load`: it silently turns `no` into False, `010` into 8, `1:20` into 80 and
`2024-01-01` into a date, keeps the last of two duplicate keys, and expands alias bombs. A registry
rule hidden by any of those is a security problem, so this loader:

- composes with libyaml (fast) and builds values itself: quoted scalars are strings; plain scalars
  are strings unless they are exactly `true`/`false`, `null`/`~`/empty, or a decimal integer
  without a leading zero (YAML 1.2 core schema, minus floats and octal);
- refuses duplicate keys, aliases/anchors reuse, merge keys, non-standard tags, multiple documents,
  non-UTF-8 input and files over `MAX_BYTES`;
- records (line, col), 1-based, of every value and every mapping key under its JSON path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from compiler.errors import excerpt

MAX_BYTES = 1024 * 1024
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_TAG_PREFIX = "tag:yaml.org,2002:"
_STANDARD_TAGS = frozenset(_TAG_PREFIX + t for t in
                           ("str", "int", "bool", "null", "float", "timestamp", "map", "seq"))
_MERGE, _VALUE = _TAG_PREFIX + "merge", _TAG_PREFIX + "value"
_STR, _SEQ, _MAP = _TAG_PREFIX + "str", _TAG_PREFIX + "seq", _TAG_PREFIX + "map"


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe composer, with a resolver that computes only the tags `_Builder` reads.

    The builder makes values from a scalar's style and text (`_scalar`), never from its tag; it
    reads tags only to refuse the non-standard ones. Of PyYAML's implicit resolvers only `<<`
    (merge) and `=` (value) yield a non-standard tag, so every other untagged node can take
    str/seq/map at once instead of running the resolver regexes on every scalar.
    """

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0] and value in ("<<", "="):
                return _MERGE if value == "<<" else _VALUE
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: yaml.Node | None, current_index: object) -> None:
        """No path resolvers are registered: skip the bookkeeping the composer asks for per node."""

    def ascend_resolver(self) -> None:
        """See `descend_resolver`."""


_COMPOSER = _Composer

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    """A reason the file could not be read as a document, with its position."""

    code: str
    line: int
    col: int
    message: str


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document starts in its file."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Position of `path`, or of its nearest ancestor that has one (the file start at worst)."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))


@dataclass
class Loaded:
    """A parsed document (or None) with its positions and any problems found while reading."""

    data: Any
    positions: Positions
    problems: list[YamlProblem]


class _Refused(Exception):
    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def load_bytes(raw: bytes) -> Loaded:
    """Parse one YAML document; never raises for bad input, returns problems instead."""
    positions = Positions()
    if len(raw) > MAX_BYTES:
        return Loaded(None, positions, [YamlProblem(
            "YAML-too-large", 1, 1, f"file is {len(raw)} bytes, the limit is {MAX_BYTES}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        return Loaded(None, positions, [YamlProblem(
            "YAML-encoding", line, col, f"not UTF-8: byte 0x{raw[e.start]:02x} cannot be decoded")])
    text = text.removeprefix("\ufeff")
    try:
        nodes = list(yaml.compose_all(text, Loader=_COMPOSER))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Loaded(None, positions, [YamlProblem(
            "YAML-syntax", line, col, f"{e.problem or e.context or 'invalid YAML'}")])
    except yaml.YAMLError as e:
        return Loaded(None, positions, [YamlProblem("YAML-syntax", 1, 1, str(e))])
    if not nodes:
        return Loaded(None, positions, [YamlProblem("YAML-empty", 1, 1, "the file holds no document")])
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        return Loaded(None, positions, [YamlProblem(
            "YAML-multiple-documents", mark.line + 1, mark.column + 1,
            "one document per file: a second document starts here")])
    builder = _Builder(positions, aliases_possible="&" in text)
    try:
        data = builder.build(nodes[0], ())
    except _Refused as e:
        return Loaded(None, positions, [_at_alias(text, e.problem)])
    return Loaded(data, positions, builder.problems)


class _Builder:
    """Turns a composed node tree into plain values, recording positions.

    Every node is checked (`_check`): its tag must be standard, and it must not be a node already
    built (an anchored node reused by an alias). An alias needs an anchor (`&name`), so when the
    text has no `&` at all the reuse bookkeeping is skipped; the tag check always runs.
    """

    def __init__(self, positions: Positions, *, aliases_possible: bool = True) -> None:
        self.positions = positions
        self.problems: list[YamlProblem] = []
        self._seen: set[int] | None = set() if aliases_possible else None

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self._check(node)
        mark = node.start_mark
        self.positions.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._scalar_at(item, (*path, i)) if type(item) is yaml.ScalarNode
                    else self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node)

    def _check(self, node: yaml.Node) -> None:
        seen = self._seen
        if seen is not None:
            if id(node) in seen:
                raise _Refused(_at(node, "YAML-alias",
                                   "this anchored node is reused by an alias (*name): aliases are not allowed"))
            seen.add(id(node))
        if node.tag not in _STANDARD_TAGS:
            raise _Refused(_at(node, "YAML-tag", f"tag {excerpt(node.tag)} is not allowed"))

    def _scalar_at(self, node: yaml.ScalarNode, path: Path_) -> Any:
        """`build` for a scalar without the type dispatch: most nodes are scalars."""
        if self._seen is not None or node.tag not in _STANDARD_TAGS:
            self._check(node)
        mark = node.start_mark
        self.positions.values[path] = (mark.line + 1, mark.column + 1)
        return _scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        keys = self.positions.keys
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _Refused(_at(key_node, "YAML-alias", "merge keys (<<) are not allowed"))
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(_at(key_node, "YAML-key", "mapping keys must be plain strings"))
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = keys[child]
                self.problems.append(_at(
                    key_node, "YAML-duplicate-key",
                    f"duplicate key {excerpt(key)} (first at line {first[0]}): the later value would win"))
                continue
            mark = key_node.start_mark
            keys[child] = (mark.line + 1, mark.column + 1)
            result[key] = (self._scalar_at(value_node, child) if type(value_node) is yaml.ScalarNode
                           else self.build(value_node, child))
        return result


def _at_alias(text: str, problem: YamlProblem) -> YamlProblem:
    """Point an alias problem at the first `*alias` (the composed tree only knows the anchor)."""
    if problem.code != "YAML-alias" or "merge" in problem.message:
        return problem
    for event in yaml.parse(text, Loader=_COMPOSER):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            mark = event.start_mark
            return YamlProblem(problem.code, mark.line + 1, mark.column + 1,
                               f"alias *{event.anchor} reuses an anchored node: aliases are not allowed")
    return problem


def _scalar(node: yaml.ScalarNode) -> Any:
    value: str = node.value
    if node.style:  # quoted or block scalar: always a string ("" or None means plain)
        return value
    if value in ("true", "false"):
        return value == "true"
    if value in ("", "~", "null"):
        return None
    if _INT.match(value):
        return int(value)
    return value


def _at(node: yaml.Node, code: str, message: str) -> YamlProblem:
    return YamlProblem(code, node.start_mark.line + 1, node.start_mark.column + 1, message)

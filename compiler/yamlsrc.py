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

MAX_BYTES = 1024 * 1024
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_TAG_PREFIX = "tag:yaml.org,2002:"
_STANDARD_TAGS = frozenset(_TAG_PREFIX + t for t in
                           ("str", "int", "bool", "null", "float", "timestamp", "map", "seq"))
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
    builder = _Builder(positions)
    try:
        data = builder.build(nodes[0], ())
    except _Refused as e:
        return Loaded(None, positions, [e.problem])
    return Loaded(data, positions, builder.problems)


class _Builder:
    """Turns a composed node tree into plain values, recording positions."""

    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self.problems: list[YamlProblem] = []
        self._seen: set[int] = set()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        if id(node) in self._seen:
            raise _Refused(_at(node, "YAML-alias",
                               "this anchored node is reused by an alias (*name): aliases are not allowed"))
        self._seen.add(id(node))
        if node.tag not in _STANDARD_TAGS:
            raise _Refused(_at(node, "YAML-tag", f"tag {node.tag!r} is not allowed"))
        self.positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG_PREFIX + "merge":
                raise _Refused(_at(key_node, "YAML-alias", "merge keys (<<) are not allowed"))
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(_at(key_node, "YAML-key", "mapping keys must be plain strings"))
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.positions.keys[child]
                self.problems.append(_at(
                    key_node, "YAML-duplicate-key",
                    f"duplicate key {key!r} (first at line {first[0]}): the later value would win"))
                continue
            self.positions.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        return result


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

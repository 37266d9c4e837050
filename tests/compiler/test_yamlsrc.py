"""compiler.yamlsrc: strings stay strings, positions are kept, hostile input is refused with a code."""

from __future__ import annotations

import time

import pytest

from compiler.yamlsrc import MAX_BYTES, load_bytes


def _value(text: str) -> object:
    loaded = load_bytes(f"v: {text}\n".encode())
    assert loaded.problems == []
    return loaded.data["v"]


# YAML 1.1 (and PyYAML's safe_load) would turn each of these into a bool, int, float or date.
SURPRISES = ["no", "No", "NO", "off", "on", "yes", "y", "n", "010", "0o10", "0x1F", "0b101", "1:20",
             "190:20:30", "2024-01-01", "2024-01-01T10:00:00Z", "1e3", "1.5", ".inf", "-.inf", ".nan",
             "+12", "1_000", "True", "NULL", "Null"]


@pytest.mark.parametrize("text", SURPRISES, ids=SURPRISES)
def test_yaml_1_1_surprises_stay_strings(text: str) -> None:
    assert _value(text) == text


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("false", False), ("null", None), ("~", None), ("", None), ("0", 0), ("42", 42),
    ("-7", -7), ('"no"', "no"), ("'010'", "010"), ('"true"', "true"), ('"42"', "42"), ('""', ""),
], ids=["true", "false", "null", "tilde", "empty", "zero", "int", "negative", "quoted-no",
        "quoted-octal", "quoted-true", "quoted-int", "quoted-empty"])
def test_core_scalars(text: str, value: object) -> None:
    result = _value(text)
    assert result == value and type(result) is type(value)


def test_block_scalar_is_a_string() -> None:
    loaded = load_bytes(b"v: |\n  123\n")
    assert loaded.data == {"v": "123\n"}


def test_positions_of_values_and_keys() -> None:
    loaded = load_bytes(b"a:\n  b: [x, 'y']\n  c:\n    - d: 1\n")
    assert loaded.problems == []
    pos = loaded.positions
    assert pos.values[()] == (1, 1)
    assert pos.keys[("a",)] == (1, 1)
    assert pos.keys[("a", "b")] == (2, 3)
    assert pos.values[("a", "b")] == (2, 6)
    assert pos.values[("a", "b", 1)] == (2, 10)
    assert pos.values[("a", "c", 0, "d")] == (4, 10)
    assert pos.of(("a", "c", 0, "missing")) == (4, 7)  # nearest ancestor
    assert pos.of(("a", "b"), key=True) == (2, 3)


def test_columns_count_characters_not_bytes() -> None:
    loaded = load_bytes("имя: значение\nключ: [ещё]\n".encode())
    assert loaded.positions.values[("ключ", 0)] == (2, 8)


def _problem(raw: bytes) -> tuple[str, int, int]:
    loaded = load_bytes(raw)
    assert loaded.data is None or loaded.problems, "expected a refusal"
    assert len(loaded.problems) == 1
    p = loaded.problems[0]
    assert p.message
    return p.code, p.line, p.col


REFUSED = {
    "duplicate-key": (b"a: 1\nb: 2\na: 3\n", ("YAML-duplicate-key", 3, 1)),
    "duplicate-nested-key": (b"a:\n  x: 1\n  x: 1\n", ("YAML-duplicate-key", 3, 3)),
    "alias": (b"a: &x 1\nb: *x\n", ("YAML-alias", 2, 4)),
    "merge-key": (b"a: &x {k: 1}\nb:\n  <<: *x\n", ("YAML-alias", 3, 3)),
    "python-tag": (b'a: !!python/object/apply:os.system ["id"]\n', ("YAML-tag", 1, 4)),
    "local-tag": (b"a: !secret x\n", ("YAML-tag", 1, 4)),
    "binary-tag": (b"a: !!binary aGk=\n", ("YAML-tag", 1, 4)),
    "set-tag": (b"a: !!set {x}\n", ("YAML-tag", 1, 4)),
    "alias-in-sequence": (b"a: [&x 1, *x]\n", ("YAML-alias", 1, 11)),
    # no `!` and no `&` in the text: the resolver alone gives these plain scalars a foreign tag
    "value-indicator": (b"a: =\n", ("YAML-tag", 1, 4)),
    "merge-as-item": (b"a:\n  - x\n  - <<\n", ("YAML-tag", 3, 5)),
    "complex-key": (b"? [a, b]\n: 1\n", ("YAML-key", 1, 3)),
    "latin-1": ("a: 1\nb: é\n".encode("latin-1"), ("YAML-encoding", 2, 4)),
    "utf-16": ("a: 1\n".encode("utf-16"), ("YAML-encoding", 1, 1)),
    "multiple-documents": (b"a: 1\n---\nb: 2\n", ("YAML-multiple-documents", 3, 1)),
    "empty": (b"", ("YAML-empty", 1, 1)),
    "only-comments": (b"# nothing\n", ("YAML-empty", 1, 1)),
    "syntax": (b"a: [1, 2\nb: 3\n", ("YAML-syntax", 2, 2)),
    "tab-indent": (b"a:\n\tb: 1\n", ("YAML-syntax", 2, 1)),
    "unclosed-quote": (b'a: "x\n', ("YAML-syntax", 2, 1)),
}


@pytest.mark.parametrize(("raw", "want"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_with_code_and_position(raw: bytes, want: tuple[str, int, int]) -> None:
    assert _problem(raw) == want


def test_duplicate_key_keeps_the_first_value() -> None:
    loaded = load_bytes(b"a: 1\na: 2\n")
    assert loaded.data == {"a": 1}
    assert "first at line 1" in loaded.problems[0].message


def test_alias_bomb_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 10)]
    start = time.perf_counter()
    loaded = load_bytes("\n".join(lines).encode())
    assert time.perf_counter() - start < 1.0
    assert loaded.data is None
    assert [p.code for p in loaded.problems] == ["YAML-alias"]


@pytest.mark.parametrize(("size", "refused"), [(MAX_BYTES, False), (MAX_BYTES + 1, True)],
                         ids=["at-limit", "over-limit"])
def test_size_limit(size: int, refused: bool) -> None:
    raw = b"a: 1\n" + b"#" * (size - 6) + b"\n"
    assert len(raw) == size
    loaded = load_bytes(raw)
    if refused:
        assert loaded.data is None
        assert [(p.code, p.line, p.col) for p in loaded.problems] == [("YAML-too-large", 1, 1)]
    else:
        assert loaded.data == {"a": 1} and loaded.problems == []


def test_bom_is_accepted_and_positions_unchanged() -> None:
    loaded = load_bytes("\ufeffa: x\nb: y\n".encode())
    assert loaded.problems == []
    assert loaded.data == {"a": "x", "b": "y"}
    assert loaded.positions.values[("b",)] == (2, 4)


def test_explicit_single_document_is_fine() -> None:
    loaded = load_bytes(b"---\na: 1\n...\n")
    assert loaded.data == {"a": 1} and loaded.problems == []


def test_non_string_keys_become_strings() -> None:
    loaded = load_bytes(b"1: a\nno: b\n")
    assert loaded.data == {"1": "a", "no": "b"}

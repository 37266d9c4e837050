"""Hypothesis: whatever bytes land in the registry, loading and the rules return problems, never raise.

Inputs: random bytes; random YAML documents (nested mappings, sequences and scalars, with keys drawn
from the real field names); real registry documents with values replaced by plausible ones (ids,
SIDs, dates, enums) so that they still load and the cross-document rules run on odd combinations;
and textual mutations of the real files (dropped lines, swapped characters, inserted keys). A
registry with no errors must also compile. Finally the real CLI runs on a few generated
registries and must not print a traceback.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import bundle, rules, trust
from compiler.errors import Problem, Severity
from compiler.registry import load_files
from compiler.yamlsrc import load_bytes

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
TODAY = date(2026, 11, 25)
FILES: dict[str, bytes] = {f"registry/{p.relative_to(ROOT / 'registry').as_posix()}": p.read_bytes()
                           for p in sorted((ROOT / "registry").rglob("*.yaml"))}
DOCS: dict[str, Any] = {path: load_bytes(raw).data for path, raw in FILES.items()}
KEY = Ed25519PrivateKey.generate()
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _field_names(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        out.update(value)
        for v in value.values():
            _field_names(v, out)
    elif isinstance(value, list):
        for v in value:
            _field_names(v, out)
    return out


FIELDS = sorted(_field_names(list(DOCS.values()), set()))
PLAUSIBLE_VALUES = [
    "ved1", "ved2", "ved3", "ved4", "ved9", "citto", "dz-tyumen", "mvd-tyumen", "SID0003001", "SID0003002",
    "SID0003003", "SID0007001", "SID0009999", "operation1", "operation2", "operation4", "getCertificate",
    "full", "operations", "public", "restricted", "personal-data", "state-secret", "rest", "soap",
    "suspended", "active", "operator", "GET", "POST", "/a/{x}", "/a/{y}", "urn:x", "{urn:x}Y",
    "2026-01-01", "2026-11-25", "2026-12-31", "2027-02-30", "2020-01-01", "schemas/services/x.json",
    "https://x.example", "@team/x", "", " ", "no", "010", "1:20", "-----BEGIN CERTIFICATE-----\nAA==\n",
]
PLAUSIBLE = st.sampled_from(PLAUSIBLE_VALUES)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20), PLAUSIBLE,
                    st.floats(allow_nan=True))
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)
PATHS = st.sampled_from(sorted(FILES))


def check_all(files: dict[str, bytes]) -> list[Problem]:
    """Load and check; the property is that this returns. A clean registry must also compile."""
    registry = load_files(files, base="registry")
    problems = [*registry.problems, *rules.check(registry, TODAY, ROOT)]  # payload schemas beside it
    for p in problems:
        assert p.line >= 1 and p.col >= 1 and p.code and p.message, p
    if not any(p.severity is Severity.ERROR for p in problems):
        issued = datetime(2026, 11, 25, 10, tzinfo=UTC)
        bundle.build(registry, bundle.BuildInfo(1, issued, issued + timedelta(hours=1), None), [KEY], ROOT)
    return problems


def _dump(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False).encode()


@FUZZ
@given(path=PATHS, raw=st.binary(max_size=2000))
def test_random_bytes(path: str, raw: bytes) -> None:
    check_all({path: raw})  # alone: these never load, so the other files would only cost time


@FUZZ
@given(path=PATHS, doc=TREES)
def test_random_documents(path: str, doc: Any) -> None:
    check_all({path: _dump(doc)})


def _replace(doc: Any, rnd: random.Random, new: Any) -> Any:
    """Put `new` at a random node of a copy of `doc` (or delete a key, or add one)."""
    doc = copy.deepcopy(doc)
    parent, key = None, None
    node = doc
    while isinstance(node, dict | list) and node and rnd.random() < 0.8:
        parent = node
        key = rnd.choice(list(node)) if isinstance(node, dict) else rnd.randrange(len(node))
        node = node[key]
    if parent is None:
        return new
    action = rnd.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.3 and isinstance(parent, dict):
        parent[rnd.choice(FIELDS)] = new
    else:
        parent[key] = new
    return doc


@FUZZ
@given(edits=st.lists(st.tuples(PATHS, st.randoms(use_true_random=False), st.one_of(PLAUSIBLE, TREES)),
                      min_size=1, max_size=4))
def test_mutated_documents(edits: list[tuple[str, random.Random, Any]]) -> None:
    files = dict(FILES)
    docs = dict(DOCS)
    for path, rnd, new in edits:
        docs[path] = _replace(docs[path], rnd, new)
        files[path] = _dump(docs[path])
    check_all(files)


_LINE = st.one_of(st.sampled_from([f"{k}: x" for k in FIELDS]), st.text(max_size=30),
                  st.sampled_from(["- ", "  - a", "---", "&a x", "*a", "<<: *a", "? x", "!!binary a", "\t", "]"]))


@st.composite
def text_mutation(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(PATHS)
    lines = FILES[path].decode().splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["drop", "swap", "insert", "indent"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines:
            break
        if kind == "drop":
            del lines[i]
        elif kind == "swap" and len(lines[i]) > 2:
            j = draw(st.integers(0, len(lines[i]) - 2))
            line = lines[i]
            lines[i] = line[:j] + line[j + 1] + line[j] + line[j + 2:]
        elif kind == "insert":
            indent = " " * draw(st.integers(0, 8))
            lines.insert(i, indent + draw(_LINE) + "\n")
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    return path, "".join(lines).encode()


@FUZZ
@given(mutation=text_mutation())
def test_mutated_text(mutation: tuple[str, bytes]) -> None:
    path, raw = mutation
    check_all({**FILES, path: raw})


def test_mutations_reach_the_rules() -> None:
    """The mutated-document strategy is not vacuous: it yields rule problems, not only shape ones."""
    rnd = random.Random(7)
    codes: set[str] = set()
    for _ in range(120):
        path = rnd.choice(sorted(FILES))
        doc = _replace(DOCS[path], rnd, rnd.choice(PLAUSIBLE_VALUES))
        codes |= {p.code for p in check_all({**FILES, path: _dump(doc)})}
    assert any(c.startswith(("R", "REF-", "UNIQ-", "OP-")) for c in codes), codes
    assert any(c.startswith("SCHEMA-") for c in codes), codes


def test_cli_on_generated_registries(tmp_path: Path) -> None:
    rnd = random.Random(2026)
    roots = []
    for n in range(3):
        root = tmp_path / f"r{n}"
        shutil.copytree(ROOT / "registry", root / "registry")
        shutil.copytree(ROOT / "schemas", root / "schemas")
        for _ in range(3):
            path = rnd.choice(sorted(FILES))
            target = root / path
            raw = bytearray(target.read_bytes())
            for _ in range(rnd.randint(1, 20)):
                raw[rnd.randrange(len(raw))] = rnd.randrange(256)
            target.write_bytes(bytes(raw))
        (root / "registry" / "consumers" / "fuzz.yaml").write_bytes(_dump(
            _replace(DOCS["registry/consumers/ved2.yaml"], rnd, rnd.choice(["ved9", [1, {"a": None}], "SID1"]))))
        roots.append(root)
    procs = [subprocess.Popen([REESTR, "validate", "registry", "--format", fmt], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for root, fmt in zip(roots, ["text", "json", "github"], strict=True)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err + out
        assert proc.returncode == 1, err  # each registry has at least the damaged fuzz.yaml or bytes
        assert out


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
                        st.sampled_from(["signed", "signatures", "keyid", "sig", "type", "format", "serial",
                                         "expires_at", "audience", "x"]), inner, max_size=5)), max_leaves=15)


@FUZZ
@given(value=JSON, raw=st.binary(max_size=200), use_raw=st.booleans())
def test_verify_envelope_only_refuses(value: Any, raw: bytes, use_raw: bool) -> None:
    """The sidecar feeds verify_envelope whatever a bundle URL serves: it accepts or raises TrustError."""
    data = raw if use_raw else json.dumps(value).encode()
    with pytest.raises(trust.TrustError):
        trust.verify_envelope(data, [KEY.public_key()], now=datetime(2026, 11, 25, tzinfo=UTC))

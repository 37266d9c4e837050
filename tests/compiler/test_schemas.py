"""compiler.schemas: the committed JSON Schemas are exactly what the models generate; drift is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from compiler import schemas
from compiler.registry import SCHEMA_LINE
from compiler.yamlsrc import load_bytes

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas"
KINDS = sorted(schemas.FILE_NAMES)


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_equals_generated(kind: str) -> None:
    text = (COMMITTED / schemas.FILE_NAMES[kind]).read_text(encoding="utf-8")
    assert text == schemas.render(kind)
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schemas.SCHEMA_BASE + schemas.FILE_NAMES[kind]


def test_nothing_is_stale() -> None:
    assert schemas.stale(COMMITTED) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(COMMITTED, tmp_path / "schemas")
    return tmp_path / "schemas"


DRIFTS = {
    "edited-title": lambda s: s.replace('"title": "', '"title": "Old ', 1),
    "extra-required": lambda s: s.replace('"required": [', '"required": [\n    "legacy",', 1),
    "reformatted": lambda s: json.dumps(json.loads(s), indent=4, sort_keys=True) + "\n",
    "no-final-newline": lambda s: s.rstrip("\n"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("drift", DRIFTS.values(), ids=DRIFTS.keys())
def test_drift_is_caught(copy: Path, kind: str, drift: object) -> None:
    path = copy / schemas.FILE_NAMES[kind]
    before = path.read_text(encoding="utf-8")
    after = drift(before)  # type: ignore[operator]
    assert after != before
    path.write_text(after, encoding="utf-8")
    assert schemas.stale(copy) == [schemas.FILE_NAMES[kind]]
    schemas.write_all(copy)
    assert schemas.stale(copy) == []
    assert path.read_text(encoding="utf-8") == before


def test_missing_file_is_stale(copy: Path) -> None:
    (copy / "participant.schema.json").unlink()
    assert schemas.stale(copy) == ["participant.schema.json"]


def test_model_change_is_caught(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drift the other way: the models change, the committed files do not."""
    original = schemas.generate

    def changed(kind: str) -> dict[str, object]:
        schema = original(kind)
        if kind == "AccessSheet":
            schema["title"] = "AccessSheetV2"
        return schema

    monkeypatch.setattr(schemas, "generate", changed)
    assert schemas.stale(copy) == ["access-sheet.schema.json"]


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT / "registry").as_posix()
                                        for p in (ROOT / "registry").rglob("*.yaml")))
def test_example_files_name_their_schema_and_satisfy_it(path: str) -> None:
    raw = (ROOT / "registry" / path).read_bytes()
    first = raw.decode().splitlines()[0]
    assert first.startswith(SCHEMA_LINE)
    target = (ROOT / "registry" / path).parent / first.removeprefix(SCHEMA_LINE)
    data = load_bytes(raw).data
    assert target.resolve() == (COMMITTED / schemas.FILE_NAMES[data["kind"]]).resolve()
    assert list(schemas.shape_errors(data["kind"], data)) == []


SHAPES = {
    "unknown-field": ({"extra": 1}, "additionalProperties"),
    "missing-field": ({"drop": "spec"}, "required"),
    "wrong-kind": ({"kind": "Service"}, "const"),
    "grants-not-list": ({"spec": {"grants": {}}}, "type"),
}


@pytest.mark.parametrize(("change", "validator"), SHAPES.values(), ids=SHAPES.keys())
def test_shape_errors_name_the_validator(change: dict[str, object], validator: str) -> None:
    data = load_bytes((ROOT / "registry" / "consumers" / "ved2.yaml").read_bytes()).data
    data = {k: v for k, v in data.items() if k != change.get("drop")}
    data.update({k: v for k, v in change.items() if k != "drop"})
    errors = list(schemas.shape_errors("AccessSheet", data))
    assert [e.validator for e in errors] == [validator]

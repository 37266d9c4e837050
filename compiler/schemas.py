"""JSON Schemas (2020-12) generated from the models, and shape checks with jsonschema.

The schemas in `schemas/` are the published contract (editors read them through the
`# yaml-language-server: $schema=` line of every registry file). They are generated, never edited:
`reestr schemas --write` regenerates them, and a test fails when the committed files drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from compiler.models import KINDS

SCHEMA_BASE = "https://reestr.example/schemas/"
FILE_NAMES = {"Participant": "participant.schema.json", "Service": "service.schema.json",
              "AccessSheet": "access-sheet.schema.json"}


def generate(kind: str) -> dict[str, Any]:
    """The JSON Schema of one document kind, as committed in `schemas/`."""
    schema = KINDS[kind].model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_BASE + FILE_NAMES[kind], **schema}


def render(kind: str) -> str:
    return json.dumps(generate(kind), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FILE_NAMES.items():
        path = directory / name
        path.write_text(render(kind), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of the committed schema files that differ from what the models generate."""
    out = []
    for kind, name in FILE_NAMES.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(kind):
            out.append(name)
    return out


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(generate(kind))


def shape_errors(kind: str, data: Any) -> Iterator[ValidationError]:
    """Every JSON Schema violation of `data` as a document of `kind`, leaf errors first."""
    for error in _validator(kind).iter_errors(data):
        yield from _leaves(error)


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    # anyOf/oneOf (e.g. `X | None`) wrap the useful errors: report the best branch's leaves.
    if error.context:
        best = min(error.context, key=lambda e: (len(e.context or []), -len(e.absolute_path)))
        yield from _leaves(best)
    else:
        yield error

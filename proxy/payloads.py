"""Payload schemas from the bundle, compiled once per bundle, and the per-message check.

A bundle carries the schemas of its audience's services under its signature (docs/bundle-format.md):
`schemas` maps a key to `{kind, main, files: {relative path: sha256}}` and `schema_files` maps a
sha256 to the file's text. Reading an entry, checking its digests and compiling it is the
compiler's own code (`compiler.payload_schemas`: `PayloadSchema.from_bundle`, `compile_xsd`,
`check`), so the sidecar accepts exactly what `reestr validate` accepted: XSD `xs:include` /
`xs:import` resolved only from the entry's own files (no network, no disk), JSON Schema 2020-12
with local `$ref`s only. A schema that does not compile makes the bundle malformed (refused, the
last good one stays in force).

Compiling costs about a millisecond per XSD set; a new bundle reuses the compiled schemas of the
bundle in force whose key (a digest of the whole set) is unchanged, and `compile_xsd` keeps what
it compiled per key for the life of the process (bounded by the distinct schema sets a sidecar is
ever given). Checking is the hot path: an lxml XSD validation of an element in place (a few µs
for a 6 KB SMEV 3 payload), or one JSON parse + jsonschema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from lxml import etree  # type: ignore[import-untyped]

from compiler.payload_schemas import XSD, PayloadSchema, PayloadSchemaError, check, compile_xsd
from proxy.errors import PolicyFormatError

_MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class Violation:
    """The first way a payload breaks its schema: where (XPath or JSON pointer), line, what."""

    where: str
    line: int | None
    message: str

    def text(self) -> str:
        at = f" (line {self.line})" if self.line else ""
        return f"{self.where}{at}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Xsd:
    schema: etree.XMLSchema

    def check(self, element: etree._Element) -> Violation | None:
        if self.schema.validate(element):
            return None
        error = self.schema.error_log[0]
        return Violation(where=error.path or "/", line=error.line or None,
                         message=_short(error.message))


@dataclass(frozen=True, slots=True)
class _Json:
    validator: Draft202012Validator

    def check(self, body: bytes) -> Violation | None:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return Violation(where="/", line=None, message=_short(f"not JSON: {e}"))
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return None
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        return Violation(where=pointer, line=None, message=_short(error.message))


@dataclass(frozen=True, slots=True)
class PayloadSchemas:
    """Compiled schemas by key; `check_xml` / `check_json` give the first violation or None."""

    compiled: Mapping[str, _Xsd | _Json]

    def check_xml(self, key: str, element: etree._Element) -> Violation | None:
        schema = self.compiled[key]
        if not isinstance(schema, _Xsd):
            return Violation(where="/", line=None, message="the operation's schema is not an XSD")
        return schema.check(element)

    def check_json(self, key: str, body: bytes) -> Violation | None:
        schema = self.compiled[key]
        if not isinstance(schema, _Json):
            return Violation(where="/", line=None, message="the operation's schema is not a JSON Schema")
        return schema.check(body)


EMPTY = PayloadSchemas(compiled={})


def compile_schemas(signed: Mapping[str, Any], reuse: PayloadSchemas | None = None) -> PayloadSchemas:
    """Every schema the bundle's services reference; PolicyFormatError if one is malformed."""
    try:
        entries = signed.get("schemas") or {}
        texts = signed.get("schema_files") or {}
        compiled: dict[str, _Xsd | _Json] = {}
        owners = _owners(signed)
        for key, entry in entries.items():
            if reuse is not None and key in reuse.compiled:
                compiled[key] = reuse.compiled[key]
                continue
            schema = PayloadSchema.from_bundle(owners.get(key, "?"), key, entry, texts)
            check(schema)
            compiled[key] = (_Xsd(schema=compile_xsd(schema)) if schema.kind == XSD else
                             _Json(validator=Draft202012Validator(orjson.loads(schema.files[schema.main]))))
        _check_references(signed, compiled)
    except PayloadSchemaError as e:
        raise PolicyFormatError(f"bundle schema {_short(str(e))}") from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PolicyFormatError(f"bundle schemas are malformed: {type(e).__name__}: {e}") from e
    return PayloadSchemas(compiled=compiled)


def _owners(signed: Mapping[str, Any]) -> dict[str, str]:
    """Schema key → the SID of a service that references it (for messages)."""
    return {op[member]: sid for sid, service in (signed.get("services") or {}).items()
            for op in (service.get("operations") or {}).values()
            for member in ("request_schema", "response_schema") if op.get(member)}


def _check_references(signed: Mapping[str, Any], compiled: Mapping[str, object]) -> None:
    for sid, service in (signed.get("services") or {}).items():
        for name, op in (service.get("operations") or {}).items():
            for member in ("request_schema", "response_schema"):
                key = op.get(member)
                if key is not None and key not in compiled:
                    raise PolicyFormatError(f"{sid} {name}: {member} {str(key)[:12]}… is not in the bundle")


def _short(text: str) -> str:
    """One printable line of at most 300 characters (it goes into a Fault or problem+json)."""
    text = "".join(ch if ch.isprintable() else " " for ch in " ".join(text.split()))
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 1] + "…"

"""Payload schemas from the bundle, compiled once per bundle, and the per-message check.

A bundle carries the schemas of its audience's services under its signature (docs/bundle-format.md):
`schemas` maps a key to `{kind, main, files: {relative path: sha256}}` and `schema_files` maps a
sha256 to the file's text. XSDs are compiled with the one safe parser and a resolver that serves
`xs:include` / `xs:import` only from the entry's own files: no network, no disk, nothing outside
the schema set (an unknown location fails compilation). JSON Schemas (2020-12) get `$ref`s only
into the same set. A schema that does not compile makes the bundle malformed (refused, the last
good one stays in force): the compiler's `reestr validate` reports the same as
`SCHEMA-payload-invalid` before anything is signed.

Compiling costs milliseconds per XSD; a new bundle reuses the compiled schemas of the bundle in
force whose key (a digest of the whole schema set) is unchanged, so polling costs nothing here.
Checking is the hot path: an lxml XSD validation of an element in place (a few µs for a 6 KB
SMEV 3 payload), or one JSON parse + jsonschema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from lxml import etree  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from compiler.trust import canonical_json
from proxy.errors import PolicyFormatError

_BASE = "reestr-schema:///"
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


class _Resolver(etree.Resolver):  # type: ignore[misc]
    """Serves the schema set's own files by their relative path; anything else fails."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        super().__init__()
        self.files = files

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        if url.startswith(_BASE) and url[len(_BASE):] in self.files:
            return self.resolve_string(self.files[url[len(_BASE):]], context, base_url=url)
        raise PolicyFormatError("schema location outside the schema set")


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
        for key, entry in entries.items():
            if reuse is not None and key in reuse.compiled:
                compiled[key] = reuse.compiled[key]
                continue
            if hashlib.sha256(canonical_json(entry)).hexdigest() != key:
                raise PolicyFormatError(f"schema {key[:12]}…: key is not the digest of its entry")
            files = {path: _file(texts, digest) for path, digest in entry["files"].items()}
            compiled[key] = _compile(entry["kind"], entry["main"], files)
        _check_references(signed, compiled)
    except PolicyFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PolicyFormatError(f"bundle schemas are malformed: {type(e).__name__}: {e}") from e
    return PayloadSchemas(compiled=compiled)


def _file(texts: Mapping[str, str], digest: str) -> bytes:
    data = texts[digest].encode("utf-8")
    if hashlib.sha256(data).hexdigest() != digest:
        raise PolicyFormatError(f"schema file {digest[:12]}…: content does not match its digest")
    return data


def _compile(kind: str, main: str, files: Mapping[str, bytes]) -> _Xsd | _Json:
    if kind == "xsd":
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        parser.resolvers.add(_Resolver(files))
        try:
            document = etree.fromstring(files[main], parser, base_url=_BASE + main)
            return _Xsd(schema=etree.XMLSchema(document))
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as e:
            raise PolicyFormatError(f"schema {main}: does not compile: {_short(str(e))}") from e
    if kind == "json-schema":
        try:
            documents = {path: orjson.loads(data) for path, data in files.items()}
            Draft202012Validator.check_schema(documents[main])
        except (orjson.JSONDecodeError, SchemaError) as e:
            raise PolicyFormatError(f"schema {main}: not a JSON Schema: {_short(str(e))}") from e
        registry: Registry[Any] = Registry().with_resources(
            (path, Resource.from_contents(doc, default_specification=DRAFT202012))
            for path, doc in documents.items())
        return _Json(validator=Draft202012Validator(documents[main], registry=registry))
    raise PolicyFormatError(f"schema {main}: unknown kind {kind!r}")


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

"""Payload schemas that services register (`request_schema`, `response_schema`): one home for
reading a schema with its include/import closure, the resolver rule, and compiling it.

A service's schemas live in `schemas/services/<SID>/`. SOAP services register XSD, REST services
JSON Schema 2020-12. An XSD may `xs:include` / `xs:import` / `xs:redefine` other files, but only
by a relative `schemaLocation` that stays inside the service's folder: no absolute path, no URL,
no `..` out of it, no symlink leading elsewhere. The closure is read through a `Reader` (a function
from a folder-relative path to bytes), so the working tree (`service_reader`), a git revision
(`reestr breaking`) and a bundle's `schema_files` (the sidecar) all follow the same rule; paths
are normalised (`/` separators, no `./`), and those are the names a bundle carries.

Compiling is cached per schema content (`PayloadSchema.key`): the same files compile once per
process however many operations, validate runs and bundles use them (the cache is never emptied:
right for a command; a long-running process keeps its own per-bundle table instead). Everything here raises
`PayloadSchemaError` (code `SCHEMA-payload-invalid`) or `MissingSchemaError`; `compiler.rules`
turns them into Problems at the operation's YAML node.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree  # type: ignore[import-untyped]

from compiler.errors import CompilerError
from compiler.trust import canonical_json, sha256_hex

SERVICE_SCHEMAS = "schemas/services"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSD, JSON_SCHEMA = "xsd", "json-schema"
SUFFIX = {XSD: ".xsd", JSON_SCHEMA: ".json"}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_FILE_BYTES = 4 << 20    # one schema file; real вид сведений XSDs are ≲ 200 KiB
MAX_FILES = 200             # files in one closure
_REFERENCES = ("include", "import", "redefine", "override")
_BASE_URL = "reestr:///"    # in-memory documents are named under it; nothing else resolves
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LOCATION = re.compile(r"[A-Za-z0-9._~+/-]+")

Reader = Callable[[str], bytes | None]
"""Folder-relative path (normalised, `/`) → the file's bytes, or None when there is no such file."""


class PayloadSchemaError(CompilerError):
    """A registered payload schema that cannot be used: outside its folder, unreadable, not UTF-8,
    not well-formed, an import that leaves the folder or is missing, or it does not compile."""

    code = "SCHEMA-payload-invalid"

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(where + message)
        self.file, self.line = file, line


class MissingSchemaError(PayloadSchemaError):
    """The registered main file does not exist (reported as `REF-unknown-schema-file`)."""

    code = "REF-unknown-schema-file"


@dataclass(frozen=True)
class PayloadSchema:
    """A main schema file and every file it pulls in, by folder-relative path (the main included)."""

    kind: str                       # XSD or JSON_SCHEMA
    sid: str
    main: str
    files: Mapping[str, bytes]

    def entry(self) -> dict[str, Any]:
        """The bundle's `schemas` entry: kind, main, and each file's SHA-256 (docs/bundle-format.md)."""
        return {"kind": self.kind, "main": self.main,
                "files": {rel: sha256_hex(data) for rel, data in sorted(self.files.items())}}

    @property
    def key(self) -> str:
        """SHA-256 hex of the canonical JSON of `entry()`: names the schema by its whole content."""
        return sha256_hex(canonical_json(self.entry()))

    def texts(self) -> dict[str, str]:
        """{SHA-256 hex: text} of the files, as the bundle's `schema_files` table stores them."""
        return {sha256_hex(data): data.decode("utf-8") for data in self.files.values()}

    def display(self, rel: str) -> str:
        """The repository-relative name of one of the files, for messages."""
        return f"{SERVICE_SCHEMAS}/{self.sid}/{rel}"

    @classmethod
    def from_bundle(cls, sid: str, key: str, entry: Any, schema_files: Mapping[str, Any]) -> PayloadSchema:
        """The schema a bundle's `schemas[key]` entry names, its files taken from `schema_files`
        (docs/bundle-format.md). PayloadSchemaError unless every path is normalised, every text
        has the digest the entry names, and the key is the entry's digest: what a sidecar checks
        before it compiles anything from a bundle."""
        if not isinstance(entry, dict) or set(entry) != {"kind", "main", "files"} \
                or entry["kind"] not in SUFFIX or not isinstance(entry["files"], dict) \
                or not isinstance(entry["main"], str):
            raise PayloadSchemaError(f"schema {key}: malformed entry")
        files: dict[str, bytes] = {}
        for rel, digest in entry["files"].items():
            text = schema_files.get(digest) if isinstance(digest, str) else None
            if not isinstance(rel, str) or normalise(rel) != rel or not isinstance(text, str):
                raise PayloadSchemaError(f"schema {key}: file {rel!r} is not a normalised path with a text")
            data = text.encode("utf-8")
            if sha256_hex(data) != digest:
                raise PayloadSchemaError(f"schema {key}: {rel} does not have the digest {digest}")
            files[rel] = data
        schema = cls(entry["kind"], sid, entry["main"], files)
        if entry["main"] not in files or schema.key != key:
            raise PayloadSchemaError(f"schema {key}: the key is not the digest of its entry")
        return schema


# --- where a registered schema is ---------------------------------------------------------------


def kind_of(protocol: str) -> str:
    """SOAP payloads are XML (XSD); REST payloads are JSON (JSON Schema 2020-12)."""
    return XSD if protocol == "soap" else JSON_SCHEMA


def locate(sid: str, ref: str, kind: str) -> str:
    """The folder-relative path of a registered `ref` (`schemas/services/<SID>/...`).

    PayloadSchemaError when it is not inside that service's own folder or has the wrong suffix.
    """
    folder = f"{SERVICE_SCHEMAS}/{sid}/"
    if "\\" in ref or not ref.startswith(folder):
        raise PayloadSchemaError(f"{ref}: a schema of {sid} must lie under {folder}")
    rel = normalise(ref[len(folder):])
    if rel is None:
        raise PayloadSchemaError(f"{ref}: not a plain relative path inside {folder}")
    if not rel.endswith(SUFFIX[kind]):
        what = "XSD" if kind == XSD else "JSON Schema 2020-12"
        raise PayloadSchemaError(f"{ref}: a {'SOAP' if kind == XSD else 'REST'} service registers "
                                 f"{what} ({SUFFIX[kind]} files)")
    return rel


def normalise(rel: str) -> str | None:
    """`rel` as a normalised folder-relative path, or None when it is not one (absolute, a URL,
    a backslash, `..` out of the folder, percent-escapes, query or fragment, empty)."""
    if (not rel or "\\" in rel or rel.startswith("/") or _SCHEME.match(rel)
            or any(c in rel for c in "%?#\0") or any(ord(c) < 32 for c in rel)):
        return None
    out = posixpath.normpath(rel)
    if out in (".", "..") or out.startswith(("../", "/")) or _SCHEME.match(out):
        return None
    return out


def resolve_location(including: str, location: str) -> str | None:
    """The folder-relative file an `xs:include`/`xs:import` `schemaLocation` in file `including`
    names, or None when the rule refuses it (see `normalise`). A location is written with ASCII
    letters, digits and `. _ ~ + - /` only: libxml2 silently skips resolvers for locations with
    other characters (spaces, Cyrillic), so such an import would never load. The sidecar applies
    the same rule to a bundle's files."""
    location = location.strip()
    if not _LOCATION.fullmatch(location) or location.startswith("/") or _SCHEME.match(location):
        return None
    return normalise(posixpath.join(posixpath.dirname(including), location))


def service_reader(repo_root: Path, sid: str) -> Reader:
    """Read `schemas/services/<sid>/`'s files from the working tree. A symlink whose target lies
    outside that folder (or a folder that is itself a link elsewhere) is refused, not followed."""
    folder = os.path.join(repo_root, SERVICE_SCHEMAS, sid)
    expected = os.path.join(os.path.realpath(repo_root), SERVICE_SCHEMAS, sid)
    checked: list[bool] = []  # whether the folder itself is where it should be, once per reader

    def read(rel: str) -> bytes | None:
        shown = f"{SERVICE_SCHEMAS}/{sid}/{rel}"
        try:
            real = os.path.realpath(os.path.join(folder, rel), strict=True)
            info = os.stat(real)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if not checked:
            checked.append(os.path.realpath(folder) == expected)
        if not checked[0] or not real.startswith(expected + os.sep):
            raise PayloadSchemaError("a symbolic link that leads outside the service's schema folder", shown)
        if info.st_size > MAX_FILE_BYTES:
            raise PayloadSchemaError(f"larger than {MAX_FILE_BYTES >> 20} MiB", shown)
        with open(real, "rb") as f:
            return f.read()
    return read


# --- reading a schema and its closure -----------------------------------------------------------


def safe_parser() -> etree.XMLParser:
    """No DTD, no entities, no network, no huge trees: a schema is input from outside too."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_blank_text=False)


def load(sid: str, ref: str, protocol: str, read: Reader) -> PayloadSchema:
    """The schema registered as `ref` by service `sid`, with its closure, read through `read`.

    MissingSchemaError when the main file is absent; PayloadSchemaError for any other problem
    (outside the folder, not UTF-8, not well-formed, a refused or missing import).
    """
    kind = kind_of(protocol)
    main = locate(sid, ref, kind)
    data = read(main)
    if data is None:
        raise MissingSchemaError(f"{ref} does not exist")
    files = {main: data}
    if kind == XSD:
        _xsd_closure(sid, main, files, read)
    else:
        _json_document(sid, main, data)
    return PayloadSchema(kind, sid, main, files)


def _xsd_closure(sid: str, main: str, files: dict[str, bytes], read: Reader) -> None:
    pending = [main]
    while pending:
        rel = pending.pop()
        shown = f"{SERVICE_SCHEMAS}/{sid}/{rel}"
        root = parse_xml(files[rel], shown)
        if etree.QName(root).text != f"{{{XSD_NS}}}schema":
            raise PayloadSchemaError("not an XML Schema (the root element is not xs:schema)", shown)
        for ref_el, location in _references(root):
            target = resolve_location(rel, location)
            if target is None:
                what = f"xs:{etree.QName(ref_el).localname} schemaLocation {location!r}"
                plain = location.strip()
                if not (plain.startswith("/") or _SCHEME.match(plain) or "\\" in plain
                        or _LOCATION.fullmatch(plain)):
                    raise PayloadSchemaError(f"{what}: write locations with ASCII letters, digits and "
                                             ". _ ~ + - / only (others are never resolved)",
                                             shown, ref_el.sourceline)
                raise PayloadSchemaError(
                    f"{what} leaves the service's schema folder: only relative paths inside "
                    f"{SERVICE_SCHEMAS}/{sid}/ are allowed", shown, ref_el.sourceline)
            if target in files:
                continue
            if len(files) >= MAX_FILES:
                raise PayloadSchemaError(f"more than {MAX_FILES} files in the include/import closure", shown)
            data = read(target)
            if data is None:
                raise PayloadSchemaError(
                    f"xs:{etree.QName(ref_el).localname} schemaLocation {location!r}: "
                    f"{SERVICE_SCHEMAS}/{sid}/{target} does not exist", shown, ref_el.sourceline)
            files[target] = data
            pending.append(target)


def _references(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    for child in root:
        if isinstance(child.tag, str) and etree.QName(child).namespace == XSD_NS \
                and etree.QName(child).localname in _REFERENCES:
            location = child.get("schemaLocation")
            if location is not None:
                yield child, location


def parse_xml(data: bytes, shown: str) -> etree._Element:
    """One schema document, parsed safely; PayloadSchemaError (with the line) when it is not UTF-8,
    not well-formed, or carries a DOCTYPE."""
    _utf8(data, shown)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as e:
        raise PayloadSchemaError(f"not well-formed XML: {_first_line(e.msg)}", shown, e.lineno) from e
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise PayloadSchemaError("a DOCTYPE is not allowed in a schema (no DTDs, no entities)", shown, 1)
    if (info.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise PayloadSchemaError(f"declares encoding {info.encoding}: schema files are UTF-8", shown, 1)
    return root


def _utf8(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise PayloadSchemaError("not UTF-8 (schema files are UTF-8 text)", shown, line) from e


def _first_line(message: str) -> str:
    """libxml2's message without its own ", line N, column M" (the line is reported separately)."""
    first = message.splitlines()[0] if message else "syntax error"
    return re.sub(r", line [0-9]+, column [0-9]+$", "", first)


def _json_document(sid: str, main: str, data: bytes) -> Any:
    shown = f"{SERVICE_SCHEMAS}/{sid}/{main}"
    text = _utf8(data, shown)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PayloadSchemaError(f"not JSON: {e.msg}", shown, e.lineno) from e


# --- compiling ---------------------------------------------------------------------------------


def check(schema: PayloadSchema) -> None:
    """Compile `schema` (XSD) or check it against the 2020-12 meta-schema; PayloadSchemaError if
    it is not usable. Cached per content."""
    if schema.kind == XSD:
        compile_xsd(schema)
    else:
        _cached(_JSON_CHECKED, schema, _check_json)


class MemoryResolver(etree.Resolver):  # type: ignore[misc]
    """Resolves `schemaLocation`s to in-memory files named `reestr:///<folder-relative path>`;
    anything else resolves to an empty document, so libxml2 never falls back to the file system
    or the network."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        super().__init__()
        self.files = files

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        # libxml2 percent-escapes what it joins (a Cyrillic file name arrives as %D0%...); `%`
        # itself is refused in a schemaLocation (`resolve_location`), so unquoting is exact.
        rel = unquote(system_url[len(_BASE_URL):]) if system_url.startswith(_BASE_URL) else None
        data = self.files.get(normalise(rel) or "") if rel is not None else None
        if data is None:
            return self.resolve_string(b"<refused/>", context, base_url=system_url)
        return self.resolve_string(data, context, base_url=system_url)


def compile_xsd(schema: PayloadSchema) -> etree.XMLSchema:
    """The compiled XSD; PayloadSchemaError naming the file and line where libxml2 stopped."""
    return _cached(_COMPILED, schema, _compile_xsd)


def global_elements(schema: PayloadSchema) -> frozenset[str]:
    """Clark names of the global elements the closure declares (what a payload's root may be)."""
    return _cached(_ELEMENTS, schema, _global_elements)  # type: ignore[no-any-return]


_COMPILED: dict[str, object] = {}
_ELEMENTS: dict[str, object] = {}
_JSON_CHECKED: dict[str, object] = {}


def _cached(table: dict[str, object], schema: PayloadSchema, work: Callable[[PayloadSchema], Any]) -> Any:
    """`work(schema)`, or its error, computed once per content key (a failure is remembered too)."""
    key = schema.key
    if key not in table:
        try:
            table[key] = work(schema)
        except PayloadSchemaError as e:
            table[key] = e
    found = table[key]
    if isinstance(found, PayloadSchemaError):
        raise found
    return found


def _compile_xsd(schema: PayloadSchema) -> etree.XMLSchema:
    parser = safe_parser()
    parser.resolvers.add(MemoryResolver(schema.files))
    try:
        doc = etree.fromstring(schema.files[schema.main], parser, base_url=_BASE_URL + schema.main)
    except etree.XMLSyntaxError as e:  # validate parses first (parse_xml); a bundle's text arrives here
        raise PayloadSchemaError(f"not well-formed XML: {_first_line(str(e))}", schema.display(schema.main),
                                 e.lineno) from e
    try:
        return etree.XMLSchema(doc)
    except etree.XMLSchemaParseError as e:
        entry = e.error_log[0] if len(e.error_log) else None
        name = (entry.filename or "") if entry else ""
        rel = name[len(_BASE_URL):] if name.startswith(_BASE_URL) else schema.main
        message = entry.message if entry else str(e)
        raise PayloadSchemaError(f"does not compile: {message}", schema.display(rel),
                                 entry.line if entry else None) from e


def _global_elements(schema: PayloadSchema) -> frozenset[str]:
    out: set[str] = set()
    seen: set[str] = set()

    def walk(rel: str, namespace: str | None) -> None:
        if rel in seen:
            return
        seen.add(rel)
        root = parse_xml(schema.files[rel], schema.display(rel))
        tns = root.get("targetNamespace", namespace)  # a chameleon include takes the includer's
        for child in root:
            if child.tag == f"{{{XSD_NS}}}element" and child.get("name"):
                out.add(f"{{{tns or ''}}}{child.get('name')}")
        for ref_el, location in _references(root):
            target = resolve_location(rel, location)
            if target is not None and target in schema.files:
                walk(target, tns if etree.QName(ref_el).localname != "import" else None)
    walk(schema.main, None)
    return frozenset(out)


def _check_json(schema: PayloadSchema) -> None:
    shown = schema.display(schema.main)
    document = _json_document(schema.sid, schema.main, schema.files[schema.main])
    if isinstance(document, dict) and document.get("$schema", JSON_SCHEMA_DIALECT) != JSON_SCHEMA_DIALECT:
        raise PayloadSchemaError(f"$schema {document.get('$schema')!r}: payload schemas are JSON Schema "
                                 f"2020-12 ({JSON_SCHEMA_DIALECT})", shown)
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as e:
        where = "/" + "/".join(map(str, e.absolute_path))
        raise PayloadSchemaError(f"not a valid JSON Schema 2020-12 at {where}: {e.message}", shown) from e
    for where, ref in _refs(document, ""):
        if not ref.startswith("#"):
            raise PayloadSchemaError(f"{where}: $ref {ref!r} is not local (only '#...' references: "
                                     "nothing is fetched)", shown)


def _refs(node: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield at or "/", value
            else:
                yield from _refs(value, f"{at}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{at}/{i}")

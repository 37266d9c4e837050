"""A registry (directory or git revision) → documents as models, with their source positions.

Loading reports every YAML and shape problem at once; it never raises for bad content. Domain
rules (R1–R10, references) live in `compiler.rules` and run on the loaded Registry.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jsonschema.exceptions import ValidationError
from pydantic import ValidationError as PydanticError

from compiler import gcpause
from compiler.errors import CompilerError, Problem, Severity, excerpt
from compiler.models import FOLDERS, AccessSheet, Participant, Service
from compiler.schemas import shape_errors
from compiler.yamlsrc import Positions, load_bytes

SCHEMA_LINE = "# yaml-language-server: $schema="
SYMLINK_MESSAGE = "symbolic links are not followed in a registry: commit the file itself"


class RegistryPathError(CompilerError):
    """The path is not a registry directory, or the git revision cannot be read."""


@dataclass
class Source:
    """Where a document came from: its path (as given to the loader) and its node positions."""

    path: str
    positions: Positions
    rel: str = ""  # path inside the registry (e.g. consumers/ved1.yaml): stable across checkouts

    def at(self, *node: str | int, key: bool = False) -> tuple[str, int, int]:
        line, col = self.positions.of(tuple(node), key=key)
        return self.path, line, col


@dataclass
class Registry:
    """The loaded documents by id, where each came from, and the problems met while loading."""

    participants: dict[str, Participant] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    sheets: dict[str, AccessSheet] = field(default_factory=dict)
    sources: dict[tuple[str, str], Source] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    digest: str = ""
    root: Path | None = None  # the folder it was loaded from (None from git or from memory)
    unreadable: set[tuple[str, str]] = field(default_factory=set)  # (kind, file stem) that did not load
    not_loaded: dict[str, tuple[str, str]] = field(default_factory=dict)  # path → (kind, stem) of those files

    def exists(self, kind: str, ident: str) -> bool:
        """True when a file for the document is present, even if it did not load (no cascade errors)."""
        return (kind, ident) in self.sources or (kind, ident) in self.unreadable

    def source(self, kind: str, ident: str) -> Source:
        return self.sources[(kind, ident)]


def load_directory(root: str | Path) -> Registry:
    """Load `root` (the folder holding participants/, services/, consumers/)."""
    base = Path(root)
    if not base.is_dir():
        raise RegistryPathError(f"{root}: not a directory")
    if not any(_holds_registry_files(base / folder) for folder in FOLDERS):
        raise RegistryPathError(
            f"{root}: not a registry (expected participants/, services/ or consumers/ inside)")
    # Every YAML file below root, not only those in the three folders: a sheet saved in the wrong
    # place must be reported (PATH-unexpected-file), as load_git does, not silently left out.
    files, refused = read_tree(base)
    registry = load_files(files, base=str(base))
    registry.problems = sorted(registry.problems + refused)
    registry.root = base
    return registry


def read_tree(base: Path) -> tuple[dict[str, bytes], list[Problem]]:
    """{path: bytes} of the YAML files below `base`, and a
    PATH-symlink problem for every symbolic link met, dangling or not, file or folder.

    Why: a link in registry/ can point anywhere — a private key linked in was read and printed by
    `validate` and `compile` (issue 10, finding 13). Links are never followed, nor read; anything
    that is not a regular file (a FIFO would block the read) is left out as an unexpected file.
    """
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    for top, dirs, names in os.walk(base, followlinks=False):
        here = Path(top)
        for name in sorted(dirs + names):
            path = here / name
            if path.is_symlink():
                problems.append(Problem(str(path), 1, 1, "PATH-symlink",
                                        SYMLINK_MESSAGE))
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        for name in sorted(names):
            path = here / name
            if path.suffix not in (".yaml", ".yml") or path.is_symlink():
                continue
            if not stat.S_ISREG(path.lstat().st_mode):
                problems.append(Problem(str(path), 1, 1, "PATH-unexpected-file",
                                        "registry files live in participants/, services/ or consumers/"))
                continue
            files[str(path)] = path.read_bytes()
    return files, problems


def _holds_registry_files(folder: Path) -> bool:
    """A registry folder: present and, for `services/`, holding YAML (`schemas/services/` holds
    payload schema folders, and `reestr validate schemas` must say it is not a registry)."""
    if not folder.is_dir():
        return False
    return folder.name != "services" or any(p.suffix in (".yaml", ".yml") for p in folder.iterdir())


def load_git(repo: str | Path, rev: str, subdir: str = "registry") -> Registry:
    """Load the registry as it is at git revision `rev`, reading blobs straight from git."""
    def git(*args: str, data: bytes | None = None) -> bytes:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                                  check=True).stdout
        except subprocess.CalledProcessError as e:
            raise RegistryPathError(
                f"git {' '.join(args[:2])}: {e.stderr.decode(errors='replace').strip()}") from e
    names, links = [], []
    for entry in git("ls-tree", "-r", "-z", rev, "--", subdir).decode().split("\0"):
        mode, _, name = entry.partition("\t")
        if mode.startswith("120000 "):  # a symbolic link: never read (see read_tree)
            links.append(Problem(name, 1, 1, "PATH-symlink",
                                 SYMLINK_MESSAGE))
        elif mode.startswith("100") and name.endswith((".yaml", ".yml")):
            names.append(name)
    blobs = _cat_blobs(git, rev, names)
    registry = load_files(dict(zip(names, blobs, strict=True)), base=subdir)
    registry.problems = sorted(registry.problems + links)
    return registry


def _cat_blobs(git: Any, rev: str, names: list[str]) -> list[bytes]:
    if not names:
        return []
    out: bytes = git("cat-file", "--batch", data="".join(f"{rev}:{n}\n" for n in names).encode())
    blobs, pos = [], 0
    for _ in names:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        blobs.append(out[header_end + 1: header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return blobs


def load_files(files: Mapping[str, bytes], base: str = "registry") -> Registry:
    """Load documents from {path: bytes}; the folder under `base` decides each document's kind."""
    root = PurePosixPath(Path(base).as_posix())
    rels = {path: _relative(PurePosixPath(Path(path).as_posix()), root) for path in sorted(files)}
    registry = Registry(digest=_digest(files, rels))
    with gcpause.paused(freeze=True):  # millions of long-lived objects: collections would rescan them all
        for path, raw in files.items():
            rel = rels[path]
            kind = FOLDERS.get(rel.parts[0]) if len(rel.parts) == 2 else None
            if kind is None:
                registry.problems.append(Problem(path, 1, 1, "PATH-unexpected-file",
                                                 "registry files live in participants/, services/ or consumers/"))
                continue
            _load_one(registry, path, raw, kind, rel)
    registry.problems.sort()
    return registry


def _relative(path: PurePosixPath, root: PurePosixPath) -> PurePosixPath:
    """`path.relative_to(root)` by comparing parts: the same answer, without the costly walk over
    every parent that `relative_to` makes for each of thousands of files."""
    if path.anchor == root.anchor and path.parts[:len(root.parts)] == root.parts:
        return PurePosixPath(*path.parts[len(root.parts):])
    return path.relative_to(root)  # raises ValueError, as before


def _digest(files: Mapping[str, bytes], rels: Mapping[str, PurePosixPath]) -> str:
    """SHA-256 over (path inside the registry, size, bytes) of every file, in path order."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{rels[path]}\0{len(files[path])}\0".encode())
        h.update(files[path])
    return "sha256:" + h.hexdigest()


_ID_FIELD = {"Participant": "id", "Service": "sid", "AccessSheet": "consumer"}
_MODEL: dict[str, type[Participant] | type[Service] | type[AccessSheet]] = {
    "Participant": Participant, "Service": Service, "AccessSheet": AccessSheet}


def _load_one(registry: Registry, path: str, raw: bytes, kind: str, rel: PurePosixPath) -> None:
    loaded = load_bytes(raw)
    problems = registry.problems
    registry.unreadable.add((kind, rel.stem))  # until the document has loaded
    registry.not_loaded[path] = (kind, rel.stem)
    for p in loaded.problems:
        problems.append(Problem(path, p.line, p.col, p.code, p.message))
    if loaded.data is None:
        return
    source = Source(path, loaded.positions, str(rel))
    stem = rel.stem
    if not raw.startswith(SCHEMA_LINE.encode()):
        problems.append(Problem(path, 1, 1, "SCHEMA-comment-missing",
                                f"the file must start with '{SCHEMA_LINE}...' so editors validate it",
                                Severity.WARNING))
    data = loaded.data
    if isinstance(data, dict) and data.get("kind") != kind and isinstance(data.get("kind"), str):
        problems.append(Problem(*source.at("kind"), "SCHEMA-kind",
                                f"a file in this folder must be kind {kind}, not {excerpt(data['kind'])}"))
        return
    try:
        doc = _MODEL[kind].model_validate(data)
    except PydanticError as e:
        problems.extend(_shape_problems(source, kind, data, e))
        return
    ident = getattr(doc.metadata, _ID_FIELD[kind])
    if ident != stem:
        problems.append(Problem(*source.at("metadata", _ID_FIELD[kind]), "ID-file-name",
                                f"{_ID_FIELD[kind]} {ident!r} must match the file name {stem!r}"))
    tables: dict[str, dict[str, Any]] = {"Participant": registry.participants, "Service": registry.services,
                                         "AccessSheet": registry.sheets}
    table = tables[kind]
    if ident in table:
        other = registry.sources[(kind, ident)].path
        code = "R1-one-sheet-per-consumer" if kind == "AccessSheet" else "ID-duplicate"
        problems.append(Problem(*source.at("metadata", _ID_FIELD[kind]), code,
                                f"{kind} {ident!r} is already defined in {other}"))
        return
    table[ident] = doc
    registry.sources[(kind, ident)] = source
    registry.unreadable.discard((kind, rel.stem))
    del registry.not_loaded[path]


def _shape_problems(source: Source, kind: str, data: Any, error: PydanticError) -> list[Problem]:
    """Shape problems in the published contract's terms (jsonschema), else pydantic's."""
    errors = list(shape_errors(kind, data))
    found = {_from_jsonschema(source, e) for e in errors}
    for e in error.errors():  # what the schema cannot say (e.g. 2024-02-30), pydantic does
        if found and not e["type"].startswith(("date", "value_error")):
            continue
        node = _data_path(data, e["loc"])
        found.add(Problem(*source.at(*node), "SCHEMA-invalid",
                          f"{'.'.join(map(str, node)) or 'document'}: {e['msg']}"))
    return sorted(found)


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The part of a pydantic error location that names real nodes (drops union branch tags)."""
    path: list[str | int] = []
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
                isinstance(data, list) and isinstance(part, int) and part < len(data)):
            data = data[part]  # type: ignore[index]
        elif isinstance(data, dict) and isinstance(part, str) and "[" not in part:
            path.append(part)  # a missing field: point at it under its parent
            break
        else:
            continue
        path.append(part)
    return tuple(path)


_CODES = {"additionalProperties": "SCHEMA-unknown-field", "required": "SCHEMA-missing-field",
          "type": "SCHEMA-type", "enum": "SCHEMA-enum", "const": "SCHEMA-enum",
          "pattern": "SCHEMA-pattern"}


def _from_jsonschema(source: Source, e: ValidationError) -> Problem:
    node = tuple(e.absolute_path)
    code = _CODES.get(str(e.validator), "SCHEMA-invalid")
    where = ".".join(map(str, node)) or "document"
    if code == "SCHEMA-unknown-field" and isinstance(e.instance, dict):
        known = set((e.schema or {}).get("properties", {})) if isinstance(e.schema, dict) else set()
        extra = sorted(k for k in e.instance if k not in known)
        if extra:
            return Problem(*source.at(*node, extra[0], key=True), code,
                           f"unknown field {excerpt(extra[0])} in {where}")
    return Problem(*source.at(*node), code, f"{where}: {_without_value(e)}")


def _without_value(e: ValidationError) -> str:
    """jsonschema's message, with the offending value (which it prints whole) cut to an excerpt."""
    shown, message = repr(e.instance), str(e.message)
    if len(shown) <= 40:
        return message
    return message.replace(shown, excerpt(e.instance)) if shown in message else \
        f"{e.validator} not satisfied by {excerpt(e.instance)}"



def iter_documents(registry: Registry) -> Iterable[tuple[str, str, Any]]:
    """(kind, id, document) for every loaded document, in a stable order."""
    for ident in sorted(registry.participants):
        yield "Participant", ident, registry.participants[ident]
    for ident in sorted(registry.services):
        yield "Service", ident, registry.services[ident]
    for ident in sorted(registry.sheets):
        yield "AccessSheet", ident, registry.sheets[ident]

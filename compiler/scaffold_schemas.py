"""`reestr new service --request-schema/--response-schema`: payload schema files copied into
`schemas/services/<SID>/` with their include/import closure, the relative layout kept.

The closure is read with the same rule validation applies (`compiler.payload_schemas`): only
relative locations that stay inside the main file's folder, so what is copied is exactly what
`reestr validate` and the sidecar will resolve. Each schema is compiled before anything is
written, and a SOAP request schema must declare the operation's element.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from compiler import payload_schemas
from compiler.errors import CompilerError
from compiler.models import Profile


class SchemaCopyError(CompilerError):
    """A schema file that cannot be registered: unreadable, not compiling, or clashing."""


def collect(sid: str, protocol: str, profile: str, operations: Sequence[MutableMapping[str, str]],
            given: dict[str, Sequence[str]]) -> dict[str, bytes]:
    """Set `request_schema`/`response_schema` on `operations` from `given` ({field: [[OP=]FILE]})
    and return {folder-relative path: bytes} of every file to copy."""
    names = [op["name"] for op in operations]
    files: dict[str, bytes] = {}
    for field, items in given.items():
        for item in items:
            op_name, sep, path = item.partition("=")
            targets = [op_name] if sep and op_name in names else names
            source = Path(path if sep and op_name in names else item)
            schema = _read(sid, protocol, source)
            for rel, data in schema.files.items():
                if files.setdefault(rel, data) != data:
                    raise SchemaCopyError(f"{source}: {rel} clashes with another file of that name")
            ref = schema.display(schema.main)
            for op in operations:
                if op["name"] not in targets:
                    continue
                if op.get(field) not in (None, ref):
                    raise SchemaCopyError(f"{op['name']}: two files given as its {field}")
                op[field] = ref
                _check_element(op, field, protocol, profile, schema)
    return files


def _read(sid: str, protocol: str, source: Path) -> payload_schemas.PayloadSchema:
    if not source.is_file():
        raise SchemaCopyError(f"{source}: no such file")
    folder = source.parent

    def read(rel: str) -> bytes | None:
        path = folder / rel
        return path.read_bytes() if path.is_file() else None
    ref = f"{payload_schemas.SERVICE_SCHEMAS}/{sid}/{source.name}"
    try:
        schema = payload_schemas.load(sid, ref, protocol, read)
        payload_schemas.check(schema)
    except payload_schemas.PayloadSchemaError as e:
        raise SchemaCopyError(f"{source}: cannot register it: {e}") from e
    return schema


def _check_element(op: MutableMapping[str, str], field: str, protocol: str, profile: str,
                   schema: payload_schemas.PayloadSchema) -> None:
    element = op.get("payload_element" if profile == Profile.SMEV3 else "body_element")
    if field == "request_schema" and protocol == "soap" and element is not None \
            and element not in payload_schemas.global_elements(schema):
        declared = ", ".join(sorted(payload_schemas.global_elements(schema))) or "none"
        raise SchemaCopyError(f"{op['name']}: {schema.main} declares no global element {element} "
                              f"(it declares: {declared})")


def write(repo_root: Path, sid: str, files: dict[str, bytes]) -> list[Path]:
    """Write the files under `repo_root/schemas/services/<sid>/`; an identical file already there
    is kept, a different one is refused (nothing is overwritten). Returns the files written."""
    folder = repo_root / payload_schemas.SERVICE_SCHEMAS / sid
    for rel, data in sorted(files.items()):
        target = folder / rel
        if target.exists() and target.read_bytes() != data:
            raise SchemaCopyError(f"{target} already exists with other content: nothing was copied")
    written = []
    for rel, data in sorted(files.items()):
        target = folder / rel
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        written.append(target)
    return written

"""Scaffolding: create a participant or a service, or request access, as registry files.

A participant should get from nothing to a valid pull request in three commands, so each function
here checks its input against the document models *before* writing anything (a bad SID, an unknown
owner or an existing file are refused and nothing changes). A new participant or service is also
checked with the domain rules on the registry with the new file in memory, so a file the rules
would reject is never written (a rerun with the fix finds nothing in the way); new files are
written atomically. Then `.github/CODEOWNERS` is regenerated when the repository keeps one (a new
file needs its reviewers), and the whole registry is loaded and checked so the caller can report
what CI would say.

Access sheets are edited, not rewritten: ruamel.yaml's round-trip mode keeps comments, quoting,
folded text and flow lists of the consumer's sheet. Requesting a service that is already granted
updates that grant (operations are added to the ones granted, never silently removed).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from compiler import certs, scaffold_schemas
from compiler.codeowners import expected_for
from compiler.errors import CompilerError, Problem, Severity
from compiler.models import (
    API_VERSION,
    ID_PATTERN,
    SID_PATTERN,
    Access,
    Grant,
    Participant,
    Profile,
    Protocol,
    Service,
)
from compiler.registry import SCHEMA_LINE, Registry, load_directory, load_files

_SCHEMAS = {"Participant": "participant", "Service": "service", "AccessSheet": "access-sheet"}
_FOLD_WIDTH = 92


class ScaffoldError(CompilerError):
    """The request is refused: bad input, an unknown reference, or a file that already exists."""


@dataclass
class Outcome:
    """What a scaffolding command did, what the registry says now, and what to commit."""

    changed: list[Path]
    action: str                      # "created" or "updated"
    title: str                       # suggested commit / pull request title
    problems: list[Problem] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)  # besides changed[0]: new files (schemas copied)


def new_participant(registry_dir: str | Path, *, pid: str, name: str, type_: str, contact_name: str,
                    contact_email: str, review_team: str, sidecar: str | None = None,
                    certificate_pem: str | None = None, agreement_number: str | None = None,
                    agreement_signed: str | None = None, today: date | None = None) -> Outcome:
    """Write `participants/<pid>.yaml`, only once the document passes the models and the rules.

    Nothing is written when anything is refused (a missing agreement, a certificate already
    registered to someone else...), so the command can simply be run again with the fix.
    """
    root = _registry_root(registry_dir)
    _match(pid, ID_PATTERN, "participant id")
    target = root / "participants" / f"{pid}.yaml"
    _refuse_existing(target)
    spec = CommentedMap(name=name, type=type_,
                        contacts=[CommentedMap(name=contact_name, email=contact_email)],
                        review_team=review_team)
    if certificate_pem is not None:
        spec["certificates"] = [CommentedMap(pem=LiteralScalarString(_certificate(certificate_pem)))]
    if sidecar is not None:
        spec["sidecar"] = sidecar
    if (agreement_number is None) != (agreement_signed is None):
        raise ScaffoldError("give both --agreement-number and --agreement-signed")
    if agreement_number is None:
        raise ScaffoldError("refused, nothing written: a participant needs its agreement (R10): give "
                            "--agreement-number and --agreement-signed")
    spec["agreement"] = CommentedMap(number=agreement_number, signed=agreement_signed)
    doc = _document("Participant", "id", pid, spec)
    _check_model(Participant, doc)
    text = _dump(doc)
    _preflight(root, {target: text}, today)
    _write(target, text)
    return _finish(root, [target], "created", f"Register participant {pid}: {name}", today)


def new_service(registry_dir: str | Path, *, sid: str, name: str, owner: str, description: str,
                protocol: str, classification: str, legal_basis: str, contact_name: str,
                contact_email: str, operations: Sequence[str], profile: str = "plain",
                request_schemas: Sequence[str] = (), response_schemas: Sequence[str] = (),
                today: date | None = None) -> Outcome:
    """Write `services/<sid>.yaml` owned by an existing participant, with its operations, and copy
    the payload schemas given (`[OPERATION=]FILE`, every operation when no name is given) into
    `schemas/services/<sid>/` with their include/import closure, relative layout kept.

    The schemas are compiled and the document checked before anything is written; the schema
    files are written first and the service file last, so a rerun after a failure finds no
    half-registered service (identical schema files already there are accepted).
    """
    root = _registry_root(registry_dir)
    _match(sid, SID_PATTERN, "SID")
    target = root / "services" / f"{sid}.yaml"
    _refuse_existing(target)
    registry = load_directory(root)
    if owner not in registry.participants:
        raise ScaffoldError(f"owner {owner!r} is not a registered participant "
                            f"(known: {', '.join(sorted(registry.participants)) or 'none'})")
    if not operations:
        raise ScaffoldError("a service needs at least one --operation")
    if protocol == Protocol.REST and profile != Profile.PLAIN:
        raise ScaffoldError(f"--profile {profile} is for SOAP services")
    ops = [_operation(op, protocol, profile) for op in operations]
    try:
        copies = scaffold_schemas.collect(sid, protocol, profile, ops, {"request_schema": request_schemas,
                                                                        "response_schema": response_schemas})
    except scaffold_schemas.SchemaCopyError as e:
        raise ScaffoldError(f"refused, nothing written: {e}") from e
    spec = CommentedMap(name=name, owner=owner, description=_text(description), protocol=protocol)
    if protocol == Protocol.SOAP:
        spec["profile"] = profile
    spec.update(classification=classification, legal_basis=_text(legal_basis),
                contacts=[CommentedMap(name=contact_name, email=contact_email)], operations=ops)
    doc = _document("Service", "sid", sid, spec)
    _check_model(Service, doc)
    text = _dump(doc)
    _preflight(root, {target: text}, today)
    try:
        written = scaffold_schemas.write(root.absolute().parent, sid, copies)
    except scaffold_schemas.SchemaCopyError as e:
        raise ScaffoldError(str(e)) from e
    _write(target, text)
    outcome = _finish(root, [target, *written], "created", f"Register service {sid} ({name}) owned by {owner}",
                      today)
    outcome.created = written
    return outcome


def request_access(registry_dir: str | Path, *, consumer: str, sid: str, operations: Sequence[str] | None,
                   legal_basis: str, purpose: str, justification: str | None = None,
                   valid_until: str | None = None, today: date | None = None) -> Outcome:
    """Add (or update) the grant of `sid` in the consumer's access sheet; `operations=None` is full."""
    root = _registry_root(registry_dir)
    _match(consumer, ID_PATTERN, "participant id")
    _match(sid, SID_PATTERN, "SID")
    registry = load_directory(root)
    _check_request(registry, consumer, sid, operations)
    grant = CommentedMap(service=sid, access=str(Access.FULL if operations is None else Access.OPERATIONS))
    if operations is not None:
        grant["operations"] = list(dict.fromkeys(operations))
    grant.update(legal_basis=_text(legal_basis), purpose=_text(purpose))
    if justification:
        grant["justification"] = _text(justification)
    if valid_until:
        grant["valid_until"] = valid_until
    _check_model(Grant, grant)
    target = root / "consumers" / f"{consumer}.yaml"
    if target.exists():
        yaml = _yaml()
        text = target.read_text(encoding="utf-8")
        _indent_like(yaml, text)
        try:
            doc = yaml.load(text)
            grants = doc["spec"]["grants"]
        except (YAMLError, KeyError, TypeError) as e:
            raise ScaffoldError(f"{target}: cannot edit this access sheet ({e}); fix it first") from e
        if grants is None:
            grants = doc["spec"]["grants"] = CommentedSeq()
        verb = "Update access" if _merge_grant(grants, grant) else "Request access"
        out = io.StringIO()
        yaml.dump(doc, out)
        target.write_text(out.getvalue(), encoding="utf-8")
        action = "updated"
    else:
        verb, action = "Request access", "created"
        doc = _document("AccessSheet", "consumer", consumer, CommentedMap(grants=[grant]))
        _write(target, _dump(doc))
    what = "full" if operations is None else ", ".join(operations)
    return _finish(root, [target], action, f"{verb}: {consumer} → {sid} ({what})", today)


# --- input checks -------------------------------------------------------------------------------


def _registry_root(registry_dir: str | Path) -> Path:
    root = Path(registry_dir)
    if not root.is_dir():
        raise ScaffoldError(f"{root}: no registry here (use --registry PATH)")
    return root


def _match(value: str, pattern: str, what: str) -> None:
    # Checked before the value becomes a file name: nothing like `../x` reaches the file system.
    if not re.match(pattern, value):
        raise ScaffoldError(f"{what} {value!r} does not match {pattern}")


def _refuse_existing(target: Path) -> None:
    if target.exists():
        raise ScaffoldError(f"{target} already exists: edit it instead (scaffolding never overwrites)")


def _check_request(registry: Registry, consumer: str, sid: str, operations: Sequence[str] | None) -> None:
    if consumer not in registry.participants:
        raise ScaffoldError(f"consumer {consumer!r} is not a registered participant "
                            "(register it first: reestr new participant)")
    service = registry.services.get(sid)
    if service is None:
        raise ScaffoldError(f"service {sid} is not registered")
    if service.spec.owner == consumer:
        raise ScaffoldError(f"{consumer} owns {sid}: the owner's rights are implicit and not "
                            "written in access sheets (R2)")
    if operations is not None:
        known = [op.name for op in service.spec.operations]
        unknown = [op for op in operations if op not in known]
        if not operations or unknown:
            raise ScaffoldError(f"{sid} has no operation {', '.join(map(repr, unknown)) or '(none given)'}; "
                                f"its operations: {', '.join(known)}")


def _certificate(pem: str) -> str:
    try:
        certs.read(pem)
    except ValueError as e:
        raise ScaffoldError(f"the certificate is not a PEM X.509 certificate: {e}") from e
    return pem.strip() + "\n"


def _operation(spec: str, protocol: str, profile: str) -> CommentedMap:
    """NAME:METHOD:PATH for REST; NAME:{namespace}Element[:SOAPACTION] for SOAP, where the element
    is the Body's (profile plain) or the payload's root (smev3) and a SOAPAction may hold colons.

    The route is required: the sidecar matches calls by it (refused here rather than after writing).
    """
    name, _, rest = spec.partition(":")
    op = CommentedMap(name=name)
    if protocol == Protocol.SOAP:
        close = rest.find("}")
        if not rest.startswith("{") or close < 0:
            raise ScaffoldError(f"--operation {spec!r}: expected NAME:{{namespace}}Element[:SOAPACTION], "
                                "e.g. get:{urn:example}GetRequest:urn:example:get (a SOAPAction alone "
                                "does not identify an operation)")
        local, sep, action = rest[close + 1:].partition(":")
        op["payload_element" if profile == Profile.SMEV3 else "body_element"] = rest[:close + 1] + local
        if sep:
            op["soap_action"] = action
        return op
    method, sep, path = rest.partition(":")
    if not sep:
        raise ScaffoldError(f"--operation {spec!r}: expected NAME:METHOD:PATH, e.g. get:GET:/items/{{id}}")
    op.update(method=method.upper(), path=path)
    return op


def _check_model(model: Any, data: Any) -> None:
    try:
        model.model_validate(_plain(data))
    except ValidationError as e:
        details = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'document'}: {err['msg']}"
                            for err in e.errors())
        raise ScaffoldError(f"refused, nothing written: {details}") from e


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return str(data) if isinstance(data, str) else data


# --- YAML out -----------------------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap existing lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _indent_like(yaml: YAML, text: str) -> None:
    """Keep a hand-written file's indentation (the registry's own style is 2 / 4 / 2)."""
    mapping = re.search(r"^[A-Za-z_]+:\s*\n( +)[A-Za-z_]", text, re.M)
    dash = re.search(r"^( *)[A-Za-z_]+:\s*\n( *)- ", text, re.M)
    m = len(mapping.group(1)) if mapping else 2
    offset = len(dash.group(2)) - len(dash.group(1)) if dash else 2
    yaml.indent(mapping=m, sequence=offset + 2, offset=offset)


def _document(kind: str, id_field: str, ident: str, spec: CommentedMap) -> CommentedMap:
    return CommentedMap(apiVersion=API_VERSION, kind=kind, metadata=CommentedMap({id_field: ident}),
                        spec=spec)


def _dump(doc: CommentedMap) -> str:
    """A new file: the schema comment first (editors validate as people type), then the document."""
    out = io.StringIO()
    _yaml().dump(doc, out)
    return f"{SCHEMA_LINE}../../schemas/{_SCHEMAS[doc['kind']]}.schema.json\n{out.getvalue()}"


def _write(target: Path, text: str) -> None:
    """Write a new file atomically and never over an existing one (a temp file, then a hard link
    to the target name, which fails if the name exists)."""
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise ScaffoldError(f"{target} already exists: edit it instead (scaffolding never overwrites)") from None
    finally:
        tmp.unlink()


def _preflight(root: Path, new: dict[Path, str], today: date | None) -> None:
    """Refuse, before anything is written, a new file that the registry's rules would reject:
    the registry is loaded with the new files in memory and checked (payload schemas aside:
    they are checked where they are copied)."""
    from compiler.rules import check

    files = {str(path): path.read_bytes() for path in sorted(root.rglob("*"))
             if path.is_file() and path.suffix in (".yaml", ".yml")}
    files.update({str(path): text.encode("utf-8") for path, text in new.items()})
    registry = load_files(files, base=str(root))
    mine = {str(path) for path in new}
    errors = [p for p in [*registry.problems, *check(registry, today or date.today())]
              if p.path in mine and p.severity is Severity.ERROR]
    if errors:
        raise ScaffoldError("refused, nothing written: " + "; ".join(
            f"line {p.line}: {p.code} {p.message}" for p in sorted(errors)))


def _text(value: str) -> str:
    """Long single-line text as a folded block (`>-`), as the registry writes it by hand."""
    if len(value) <= _FOLD_WIDTH or "\n" in value or "  " in value or value != value.strip():
        return value
    folded = FoldedScalarString(value)
    positions, start = [], 0
    while len(value) - start > _FOLD_WIDTH:
        cut = value.rfind(" ", start, start + _FOLD_WIDTH)
        if cut <= start:
            break
        positions.append(cut)
        start = cut + 1
    folded.fold_pos = positions
    return _as_str(folded) if positions else value


def _as_str(value: Any) -> str:
    """FoldedScalarString is a str subclass that ruamel ships without type information."""
    assert isinstance(value, str)
    return value


def _merge_grant(grants: CommentedSeq, new: CommentedMap) -> bool:
    """Update the grant of the same service in place (True; its comments stay), else append `new`."""
    for old in grants:
        if not isinstance(old, dict) or old.get("service") != new["service"]:
            continue
        if new["access"] == Access.FULL or old.get("access") == Access.FULL:  # full ∪ anything = full
            old["access"] = str(Access.FULL)
            old.pop("operations", None)
        else:
            ops = old.get("operations")
            if not isinstance(ops, list):
                ops = old["operations"] = CommentedSeq()
            ops.extend(op for op in new["operations"] if op not in ops)
            old["access"] = str(Access.OPERATIONS)
        for key in ("legal_basis", "purpose", "justification", "valid_until"):
            if key in new:
                old[key] = new[key]
        return True
    grants.append(new)
    return False


# --- after writing ------------------------------------------------------------------------------


def _finish(root: Path, changed: list[Path], action: str, title: str, today: date | None) -> Outcome:
    """Regenerate CODEOWNERS when the repository keeps one, then check the whole registry."""
    from compiler.rules import check  # the domain rules (R1–R10)

    registry = load_directory(root)
    target, expected = expected_for(root, registry)
    if target.is_file() and target.read_text(encoding="utf-8") != expected:
        target.write_text(expected, encoding="utf-8")
        changed.append(target)
    problems = sorted([*registry.problems, *check(registry, today or date.today(), root.absolute().parent)])
    return Outcome(changed, action, title, problems)


"""Per-participant policy bundles: the slice of the registry one sidecar needs, signed.

A bundle holds the audience's own services with who may call which operation (and with which
certificate fingerprints), and the audience's own grants with where those providers listen
(docs/bundle-format.md). Its size follows the participant's own rules, not the registry's. Each
certificate is written once, in the top-level `certificates` table; entries name it by fingerprint
(a caller of many services would otherwise repeat its certificates in each, and the sidecar parse
them each time).
Output is canonical JSON, so the same registry, serial, issue time and key give the same bytes.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from compiler import gcpause, payload_schemas
from compiler.access import IMPLICIT_OWNER, Right, effective_rights, inactive_reason
from compiler.certs import read as read_certificate
from compiler.errors import CompilerError
from compiler.models import Certificate, Operation, Participant, Service
from compiler.payload_schemas import PayloadSchema
from compiler.registry import Registry
from compiler.trust import (
    BUNDLE_TYPE,
    FORMAT_VERSION,
    INDEX_TYPE,
    Signer,
    format_time,
    sha256_hex,
    sign_envelope,
)


class BundleError(CompilerError):
    """The registry cannot be compiled (it has errors, or the output cannot be written)."""


@dataclass(frozen=True)
class BuildInfo:
    serial: int
    issued_at: datetime
    expires_at: datetime
    commit: str | None


def git_source(path: Path) -> tuple[int, str] | None:
    """(commit count, HEAD sha) of the git repository holding `path`, or None outside git."""
    try:
        count = subprocess.run(["git", "-C", str(path), "rev-list", "--count", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.strip()
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(count), head


def build(registry: Registry, info: BuildInfo, keys: list[Signer],
          repo_root: Path | None = None) -> dict[str, bytes]:
    """{file name: envelope bytes} for every participant, plus `index.json`.

    Payload schemas are read from `repo_root/schemas/services/` (default: the folder holding the
    registry it was loaded from); BundleError when one is registered and cannot be read.
    """
    if repo_root is None and registry.root is not None:
        repo_root = registry.root.resolve().parent
    with gcpause.paused():  # as in loading: many objects, none in cycles that need reclaiming early
        return _build(registry, info, keys, repo_root)


def _build(registry: Registry, info: BuildInfo, keys: list[Signer],
           repo_root: Path | None) -> dict[str, bytes]:
    today = info.issued_at.date()
    rights, exclusions = effective_rights(registry, today)
    certs = {pid: _certificates(p, p.spec.certificates) for pid, p in registry.participants.items()}
    _check_unique(certs)
    signing = {pid: _certificates(p, p.spec.signing_certificates) for pid, p in registry.participants.items()}
    _check_unique(signing)
    fingerprints = {pid: sorted(c) for pid, c in certs.items()}
    ends_on = {pid: _ends_on(p) for pid, p in registry.participants.items()}
    callers: dict[str, list[Right]] = defaultdict(list)
    grants: dict[str, list[Right]] = defaultdict(list)
    for right in rights:
        callers[right.sid].append(right)
        if right.where != IMPLICIT_OWNER:
            grants[right.consumer].append(right)
    owned: dict[str, list[str]] = defaultdict(list)
    for sid in sorted(registry.services):
        owned[registry.services[sid].spec.owner].append(sid)

    header = {"format": FORMAT_VERSION, "serial": info.serial, "issued_at": format_time(info.issued_at),
              "expires_at": format_time(info.expires_at),
              "source": {"commit": info.commit, "registry_digest": registry.digest}}
    files: dict[str, bytes] = {}
    provider_parts: dict[str, dict[str, Any]] = {}  # per SID: the part of a grant all its consumers share
    for pid in sorted(registry.participants):
        participant = registry.participants[pid]
        active = inactive_reason(participant, today) is None
        schemas: dict[str, PayloadSchema] = {}
        services = {sid: _provided(registry.services[sid], callers[sid], ends_on, fingerprints,
                                   _schemas_of(registry.services[sid], repo_root, schemas), signing)
                    for sid in owned[pid]} if active else {}
        granted = {r.sid: _granted(r, registry, fingerprints, provider_parts, signing)
                   for r in grants[pid]} if active else {}
        holders = {pid, *(c for svc in services.values() for c in svc["callers"]),
                   *(g["provider"] for g in granted.values())}
        signed = {**header, "type": BUNDLE_TYPE, "audience": pid,
                  "participant": _self(participant, fingerprints[pid]),
                  "certificates": {fp: entry for h in holders for fp, entry in certs[h].items()},
                  **_signing_table(services, granted, signing),
                  "services": services, "grants": granted,
                  "schemas": {key: schema.entry() for key, schema in schemas.items()},
                  "schema_files": {digest: text for schema in schemas.values()
                                   for digest, text in schema.texts().items()}}
        files[f"{pid}.json"] = sign_envelope(signed, keys)
    index = {**header, "type": INDEX_TYPE,
             "bundles": {name.removesuffix(".json"): {"sha256": sha256_hex(data), "bytes": len(data)}
                         for name, data in files.items()},
             "excluded": [{"what": e.what, "reason": e.reason, "detail": e.detail} for e in exclusions]}
    files["index.json"] = sign_envelope(index, keys)
    return files


def write(files: dict[str, bytes], out: Path) -> None:
    """Write every file atomically (temp file + rename) so a reader never sees half a bundle."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(out / name)
    except OSError as e:
        raise BundleError(f"{out}: cannot write bundles: {e.strerror}") from e


def _signing_table(services: dict[str, Any], granted: dict[str, Any],
                   signing: dict[str, dict[str, dict[str, str]]]) -> dict[str, Any]:
    """`signing_certificates`: the signing certificates of the audience's callers and of the
    providers it calls, of those that registered any (R11); absent when none did, so bundles
    without signatures keep their bytes."""
    holders = {c for svc in services.values() for c, entry in svc["callers"].items()
               if "signing_certificates" in entry}
    holders |= {g["provider"] for g in granted.values() if "provider_signing_certificates" in g}
    table = {fp: entry for h in sorted(holders) for fp, entry in signing[h].items()}
    return {"signing_certificates": table} if table else {}


def _certificates(participant: Participant, registered: list[Certificate]) -> dict[str, dict[str, str]]:
    """{sha256: entry of the bundle's `certificates` (or `signing_certificates`) table}."""
    out = {}
    for cert in registered:
        try:
            parsed = read_certificate(cert.pem)
        except ValueError:
            continue  # reported by validation as CERT-invalid; never shipped
        out[parsed.sha256] = {"participant": participant.metadata.id, "subject": parsed.subject,
                              "not_before": format_time(parsed.not_before),
                              "not_after": format_time(parsed.not_after)}
    return out


def _check_unique(certs: dict[str, dict[str, dict[str, str]]]) -> None:
    """One owner per fingerprint, or the table cannot say whose it is (validation: UNIQ-certificate)."""
    owner: dict[str, str] = {}
    for pid in sorted(certs):
        for fp in certs[pid]:
            if owner.setdefault(fp, pid) != pid:
                raise BundleError(f"certificate {fp} is registered to both {owner[fp]} and {pid}")


def _ends_on(participant: Participant) -> str | None:
    termination = participant.spec.agreement.termination
    return termination.end.isoformat() if termination else None


def _self(participant: Participant, certs: list[str]) -> dict[str, Any]:
    spec = participant.spec
    return {"id": participant.metadata.id, "name": spec.name, "status": spec.status.value,
            "ends_on": _ends_on(participant), "sidecar": spec.sidecar, "certificates": certs}


def _operation(op: Operation) -> dict[str, Any]:
    """The members an operation has; absent means null. An operation has either method + path or
    soap_action/body_element/payload_element, so writing every member would spend a fifth of a
    consumer's bundle on nulls: operation definitions are repeated in every grant of every consumer."""
    fields = {"method": op.method.value if op.method else None, "path": op.path,
              "soap_action": op.soap_action, "body_element": op.body_element,
              "payload_element": op.payload_element,
              "deprecated": op.deprecation.announced.isoformat() if op.deprecation else None,
              "sunset": op.deprecation.sunset.isoformat() if op.deprecation else None}
    return {name: value for name, value in fields.items() if value is not None}


def _service_header(service: Service) -> dict[str, Any]:
    spec = service.spec
    header: dict[str, Any] = {"name": spec.name, "protocol": spec.protocol.value, "profile": spec.profile.value,
                              "classification": spec.classification.value, "signed_messages": spec.signed_messages}
    if spec.tariff is not None:  # R13: `reestr-sidecar stats --priced` multiplies calls by it
        header["tariff"] = {"currency": spec.tariff.currency, "per_call": spec.tariff.per_call}
    return header


_SCHEMA_FIELDS = ("request_schema", "response_schema")


def _schemas_of(service: Service, repo_root: Path | None,
                table: dict[str, PayloadSchema]) -> dict[str, dict[str, str]]:
    """{operation: {field: schema key}} for the service's registered payload schemas, each schema
    (with its include/import closure) added to the audience's `table` by key."""
    sid = service.metadata.sid
    out: dict[str, dict[str, str]] = {}
    loaded: dict[str, PayloadSchema] = {}
    for op in service.spec.operations:
        for field in _SCHEMA_FIELDS:
            ref = getattr(op, field)
            if not ref:
                continue
            if ref not in loaded:
                if repo_root is None:
                    raise BundleError(f"{sid} {op.name}: {ref} cannot be read (no repository root given)")
                try:
                    loaded[ref] = payload_schemas.load(sid, ref, service.spec.protocol.value,
                                                       payload_schemas.service_reader(repo_root, sid))
                except payload_schemas.PayloadSchemaError as e:
                    raise BundleError(f"{sid} {op.name}: {e} (run `reestr validate`)") from e
            schema = loaded[ref]
            table[schema.key] = schema
            out.setdefault(op.name, {})[field] = schema.key
    return out


def _provided(service: Service, callers: list[Right], ends_on: dict[str, str | None],
              certs: dict[str, list[str]], schema_keys: dict[str, dict[str, str]],
              signing: dict[str, dict[str, dict[str, str]]]) -> dict[str, Any]:
    return {**_service_header(service),
            "operations": {op.name: {**_operation(op), **schema_keys.get(op.name, {})}
                           for op in service.spec.operations},
            "callers": {r.consumer: {
                "access": r.access.value,
                "operations": sorted(r.operations) if r.operations is not None else None,
                "grant": r.where, "legal_basis": r.legal_basis,
                "valid_until": r.valid_until.isoformat() if r.valid_until else None,
                "ends_on": ends_on[r.consumer],
                "certificates": certs[r.consumer],
                **({"signing_certificates": sorted(signing[r.consumer])} if signing[r.consumer] else {}),
            } for r in callers}}


def _granted(right: Right, registry: Registry, certs: dict[str, list[str]],
             shared: dict[str, dict[str, Any]], signing: dict[str, dict[str, dict[str, str]]]) -> dict[str, Any]:
    part = shared.get(right.sid)
    if part is None:  # built once per service and reused (same bytes): popular services have thousands
        service = registry.services[right.sid]
        owner = registry.participants[service.spec.owner]
        part = shared[right.sid] = {
            **_service_header(service),
            "provider": owner.metadata.id, "provider_sidecar": owner.spec.sidecar,
            "provider_certificates": certs[owner.metadata.id],
            **({"provider_signing_certificates": sorted(signing[owner.metadata.id])}
               if signing[owner.metadata.id] else {}),
            "operation_defs": {op.name: _operation(op) for op in service.spec.operations}}
    return {**part,
            "access": right.access.value,
            "operations": sorted(right.operations) if right.operations is not None else None,
            "grant": right.where, "legal_basis": right.legal_basis,
            "valid_until": right.valid_until.isoformat() if right.valid_until else None}

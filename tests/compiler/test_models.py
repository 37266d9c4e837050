"""compiler.models: the documents accept what DESIGN §5 describes and refuse everything else."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from compiler.models import KINDS, AccessSheet, Classification, Grant, Participant, Service, Status
from compiler.yamlsrc import load_bytes

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "registry"


def _doc(rel: str) -> dict[str, Any]:
    loaded = load_bytes((REGISTRY / rel).read_bytes())
    assert loaded.problems == []
    return loaded.data  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", sorted(p.relative_to(REGISTRY).as_posix() for p in REGISTRY.rglob("*.yaml")))
def test_example_documents_load(path: str) -> None:
    data = _doc(path)
    model = KINDS[data["kind"]].model_validate(data)
    assert model.apiVersion == "reestr/v1"


def test_example_values() -> None:
    ved2 = AccessSheet.model_validate(_doc("consumers/ved2.yaml"))
    grant = ved2.spec.grants[0]
    assert (grant.service, grant.access.value, grant.operations) == ("SID0003001", "operations",
                                                                   ["operation1", "operation3"])
    citto = Participant.model_validate(_doc("participants/citto.yaml"))
    assert citto.spec.agreement.signed == date(2026, 1, 15)
    assert citto.spec.status is Status.ACTIVE and citto.spec.sidecar is None
    svc = Service.model_validate(_doc("services/SID0007001.yaml"))
    assert svc.spec.classification is Classification.PERSONAL_DATA and svc.spec.signed_messages is True


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()
SHEET = ("consumers/ved2.yaml", AccessSheet)
PARTICIPANT = ("participants/ved1.yaml", Participant)
SERVICE = ("services/SID0003001.yaml", Service)
G = ("spec", "grants", 0)

BAD = {
    "unknown-top-field": (SHEET, ("status",), "active", "extra_forbidden"),
    "unknown-grant-field": (SHEET, (*G, "oprations"), ["operation1"], "extra_forbidden"),
    "wrong-api-version": (SHEET, ("apiVersion",), "reestr/v2", "literal_error"),
    "wrong-kind": (SHEET, ("kind",), "Service", "literal_error"),
    "sid-pattern": (SHEET, (*G, "service"), "SID3001", "string_pattern_mismatch"),
    "sid-lowercase": (SHEET, (*G, "service"), "sid0003001", "string_pattern_mismatch"),
    "access-enum": (SHEET, (*G, "access"), "partial", "enum"),
    "operation-name-pattern": (SHEET, (*G, "operations"), ["op 1"], "string_pattern_mismatch"),
    "purpose-missing": (SHEET, (*G, "purpose"), _DELETE, "missing"),
    "purpose-empty": (SHEET, (*G, "purpose"), "", "string_too_short"),
    "legal-basis-number": (SHEET, (*G, "legal_basis"), 196, "string_type"),
    "valid-until-impossible": (SHEET, (*G, "valid_until"), "2026-02-30", "date_from_datetime_parsing"),
    "valid-until-format": (SHEET, (*G, "valid_until"), "30.11.2026", "value_error"),
    "valid-until-int": (SHEET, (*G, "valid_until"), 20261130, "value_error"),
    "consumer-id-pattern": (SHEET, ("metadata", "consumer"), "Ved2", "string_pattern_mismatch"),
    "participant-type": (PARTICIPANT, ("spec", "type"), "agency", "enum"),
    "participant-no-contacts": (PARTICIPANT, ("spec", "contacts"), [], "too_short"),
    "review-team-format": (PARTICIPANT, ("spec", "review_team"), "ved1-team", "string_pattern_mismatch"),
    "sidecar-not-url": (PARTICIPANT, ("spec", "sidecar"), "ved1.example.gov.ru:8443", "value_error"),
    "notice-days-string": (PARTICIPANT, ("spec", "agreement", "notice_days"), "30", "int_type"),
    "notice-days-negative": (PARTICIPANT, ("spec", "agreement", "notice_days"), -1, "greater_than_equal"),
    "status-enum": (PARTICIPANT, ("spec", "status"), "blocked", "enum"),
    "signed-messages-yes": (SERVICE, ("spec", "signed_messages"), "yes", "bool_type"),
    "signed-messages-int": (SERVICE, ("spec", "signed_messages"), 1, "bool_type"),
    "protocol-enum": (SERVICE, ("spec", "protocol"), "grpc", "enum"),
    "no-operations": (SERVICE, ("spec", "operations"), [], "too_short"),
    "method-enum": (SERVICE, ("spec", "operations", 0, "method"), "get", "enum"),
    "path-relative": (SERVICE, ("spec", "operations", 0, "path"), "applicants", "string_pattern_mismatch"),
    "schema-outside": (SERVICE, ("spec", "operations", 0, "request_schema"), "/etc/passwd",
                       "string_pattern_mismatch"),
    "email-format": (SERVICE, ("spec", "contacts", 0, "email"), "nobody", "string_pattern_mismatch"),
}


@pytest.mark.parametrize(("doc", "path", "value", "error"), BAD.values(), ids=BAD.keys())
def test_refused(doc: tuple[str, type[Any]], path: tuple[str | int, ...], value: Any, error: str) -> None:
    rel, model = doc
    data = _set(_doc(rel), path, value)
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    errors = info.value.errors()
    assert any(e["type"] == error and tuple(e["loc"][:len(path)]) == path for e in errors), errors


def test_documents_are_frozen() -> None:
    grant = AccessSheet.model_validate(_doc("consumers/ved2.yaml")).spec.grants[0]
    with pytest.raises(ValidationError):
        grant.access = "full"  # type: ignore[assignment]


def test_grant_defaults() -> None:
    grant = Grant.model_validate({"service": "SID0000001", "access": "full", "purpose": "x"})
    assert (grant.operations, grant.legal_basis, grant.valid_until, grant.justification) == (None,) * 4


def test_date_accepts_iso_day_only() -> None:
    grant = Grant.model_validate({"service": "SID0000001", "access": "full", "purpose": "x",
                                  "valid_until": "2026-12-31"})
    assert grant.valid_until == date(2026, 12, 31)


@pytest.mark.parametrize(("text", "refused"), [
    ("-", True), ("—", True), ("...", True), ("  ", True), ("нет", True), ("НЕТ", True),
    ("n/a", True), ("см.  выше", True), ("TODO", True), ("Отсутствует", True),
    ("Федеральный закон от 27.07.2010 № 210-ФЗ, ст. 7.1", False), ("210-ФЗ", False),
    ("Постановление № 5", False),
], ids=["dash", "em-dash", "dots", "blank", "net", "net-upper", "n-a", "see-above", "todo",
        "absent", "act", "short-act", "decree"])
def test_legal_basis_placeholders(text: str, refused: bool) -> None:
    from compiler.rules import placeholder

    assert (placeholder(text) is not None) is refused

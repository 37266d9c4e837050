"""How a request finds its operation: routes are required per protocol and profile, and two
operations that can match one request are refused whatever their declaration (or name) order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from compiler.registry import load_files
from compiler.rules import check

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 25)
HEAD = """# yaml-language-server: $schema=../../schemas/service.schema.json
apiVersion: reestr/v1
kind: Service
metadata:
  sid: SID0009001
spec:
  name: Проверка
  owner: ved3
  description: Проверка маршрутов
  protocol: {protocol}
{profile}  classification: public
  legal_basis: Федеральный закон № 210-ФЗ
  contacts:
    - name: Иванов
  operations:
"""


def _codes(protocol: str, profile: str | None, operations: list[str]) -> list[str]:
    files = {str(p): p.read_bytes() for p in (ROOT / "registry").rglob("*.yaml")}
    text = HEAD.format(protocol=protocol, profile=f"  profile: {profile}\n" if profile else "")
    text += "".join(f"    - name: op{i}\n" + "".join(f"      {line}\n" for line in op.split("; "))
                    for i, op in enumerate(operations))
    files[str(ROOT / "registry/services/SID0009001.yaml")] = text.encode()
    registry = load_files(files, base=str(ROOT / "registry"))
    assert registry.problems == [], registry.problems
    return sorted(p.code for p in check(registry, TODAY) if p.path.endswith("SID0009001.yaml"))


A, B = '"{urn:x}A"', '"{urn:x}B"'
CASES = {
    "plain-same-body": ("soap", None, [f"body_element: {A}; soap_action: urn:a",
                                       f"body_element: {A}; soap_action: urn:b"], ["OP-route-duplicate"]),
    "plain-same-action": ("soap", None, [f"body_element: {A}; soap_action: urn:a",
                                         f"body_element: {B}; soap_action: urn:a"], ["OP-route-duplicate"]),
    "plain-distinct": ("soap", "plain", [f"body_element: {A}", f"body_element: {B}"], []),
    "plain-action-only": ("soap", None, ["soap_action: urn:a"], ["OP-route-missing"]),
    "smev3-same-payload": ("soap", "smev3", [f"payload_element: {A}", f"payload_element: {A}"], ["OP-route-duplicate"]),
    "smev3-shared-action": ("soap", "smev3", [f"payload_element: {A}; soap_action: urn:Send",
                                              f"payload_element: {B}; soap_action: urn:Send"], []),
    "smev3-unicode": ("soap", "smev3", ['payload_element: "{urn:x}Файл"', 'payload_element: "{urn:x}Файл2"'], []),
    "smev3-without-payload": ("soap", "smev3", ["soap_action: urn:Send"], ["OP-route-missing"]),
    "rest-same-shape": ("rest", None, ["method: GET; path: /a/{x}", "method: GET; path: /a/{y}"],
                        ["OP-route-duplicate"]),
}


@pytest.mark.parametrize("order", ["declared", "reversed"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_routes(case: str, order: str) -> None:
    protocol, profile, operations, expected = CASES[case]
    ops = operations if order == "declared" else operations[::-1]
    assert _codes(protocol, profile, ops) == expected

"""`compiler.breaking` on real git repositories: R7, R8, participant removal, payload schema narrowing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from review_repo import TODAY, Repo

from compiler import xsd_narrowing
from compiler.breaking import breaking, schema_narrowing
from compiler.revisions import load_registry, read_file

DAY = date.fromisoformat(TODAY)
S1 = "registry/services/SID0003001.yaml"
S2 = "registry/services/SID0003002.yaml"
S7 = "registry/services/SID0007001.yaml"
OP2 = "    - name: operation2\n      description: Операция 2 — найти заявителей по СНИЛС\n" \
      "      method: POST\n      path: /applicants/search\n"
LIST_ISSUED = "    - name: listIssued\n      description: Заключения, выданные за период\n" \
              "      method: GET\n      path: /certificates\n"
W7 = "while granted to ved1, without a deprecation of ≥30 days whose sunset has passed (R7)"

Found = list[tuple[str, int, int, str, str]]


def run(repo: Repo, base: str) -> Found:
    old, new = load_registry(repo.root, base), load_registry(repo.root, None)
    revs = {"base": base, "head": None}
    found = breaking(old, new, DAY, lambda side, path: read_file(repo.root, revs[side], path))
    return [(p.path, p.line, p.col, p.code, p.message) for p in found]


def _deprecate_op2(repo: Repo, announced: str, sunset: str) -> str:
    repo.replace(S1, "      path: /applicants/search\n",
                 f'      path: /applicants/search\n      deprecation:\n        announced: "{announced}"\n'
                 f'        sunset: "{sunset}"\n')
    return repo.commit("deprecate operation2")


def remove_granted_operation(repo: Repo) -> tuple[str, Found]:
    repo.replace(S1, OP2, "")
    return repo.base, [(S1, 22, 3, "R7-operation-removed",
                        f"SID0003001 operation operation2 is removed {W7}")]


def remove_after_sunset(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-09-01", "2026-10-15")
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, []


def remove_before_sunset(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-11-01", "2026-12-15")
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, [(S1, 22, 3, "R7-operation-removed", f"SID0003001 operation operation2 is removed {W7}")]


def remove_after_short_notice(repo: Repo) -> tuple[str, Found]:
    base = _deprecate_op2(repo, "2026-10-01", "2026-10-20")  # 19 days < 30 (R7)
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index("    - name: operation2")] + text[text.index("    - name: operation3"):])
    return base, [(S1, 22, 3, "R7-operation-removed", f"SID0003001 operation operation2 is removed {W7}")]


def remove_ungranted_operation(repo: Repo) -> tuple[str, Found]:
    repo.replace(S7, LIST_ISSUED, "")  # mvd-tyumen holds getCertificate and byDriver only
    return repo.base, []


def change_granted_path(repo: Repo) -> tuple[str, Found]:
    repo.replace(S1, "      path: /applicants/search\n", "      path: /v2/applicants/search\n")
    repo.replace(S1, "      method: POST\n", "      method: PUT\n")
    return repo.base, [
        (S1, 29, 15, "R7-operation-changed", "SID0003001 operation operation2: method POST → PUT " + W7),
        (S1, 30, 13, "R7-operation-changed",
         "SID0003001 operation operation2: path /applicants/search → /v2/applicants/search " + W7)]


def remove_granted_service(repo: Repo) -> tuple[str, Found]:
    repo.remove(S2)
    return repo.base, [(S2, 5, 8, "R7-service-removed",
                        "SID0003002 is removed while granted to ved1; operations operation2 carry "
                        "no deprecation of ≥30 days whose sunset has passed (R7, 000 2.2.13)")]


def remove_ungranted_service(repo: Repo) -> tuple[str, Found]:
    repo.replace("registry/consumers/ved1.yaml", "    - service: SID0003002\n      access: operations\n"
                 "      operations: [operation2]\n      legal_basis: Федеральный закон от 27.07.2010 "
                 "№ 210-ФЗ, ст. 7.1\n      purpose: Проверка действительности разрешения, представленного "
                 "заявителем\n", "")
    base = repo.commit("revoke first")
    repo.remove(S2)
    return base, []


def _r8(sid: str, old: str, new: str) -> str:
    return (f"{sid} classification {old} → {new} without a planned_classification announced "
            f"≥60 days ahead and effective by {TODAY} (R8, 002 6.6.1)")


def reclassify_without_notice(repo: Repo) -> tuple[str, Found]:
    repo.replace(S2, "classification: restricted", "classification: personal-data")
    return repo.base, [(S2, 11, 19, "R8-classification-changed",
                        _r8("SID0003002", "restricted", "personal-data"))]


def _plan_classification(repo: Repo, announced: str, effective: str) -> str:
    repo.replace(S2, "  classification: restricted\n",
                 "  classification: restricted\n  planned_classification:\n    to: personal-data\n"
                 f'    announced: "{announced}"\n    effective: "{effective}"\n')
    return repo.commit("announce reclassification")


def reclassify_after_notice(repo: Repo) -> tuple[str, Found]:
    base = _plan_classification(repo, "2026-08-01", "2026-10-01")
    repo.replace(S2, "  classification: restricted\n  planned_classification:\n    to: personal-data\n"
                 '    announced: "2026-08-01"\n    effective: "2026-10-01"\n',
                 "  classification: personal-data\n")
    return base, []


def reclassify_too_early(repo: Repo) -> tuple[str, Found]:
    base = _plan_classification(repo, "2026-11-01", "2027-01-01")
    repo.replace(S2, "  classification: restricted\n", "  classification: personal-data\n")
    return base, [(S2, 11, 19, "R8-classification-changed",
                   _r8("SID0003002", "restricted", "personal-data"))]


def remove_participant_with_grants(repo: Repo) -> tuple[str, Found]:
    repo.remove("registry/participants/ved4.yaml")
    repo.remove("registry/consumers/ved4.yaml")
    return repo.base, [("registry/participants/ved4.yaml", 5, 7, "PARTICIPANT-removed-with-live-grants",
                        "participant ved4 is removed while grants are live: ved4 → SID0003003; "
                        "give termination notice first (R10)")]


def remove_terminated_participant(repo: Repo) -> tuple[str, Found]:
    path = "registry/participants/ved4.yaml"
    repo.write(path, repo.path(path).read_text(encoding="utf-8")
               + '    termination:\n      notified: "2026-08-01"\n      end: "2026-11-01"\n')
    base = repo.commit("ved4 terminated")
    repo.remove(path)
    repo.remove("registry/consumers/ved4.yaml")
    return base, []


def remove_last_certificate(repo: Repo) -> tuple[str, Found]:
    path = "registry/participants/ved2.yaml"
    lines = repo.path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("  certificates:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    repo.write(path, "".join(lines[:start]) + "  certificates: []\n" + "".join(lines[end:]))
    return repo.base, [(path, 15, 17, "CERT-last-removed",
                        "ved2's last certificate is removed while grants are live: ved2 → SID0003001; "
                        "register the new certificate first")]


def widen_only(repo: Repo) -> tuple[str, Found]:
    repo.replace("registry/consumers/ved2.yaml", "        - operation3\n",
                 "        - operation3\n        - operation2\n")
    return repo.base, []


SCENARIOS: list[Callable[[Repo], tuple[str, Found]]] = [
    remove_granted_operation, remove_after_sunset, remove_before_sunset, remove_after_short_notice,
    remove_ungranted_operation, change_granted_path, remove_granted_service, remove_ungranted_service,
    reclassify_without_notice, reclassify_after_notice, reclassify_too_early,
    remove_participant_with_grants, remove_terminated_participant, remove_last_certificate, widen_only]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_breaking(tmp_path: Path, scenario: Callable[[Repo], tuple[str, Found]]) -> None:
    repo = Repo(tmp_path)
    base, expected = scenario(repo)
    assert run(repo, base) == expected


# --- payload schemas ---------------------------------------------------------------------------

REQUEST = {"type": "object", "required": ["id"],
           "properties": {"id": {"type": ["string", "integer"]}, "kind": {"enum": ["a", "b", "c"]},
                          "note": {"type": "string"},
                          "tags": {"type": "array", "items": {"type": ["string", "null"]}}}}
NARROWER = {"type": "object", "required": ["id", "kind"],
            "properties": {"id": {"type": "string"}, "kind": {"enum": ["a", "b"]},
                           "tags": {"type": "array", "items": {"type": "string"}}}}
SCHEMA = "schemas/services/SID0003001/operation1.request.json"


def with_request_schema(tmp_path: Path, schema: dict[str, Any]) -> tuple[Repo, str]:
    """The example with `schema` registered as operation1's request schema, committed: (repo, base)."""
    repo = Repo(tmp_path)
    repo.write(SCHEMA, json.dumps(schema))
    repo.replace(S1, "      path: /applicants/{id}\n",
                 f"      path: /applicants/{{id}}\n      request_schema: {SCHEMA}\n")
    return repo, repo.commit("register a request schema")


def test_payload_schema_narrowed(tmp_path: Path) -> None:
    repo, base = with_request_schema(tmp_path, REQUEST)
    repo.write(SCHEMA, json.dumps(NARROWER))
    prefix = f"{SCHEMA} (SID0003001 operation1 request): "
    affected = " (consumers affected: ved1, ved2)"
    assert run(repo, base) == [(S1, 27, 23, "SCHEMA-payload-narrowed", prefix + message + affected) for message in [
        "/: property 'kind' is newly required",
        "/: property 'note' is removed",
        "/id: type narrowed (integer no longer accepted)",
        "/kind: enum lost [\"c\"]",
        "/tags/items: type narrowed (null no longer accepted)"]]


def test_payload_schema_widened_is_fine(tmp_path: Path) -> None:
    repo, base = with_request_schema(tmp_path, NARROWER)
    repo.write(SCHEMA, json.dumps(REQUEST))
    assert run(repo, base) == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({}, {"type": "object"}, ["/: type narrowed (any no longer accepted)"]),
    ({"type": "string"}, {"enum": ["x"], "type": "string"}, ["/: an enum now restricts the values"]),
    ({"type": ["string", "null"]}, {"type": "string"}, ["/: type narrowed (null no longer accepted)"]),
    ({"type": "string"}, {"type": ["string", "null"]}, []),
    ({"required": ["a"]}, {"required": []}, []),
    ("not a schema", {"type": "object"}, []),
], ids=["type-added", "enum-added", "type-list-narrowed", "type-widened", "required-dropped", "non-dict"])
def test_schema_narrowing_cases(old: Any, new: Any, expected: list[str]) -> None:
    assert schema_narrowing(old, new) == expected


# --- XSD payload schemas (the real ЕГРЗ вид сведений of the example's SID0003004) --------------

S4 = "registry/services/SID0003004.yaml"
EGRZ = "schemas/services/SID0003004/publicprintout.xsd"
TYPES = "schemas/services/SID0003004/common/gis-egrz-types.xsd"
STATUS = "schemas/services/SID0003004/expertise-status.xsd"


def test_xsd_newly_required_element_names_the_consumers(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.replace(EGRZ, "\t\t  </xs:group>\n    </xs:sequence>",
                 '\t\t  </xs:group>\n      <xs:element name="RequesterINN" type="xs:string"/>\n    </xs:sequence>')
    finding = "complexType PublicPrintOutRequestType: element RequesterINN is newly required"
    assert run(repo, repo.base) == [
        (S4, 27, 23, "SCHEMA-payload-narrowed",
         f"{EGRZ} (SID0003004 publicPrintOut request): {finding} (consumers affected: ved1)"),
        (S4, 28, 24, "SCHEMA-payload-narrowed",
         f"{EGRZ} (SID0003004 publicPrintOut response): {finding} (consumers affected: ved1)")]


def test_xsd_narrowing_inside_an_import_is_found_through_the_closure(tmp_path: Path) -> None:
    """PrintOutNumberType lives in the imported types file; both registered schemas import it."""
    repo = Repo(tmp_path)
    repo.replace(TYPES, '<xs:maxLength value="36"/>', '<xs:maxLength value="20"/>')
    found = run(repo, repo.base)
    assert {(line, message.split(": ", 1)[1]) for _, line, _, _, message in found} == {
        (line, f"simpleType PrintOutNumberType: maxLength 36 → 20 ({who})")
        for line, who in [(27, "consumers affected: ved1"), (28, "consumers affected: ved1"),
                          (32, "no live grant covers the operation"), (33, "no live grant covers the operation")]}


def test_xsd_widened_is_fine(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.replace(STATUS, '<xs:enumeration value="not-found"/>',
                 '<xs:enumeration value="not-found"/>\n              <xs:enumeration value="archived"/>')
    repo.replace(STATUS, '<xs:element name="ReestrDate" type="xs:date" minOccurs="0"/>',
                 '<xs:element name="ReestrDate" type="xs:date" minOccurs="0"/>\n'
                 '        <xs:element name="Note" type="xs:string" minOccurs="0"/>')
    assert run(repo, repo.base) == []


_XSD = ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">'
        '{}</xs:schema>')
_SEQ = '<xs:complexType name="T"><xs:sequence>{}</xs:sequence>{}</xs:complexType>'
_STR = '<xs:simpleType name="S"><xs:restriction base="xs:string">{}</xs:restriction></xs:simpleType>'


def _narrowing(old: str, new: str) -> list[str]:
    return xsd_narrowing.narrowing({"m.xsd": _XSD.format(old).encode()}, "m.xsd",
                                   {"m.xsd": _XSD.format(new).encode()}, "m.xsd")


@pytest.mark.parametrize(("old", "new", "expected"), [
    (_SEQ.format('<xs:element name="a"/>', ""), _SEQ.format('<xs:element name="a"/><xs:element name="b"/>', ""),
     ["complexType T: element b is newly required"]),
    (_SEQ.format('<xs:element name="a" minOccurs="0"/>', ""), _SEQ.format('<xs:element name="a"/>', ""),
     ["complexType T: element a is now required (minOccurs 0 → 1)"]),
    (_SEQ.format('<xs:element name="a" maxOccurs="unbounded"/>', ""),
     _SEQ.format('<xs:element name="a" maxOccurs="3"/>', ""), ["complexType T: element a maxOccurs unbounded → 3"]),
    (_SEQ.format('<xs:element name="a" maxOccurs="5"/>', ""),
     _SEQ.format('<xs:element name="a" minOccurs="2" maxOccurs="5"/>', ""),
     ["complexType T: element a minOccurs 1 → 2"]),
    (_SEQ.format('<xs:element name="a"/><xs:element name="b"/>', ""), _SEQ.format('<xs:element name="a"/>', ""),
     ["complexType T: element b is removed"]),
    (_SEQ.format("", ""), _SEQ.format("", '<xs:attribute name="x" use="required"/>'),
     ["complexType T: attribute x is newly required"]),
    (_SEQ.format("", '<xs:attribute name="x"/>'), _SEQ.format("", '<xs:attribute name="x" use="required"/>'),
     ["complexType T: attribute x is now required"]),
    (_SEQ.format("", '<xs:attribute name="x"/>'), _SEQ.format("", ""), ["complexType T: attribute x is removed"]),
    (_STR.format('<xs:enumeration value="a"/><xs:enumeration value="b"/>'),
     _STR.format('<xs:enumeration value="a"/>'), ["simpleType S: enumeration lost 'b'"]),
    (_STR.format(""), _STR.format('<xs:enumeration value="a"/>'),
     ["simpleType S: an enumeration now restricts the values"]),
    (_STR.format(""), _STR.format('<xs:pattern value="[0-9]+"/>'), ["simpleType S: pattern added ('[0-9]+')"]),
    (_STR.format('<xs:pattern value="[0-9]+"/>'), _STR.format('<xs:pattern value="[0-9]{3}"/>'),
     ["simpleType S: pattern changed ('[0-9]{3}')"]),
    (_STR.format('<xs:maxLength value="10"/>'), _STR.format('<xs:maxLength value="5"/>'),
     ["simpleType S: maxLength 10 → 5"]),
    (_STR.format('<xs:minLength value="1"/>'), _STR.format('<xs:minLength value="2"/>'),
     ["simpleType S: minLength 1 → 2"]),
    (_STR.format(""), _STR.format('<xs:length value="12"/>'), ["simpleType S: length 12 added"]),
    ('<xs:simpleType name="S"><xs:restriction base="xs:decimal"><xs:totalDigits value="10"/></xs:restriction>'
     '</xs:simpleType>', '<xs:simpleType name="S"><xs:restriction base="xs:decimal"><xs:totalDigits value="8"/>'
     '</xs:restriction></xs:simpleType>', ["simpleType S: totalDigits 10 → 8"]),
    ('<xs:element name="E"><xs:complexType><xs:sequence><xs:element name="c"><xs:simpleType>'
     '<xs:restriction base="xs:string"><xs:maxLength value="9"/></xs:restriction></xs:simpleType></xs:element>'
     '</xs:sequence></xs:complexType></xs:element>',
     '<xs:element name="E"><xs:complexType><xs:sequence><xs:element name="c"><xs:simpleType>'
     '<xs:restriction base="xs:string"><xs:maxLength value="3"/></xs:restriction></xs:simpleType></xs:element>'
     '</xs:sequence></xs:complexType></xs:element>', ["element E/c: maxLength 9 → 3"]),
    ('<xs:element name="E" type="xs:string"/>', "", ["element E is removed"]),
    ('<xs:element name="E" type="xs:string"/>', '<xs:element name="E" type="xs:int"/>',
     ["element E: type string → int"]),
    # widening or neutral: nothing to report
    (_SEQ.format('<xs:element name="a"/>', ""),
     _SEQ.format('<xs:element name="a"/><xs:element name="b" minOccurs="0"/>', ""), []),
    (_SEQ.format("<xs:choice><xs:element name=\"a\"/></xs:choice>", ""),
     _SEQ.format("<xs:choice><xs:element name=\"a\"/><xs:element name=\"b\"/></xs:choice>", ""), []),
    (_STR.format('<xs:maxLength value="5"/>'), _STR.format('<xs:maxLength value="10"/>'), []),
    (_STR.format('<xs:enumeration value="a"/>'),
     _STR.format('<xs:enumeration value="a"/><xs:enumeration value="b"/>'), []),
    (_SEQ.format("", '<xs:attribute name="x" use="required"/>'), _SEQ.format("", '<xs:attribute name="x"/>'), []),
], ids=["new-required-element", "min-0-to-1", "max-decreased", "min-increased", "element-removed",
        "new-required-attribute", "attribute-optional-to-required", "attribute-removed", "enumeration-lost",
        "enumeration-added", "pattern-added", "pattern-changed", "max-length-narrowed", "min-length-raised",
        "length-added", "total-digits-narrowed", "inline-type-narrowed", "global-element-removed",
        "type-changed", "new-optional-element", "new-choice-branch", "max-length-widened", "enumeration-gained",
        "attribute-required-to-optional"])
def test_xsd_narrowing_cases(old: str, new: str, expected: list[str]) -> None:
    assert _narrowing(old, new) == expected


# --- the real console script -------------------------------------------------------------------

def test_cli_reports_and_exits_1(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    remove_granted_operation(repo)
    done = repo.run("breaking", "--against", "main", "--format", "json", "--date", TODAY)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {"errors": 1, "warnings": 0, "problems": [
        {"path": S1, "line": 22, "col": 3, "code": "R7-operation-removed", "severity": "error",
         "message": f"SID0003001 operation operation2 is removed {W7}"}]}
    github = repo.run("breaking", "--against", "main", "--format", "github", "--date", TODAY)
    assert github.stdout == (f"::error file={S1},line=22,col=3,title=R7-operation-removed::"
                             f"SID0003001 operation operation2 is removed {W7}\n")


def test_cli_clean_exits_0(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    widen_only(repo)
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "breaking changes against main: 0\n")


def test_cli_head_revision(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    reclassify_without_notice(repo)
    head = repo.commit("reclassify")
    repo.replace(S2, "classification: personal-data", "classification: restricted")  # not in --head
    done = repo.run("breaking", "--against", repo.base, "--head", head, "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout == (f"{S2}:11:19: R8-classification-changed "
                           f"{_r8('SID0003002', 'restricted', 'personal-data')}\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--against", "no-such-branch"], "reestr: bad revision 'no-such-branch': no such commit in .\n"),
    (["--against", "main", "--head", "0000000"], "reestr: bad revision '0000000': no such commit in .\n"),
    (["--against", "-x"], "reestr: bad revision '-x': must not start with '-'\n"),
], ids=["bad-against", "bad-head", "option-as-revision"])
def test_cli_bad_revisions(tmp_path: Path, args: list[str], message: str) -> None:
    done = Repo(tmp_path).run("breaking", *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)


def test_a_service_that_fails_its_schema_is_not_reported_removed(tmp_path: Path) -> None:
    """No cascade: R7-service-removed is not said of a document that merely fails to load."""
    repo = Repo(tmp_path)
    repo.replace("registry/services/SID0003001.yaml", "protocol: rest", "protocol: rst")
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "registry/services/SID0003001.yaml:1:1: LOAD-blocked cannot judge the change until "
        "registry/services/SID0003001.yaml (head) loads: run `reestr validate`"]
    assert "R7-service-removed" not in done.stdout


# --- R7/R8 notice from the base branch's history (issue 11, finding 4) -------------------------

OP2_GONE = "    - name: operation2\n"


def _drop_op2(repo: Repo) -> None:
    text = repo.path(S1).read_text(encoding="utf-8")
    repo.write(S1, text[:text.index(OP2_GONE)] + text[text.index("    - name: operation3"):])


def test_a_backdated_deprecation_does_not_open_the_way_to_removal(tmp_path: Path) -> None:
    """Merged on 2026-11-20 with `announced: 2026-09-01` and a passed sunset: the removal in the
    next pull request is still breaking, since the notice runs from 2026-11-20."""
    repo = Repo(tmp_path)
    _deprecate_op2(repo, "2026-09-01", "2026-10-15")
    repo.git("commit", "-q", "--amend", "--no-edit", day="2026-11-20")
    repo.git("update-ref", "refs/heads/main", "HEAD")
    _drop_op2(repo)
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert done.returncode == 1
    assert [line.split(": ")[1].split()[0] for line in done.stdout.splitlines()] == ["R7-operation-removed"]


def test_a_backdated_deprecation_is_refused_in_its_own_pull_request(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.replace(S1, "      path: /applicants/search\n",
                 '      path: /applicants/search\n      deprecation:\n        announced: "2026-09-01"\n'
                 '        sunset: "2026-10-15"\n')
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{S1}:32:20: R7-announced-backdated SID0003001 operation operation2: announced 2026-09-01 but "
        f"on the base branch only since {TODAY}: the notice runs from {TODAY} (R7)"]


def test_a_deprecation_announced_in_time_allows_removal(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    _deprecate_op2(repo, "2026-09-01", "2026-10-15")
    repo.git("commit", "-q", "--amend", "--no-edit", day="2026-09-01")
    repo.git("update-ref", "refs/heads/main", "HEAD")
    _drop_op2(repo)
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert (done.returncode, done.stdout) == (0, "")


def test_a_backdated_planned_classification_does_not_count(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    _plan_classification(repo, "2026-08-01", "2026-10-01")
    repo.git("commit", "-q", "--amend", "--no-edit", day="2026-10-10")
    repo.git("update-ref", "refs/heads/main", "HEAD")
    repo.replace(S2, "  classification: restricted\n  planned_classification:\n    to: personal-data\n"
                 '    announced: "2026-08-01"\n    effective: "2026-10-01"\n', "  classification: personal-data\n")
    done = repo.run("breaking", "--against", "main", "--date", TODAY)
    assert done.returncode == 1
    assert "R8-classification-changed" in done.stdout

"""Scaffolding: new participant / service and request-access create or edit registry files.

Edits keep the sheet's comments and layout; the result validates; refusals write nothing; and a
new participant reaches a valid, committed pull request branch in three commands.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from compiler import scaffold
from compiler.codeowners import render
from compiler.errors import Severity
from compiler.registry import load_directory
from compiler.rules import check

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
TODAY = date(2026, 6, 1)
LONG_BASIS = ("Федеральный закон от 27.07.2010 № 210-ФЗ «Об организации предоставления государственных и "
              "муниципальных услуг», ст. 7.1; административный регламент Ведомства 9")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the example registry and its CODEOWNERS, committed."""
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github/CODEOWNERS").write_text(render(load_directory(tmp_path / "registry")))
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "Test")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "registry")
    return tmp_path


def _errors(problems: list[scaffold.Problem]) -> list[str]:
    return [f"{p.path}:{p.line} {p.code}" for p in problems if p.severity is Severity.ERROR]


def _participant(repo: Path, pid: str = "ved9", **extra: str | None) -> scaffold.Outcome:
    args: dict[str, str | None] = dict(
        pid=pid, name="Ведомство 9", type_="regional", contact_name="Иванов Иван",
        contact_email="it@ved9.example.gov.ru", review_team="@reestr-registry/ved9",
        agreement_number="РСМЭВ-2026/099", agreement_signed="2026-03-01")
    args.update(extra)
    return scaffold.new_participant(repo / "registry", today=TODAY, **args)  # type: ignore[arg-type]


def test_new_participant_file_validates_and_updates_codeowners(repo: Path) -> None:
    outcome = _participant(repo, sidecar="https://ved9.example.gov.ru:8443")
    target = repo / "registry/participants/ved9.yaml"
    assert outcome.changed == [target, repo / ".github/CODEOWNERS"]
    text = target.read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/participant.schema.json\n")
    assert _errors(outcome.problems) == []
    participant = load_directory(repo / "registry").participants["ved9"]
    assert participant.spec.agreement.signed == date(2026, 3, 1)
    assert participant.spec.sidecar == "https://ved9.example.gov.ru:8443"
    assert "/registry/participants/ved9.yaml @reestr-registry/ved9 @reestr-registry/citto" in (
        repo / ".github/CODEOWNERS").read_text()
    assert outcome.title == "Register participant ved9: Ведомство 9"


def test_new_participant_with_certificate(repo: Path) -> None:
    pem = (ROOT / "demo/pki/ved1.crt").read_text()
    (repo / "registry/participants/ved1.yaml").unlink()  # its certificate becomes free to reuse
    (repo / "registry/consumers/ved1.yaml").unlink()
    outcome = _participant(repo, certificate_pem=pem)
    assert _errors(outcome.problems) == []
    [cert] = load_directory(repo / "registry").participants["ved9"].spec.certificates
    assert cert.pem == pem.strip() + "\n"
    assert "pem: |\n" in (repo / "registry/participants/ved9.yaml").read_text()


def test_new_participant_without_agreement_writes_nothing_and_can_be_rerun(repo: Path) -> None:
    with pytest.raises(scaffold.ScaffoldError, match="needs its agreement"):
        _participant(repo, agreement_number=None, agreement_signed=None)
    assert _git(repo, "status", "--porcelain") == ""
    assert not list((repo / "registry/participants").glob(".*"))  # no temp file left behind
    outcome = _participant(repo)  # the same command with the agreement: nothing is in the way
    assert _errors(outcome.problems) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"pid": "Bad_ID"}, "participant id 'Bad_ID' does not match"),
    ({"pid": "../escape"}, "does not match"),
    ({"pid": "ved1"}, "already exists"),
    ({"review_team": "ved9-team"}, "review_team"),
    ({"contact_email": "not an email"}, "email"),
    ({"sidecar": "ftp://ved9"}, "http(s) URL"),
    ({"agreement_signed": "01.03.2026"}, "YYYY-MM-DD"),
    ({"agreement_number": None}, "both --agreement-number and --agreement-signed"),
    ({"certificate_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}, "not a PEM"),
    ({"certificate_pem": (ROOT / "demo/pki/ved1.crt").read_text()}, "UNIQ-certificate"),
], ids=["bad-id", "path-escape", "existing-file", "bad-team", "bad-email", "bad-sidecar", "bad-date",
        "half-agreement", "bad-certificate", "certificate-of-another"])
def test_new_participant_refusals_write_nothing(repo: Path, extra: dict[str, str | None], message: str) -> None:
    before = _git(repo, "status", "--porcelain")
    with pytest.raises(scaffold.ScaffoldError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _participant(repo, **extra)
    assert _git(repo, "status", "--porcelain") == before == ""


def _service(repo: Path, **extra: object) -> scaffold.Outcome:
    args: dict[str, object] = dict(
        sid="SID0009001", name="Сведения о выданных разрешениях", owner="ved4",
        description="Реестр разрешений Ведомства 4", protocol="rest", classification="restricted",
        legal_basis=LONG_BASIS, contact_name="Кузнецов Олег", contact_email="it@ved4.example.gov.ru",
        operations=["getPermit:GET:/permits/{number}", "search:post:/permits/search"])
    args.update(extra)
    return scaffold.new_service(repo / "registry", today=TODAY, **args)  # type: ignore[arg-type]


def test_new_rest_service(repo: Path) -> None:
    outcome = _service(repo)
    assert _errors(outcome.problems) == []
    service = load_directory(repo / "registry").services["SID0009001"]
    assert [(op.name, op.method, op.path) for op in service.spec.operations] == [
        ("getPermit", "GET", "/permits/{number}"), ("search", "POST", "/permits/search")]
    assert service.spec.legal_basis == LONG_BASIS
    text = (repo / "registry/services/SID0009001.yaml").read_text()
    assert "legal_basis: >-\n" in text  # long text is folded, as people write it
    assert max(len(line) for line in text.splitlines()) <= 100


def test_new_soap_service_keeps_colons_of_the_soap_action(repo: Path) -> None:
    outcome = _service(repo, protocol="soap", operations=["get:{urn:ved4:permits}Запрос:urn:ved4:permits:get",
                                                          "list:{urn:ved4:permits}ListRequest"])
    assert _errors(outcome.problems) == []
    service = load_directory(repo / "registry").services["SID0009001"]
    assert service.spec.profile == "plain"
    assert [(op.name, op.body_element, op.soap_action) for op in service.spec.operations] == [
        ("get", "{urn:ved4:permits}Запрос", "urn:ved4:permits:get"), ("list", "{urn:ved4:permits}ListRequest", None)]


@pytest.mark.parametrize(("extra", "message"), [
    ({"sid": "SID123"}, "SID 'SID123' does not match"),
    ({"sid": "SID0003001"}, "already exists"),
    ({"owner": "nobody"}, "owner 'nobody' is not a registered participant"),
    ({"operations": []}, "at least one --operation"),
    ({"operations": ["get"]}, "expected NAME:METHOD:PATH"),
    ({"operations": ["get:FETCH:/x"]}, "method"),
    ({"operations": ["get:GET:no-slash"]}, "path"),
    ({"protocol": "soap", "operations": ["get"]}, "expected NAME:{namespace}Element"),
    ({"protocol": "soap", "operations": ["get:urn:ved4:get"]}, "a SOAPAction alone does not identify"),
    ({"protocol": "soap", "operations": ["get:{urn:x}1bad"]}, "body_element"),
    ({"protocol": "soap", "operations": ["a:{urn:x}A", "b:{urn:x}A"]}, "OP-route-duplicate"),
    ({"profile": "smev3"}, "--profile smev3 is for SOAP services"),
    ({"classification": "secret"}, "classification"),
], ids=["bad-sid", "existing-file", "unknown-owner", "no-operations", "rest-without-route", "bad-method",
        "bad-path", "soap-without-element", "soap-action-only", "bad-qname", "duplicate-route", "rest-smev3",
        "bad-classification"])
def test_new_service_refusals_write_nothing(repo: Path, extra: dict[str, object], message: str) -> None:
    with pytest.raises(scaffold.ScaffoldError, match=message):
        _service(repo, **extra)
    assert _git(repo, "status", "--porcelain") == ""


def _request(repo: Path, consumer: str, sid: str, operations: list[str] | None, **extra: str) -> scaffold.Outcome:
    return scaffold.request_access(repo / "registry", consumer=consumer, sid=sid, operations=operations,
                                   legal_basis=extra.pop("legal_basis", LONG_BASIS),
                                   purpose=extra.pop("purpose", "Проверка сведений"), today=TODAY, **extra)


def test_request_access_appends_and_keeps_comments_and_layout(repo: Path) -> None:
    sheet = repo / "registry/consumers/ved1.yaml"
    before = sheet.read_text()
    outcome = _request(repo, "ved1", "SID0007001", ["getCertificate", "byDriver"], valid_until="2027-01-31")
    assert outcome.action == "updated"
    assert outcome.title == "Request access: ved1 → SID0007001 (getCertificate, byDriver)"
    after = sheet.read_text()
    assert after.startswith(before)  # everything written by hand stays byte for byte
    assert after[len(before):].startswith("    - service: SID0007001\n      access: operations\n")
    assert _errors(outcome.problems) == []
    grants = load_directory(repo / "registry").sheets["ved1"].spec.grants
    assert [(g.service, g.operations) for g in grants] == [
        ("SID0003001", None), ("SID0003002", ["operation2"]), ("SID0003004", ["publicPrintOut"]),
        ("SID0007001", ["getCertificate", "byDriver"])]
    assert grants[3].valid_until == date(2027, 1, 31)


def test_request_access_again_updates_the_grant(repo: Path) -> None:
    sheet = repo / "registry/consumers/ved2.yaml"
    outcome = _request(repo, "ved2", "SID0003001", ["operation2", "operation1"], purpose="Поиск заявителей")
    assert outcome.title.startswith("Update access: ved2 → SID0003001")
    [grant] = load_directory(repo / "registry").sheets["ved2"].spec.grants
    assert grant.operations == ["operation1", "operation3", "operation2"]  # added, none dropped
    assert grant.purpose == "Поиск заявителей"
    assert sheet.read_text().startswith((ROOT / "registry/consumers/ved2.yaml").read_text()[:200])
    outcome = _request(repo, "ved2", "SID0003001", None, justification="Все сведения нужны на каждом шаге")
    [grant] = load_directory(repo / "registry").sheets["ved2"].spec.grants
    assert (grant.access, grant.operations) == ("full", None)
    assert _errors(outcome.problems) == []
    assert _git(repo, "diff", "--stat").count("|") == 1  # one file, no duplicate grant


def test_request_access_keeps_flow_lists_and_comments(repo: Path) -> None:
    sheet = repo / "registry/consumers/ved1.yaml"
    sheet.write_text(sheet.read_text().replace("      operations: [operation2]\n",
                                               "      operations: [operation2]  # строка 3 приложения 2\n"))
    _request(repo, "ved1", "SID0003002", ["operation1"])
    text = sheet.read_text()
    # ruamel keeps the comment; it may narrow the gap before it to one space
    assert re.search(r"operations: \[operation2, operation1\] +# строка 3 приложения 2\n", text)
    assert "# Технологический лист Ведомства 1 (строки 1 и 3 приложения 2).\n" in text


def test_request_access_creates_a_sheet(repo: Path) -> None:
    outcome = _request(repo, "dz-tyumen", "SID0003003", None)
    sheet = repo / "registry/consumers/dz-tyumen.yaml"
    assert outcome.action == "created"
    assert outcome.changed == [sheet, repo / ".github/CODEOWNERS"]
    assert sheet.read_text().startswith("# yaml-language-server: $schema=../../schemas/access-sheet.schema.json\n")
    assert _errors(outcome.problems) == []


@pytest.mark.parametrize(("consumer", "sid", "operations", "message"), [
    ("nobody", "SID0003001", ["operation1"], "consumer 'nobody' is not a registered participant"),
    ("ved2", "SID0009999", ["operation1"], "service SID0009999 is not registered"),
    ("ved2", "SID0003001", ["nope"], "SID0003001 has no operation 'nope'"),
    ("ved2", "SID0003001", [], "has no operation"),
    ("ved3", "SID0003001", None, "implicit"),
    ("ved2", "../../x", None, "does not match"),
], ids=["unknown-consumer", "unknown-service", "unknown-operation", "no-operations", "owner-grant",
        "bad-sid"])
def test_request_access_refusals_write_nothing(repo: Path, consumer: str, sid: str,
                                               operations: list[str] | None, message: str) -> None:
    with pytest.raises(scaffold.ScaffoldError, match=message):
        _request(repo, consumer, sid, operations)
    assert _git(repo, "status", "--porcelain") == ""


def test_request_access_refuses_a_bad_date(repo: Path) -> None:
    with pytest.raises(scaffold.ScaffoldError, match="YYYY-MM-DD"):
        _request(repo, "ved2", "SID0003002", ["operation1"], valid_until="31.12.2027")
    assert _git(repo, "status", "--porcelain") == ""


def _reestr(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REESTR, *args], cwd=repo, capture_output=True, text=True)


def test_three_commands_from_nothing_to_a_valid_pull_request(repo: Path) -> None:
    """A new participant: `new participant`, `request-access`, then git add + commit as printed."""
    _git(repo, "checkout", "-qb", "join-ved9")
    first = _reestr(repo, "new", "participant", "ved9", "--name", "Ведомство 9", "--type", "municipal",
                    "--contact-name", "Иванов Иван", "--contact-email", "it@ved9.example.gov.ru",
                    "--review-team", "@reestr-registry/ved9", "--sidecar", "https://ved9.example.gov.ru:8443",
                    "--agreement-number", "РСМЭВ-2026/099", "--agreement-signed", "2026-03-01")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _reestr(repo, "request-access", "--consumer", "ved9", "--service", "SID0003002",
                     "--operations", "operation2", "--legal-basis", LONG_BASIS,
                     "--purpose", "Проверка действительности разрешения")
    assert second.returncode == 0, second.stdout + second.stderr
    add = next(line for line in second.stdout.splitlines() if line.strip().startswith("git add "))
    commit = next(line for line in second.stdout.splitlines() if line.strip().startswith("git commit "))
    assert ".github/CODEOWNERS" in add and "registry/consumers/ved9.yaml" in add
    _git(repo, "add", "registry", ".github")  # the third command: what both outputs said to add
    subprocess.run(commit.strip(), shell=True, cwd=repo, check=True, capture_output=True)
    assert _git(repo, "status", "--porcelain") == ""
    assert _git(repo, "log", "-1", "--format=%s") == "Request access: ved9 → SID0003002 (operation2)\n"
    registry = load_directory(repo / "registry")  # what CI will check on the pull request
    assert registry.problems == []
    assert [p for p in check(registry, TODAY, repo) if p.severity is Severity.ERROR] == []
    assert registry.sheets["ved9"].spec.grants[0].operations == ["operation2"]
    codeowners = _reestr(repo, "codeowners", "--check")
    assert codeowners.returncode == 0, codeowners.stdout


@pytest.mark.parametrize("args", [
    ["request-access", "--consumer", "ved2", "--service", "SID0003001", "--legal-basis", "x", "--purpose", "y"],
    ["request-access", "--consumer", "ved2", "--service", "SID0003001", "--full", "--operations", "operation1",
     "--legal-basis", "x", "--purpose", "y"],
    ["new", "service", "SID0009001", "--name", "x"],
    ["new", "participant", "ved1", "--name", "x", "--type", "regional", "--contact-name", "a",
     "--contact-email", "a@b.ru", "--review-team", "@org/t", "--agreement-number", "1",
     "--agreement-signed", "2026-01-01"],
], ids=["neither-full-nor-operations", "both-full-and-operations", "missing-options", "existing-participant"])
def test_cli_refusals_exit_2(repo: Path, args: list[str]) -> None:
    result = _reestr(repo, *args)
    assert result.returncode == 2, result.stdout
    assert _git(repo, "status", "--porcelain") == ""


def test_cli_reports_problems_with_exit_1(repo: Path) -> None:
    """A new file that is fine is written; problems elsewhere in the registry are still reported."""
    sheet = repo / "registry/consumers/ved2.yaml"
    sheet.write_text(sheet.read_text().replace("      purpose:", "      purpose_:", 1))
    result = _reestr(repo, "new", "participant", "ved9", "--name", "Ведомство 9", "--type", "regional",
                     "--contact-name", "a", "--contact-email", "a@b.ru", "--review-team", "@org/ved9",
                     "--agreement-number", "1", "--agreement-signed", "2026-01-01")
    assert result.returncode == 1
    assert "registry/consumers/ved2.yaml" in result.stdout and "SCHEMA-unknown-field" in result.stdout
    assert (repo / "registry/participants/ved9.yaml").is_file()


def test_cli_new_participant_without_agreement_writes_nothing(repo: Path) -> None:
    result = _reestr(repo, "new", "participant", "ved9", "--name", "Ведомство 9", "--type", "regional",
                     "--contact-name", "a", "--contact-email", "a@b.ru", "--review-team", "@org/ved9")
    assert result.returncode == 2
    assert "--agreement-number" in result.stderr
    assert _git(repo, "status", "--porcelain") == ""


def test_request_access_follows_the_sheet_own_indentation(repo: Path) -> None:
    sheet = repo / "registry/consumers/ved2.yaml"
    sheet.write_text(
        "# yaml-language-server: $schema=../../schemas/access-sheet.schema.json\n"
        "apiVersion: reestr/v1\nkind: AccessSheet\nmetadata:\n    consumer: ved2\nspec:\n    grants:\n"
        "    - service: SID0003001   # строка 2\n      access: operations\n      operations:\n"
        "      - operation1\n      legal_basis: ФЗ № 210-ФЗ, ст. 7.1\n      purpose: Сведения\n")
    before = sheet.read_text()
    outcome = _request(repo, "ved2", "SID0003002", ["operation1"], legal_basis="ФЗ № 210-ФЗ")
    assert _errors(outcome.problems) == []
    assert sheet.read_text() == before + (
        "    - service: SID0003002\n      access: operations\n      operations:\n      - operation1\n"
        "      legal_basis: ФЗ № 210-ФЗ\n      purpose: Проверка сведений\n")


# --- SOAP services with payload schemas -----------------------------------------------------------

EGRZ = ROOT / "tests/data/real/gosha20777__smev-client/json2xml-transformer/xsd/160016"
PAYLOAD = "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest"


def _smev3(repo: Path, **extra: object) -> scaffold.Outcome:
    args: dict[str, object] = dict(
        protocol="soap", profile="smev3", operations=[f"publicPrintOut:{PAYLOAD}"],
        request_schemas=[str(EGRZ / "publicprintout.xsd")], response_schemas=[str(EGRZ / "publicprintout.xsd")])
    args.update(extra)
    return _service(repo, **args)


def test_new_smev3_service_copies_the_xsd_with_its_import(repo: Path) -> None:
    outcome = _smev3(repo)
    assert _errors(outcome.problems) == []
    folder = repo / "schemas/services/SID0009001"
    assert (folder / "publicprintout.xsd").read_bytes() == (EGRZ / "publicprintout.xsd").read_bytes()
    assert (folder / "common/gis-egrz-types.xsd").read_bytes() == (EGRZ / "common/gis-egrz-types.xsd").read_bytes()
    assert sorted(p.relative_to(repo).as_posix() for p in outcome.changed) == [
        ".github/CODEOWNERS", "registry/services/SID0009001.yaml",
        "schemas/services/SID0009001/common/gis-egrz-types.xsd", "schemas/services/SID0009001/publicprintout.xsd"]
    service = load_directory(repo / "registry").services["SID0009001"]
    [op] = service.spec.operations
    assert (service.spec.profile, op.payload_element, op.body_element) == ("smev3", PAYLOAD, None)
    assert op.request_schema == op.response_schema == "schemas/services/SID0009001/publicprintout.xsd"


def test_schema_for_one_named_operation(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    own = tmp_path_factory.mktemp("given") / "status.xsd"
    own.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:st">'
                   '<xs:element name="StatusRequest" type="xs:string"/></xs:schema>')
    outcome = _smev3(repo, operations=[f"publicPrintOut:{PAYLOAD}", "status:{urn:st}StatusRequest"],
                     request_schemas=[f"publicPrintOut={EGRZ / 'publicprintout.xsd'}", f"status={own}"],
                     response_schemas=[])
    assert _errors(outcome.problems) == []
    ops = load_directory(repo / "registry").services["SID0009001"].spec.operations
    assert [(op.name, op.request_schema) for op in ops] == [
        ("publicPrintOut", "schemas/services/SID0009001/publicprintout.xsd"),
        ("status", "schemas/services/SID0009001/status.xsd")]


def _bad_schema(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


_XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema"'


@pytest.mark.parametrize(("name", "text", "message"), [
    ("cut.xsd", (EGRZ / "publicprintout.xsd").read_text()[:900], "not well-formed"),
    ("up.xsd", f'<xs:schema {_XS}><xs:import namespace="urn:y" schemaLocation="../y.xsd"/></xs:schema>',
     "leaves the service's schema folder"),
    ("abs.xsd", f'<xs:schema {_XS}><xs:include schemaLocation="/etc/y.xsd"/></xs:schema>',
     "leaves the service's schema folder"),
    ("gone.xsd", f'<xs:schema {_XS}><xs:import namespace="urn:y" schemaLocation="y.xsd"/></xs:schema>',
     "does not exist"),
    ("other.xsd", f'<xs:schema {_XS} targetNamespace="urn:o"><xs:element name="Other"/></xs:schema>',
     "declares no global element"),
    ("r.json", "{}", "a SOAP service registers XSD"),
], ids=["truncated", "import-up", "include-absolute", "import-missing", "element-not-declared", "json-for-soap"])
def test_new_service_schema_refusals_write_nothing(repo: Path, tmp_path_factory: pytest.TempPathFactory,
                                                   name: str, text: str, message: str) -> None:
    source = _bad_schema(tmp_path_factory.mktemp("given"), name, text)  # outside the repository
    with pytest.raises(scaffold.ScaffoldError, match=message):
        _smev3(repo, request_schemas=[source], response_schemas=[])
    assert _git(repo, "status", "--porcelain") == ""
    assert not (repo / "schemas/services/SID0009001").exists()


def test_a_different_file_already_in_the_folder_is_not_overwritten(repo: Path) -> None:
    folder = repo / "schemas/services/SID0009001/common"
    folder.mkdir(parents=True)
    (folder / "gis-egrz-types.xsd").write_text("<changed/>")
    with pytest.raises(scaffold.ScaffoldError, match="already exists with other content"):
        _smev3(repo)
    assert (folder / "gis-egrz-types.xsd").read_text() == "<changed/>"
    assert not (repo / "registry/services/SID0009001.yaml").exists()


def test_cli_new_smev3_service(repo: Path) -> None:
    result = _reestr(repo, "new", "service", "SID0009001", "--name", "ЕГРЗ", "--owner", "ved4",
                     "--description", "Выписка", "--protocol", "soap", "--profile", "smev3",
                     "--classification", "restricted", "--legal-basis", "ГрК РФ, ст. 50.1",
                     "--contact-name", "a", "--contact-email", "a@b.ru",
                     "--operation", f"publicPrintOut:{PAYLOAD}",
                     "--request-schema", str(EGRZ / "publicprintout.xsd"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schemas/services/SID0009001/common/gis-egrz-types.xsd" in result.stdout
    validate = _reestr(repo, "validate", "registry")
    assert validate.returncode == 0, validate.stdout


@pytest.mark.parametrize(("text", "message"), [
    ('{"type": "object", "required": ["number"]}', None),
    ("{not json", "not JSON"),
    ('{"type": "objekt"}', "not a valid JSON Schema 2020-12"),
], ids=["valid", "not-json", "invalid-schema"])
def test_new_rest_service_with_a_json_schema(repo: Path, tmp_path_factory: pytest.TempPathFactory, text: str,
                                             message: str | None) -> None:
    source = tmp_path_factory.mktemp("given") / "permit.json"
    source.write_text(text)
    if message is not None:
        with pytest.raises(scaffold.ScaffoldError, match=message):
            _service(repo, request_schemas=[f"getPermit={source}"])
        assert _git(repo, "status", "--porcelain") == ""
        return
    outcome = _service(repo, request_schemas=[f"getPermit={source}"])
    assert _errors(outcome.problems) == []
    ops = load_directory(repo / "registry").services["SID0009001"].spec.operations
    assert [op.request_schema for op in ops] == ["schemas/services/SID0009001/permit.json", None]
    assert (repo / "schemas/services/SID0009001/permit.json").read_text() == text

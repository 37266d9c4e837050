"""compiler.bundle: each participant's slice of the example registry, exclusions, reproducibility."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler import bundle, trust
from compiler.access import IMPLICIT_OWNER
from compiler.registry import load_directory

ROOT = Path(__file__).resolve().parents[2]
REESTR = str(ROOT / ".venv" / "bin" / "reestr")
ISSUED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
INFO = bundle.BuildInfo(serial=5, issued_at=ISSUED, expires_at=ISSUED + timedelta(hours=6), commit=None)


def fingerprints(pid: str) -> list[str]:
    """SHA-256 of the participant's certificates, computed here from the YAML's PEM blocks."""
    text = (ROOT / "registry" / "participants" / f"{pid}.yaml").read_text(encoding="utf-8")
    out = []
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = "".join(line.strip() for line in block.split("-----END CERTIFICATE-----")[0].splitlines())
        pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
        out.append(x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex())
    assert out, pid
    return sorted(out)


def compiled(root: Path) -> dict[str, dict[str, Any]]:
    """Build with the library and return every file's verified `signed` content by name."""
    registry = load_directory(root)
    assert registry.problems == []
    files = bundle.build(registry, INFO, [KEY])
    out = {}
    for name, data in files.items():
        audience = None if name == "index.json" else name.removesuffix(".json")
        kind = trust.INDEX_TYPE if audience is None else trust.BUNDLE_TYPE
        out[name] = trust.verify_envelope(data, [KEY.public_key()], audience=audience, now=ISSUED,
                                          expected_type=kind).signed
    return out


@pytest.fixture(scope="module")
def example() -> dict[str, dict[str, Any]]:
    return compiled(ROOT / "registry")


def table_owners(b: dict[str, Any]) -> dict[str, str]:
    """{fingerprint: owner} of the bundle's certificates table (each certificate once)."""
    for entry in b["certificates"].values():
        assert sorted(entry) == ["not_after", "not_before", "participant", "subject"]
    return {fp: entry["participant"] for fp, entry in b["certificates"].items()}


def callers(b: dict[str, Any], sid: str) -> dict[str, tuple[str, list[str] | None]]:
    return {pid: (c["access"], c["operations"]) for pid, c in b["services"][sid]["callers"].items()}


def test_one_bundle_per_participant_and_an_index(example: dict[str, dict[str, Any]]) -> None:
    pids = sorted(p.stem for p in (ROOT / "registry" / "participants").glob("*.yaml"))
    assert sorted(example) == sorted([*(f"{p}.json" for p in pids), "index.json"])
    index = example["index.json"]
    assert sorted(index["bundles"]) == pids
    assert index["excluded"] == []
    for b in (example[f"{p}.json"] for p in pids):
        assert (b["serial"], b["issued_at"], b["expires_at"]) == (5, "2026-11-25T10:00:00Z", "2026-11-25T16:00:00Z")
        assert b["source"]["registry_digest"] == index["source"]["registry_digest"]


def test_ved3_serves_exactly_its_four_services(example: dict[str, dict[str, Any]]) -> None:
    ved3 = example["ved3.json"]
    assert sorted(ved3["services"]) == ["SID0003001", "SID0003002", "SID0003003", "SID0003004"]
    assert ved3["grants"] == {}
    assert callers(ved3, "SID0003001") == {"ved3": ("full", None), "ved1": ("full", None),
                                           "ved2": ("operations", ["operation1", "operation3"])}
    assert callers(ved3, "SID0003002") == {"ved3": ("full", None), "ved1": ("operations", ["operation2"])}
    assert callers(ved3, "SID0003003") == {"ved3": ("full", None), "ved4": ("full", None)}
    assert callers(ved3, "SID0003004") == {"ved3": ("full", None), "ved1": ("operations", ["publicPrintOut"])}
    for sid in ved3["services"]:
        for pid, caller in ved3["services"][sid]["callers"].items():
            assert caller["certificates"] == fingerprints(pid)
    assert sorted(ved3["services"]["SID0003001"]["operations"]) == ["operation1", "operation2", "operation3"]
    assert ved3["services"]["SID0003001"]["operations"]["operation1"]["path"] == "/applicants/{id}"
    assert ved3["services"]["SID0003003"]["operations"]["getReference"]["soap_action"] == "urn:ved3:reference:get"
    assert ved3["participant"]["certificates"] == fingerprints("ved3")
    assert table_owners(ved3) == {fp: pid for pid in ("ved1", "ved2", "ved3", "ved4")
                                  for fp in fingerprints(pid)}


def test_implicit_owner_right(example: dict[str, dict[str, Any]]) -> None:
    owner = example["ved3.json"]["services"]["SID0003001"]["callers"]["ved3"]
    assert owner["grant"] == IMPLICIT_OWNER
    assert (owner["legal_basis"], owner["valid_until"]) == (None, None)
    written = example["ved3.json"]["services"]["SID0003001"]["callers"]["ved2"]
    assert written["grant"] == "registry/consumers/ved2.yaml:9"
    assert written["legal_basis"].startswith("Федеральный закон от 27.07.2010")


def test_ved2_grants_exactly_sid0003001_operations_1_and_3(example: dict[str, dict[str, Any]]) -> None:
    ved2 = example["ved2.json"]
    assert ved2["services"] == {}
    assert list(ved2["grants"]) == ["SID0003001"]
    grant = ved2["grants"]["SID0003001"]
    assert (grant["access"], grant["operations"]) == ("operations", ["operation1", "operation3"])
    assert (grant["provider"], grant["provider_sidecar"]) == ("ved3", "https://ved3.example.gov.ru:8443")
    assert grant["provider_certificates"] == fingerprints("ved3")
    assert table_owners(ved2) == {fp: pid for pid in ("ved2", "ved3") for fp in fingerprints(pid)}
    assert sorted(grant["operation_defs"]) == ["operation1", "operation2", "operation3"]
    assert ved2["participant"]["id"] == "ved2" and ved2["participant"]["status"] == "active"


def test_tyumen_case(example: dict[str, dict[str, Any]]) -> None:
    grant = example["mvd-tyumen.json"]["grants"]["SID0007001"]
    assert (grant["provider"], grant["operations"]) == ("dz-tyumen", ["byDriver", "getCertificate"])
    assert grant["signed_messages"] is True and grant["classification"] == "personal-data"
    assert callers(example["dz-tyumen.json"], "SID0007001") == {
        "dz-tyumen": ("full", None), "mvd-tyumen": ("operations", ["byDriver", "getCertificate"])}
    assert example["citto.json"]["services"] == {} and example["citto.json"]["grants"] == {}


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.fixture(scope="module")
def excluded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """ved2 and dz-tyumen suspended, ved4 terminated, ved1's grant on SID0003002 expired."""
    root = tmp_path_factory.mktemp("excluded") / "registry"
    shutil.copytree(ROOT / "registry", root)
    shutil.copytree(ROOT / "schemas", root.parent / "schemas")
    for pid in ("ved2", "dz-tyumen"):
        _append(root / "participants" / f"{pid}.yaml",
                '  status: suspended\n  suspension:\n    since: "2026-11-20"\n    reason: Деструктивные действия\n')
    _append(root / "participants" / "ved4.yaml",
            '    termination:\n      notified: "2026-07-01"\n      end: "2026-11-01"\n')
    sheet = root / "consumers" / "ved1.yaml"
    sheet.write_text(sheet.read_text(encoding="utf-8").replace(
        "      operations: [operation2]\n", '      operations: [operation2]\n      valid_until: "2026-11-24"\n'),
        encoding="utf-8")
    return compiled(root)


def test_left_out_with_reasons_in_the_index(excluded: dict[str, dict[str, Any]]) -> None:
    reasons = {(e["what"], e["reason"]) for e in excluded["index.json"]["excluded"]}
    assert reasons == {
        ("participant ved2", "suspended"), ("participant dz-tyumen", "suspended"),
        ("participant ved4", "terminated"),
        ("grant ved2 → SID0003001", "consumer-suspended"),
        ("grant ved4 → SID0003003", "consumer-terminated"),
        ("grant ved1 → SID0003002", "grant-expired"),
        ("grant dz-tyumen → SID0007001", "consumer-suspended"),   # its implicit owner right
        ("grant mvd-tyumen → SID0007001", "owner-suspended"),
    }
    assert all(e["detail"] for e in excluded["index.json"]["excluded"])
    ved3 = excluded["ved3.json"]
    assert callers(ved3, "SID0003001") == {"ved3": ("full", None), "ved1": ("full", None)}
    assert callers(ved3, "SID0003002") == {"ved3": ("full", None)}
    assert callers(ved3, "SID0003003") == {"ved3": ("full", None)}
    assert list(excluded["ved1.json"]["grants"]) == ["SID0003001", "SID0003004"]
    assert excluded["mvd-tyumen.json"]["grants"] == {}


@pytest.mark.parametrize("pid", ["ved2", "dz-tyumen", "ved4"])
def test_inactive_audience_gets_an_empty_bundle(excluded: dict[str, dict[str, Any]], pid: str) -> None:
    b = excluded[f"{pid}.json"]
    assert (b["audience"], b["services"], b["grants"]) == (pid, {}, {})
    assert b["participant"]["status"] == ("active" if pid == "ved4" else "suspended")
    assert (b["participant"]["ends_on"] is not None) == (pid == "ved4")
    assert table_owners(b) == {fp: pid for fp in fingerprints(pid)}


def test_terminated_participant_ends_on_is_shipped(excluded: dict[str, dict[str, Any]]) -> None:
    assert excluded["ved4.json"]["participant"]["ends_on"] == "2026-11-01"


# --- through the real CLI -----------------------------------------------------------------------


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([REESTR, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    assert _run("keygen", "--out", "op", cwd=directory).returncode == 0
    return directory


@pytest.fixture
def ws(tmp_path: Path, keys: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copy(keys / "op.key", tmp_path / "op.key")
    return tmp_path


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_two_compiles_are_byte_identical(ws: Path) -> None:
    for out in ("a", "b"):
        result = _run("compile", "registry", "--key", "op.key", "--out", out, "--serial", "42",
                      "--issued-at", "2026-11-25T10:00:00Z", cwd=ws)
        assert result.returncode == 0, result.stderr
    first, second = _files(ws / "a"), _files(ws / "b")
    assert len(first) == 8 and first == second
    third = _run("compile", "registry", "--key", "op.key", "--out", "c", "--serial", "43",
                 "--issued-at", "2026-11-25T10:00:00Z", cwd=ws)
    assert third.returncode == 0 and _files(ws / "c")["ved2.json"] != first["ved2.json"]


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c",
                           "commit.gpgsign=false", *args], cwd=ws, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_serial_defaults_to_git_commit_count(ws: Path) -> None:
    _git(ws, "init", "-q")
    _git(ws, "add", "registry", "schemas")
    _git(ws, "commit", "-qm", "one")
    for n in (2, 3):
        _append(ws / "registry" / "consumers" / "ved2.yaml", f"# revision {n}\n")
        _git(ws, "commit", "-qam", f"rev {n}")
    head = _git(ws, "rev-parse", "HEAD")
    result = _run("compile", "registry", "--key", "op.key", "--out", "dist", cwd=ws)
    assert result.returncode == 0, result.stderr
    signed = json.loads((ws / "dist" / "ved3.json").read_bytes())["signed"]
    assert signed["serial"] == 3
    assert signed["source"]["commit"] == head
    overridden = _run("compile", "registry", "--key", "op.key", "--out", "dist2", "--serial", "9", cwd=ws)
    assert overridden.returncode == 0
    assert json.loads((ws / "dist2" / "ved3.json").read_bytes())["signed"]["serial"] == 9


def test_outside_git_a_serial_is_required(ws: Path) -> None:
    result = _run("compile", "registry", "--key", "op.key", "--out", "dist", cwd=ws)
    assert result.returncode == 2
    assert "--serial" in result.stderr
    assert not (ws / "dist").exists()


def test_a_certificate_of_two_participants_is_not_compiled() -> None:
    """Validation refuses it (UNIQ-certificate); the table could not name one owner, so build does too."""
    registry = load_directory(ROOT / "registry")
    registry.participants["ved2"].spec.certificates.append(registry.participants["ved1"].spec.certificates[0])
    with pytest.raises(bundle.BundleError, match="registered to both ved1 and ved2"):
        bundle.build(registry, INFO, [KEY])


def test_a_certificate_whose_subject_cannot_be_parsed_is_cert_invalid(ws: Path) -> None:
    """cryptography loads certificates lazily: this one (found by test_fuzz) loads, and its subject
    then fails to parse. Validation must call it CERT-invalid and compile refuse, not crash."""
    path = ws / "registry" / "participants" / "citto.yaml"
    text = path.read_text(encoding="utf-8")
    good = "CzAJBgNVBAYTAlJVMRQwEgYDVQQKDAtyZWVzdHIgZGVtbzEOMAwGA1UEAwwFY2l0"
    assert good in text
    path.write_text(text.replace(good, good.replace("tyZW", "tZyW")), encoding="utf-8")
    validated = _run("validate", "registry", cwd=ws)
    assert validated.returncode == 1
    assert validated.stdout.startswith("registry/participants/citto.yaml:17:12: CERT-invalid")
    compiled = _run("compile", "registry", "--key", "op.key", "--out", "dist", "--serial", "1", cwd=ws)
    assert compiled.returncode == 1 and "CERT-invalid" in compiled.stderr
    assert not (ws / "dist").exists()


# --- SOAP profiles and payload schemas (docs/bundle-format.md) -----------------------------------

EGRZ_DIR = ROOT / "schemas/services/SID0003004"


def test_service_headers_carry_the_profile_and_operations_their_payload_element(
        example: dict[str, dict[str, Any]]) -> None:
    ved3, ved1 = example["ved3.json"], example["ved1.json"]
    assert {sid: s["profile"] for sid, s in ved3["services"].items()} == {
        "SID0003001": "plain", "SID0003002": "plain", "SID0003003": "plain", "SID0003004": "smev3"}
    assert {sid: g["profile"] for sid, g in ved1["grants"].items()} == {
        "SID0003001": "plain", "SID0003002": "plain", "SID0003004": "smev3"}
    assert ved1["grants"]["SID0003004"]["operation_defs"] == {
        "publicPrintOut": {"payload_element": "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest"},
        "expertiseStatus": {
            "payload_element": "{urn://reestr-example/egrz-expertise-status/1.0.0}ExpertiseStatusRequest"}}
    assert "body_element" in ved3["services"]["SID0003003"]["operations"]["getReference"]


def test_schemas_are_content_addressed_and_a_shared_file_is_stored_once(example: dict[str, dict[str, Any]]) -> None:
    ved3 = example["ved3.json"]
    ops = ved3["services"]["SID0003004"]["operations"]
    keys = {name: (op["request_schema"], op["response_schema"]) for name, op in ops.items()}
    print_out, status = keys["publicPrintOut"][0], keys["expertiseStatus"][0]
    assert keys == {"publicPrintOut": (print_out, print_out), "expertiseStatus": (status, status)}
    assert sorted(ved3["schemas"]) == sorted({print_out, status})
    for key, entry in ved3["schemas"].items():
        assert key == trust.sha256_hex(trust.canonical_json(entry))  # the key is the entry's digest
    types = trust.sha256_hex((EGRZ_DIR / "common/gis-egrz-types.xsd").read_bytes())
    assert ved3["schemas"][print_out] == {"kind": "xsd", "main": "publicprintout.xsd", "files": {
        "common/gis-egrz-types.xsd": types,
        "publicprintout.xsd": trust.sha256_hex((EGRZ_DIR / "publicprintout.xsd").read_bytes())}}
    assert ved3["schemas"][status]["files"]["common/gis-egrz-types.xsd"] == types  # shared by both
    on_disk = [EGRZ_DIR / "publicprintout.xsd", EGRZ_DIR / "expertise-status.xsd",
               EGRZ_DIR / "common/gis-egrz-types.xsd"]
    assert ved3["schema_files"] == {trust.sha256_hex(p.read_bytes()): p.read_bytes().decode() for p in on_disk}
    assert len(ved3["schema_files"]) == 3  # four references, three files


def test_grants_carry_no_schemas_and_bundles_without_schemas_have_empty_tables(
        example: dict[str, dict[str, Any]]) -> None:
    for name, signed in example.items():
        if name == "index.json":
            continue
        for grant in signed["grants"].values():
            assert all("request_schema" not in op and "response_schema" not in op
                       for op in grant["operation_defs"].values())
        if name != "ved3.json":
            assert (signed["schemas"], signed["schema_files"]) == ({}, {}), name


def test_a_schema_that_cannot_be_read_stops_the_build(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")  # no schemas/ beside it
    registry = load_directory(tmp_path / "registry")
    with pytest.raises(bundle.BundleError, match=r"SID0003004 publicPrintOut: .*publicprintout\.xsd does not exist"):
        bundle.build(registry, INFO, [KEY])


def test_a_tariff_travels_in_the_service_header_only_where_set(tmp_path: Path,
                                                                example: dict[str, dict[str, Any]]) -> None:
    """R13: `reestr-sidecar stats --priced` reads the tariff from the bundle; no tariff, no member."""
    root = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", root)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")  # the payload schemas the registry names
    path = root / "services" / "SID0003001.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  signed_messages: false\n",
                                 "  signed_messages: false\n  tariff: {currency: RUB, per_call: \"1.25\"}\n", 1),
                    encoding="utf-8")
    built = compiled(root)
    assert built["ved3.json"]["services"]["SID0003001"]["tariff"] == {"currency": "RUB", "per_call": "1.25"}
    assert built["ved2.json"]["grants"]["SID0003001"]["tariff"] == {"currency": "RUB", "per_call": "1.25"}
    assert "tariff" not in built["ved3.json"]["services"]["SID0003002"]
    assert all("tariff" not in service for service in example["ved3.json"]["services"].values())


SMEV3_REQUEST = ROOT / "tests/data/real/gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"


def test_a_schema_rebuilt_from_the_bundle_validates_the_real_smev3_payload(example: dict[str, dict[str, Any]]) -> None:
    """The contract end to end: only the bundle's tables, the resolver rule, the real payload."""
    from lxml import etree

    from compiler.payload_schemas import PayloadSchema, PayloadSchemaError, compile_xsd, safe_parser

    ved3 = example["ved3.json"]
    key = ved3["services"]["SID0003004"]["operations"]["publicPrintOut"]["request_schema"]
    schema = compile_xsd(PayloadSchema.from_bundle("SID0003004", key, ved3["schemas"][key], ved3["schema_files"]))
    envelope = etree.fromstring(SMEV3_REQUEST.read_bytes(), safe_parser())
    [payload] = envelope.iterfind(".//{*}MessagePrimaryContent/*")
    assert payload.tag == "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest"
    assert schema.validate(payload), schema.error_log
    number = payload[0]
    payload.remove(number)  # the required ExpertiseResultNumber is gone
    assert not schema.validate(payload)
    assert "ExpertiseResultDate" in str(schema.error_log) and "Expected is" in str(schema.error_log)
    tampered = dict(ved3["schema_files"])
    digest = ved3["schemas"][key]["files"]["common/gis-egrz-types.xsd"]
    tampered[digest] = tampered[digest].replace('maxLength value="36"', 'maxLength value="99"')
    with pytest.raises(PayloadSchemaError, match="does not have the digest"):
        PayloadSchema.from_bundle("SID0003004", key, ved3["schemas"][key], tampered)


def test_a_rest_json_schema_is_one_file_entry(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    folder = tmp_path / "schemas/services/SID0003002"
    folder.mkdir()
    text = '{"type": "object", "required": ["number"], "properties": {"number": {"type": "string"}}}\n'
    (folder / "permit.json").write_text(text)
    service = tmp_path / "registry/services/SID0003002.yaml"
    service.write_text(service.read_text().replace(
        "      path: /permits/{number}\n",
        "      path: /permits/{number}\n      response_schema: schemas/services/SID0003002/permit.json\n"))
    ved3 = compiled(tmp_path / "registry")["ved3.json"]
    op = ved3["services"]["SID0003002"]["operations"]["operation1"]
    assert "request_schema" not in op
    digest = trust.sha256_hex(text.encode())
    assert ved3["schemas"][op["response_schema"]] == {"kind": "json-schema", "main": "permit.json",
                                                     "files": {"permit.json": digest}}
    assert ved3["schema_files"][digest] == text

"""The message layer alone (proxy.soap, proxy.payloads): real SMEV 3 / SMEV 2 messages written by
others, MTOM framing, and bundle schema tables that must be refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from compiler.trust import canonical_json
from proxy.errors import PolicyFormatError
from proxy.payloads import compile_schemas
from proxy.soap.envelope import media_type
from proxy.soap.errors import MessageError
from proxy.soap.message import read_message

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3 = REAL / "burcevsemyon__Smev3Sharp/Smev3Client.Tests/TestData"
MVVACT = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact"
EGRZ = REAL / "gosha20777__smev-client"
XSD = EGRZ / "json2xml-transformer/xsd/160016"
TYPES12 = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.2"


@pytest.mark.parametrize(("path", "profile", "element", "message_id"), [
    (EGRZ / "_docs/docs/raw_requests.SendRequestRequest.xml", "smev3",
     "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest", "39f52a38-9a54-11ea-b23a-3316e2108089"),
    (SMEV3 / "GetResponseResponse_ValidResponse.xml", "smev3",
     "{urn://fake-smev-service-response}FakeSmevServiceResponse", "8ac9a002-c751-11eb-bc0d-001a4a165f5b"),
    (SMEV3 / "GetResponseResponce_EmptyQueue.xml", "smev3", None, None),
    (SMEV3 / "SendRequestResponce.xml", "smev3", None, None),
    (MVVACT / "putData/request.xml", "plain", "{http://smev.gosuslugi.ru/rev120315}putData", None),
    (MVVACT / "updateStatus/UpdateStatus_request.xml", "plain", "{http://smev.gosuslugi.ru/rev120315}updateStatus",
     None),
], ids=["egrz-send-request", "smev3-get-response", "smev3-empty-queue", "smev3-send-request-response",
        "smev2-putdata", "smev2-updatestatus"])
def test_real_messages_are_read(path: Path, profile: Any, element: str | None, message_id: str | None) -> None:
    message = read_message(path.read_bytes(), "text/xml; charset=utf-8", [], profile)
    assert (message.content.element, message.content.message_id) == (element, message_id)
    assert message.version == "1.1"


def test_the_real_mtom_response_is_read_with_crlf_framing() -> None:
    raw = (SMEV3 / "GetResponseResponce_MultipartEmptyQueue.xml").read_bytes().replace(b"\n", b"\r\n")
    ctype = ('multipart/related; type="application/xop+xml"; boundary="f438a15e-9b5b-491f-9b47-aba4d00b8837"; '
             'start="<root.message@cxf.apache.org>"; start-info="text/xml"')
    message = read_message(raw, ctype, [], "smev3")
    assert message.multipart and message.content.transport == f"{{{TYPES12}}}GetResponseResponse"
    with pytest.raises(MessageError, match="boundary"):  # bare LF framing is not MIME
        read_message((SMEV3 / "GetResponseResponce_MultipartEmptyQueue.xml").read_bytes(), ctype, [], "smev3")


@pytest.mark.parametrize(("value", "expected"), [
    ("text/xml; charset=utf-8", ("text/xml", {"charset": "utf-8"})),
    ('application/soap+xml;action="urn:a;b"', ("application/soap+xml", {"action": "urn:a;b"})),
    ("TEXT/XML", ("text/xml", {})),
    ("text/xml; charset", ("", {})),
    ("text/xml; a=1; A=2", ("", {})),
    (None, ("", {})),
], ids=["charset", "quoted-semicolon", "case", "bare-name", "repeated", "absent"])
def test_media_type(value: str | None, expected: tuple[str, dict[str, str]]) -> None:
    assert media_type(value) == expected


ENV = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><a:X xmlns:a="urn:a"/></s:Body>'
       b"</s:Envelope>")


@pytest.mark.parametrize(("body", "ctype", "actions", "why"), [
    (ENV, "text/xml", ['"a"', '"b"'], "2 SOAPAction headers"),
    (ENV.replace(b"<s:Body>", b"<s:Header/><s:Header/><s:Body>"), "text/xml", [], "one Body"),
    (ENV.replace(b"</s:Body>", b"</s:Body>tail"), "text/xml", [], "text outside"),
    (ENV, "application/soap+xml", [], r"SOAP 1\.1 sent as application/soap\+xml"),
    (ENV.replace(b"http://schemas.xmlsoap.org/soap/envelope/", b"http://www.w3.org/2003/05/soap-envelope"),
     'application/soap+xml; action="x"', ['"y"'], "disagree"),
    (ENV, "multipart/related; boundary=b", [], "start with its boundary"),
    (b"--b\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\n\r\n" + ENV + b"\r\n--b--",
     'multipart/related; type="application/xop+xml"; boundary=b', [], None),
    (b"--b\r\nContent-Type: text/plain\r\n\r\n" + ENV + b"\r\n--b--", "multipart/related; boundary=b", [],
     r"application/xop\+xml"),
    (b"--b\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\n\r\n" + ENV
     + b"\r\n--b\r\nContent-ID: <p>\r\n\r\nx\r\n--b\r\nContent-ID: <p>\r\n\r\ny\r\n--b--",
     "multipart/related; boundary=b", [], "two multipart parts"),
    (b"--b\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\n\r\n" + ENV + b"\r\n--b",
     "multipart/related; boundary=b", [], "closing boundary"),
], ids=["two-soapactions", "two-headers", "text-after-body", "version-vs-media-type", "soap12-action-disagrees",
        "multipart-without-parts", "multipart-minimal-ok", "multipart-root-not-xop", "duplicate-content-id",
        "multipart-unterminated"])
def test_framing(body: bytes, ctype: str, actions: list[str], why: str | None) -> None:
    if why is None:
        assert read_message(body, ctype, actions, "plain").content.element == "{urn:a}X"
        return
    with pytest.raises(MessageError, match=why):
        read_message(body, ctype, actions, "plain")


# --- schema tables in the bundle ------------------------------------------------------------------


def tables(main: str, files: dict[str, bytes], kind: str = "xsd") -> dict[str, Any]:
    entry = {"kind": kind, "main": main, "files": {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}}
    key = hashlib.sha256(canonical_json(entry)).hexdigest()
    return {"schemas": {key: entry},
            "schema_files": {hashlib.sha256(d).hexdigest(): d.decode() for d in files.values()},
            "services": {"SID0000001": {"operations": {"op": {"request_schema": key}}}}}


EGRZ_FILES = {"publicprintout.xsd": (XSD / "publicprintout.xsd").read_bytes(),
              "common/gis-egrz-types.xsd": (XSD / "common/gis-egrz-types.xsd").read_bytes()}


def _outside(location: bytes) -> dict[str, Any]:
    main = EGRZ_FILES["publicprintout.xsd"].replace(b"common/gis-egrz-types.xsd", location)
    return tables("publicprintout.xsd", {**EGRZ_FILES, "publicprintout.xsd": main})


def _tamper_key(signed: dict[str, Any]) -> dict[str, Any]:
    (entry,) = signed["schemas"].values()
    entry["main"] = "common/gis-egrz-types.xsd"
    return signed


def _tamper_file(signed: dict[str, Any]) -> dict[str, Any]:
    digest = next(iter(signed["schema_files"]))
    signed["schema_files"][digest] += "<!-- changed -->"
    return signed


BAD_TABLES = [
    ("import-missing", tables("publicprintout.xsd", {"publicprintout.xsd": EGRZ_FILES["publicprintout.xsd"]}),
     "does not compile"),
    ("import-parent-dir", _outside(b"../../../../etc/hosts"), "does not compile"),
    ("import-absolute", _outside(b"/etc/hosts"), "does not compile"),
    ("import-url", _outside(b"http://127.0.0.1:9/x.xsd"), "does not compile"),
    ("truncated", tables("a.xsd", {"a.xsd": EGRZ_FILES["common/gis-egrz-types.xsd"][:500]}), "not well-formed"),
    ("json-not-a-schema", tables("a.json", {"a.json": b'{"type": 5}'}, "json-schema"), "not a valid JSON Schema"),
    ("json-not-json", tables("a.json", {"a.json": b"{not json"}, "json-schema"), "not JSON"),
    ("key-not-the-digest", _tamper_key(tables("publicprintout.xsd", EGRZ_FILES)), "not the digest"),
    ("file-not-its-digest", _tamper_file(tables("publicprintout.xsd", EGRZ_FILES)), "does not have the digest"),
    ("dangling-reference", {"services": {"SID0000001": {"operations": {"op": {"request_schema": "ab" * 32}}}}},
     "not in the bundle"),
    ("unknown-kind", tables("a.rng", {"a.rng": b"<grammar/>"}, "relax-ng"), "malformed entry"),
]


@pytest.mark.parametrize(("name", "signed", "why"), BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_bad_schema_tables_make_the_bundle_malformed(name: str, signed: dict[str, Any], why: str) -> None:
    with pytest.raises(PolicyFormatError, match=why):
        compile_schemas(signed)


def test_the_real_multi_file_xsd_compiles_and_is_reused_by_key() -> None:
    signed = tables("publicprintout.xsd", EGRZ_FILES)
    first = compile_schemas(signed)
    again = compile_schemas(json.loads(json.dumps(signed)), reuse=first)
    (key,) = first.compiled
    assert again.compiled[key] is first.compiled[key]

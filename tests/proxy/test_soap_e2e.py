"""SOAP and SMEV 3 messages through a real sidecar (real TLS, real mitmproxy, real journal), with
zeep as the SOAP client against the real mvvact WSDL, the real SMEV 3 ЕГРЗ request and its real
multi-file XSD, and an upstream that records what reaches it.

Every refusal is checked three ways: the answer (status, SOAP Fault in the caller's version, or
problem+json, with the stable code), the journal (a deny record with that reason), and the
upstream (nothing arrived).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from compiler.trust import canonical_json
from proxy.soap.gost import certs
from proxy.soap.message import read_message
from proxy.soap.signatures import check_signatures
from proxy.soap.signing import KeyFileSigner, sign_smev3
from tests.proxy.conftest import Keys, Pki, signed_bundle
from tests.proxy.gost_pki import GostIdentity, GostPki
from tests.proxy.test_runner import Running, records, run_sidecar

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
MVVACT = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact"
EGRZ = REAL / "gosha20777__smev-client"
SMEV3_REQUEST = (EGRZ / "_docs/docs/raw_requests.SendRequestRequest.xml").read_bytes()
EGRZ_XSD = EGRZ / "json2xml-transformer/xsd/160016"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
REV = "http://smev.gosuslugi.ru/rev120315"
PUBLIC = "urn://x-artefacts-gis-ergz-public/2.0.0"
SMEV3_TYPES = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.2"
SMEV3_BASIC = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.2"
ITEM_SCHEMA = {"type": "object", "required": ["snils"], "additionalProperties": False,
               "properties": {"snils": {"type": "string", "pattern": "^[0-9]{11}$"}}}
MESSAGE_ID = "39f52a38-9a54-11ea-b23a-3316e2108089"


# --- the bundle: ved3 provides a plain SOAP service (mvvact), an SMEV 3 service and a REST one ---


def schema_set(tables: dict[str, Any], kind: str, main: str, files: dict[str, bytes]) -> str:
    """Add one schema set to the bundle's `schemas` / `schema_files` tables; returns its key."""
    entry = {"kind": kind, "main": main,
             "files": {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}}
    for data in files.values():
        tables["schema_files"][hashlib.sha256(data).hexdigest()] = data.decode("utf-8")
    key = hashlib.sha256(canonical_json(entry)).hexdigest()
    tables["schemas"][key] = entry
    return key


def soap_bundle(pki: Pki) -> dict[str, Any]:
    signed = signed_bundle(pki)
    tables: dict[str, Any] = {"schemas": {}, "schema_files": {}}
    wsdl = MVVACT / "wsdl"
    mvvact_key = schema_set(tables, "xsd", "mvvact_schema2.xsd", {
        name: (wsdl / name).read_bytes()
        for name in ("mvvact_schema1.xsd", "mvvact_schema2.xsd", "mvvact_schema3.xsd")})
    egrz_key = schema_set(tables, "xsd", "publicprintout.xsd", {
        "publicprintout.xsd": (EGRZ_XSD / "publicprintout.xsd").read_bytes(),
        "common/gis-egrz-types.xsd": (EGRZ_XSD / "common/gis-egrz-types.xsd").read_bytes()})
    item_key = schema_set(tables, "json-schema", "item.json", {"item.json": json.dumps(ITEM_SCHEMA).encode()})
    callers = signed["services"]["SID0003001"]["callers"]
    ved1, ved2 = callers["ved1"], callers["ved2"]
    signed.update(tables)
    signed["services"].update({
        "SID0003004": {
            "name": "ЕГРЗ", "protocol": "soap", "profile": "smev3", "classification": "restricted",
            "signed_messages": False,
            "callers": {"ved1": {**copy.deepcopy(ved1), "access": "operations", "operations": ["publicPrintOut"]},
                        "ved2": {**copy.deepcopy(ved2), "operations": ["otherKind"]}},
            "operations": {
                "publicPrintOut": {"payload_element": f"{{{PUBLIC}}}PublicPrintOutRequest",
                                   "request_schema": egrz_key},
                "otherKind": {"payload_element": "{urn:test:other}Запрос"}}},
        "SID0003005": {
            "name": "mvvact", "protocol": "soap", "profile": "plain", "classification": "personal-data",
            "signed_messages": False,
            "callers": {"ved1": copy.deepcopy(ved1),
                        "ved2": {**copy.deepcopy(ved2), "operations": ["updateStatus"]}},
            "operations": {
                "putData": {"soap_action": "urn:PutData", "body_element": f"{{{REV}}}putData",
                            "request_schema": mvvact_key, "response_schema": mvvact_key},
                "updateStatus": {"soap_action": "urn:UpdateStatus", "body_element": f"{{{REV}}}updateStatus"}}},
        "SID0003006": {
            "name": "items", "protocol": "rest", "classification": "personal-data", "signed_messages": False,
            "callers": {"ved1": copy.deepcopy(ved1)},
            "operations": {"create": {"method": "POST", "path": "/items", "request_schema": item_key}}},
    })
    return signed


# --- an upstream that answers SOAP and records what reaches it -----------------------------------


class SoapUpstream:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = (MVVACT / "putData/response.xml").read_bytes()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                upstream.calls.append({"path": self.path, "headers": dict(self.headers),
                                       "body": self.rfile.read(length)})
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Reestr-Classification", "public")  # must be replaced (R14)
                self.send_header("Content-Length", str(len(upstream.answer)))
                self.end_headers()
                self.wfile.write(upstream.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def soap_sidecar(d: Path, pki: Pki, keys: Keys, bundle: dict[str, Any] | None = None,
                 **overrides: Any) -> Iterator[Running]:
    upstream = SoapUpstream()
    try:
        with run_sidecar(d, pki, keys, upstream, bundle or soap_bundle(pki),  # type: ignore[arg-type]
                         limits={"max_body_bytes": 1 << 20}, **overrides) as running:
            yield running
    finally:
        upstream.close()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys) -> Iterator[Running]:
    with soap_sidecar(tmp_path_factory.mktemp("soap"), pki, keys) as running:
        yield running


def zeep_client(sidecar: Running, who: str) -> Any:
    session = requests.Session()
    session.cert = str(sidecar.pki.clients[who].pem)
    session.verify = str(sidecar.pki.ca_pem)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify`
    client = zeep.Client(str(MVVACT / "wsdl/mvvact.wsdl"), transport=Transport(session=session))
    return client.create_service("{http://mvv.oep.com/}MVVActServiceSoapBinding", f"{sidecar.base}/SID0003005")


ORG = {"Code": "VED1", "Name": "Ведомство 1"}
MESSAGE = {"Sender": ORG, "Recipient": {"Code": "VED3", "Name": "Ведомство 3"}, "Originator": ORG,
           "ServiceName": "MVVACT", "TypeCode": "GSRV", "Status": "REQUEST",
           "Date": dt.datetime(2026, 12, 1, 10, 0), "ExchangeType": "2"}
APP_DATA = {"AppData": {"result": {"dataRow": [{"name": "a", "value": "1"}],
                                   "params": {"app_id": 7, "status_date": dt.datetime(2026, 12, 1)}}}}


def _record(sidecar: Running, response_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request record, response record) of the exchange whose response record has this id."""
    by_id = {r["id"]: r for r in records(sidecar)}
    response = by_id[int(response_id)]
    request = next(r for r in by_id.values() if r["exchange"] == response["exchange"] and r["kind"] == "request")
    return request, response


# --- zeep against the real WSDL ------------------------------------------------------------------


def test_zeep_put_data_is_allowed_validated_and_forwarded(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    service = zeep_client(sidecar, "ved1")
    answer = service.putData(Message=MESSAGE, MessageData=APP_DATA)
    assert answer.Message.Sender.Code == "PNZR01581"  # the real response, parsed by zeep
    reached = sidecar.upstream.calls[before:]
    assert len(reached) == 1 and reached[0]["headers"]["Reestr-Operation"] == "putData"
    assert reached[0]["headers"]["SOAPAction"] == '"urn:PutData"'


def test_zeep_call_of_an_operation_not_granted_is_a_fault(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    service = zeep_client(sidecar, "ved2")
    with pytest.raises(zeep.exceptions.Fault) as fault:
        service.putData(Message=MESSAGE, MessageData=APP_DATA)
    assert fault.value.code == "soap:Client"
    assert fault.value.detail.findtext("{urn:reestr}code") == "operation-not-granted"
    assert len(sidecar.upstream.calls) == before
    assert service.updateStatus(Message=MESSAGE, MessageData=APP_DATA) is not None  # its own grant


# --- attacks: every one refused, journaled, and never upstream -----------------------------------


def env11(inner: str, header: str = "") -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP11}" xmlns:r="{REV}">{header}<s:Body>{inner}</s:Body>'
            "</s:Envelope>").encode()


def env12(inner: str) -> bytes:
    return f'<e:Envelope xmlns:e="{SOAP12}" xmlns:r="{REV}"><e:Body>{inner}</e:Body></e:Envelope>'.encode()


PUT, UPDATE = "<r:putData/>", "<r:updateStatus/>"
XML11 = {"Content-Type": "text/xml; charset=utf-8"}
BILLION = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">' for i in range(1, 10))
           + "]>").encode()
DEEP = env11("<r:updateStatus>" + "<a>" * 100_000 + "</a>" * 100_000 + "</r:updateStatus>")


def mtom(root: bytes, parts: list[tuple[str, bytes]], start: str = "<root@reestr>") -> tuple[bytes, dict[str, str]]:
    boundary = "MIMEBoundary_reestr"
    out = [f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n"
           f"Content-ID: {start}\r\n\r\n".encode() + root]
    out += [f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-ID: <{cid}>\r\n"
            "Content-Transfer-Encoding: binary\r\n\r\n".encode() + data for cid, data in parts]
    body = b"\r\n".join(out) + f"\r\n--{boundary}--\r\n".encode()
    ctype = (f'multipart/related; type="application/xop+xml"; start="{start}"; '
             f'start-info="text/xml"; boundary="{boundary}"')
    return body, {"Content-Type": ctype}


XOP = ('<r:updateStatus><r:BinaryData><x:Include xmlns:x="http://www.w3.org/2004/08/xop/include" '
       'href="cid:{}"/></r:BinaryData></r:updateStatus>')

ATTACKS: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
    # id, who, headers, body, status, code
    ("granted-soapaction-denied-body", "ved2", {**XML11, "SOAPAction": '"urn:UpdateStatus"'}, env11(PUT), 403,
     "operation-mismatch"),
    ("denied-soapaction-granted-body", "ved2", {**XML11, "SOAPAction": '"urn:PutData"'}, env11(UPDATE), 403,
     "operation-mismatch"),
    ("unregistered-soapaction", "ved1", {**XML11, "SOAPAction": '"urn:Delete"'}, env11(UPDATE), 403,
     "operation-mismatch"),
    ("soap12-action-mismatch", "ved2", {"Content-Type": 'application/soap+xml; action="urn:UpdateStatus"'},
     env12(PUT), 403, "operation-mismatch"),
    ("soap11-sent-as-soap12", "ved2", {"Content-Type": "application/soap+xml"}, env11(UPDATE), 400,
     "malformed-request"),
    ("no-media-type", "ved2", {}, env11(UPDATE), 400, "malformed-request"),
    ("two-bodies", "ved2", XML11,
     env11(UPDATE).replace(b"</s:Body>", b"</s:Body><s:Body>" + PUT.encode() + b"</s:Body>"), 400, "malformed-request"),
    ("foreign-namespace-body-first", "ved2", XML11,
     env11(UPDATE).replace(b"<s:Body>", b'<f:Body xmlns:f="urn:foreign">' + PUT.encode() + b"</f:Body><s:Body>"),
     400, "malformed-request"),
    ("two-body-children", "ved2", XML11, env11(UPDATE + PUT), 400, "malformed-request"),
    ("text-beside-body-child", "ved2", XML11, env11(UPDATE + "text"), 400, "malformed-request"),
    ("empty-body", "ved2", XML11, env11(""), 400, "malformed-request"),
    ("not-an-envelope", "ved2", XML11, UPDATE.replace("r:", "").encode(), 400, "malformed-request"),
    ("mtom-missing-part", "ved2", *reversed(mtom(env11(XOP.format("nowhere@reestr")), [])), 400,  # type: ignore[list-item]
     "malformed-request"),
    ("mtom-unreferenced-part", "ved2", *reversed(mtom(env11(UPDATE), [("extra@reestr", b"\x00PD")])), 400,  # type: ignore[list-item]
     "malformed-request"),
    ("mtom-root-not-xml", "ved2", *reversed(mtom(b"%PDF-1.7", [])), 400, "malformed-request"),  # type: ignore[list-item]
    ("mtom-no-boundary", "ved2", {"Content-Type": 'multipart/related; type="application/xop+xml"'}, env11(UPDATE),
     400, "malformed-request"),
]
for routing, extra in (("by-body", {}), ("by-soapaction", {"SOAPAction": '"urn:UpdateStatus"'})):
    for name, body in (
            ("doctype", b'<!DOCTYPE x [<!ENTITY e "e">]>' + env11(UPDATE)),
            ("xxe", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
             + env11("<r:updateStatus>&e;</r:updateStatus>")),
            ("billion-laughs", BILLION + env11("<r:updateStatus>&lol9;</r:updateStatus>")),
            ("deep-nesting", DEEP),
            ("non-xml", b'{"updateStatus": {}}')):
        ATTACKS.append((f"{name}-{routing}", "ved2", {**XML11, **extra}, body, 400, "malformed-request"))
ATTACKS.append(("two-soapaction-headers", "ved2", XML11, env11(UPDATE), 400, "malformed-request"))


@pytest.mark.parametrize(("name", "who", "headers", "body", "status", "code"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attacks_are_refused_journaled_and_never_forwarded(sidecar: Running, name: str, who: str,
                                                           headers: dict[str, str], body: bytes, status: int,
                                                           code: str) -> None:
    before = len(sidecar.upstream.calls)
    sent: Any = list(headers.items())
    if name == "two-soapaction-headers":
        sent += [("SOAPAction", '"urn:UpdateStatus"'), ("SOAPAction", '"urn:PutData"')]
    r = sidecar.call(who, "POST", "/SID0003005", headers=sent, content=body)
    assert r.status_code == status, r.text
    version_12 = "soap+xml" in headers.get("Content-Type", "")  # the Fault in the caller's version
    envelope_ns = SOAP12 if version_12 else SOAP11
    assert r.headers["content-type"].startswith("application/soap+xml" if version_12 else "text/xml")
    fault = etree.fromstring(r.content).find(f"{{{envelope_ns}}}Body/{{{envelope_ns}}}Fault")
    assert fault is not None
    detail = fault.find(f"{{{envelope_ns}}}Detail") if version_12 else fault.find("detail")
    assert detail is not None and detail.findtext("{urn:reestr}code") == code
    assert len(sidecar.upstream.calls) == before
    request, response = _record(sidecar, r.headers["Reestr-Journal-Id"])
    assert (request["decision"], request["reason"]) == ("deny", code)
    assert (response["decision"], response["status"]) == ("deny", status)


def test_a_soap12_fault_answers_a_soap12_caller(sidecar: Running) -> None:
    r = sidecar.call("ved2", "POST", "/SID0003005", content=env12(PUT),
                     headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    fault = etree.fromstring(r.content).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert r.status_code == 403 and fault is not None
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "env:Sender"


def test_mtom_with_its_part_is_resolved_and_forwarded_unchanged(sidecar: Running) -> None:
    body, headers = mtom(env11(XOP.format("scan%40reestr")), [("scan@reestr", b"%PDF-1.7 \x00\xff binary")])
    before = len(sidecar.upstream.calls)
    r = sidecar.call("ved2", "POST", "/SID0003005", headers=headers, content=body)
    assert r.status_code == 200, r.text
    assert sidecar.upstream.calls[before:][0]["body"] == body


# --- SMEV 3: the kind of information decides ---------------------------------------------------


def smev3(payload: str, message_id: str = MESSAGE_ID) -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:SendRequestRequest xmlns:t="{SMEV3_TYPES}">'
            f'<t:SenderProvidedRequestData Id="SIGNED_BY_CONSUMER"><t:MessageID>{message_id}</t:MessageID>'
            f'<b:MessagePrimaryContent xmlns:b="{SMEV3_BASIC}">{payload}</b:MessagePrimaryContent>'
            "</t:SenderProvidedRequestData></t:SendRequestRequest></s:Body></s:Envelope>").encode()


SMEV3_XML = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:SendRequest"'}


def test_the_real_smev3_request_routes_by_its_payload_and_validates(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=SMEV3_REQUEST)
    assert r.status_code == 200, r.text
    assert r.headers["Reestr-Classification"] == "restricted"  # R14, the upstream's "public" replaced
    reached = sidecar.upstream.calls[before:]
    assert len(reached) == 1 and reached[0]["headers"]["Reestr-Operation"] == "publicPrintOut"
    assert reached[0]["body"] == SMEV3_REQUEST
    request, response = _record(sidecar, r.headers["Reestr-Journal-Id"])
    assert {k: request[k] for k in ("profile", "payload", "message_id", "reference_message_id", "classification",
                                    "payload_check", "operation", "decision")} == {
        "profile": "smev3", "payload": f"{{{PUBLIC}}}PublicPrintOutRequest", "message_id": MESSAGE_ID,
        "reference_message_id": None, "classification": "restricted", "payload_check": "valid",
        "operation": "publicPrintOut", "decision": "allow"}
    assert (response["classification"], response["status"]) == ("restricted", 200)


@pytest.mark.parametrize(("who", "body", "status", "code", "operation"), [
    ("ved2", SMEV3_REQUEST, 403, "operation-not-granted", "publicPrintOut"),
    ("ved1", smev3('<o:Запрос xmlns:o="urn:test:other"/>'), 403, "operation-not-granted", "otherKind"),
    ("ved2", smev3('<o:Запрос xmlns:o="urn:test:other"/>'), 200, None, "otherKind"),
    ("ved1", smev3('<z:DeathRecord xmlns:z="urn:zags"/>'), 404, "unknown-operation", None),
    ("ved1", smev3(f'<p:PublicPrintOutRequest xmlns:p="{PUBLIC}"/>'), 400, "payload-invalid", "publicPrintOut"),
    ("ved1", smev3("<a/><b/>"), 400, "malformed-request", None),
    ("ved1", (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:AckRequest xmlns:t="{SMEV3_TYPES}">'
              f'<t:AckTargetMessage Id="SIGNED_BY_CALLER" accepted="true">{MESSAGE_ID}</t:AckTargetMessage>'
              "</t:AckRequest></s:Body></s:Envelope>").encode(), 404, "unknown-operation", None),
    ("ved1", SMEV3_REQUEST.replace(b"SendRequestRequest", b"GetStatusRequest"), 403, "operation-mismatch",
     "publicPrintOut"),
], ids=["real-request-other-consumer", "second-kind-not-granted", "second-kind-granted", "zags-record-to-egrz",
        "payload-missing-required-element", "two-payloads", "no-payload-ack",
        "transport-contradicts-soapaction"])
def test_smev3_kinds_of_information_are_told_apart(sidecar: Running, who: str, body: bytes, status: int,
                                                   code: str | None, operation: str | None) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call(who, "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert r.status_code == status, r.text
    if code is None:
        assert sidecar.upstream.calls[before:][0]["headers"]["Reestr-Operation"] == operation
        return
    assert len(sidecar.upstream.calls) == before
    fault = etree.fromstring(r.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None and fault.findtext("detail/{urn:reestr}code") == code
    request, _ = _record(sidecar, r.headers["Reestr-Journal-Id"])
    assert (request["reason"], request["operation"], request["classification"]) == (code, operation, "restricted")
    if code == "payload-invalid":  # the first violation is named: the missing element
        assert "ExpertiseResultNumber" in (fault.findtext("detail/{urn:reestr}violation") or "")
        assert (request["payload_check"], request["payload"]) == ("invalid", f"{{{PUBLIC}}}PublicPrintOutRequest")


# --- REST payloads against their JSON Schema -----------------------------------------------------


@pytest.mark.parametrize(("body", "status", "pointer"), [
    (b'{"snils": "12345678901"}', 200, None),
    (b'{"snils": "1234"}', 400, "/snils"),
    (b'{"name": "x"}', 400, "/"),
    (b"{not json", 400, "/"),
    (b"", 400, "/"),
], ids=["valid", "pattern", "required-and-additional", "not-json", "empty"])
def test_rest_payloads_are_validated(sidecar: Running, body: bytes, status: int, pointer: str | None) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call("ved1", "POST", "/SID0003006/items", content=body,
                     headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["Reestr-Classification"] == "personal-data"
    if status == 200:
        assert len(sidecar.upstream.calls) == before + 1
        return
    problem = r.json()
    assert problem["code"] == "payload-invalid" and problem["violation"].startswith(pointer)
    assert "12345" not in json.dumps(_record(sidecar, r.headers["Reestr-Journal-Id"]))  # no payload in the journal
    assert len(sidecar.upstream.calls) == before




# --- responses: checked against the response schema by mode --------------------------------------

VALID_ANSWER = (MVVACT / "putData/response.xml").read_bytes()
INVALID_ANSWER = re.sub(rb"<smev:Sender>.*?</smev:Sender>", b"", VALID_ANSWER, count=1, flags=re.S)


@pytest.mark.parametrize(("mode", "answer", "status"), [
    ("enforce", VALID_ANSWER, 200), ("enforce", INVALID_ANSWER, 502),
    ("record", INVALID_ANSWER, 200), ("off", INVALID_ANSWER, 200),
], ids=["enforce-valid", "enforce-invalid", "record-invalid", "off-invalid"])
def test_response_payloads_by_mode(tmp_path: Path, pki: Pki, keys: Keys, mode: str, answer: bytes,
                                   status: int) -> None:
    with soap_sidecar(tmp_path, pki, keys, payloads={"responses": mode}) as running:
        running.upstream.answer = answer  # type: ignore[attr-defined]
        request = (MVVACT / "putData/request.xml").read_bytes()
        r = running.call("ved1", "POST", "/SID0003005", content=request,
                         headers={**XML11, "SOAPAction": '"urn:PutData"'})
        assert r.status_code == status, r.text
        assert r.headers["Reestr-Classification"] == "personal-data"
        if status == 502:
            fault = etree.fromstring(r.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
            assert fault is not None and fault.findtext("faultcode") == "soap:Server"
            assert fault.findtext("detail/{urn:reestr}code") == "response-payload-invalid"
            assert b"PNZR01581" not in r.content  # nothing of the refused answer reaches the caller
        else:
            assert r.content == answer
        _, response = _record(running, r.headers["Reestr-Journal-Id"])
        expected = {"enforce": "valid" if status == 200 else "invalid", "record": "invalid", "off": None}[mode]
        assert (response["payload_check"], response["profile"]) == (expected, "plain")
        assert response["payload"] == f"{{{REV}}}putDataResponse"  # what was checked (and, enforced, refused)


# --- the journal finds a message by the id agencies quote ----------------------------------------


def test_journal_export_finds_a_message_and_the_replies_that_reference_it(sidecar: Running) -> None:
    message_id = "5a1c0de0-0001-11ef-8000-000000000001"
    asked = sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML,
                         content=SMEV3_REQUEST.replace(MESSAGE_ID.encode(), message_id.encode()))
    reply = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:SendResponseRequest xmlns:t="{SMEV3_TYPES}">'
             f'<t:SenderProvidedResponseData Id="SIGNED_BY_PROVIDER"><t:MessageID>reply-1</t:MessageID>'
             f"<t:To>ved1</t:To><t:ReferenceMessageID>{message_id}</t:ReferenceMessageID>"
             f'<b:MessagePrimaryContent xmlns:b="{SMEV3_BASIC}"><p:PublicPrintOutResponse xmlns:p="{PUBLIC}"/>'
             "</b:MessagePrimaryContent></t:SenderProvidedResponseData></t:SendResponseRequest></s:Body></s:Envelope>")
    answered = sidecar.call("ved1", "POST", "/SID0003004", content=reply.encode(),
                            headers={**SMEV3_XML, "SOAPAction": '"urn:SendResponse"'})
    assert (asked.status_code, answered.status_code) == (200, 404)  # the reply is no operation here
    out = subprocess.run([str(Path(sys.executable).parent / "reestr-sidecar"), "journal", "export",
                          str(sidecar.config.journal.path), "--message-id", message_id],
                         capture_output=True, text=True, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r["message_id"], r["reference_message_id"]) for r in lines] == [
        ("request", message_id, None), ("response", None, None),
        ("request", "reply-1", message_id), ("response", None, None)]
    assert {r["classification"] for r in lines} == {"restricted"}
    assert lines[0]["payload"] == f"{{{PUBLIC}}}PublicPrintOutRequest"


# --- GOST signatures of SMEV 3 requests (R11) ----------------------------------------------------

DSIG = "http://www.w3.org/2000/09/xmldsig#"


def _resigned(identity: GostIdentity, change: str | None = None, message_id: str | None = None) -> bytes:
    """The real ЕГРЗ request with a fresh MessageID (a time UUID, as SMEV 3 requires), its
    (expired) signature replaced by one of `identity`."""
    root = etree.fromstring(SMEV3_REQUEST)
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.getparent().remove(holder)
    (mid,) = root.xpath("//*[local-name()='MessageID']")
    mid.text = message_id or str(uuid.uuid1())
    sign_smev3(root, KeyFileSigner.load(identity.key, identity.der))
    if change is not None:
        (number,) = root.xpath("//*[local-name()='ExpertiseResultNumber']")
        number.text = change
    return etree.tostring(root, encoding="utf-8")


@pytest.fixture(scope="module")
def gost_signers(gost_pki: GostPki) -> dict[str, GostIdentity]:
    return {who: gost_pki.issue(f"{who}-signing") for who in ("ved1", "ved2", "ved3")}


@pytest.fixture(scope="module")
def signed_sidecar(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys,
                   gost_signers: dict[str, GostIdentity]) -> Iterator[Running]:
    bundle = soap_bundle(pki)
    service = bundle["services"]["SID0003004"]
    service["signed_messages"] = True
    service["callers"]["ved2"]["operations"] = ["publicPrintOut", "otherKind"]
    bundle["signing_certificates"] = {}
    for who in ("ved1", "ved2"):
        cert = certs.read(gost_signers[who].der)
        bundle["signing_certificates"][cert.sha256] = {
            "participant": who, "subject": cert.subject,
            "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}
        service["callers"][who]["signing_certificates"] = [cert.sha256]
    provider = gost_signers["ved3"]  # the provider signs its SMEV 3 answers with its own ЭП-ОВ
    signer = {"signer": {"certificate": str(provider.cert_pem), "key_file": str(provider.key)}}
    with soap_sidecar(tmp_path_factory.mktemp("soap-signed"), pki, keys, bundle, signatures=signer) as running:
        yield running


def test_gost_signed_smev3_request_is_verified_forwarded_and_journaled(
        signed_sidecar: Running, gost_signers: dict[str, GostIdentity]) -> None:
    body = _resigned(gost_signers["ved1"])
    before = len(signed_sidecar.upstream.calls)
    r = signed_sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert r.status_code == 200, r.text
    assert signed_sidecar.upstream.calls[before:][0]["body"] == body
    request, _ = _record(signed_sidecar, r.headers["Reestr-Journal-Id"])
    fp = certs.read(gost_signers["ved1"].der).sha256
    assert request["signature_check"] == (
        f"valid urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256 {fp}")


@pytest.mark.parametrize(("who", "signer", "change", "code"), [
    ("ved1", "ved2", None, "signature-wrong-signer"),       # signed by another registered participant
    ("ved1", "ved1", "00-1-2-3-000099-2000", "signature-invalid"),  # body changed after signing
    ("ved1", None, None, "signature-certificate-expired"),  # the real message: its certificate expired in 2020
    ("ved1", "unsigned", None, "signature-absent"),
], ids=["other-participants-signature", "changed-after-signing", "real-expired-certificate", "unsigned"])
def test_gost_signature_refusals(signed_sidecar: Running, gost_signers: dict[str, GostIdentity], who: str,
                                 signer: str | None, change: str | None, code: str) -> None:
    if signer is None:
        body = SMEV3_REQUEST
    elif signer == "unsigned":
        body = smev3(f'<p:PublicPrintOutRequest xmlns:p="{PUBLIC}"><t:ExpertiseResultNumber '
                     'xmlns:t="urn://x-artefacts-gis-ergz-types/2.0.0">00-1-2-3-000010-2000'
                     "</t:ExpertiseResultNumber></p:PublicPrintOutRequest>")
    else:
        body = _resigned(gost_signers[signer], change)
    before = len(signed_sidecar.upstream.calls)
    r = signed_sidecar.call(who, "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert r.status_code == 403, r.text
    assert code in r.text
    assert len(signed_sidecar.upstream.calls) == before  # nothing forwarded
    request, _ = _record(signed_sidecar, r.headers["Reestr-Journal-Id"])
    assert request["reason"] == code
    assert request["signature_check"].startswith(code.removeprefix("signature-"))


def test_a_signed_message_is_accepted_once(signed_sidecar: Running, gost_signers: dict[str, GostIdentity]) -> None:
    body = _resigned(gost_signers["ved1"])
    first = signed_sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert first.status_code == 200, first.text
    before = len(signed_sidecar.upstream.calls)
    again = signed_sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert again.status_code == 409 and "replayed-message" in again.text
    assert len(signed_sidecar.upstream.calls) == before
    request, _ = _record(signed_sidecar, again.headers["Reestr-Journal-Id"])
    assert request["reason"] == "replayed-message"


def test_a_signed_message_from_outside_the_window_is_refused(
        signed_sidecar: Running, gost_signers: dict[str, GostIdentity]) -> None:
    """Validly signed now, but its MessageID's time is the real request's (2020): an old capture."""
    body = _resigned(gost_signers["ved1"], message_id=MESSAGE_ID)
    r = signed_sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body)
    assert r.status_code == 409 and "replayed-message" in r.text


def test_replay_protection_survives_a_restart(tmp_path: Path, pki: Pki, keys: Keys, signed_sidecar: Running,
                                              gost_signers: dict[str, GostIdentity]) -> None:
    """The second sidecar process reads the first one's journal: the message it accepted is refused."""
    bundle = soap_bundle(pki)
    service = bundle["services"]["SID0003004"]
    service["signed_messages"] = True
    cert = certs.read(gost_signers["ved1"].der)
    bundle["signing_certificates"] = {cert.sha256: {
        "participant": "ved1", "subject": cert.subject,
        "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    service["callers"]["ved1"]["signing_certificates"] = [cert.sha256]
    body = _resigned(gost_signers["ved1"])
    with soap_sidecar(tmp_path, pki, keys, copy.deepcopy(bundle)) as first:
        assert first.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body).status_code == 200
    with soap_sidecar(tmp_path, pki, keys, copy.deepcopy(bundle)) as second:
        r = second.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=body)
        assert r.status_code == 409 and "replayed-message" in r.text
        fresh = _resigned(gost_signers["ved1"])
        assert second.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML, content=fresh).status_code == 200


def _smev3_answer() -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:SendResponseRequest xmlns:t="{SMEV3_TYPES}">'
            f'<t:SenderProvidedResponseData Id="SIGNED_BY_PROVIDER"><t:MessageID>{uuid.uuid1()}</t:MessageID>'
            f"<t:To>route</t:To><b:MessagePrimaryContent xmlns:b=\"{SMEV3_BASIC}\"><r:Result xmlns:r=\"urn:test:r\">"
            "ok</r:Result></b:MessagePrimaryContent></t:SenderProvidedResponseData></t:SendResponseRequest>"
            "</s:Body></s:Envelope>").encode()


def test_the_providers_smev3_answer_leaves_signed(signed_sidecar: Running,
                                                  gost_signers: dict[str, GostIdentity]) -> None:
    signed_sidecar.upstream.answer = _smev3_answer()
    try:
        r = signed_sidecar.call("ved1", "POST", "/SID0003004", headers=SMEV3_XML,
                                content=_resigned(gost_signers["ved1"]))
    finally:
        signed_sidecar.upstream.answer = (MVVACT / "putData/response.xml").read_bytes()
    assert r.status_code == 200, r.text
    message = read_message(r.content, r.headers["content-type"], [], "smev3")
    provider = certs.read(gost_signers["ved3"].der).sha256
    results = check_signatures(message, "smev3", client_certificate=b"", signers={provider: object()},
                               at=dt.datetime.now(dt.UTC))
    assert [(x.status, x.holder, x.signer) for x in results] == [
        ("valid", "SenderInformationSystemSignature", provider)]
    _, response = _record(signed_sidecar, r.headers["Reestr-Journal-Id"])
    assert response["body_sha256"] == hashlib.sha256(r.content).hexdigest()  # the journal has the signed bytes

"""Consumer side: ved1's systems call ved1's sidecar, which checks ved1's grants and forwards with
ved1's client certificate to ved3's sidecar (a real second process), which decides again."""

from __future__ import annotations

import base64
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from proxy.config import SidecarConfig, load_config
from proxy.journal.query import export
from proxy.policy import Request, evaluate_outbound, parse_policy
from proxy.runner import ProcessHandle, ThreadHandle, start_in_thread, start_subprocess
from proxy.soap.gost import certs
from tests.proxy.conftest import (
    NOW,
    Keys,
    Pki,
    Upstream,
    free_port,
    serve_http,
    sign,
    signed_bundle,
    signed_consumer_bundle,
    write_config,
)
from tests.proxy.gost_pki import GostIdentity, GostPki

pytestmark = pytest.mark.slow


@dataclass
class Pair:
    consumer: SidecarConfig
    provider: SidecarConfig
    handle: ThreadHandle
    provider_proc: ProcessHandle
    upstream: Upstream

    pki: Pki

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A call from ved1's internal system, authenticated by its client certificate."""
        port = self.consumer.outbound.listen.port  # type: ignore[union-attr]
        return httpx.request(method, f"https://127.0.0.1:{port}{path}", timeout=10,
                             verify=self.pki.client_context("internal"), **kw)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys,
         upstream: Upstream) -> Iterator[Pair]:
    d = tmp_path_factory.mktemp("outbound")
    (d / "ved3.json").write_bytes(sign(signed_bundle(pki), keys.operator))
    provider = write_config(d / "ved3", pki, keys, upstream.url, str(d / "ved3.json"),
                            tls={"server_bundle": str(pki.clients["ved3"].pem)})
    provider_cfg = load_config(provider)
    (d / "ved1.json").write_bytes(sign(signed_consumer_bundle(
        pki, f"https://127.0.0.1:{provider_cfg.listen.port}"), keys.operator))
    consumer = write_config(
        d / "ved1", pki, keys, "http://127.0.0.1:9", str(d / "ved1.json"), participant="ved1",
        outbound={"listen": {"host": "127.0.0.1", "port": free_port()},
                  "client_bundle": str(pki.clients["ved1"].pem), "provider_ca": str(pki.ca_pem),
                  "clients": [{"name": "internal-app",
                               "certificate": str(pki.clients["internal"].cert_only())}]})
    proc = start_subprocess(provider)
    try:
        handle = start_in_thread(load_config(consumer))
    except BaseException:
        proc.stop()
        raise
    yield Pair(load_config(consumer), provider_cfg, handle, proc, upstream, pki)
    handle.stop()
    proc.stop()


def test_granted_call_goes_through_both_sidecars(pair: Pair, pki: Pki) -> None:
    before = len(pair.upstream.calls)
    r = pair.call("GET", "/SID0003001/certificates/5", headers={"Reestr-Consumer": "forged"})
    assert r.status_code == 200, r.text
    assert r.json() == {"path": "/SID0003001/certificates/5", "consumer": "ved1", "operation": "op1"}
    assert len(pair.upstream.calls) == before + 1
    ours, theirs = int(r.headers["Reestr-Journal-Id"]), int(r.headers["Reestr-Provider-Journal-Id"])
    mine = {x["id"]: x for x in export(pair.consumer.journal.path)}[ours]
    assert (mine["direction"], mine["consumer"], mine["provider"], mine["decision"]) == (
        "outbound", "ved1", "ved3", "allow")
    assert mine["client_fingerprint"] == pki.clients["internal"].sha256  # which system called
    provider_rec = {x["id"]: x for x in export(pair.provider.journal.path)}[theirs]
    assert (provider_rec["direction"], provider_rec["consumer"], provider_rec["client_fingerprint"]) == (
        "inbound", "ved1", pki.clients["ved1"].sha256)


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("POST", "/SID0003001/certificates", 403, "operation-not-granted"),
    ("GET", "/SID0009999/x", 403, "no-grant"),
    ("GET", "/SID0003001/unknown", 404, "unknown-operation"),
], ids=["not-granted", "no-grant", "unknown-operation"])
def test_denied_locally_and_never_sent(pair: Pair, method: str, path: str, status: int,
                                       code: str) -> None:
    before = len(pair.upstream.calls)
    r = pair.call(method, path)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert "Reestr-Provider-Journal-Id" not in r.headers
    assert len(pair.upstream.calls) == before


SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def _soap(inner: str, prolog: str = "") -> bytes:
    return f'{prolog}<s:Envelope xmlns:s="{SOAP11}" xmlns:t="urn:test"><s:Body>{inner}</s:Body></s:Envelope>'.encode()


def test_granted_soap_call_is_routed_by_content_and_marked(pair: Pair) -> None:
    before = len(pair.upstream.calls)
    r = pair.call("POST", "/SID0003002", content=_soap("<t:GetStatus/>"),
                  headers={"Content-Type": "text/xml", "SOAPAction": '"urn:getStatus"'})
    assert r.status_code == 200, r.text
    assert r.json()["operation"] == "op1" and len(pair.upstream.calls) == before + 1
    assert r.headers["Reestr-Classification"] == "restricted"  # R14, from the consumer's own bundle


@pytest.mark.parametrize(("body", "action", "status", "code"), [
    (_soap("<t:Cancel/>"), None, 403, "operation-not-granted"),
    (_soap("<t:Cancel/>"), '"urn:getStatus"', 403, "operation-mismatch"),
    (_soap("<t:GetStatus/>", '<!DOCTYPE x [<!ENTITY e "e">]>'), '"urn:getStatus"', 400, "malformed-request"),
    (_soap("<t:GetStatus/><t:Cancel/>"), None, 400, "malformed-request"),
], ids=["body-not-granted", "granted-action-other-body", "doctype", "two-body-children"])
def test_soap_refused_locally_and_never_sent(pair: Pair, body: bytes, action: str | None, status: int,
                                             code: str) -> None:
    before = len(pair.upstream.calls)
    headers = {"Content-Type": "text/xml", **({"SOAPAction": action} if action else {})}
    r = pair.call("POST", "/SID0003002", content=body, headers=headers)
    assert r.status_code == status and f"<reestr:code xmlns:reestr=\"urn:reestr\">{code}<".encode() in r.content
    assert "Reestr-Provider-Journal-Id" not in r.headers
    assert len(pair.upstream.calls) == before


@pytest.mark.parametrize(("who", "status", "code"), [
    ("ved2", 403, "unknown-certificate"),  # not in ved1's bundle: ved1 owns no services
    ("ved1", 404, "unknown-sid"),
], ids=["stranger", "self"])
def test_inbound_listener_still_enforces(pair: Pair, pki: Pki, who: str, status: int, code: str) -> None:
    r = httpx.get(f"https://127.0.0.1:{pair.consumer.listen.port}/SID0003001/certificates",
                  verify=pki.client_context(who))
    assert (r.status_code, r.json()["code"]) == (status, code)


@pytest.mark.parametrize(("change", "reason"), [
    ({"status": "suspended"}, "caller-suspended"),
    ({"ends_on": NOW.date().isoformat()}, "caller-terminated"),
], ids=["suspended", "terminated"])
def test_outbound_own_status(pki: Pki, change: dict[str, Any], reason: str) -> None:
    signed = signed_consumer_bundle(pki, "https://127.0.0.1:1")
    signed["participant"].update(change)
    d = evaluate_outbound(parse_policy(signed), Request("GET", "/SID0003001/certificates"),
                          NOW.date())
    assert d.reason == reason


def test_outbound_grant_expired(pki: Pki) -> None:
    signed = signed_consumer_bundle(pki, "https://127.0.0.1:1")
    signed["grants"]["SID0003001"]["valid_until"] = "2020-01-01"
    d = evaluate_outbound(parse_policy(signed), Request("GET", "/SID0003001/certificates"),
                          NOW.date())
    assert d.reason == "grant-expired"


# --- the consumer's sidecar signs SMEV 3 requests (R11), the provider's verifies -----------------

SMEV3_REQUEST = (Path(__file__).resolve().parents[1] / "data/real/gosha20777__smev-client/_docs/docs/"
                 "raw_requests.SendRequestRequest.xml").read_bytes()
EGRZ = "{urn://x-artefacts-gis-ergz-public/2.0.0}PublicPrintOutRequest"


def _unsigned_smev3() -> bytes:
    """The real ЕГРЗ request as an agency system sends it to its sidecar: fresh MessageID, unsigned."""
    root = etree.fromstring(SMEV3_REQUEST)
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.getparent().remove(holder)
    (mid,) = root.xpath("//*[local-name()='MessageID']")
    mid.text = str(uuid.uuid1())
    return etree.tostring(root, encoding="utf-8")


def _entry(cert: certs.GostCertificate, who: str) -> dict[str, str]:
    return {"participant": who, "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _signing_pair(d: Path, pki: Pki, keys: Keys, upstream: Any, me: GostIdentity,
                  signer: dict[str, Any], provider_signer: GostIdentity | None = None,
                  registered_answers: bool = True) -> tuple[SidecarConfig, SidecarConfig, ThreadHandle, ProcessHandle]:
    cert = certs.read(me.der)
    provider_bundle = signed_bundle(pki)
    ved1 = provider_bundle["services"]["SID0003001"]["callers"]["ved1"]
    provider_bundle["services"]["SID0003004"] = {
        "name": "ЕГРЗ", "protocol": "soap", "profile": "smev3", "classification": "restricted",
        "signed_messages": True, "operations": {"publicPrintOut": {"payload_element": EGRZ}},
        "callers": {"ved1": {**ved1, "access": "operations", "operations": ["publicPrintOut"],
                             "signing_certificates": [cert.sha256]}}}
    provider_bundle["signing_certificates"] = {cert.sha256: {
        "participant": "ved1", "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    (d / "ved3.json").write_bytes(sign(provider_bundle, keys.operator))
    extra: dict[str, Any] = {}
    if provider_signer is not None:
        extra["signatures"] = {"signer": {"certificate": str(provider_signer.cert_pem),
                                          "key_file": str(provider_signer.key)}}
    provider = write_config(d / "ved3", pki, keys, upstream.url, str(d / "ved3.json"),
                            tls={"server_bundle": str(pki.clients["ved3"].pem)}, **extra)
    provider_cfg = load_config(provider)
    consumer_bundle = signed_consumer_bundle(pki, f"https://127.0.0.1:{provider_cfg.listen.port}")
    consumer_bundle["grants"]["SID0003004"] = {
        **consumer_bundle["grants"]["SID0003002"], "name": "ЕГРЗ", "profile": "smev3", "signed_messages": True,
        "operations": ["publicPrintOut"], "operation_defs": {"publicPrintOut": {"payload_element": EGRZ}}}
    if provider_signer is not None and registered_answers:
        theirs = certs.read(provider_signer.der)
        consumer_bundle["signing_certificates"] = {theirs.sha256: _entry(theirs, "ved3")}
        consumer_bundle["grants"]["SID0003004"]["provider_signing_certificates"] = [theirs.sha256]
    (d / "ved1.json").write_bytes(sign(consumer_bundle, keys.operator))
    consumer = write_config(
        d / "ved1", pki, keys, "http://127.0.0.1:9", str(d / "ved1.json"), participant="ved1",
        outbound={"listen": {"host": "127.0.0.1", "port": free_port()},
                  "client_bundle": str(pki.clients["ved1"].pem), "provider_ca": str(pki.ca_pem),
                  "clients": [{"name": "internal-app", "certificate": str(pki.clients["internal"].cert_only())}]},
        signatures={"signer": {"certificate": str(me.cert_pem), **signer}})
    proc = start_subprocess(provider)
    try:
        handle = start_in_thread(load_config(consumer))
    except BaseException:
        proc.stop()
        raise
    return load_config(consumer), provider_cfg, handle, proc


@pytest.mark.parametrize("kind", ["key-file", "external-command"])
def test_consumer_sidecar_signs_and_provider_verifies(tmp_path: Path, pki: Pki, keys: Keys, upstream: Upstream,
                                                     gost_pki: GostPki, kind: str) -> None:
    me = gost_pki.issue(f"ved1-ep-ov-{kind}")
    if kind == "key-file":
        signer: dict[str, Any] = {"key_file": str(me.key)}
    else:  # a small external signer: SignedInfo on stdin, base64 signature on stdout
        script = tmp_path / "sign.py"
        script.write_text("import base64, sys\nfrom pathlib import Path\n"
                          "from proxy.soap.signing import KeyFileSigner\n"
                          f"der = base64.b64decode({base64.b64encode(me.der).decode()!r})\n"
                          f"s = KeyFileSigner.load(Path({str(me.key)!r}), der)\n"
                          "sys.stdout.write(base64.b64encode(s.sign(sys.stdin.buffer.read())).decode())\n")
        signer = {"command": [sys.executable, str(script)]}
    consumer, provider, handle, proc = _signing_pair(tmp_path, pki, keys, upstream, me, signer)
    pair = Pair(consumer, provider, handle, proc, upstream, pki)
    try:
        before = len(upstream.calls)
        body = _unsigned_smev3()
        r = pair.call("POST", "/SID0003004", content=body,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:SendRequest"'})
        assert r.status_code == 200, r.text
        assert len(upstream.calls) == before + 1
        theirs = int(r.headers["Reestr-Provider-Journal-Id"])
        by_id = {x["id"]: x for x in export(provider.journal.path)}
        exchange = by_id[theirs]["exchange"]
        record = next(x for x in by_id.values() if x["exchange"] == exchange and x["kind"] == "request")
        assert record["signature_check"].startswith("valid ") and record["signature_check"].endswith(
            certs.read(me.der).sha256)
        again = pair.call("POST", "/SID0003004", content=body,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:SendRequest"'})
        assert again.status_code == 409  # the same message signed again: the provider refuses the replay
    finally:
        handle.stop()
        proc.stop()


class _SmevAnswers:
    """An upstream that answers every call with an SMEV 3 SendResponseRequest (unsigned), or `answer`."""

    def __init__(self, transport: str = "SendResponseRequest", answer: bytes | None = None) -> None:
        self.calls: list[bytes] = []
        calls = self.calls
        types = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.2"
        basic = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.2"
        body = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:{transport} xmlns:t="{types}">'
                f'<t:SenderProvidedResponseData Id="SIGNED_BY_PROVIDER"><t:MessageID>{uuid.uuid1()}</t:MessageID>'
                f'<t:To>route</t:To><b:MessagePrimaryContent xmlns:b="{basic}"><r:Result xmlns:r="urn:test:r">ok'
                f"</r:Result></b:MessagePrimaryContent></t:SenderProvidedResponseData></t:{transport}>"
                "</s:Body></s:Envelope>").encode() if answer is None else answer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                calls.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server, self.url = serve_http(Handler)


@pytest.mark.parametrize("registered", [True, False], ids=["provider-registered", "provider-not-registered"])
def test_signed_answers_round_trip(tmp_path: Path, pki: Pki, keys: Keys, gost_pki: GostPki, registered: bool) -> None:
    """Both directions signed: ved1's sidecar signs the request, ved3's verifies it; the upstream's
    answer is signed by ved3's sidecar and verified by ved1's against ved3's registered certificate."""
    me, provider_id = gost_pki.issue("ved1-rt"), gost_pki.issue("ved3-rt")
    answers = _SmevAnswers()
    consumer, provider, handle, proc = _signing_pair(tmp_path, pki, keys, answers, me, {"key_file": str(me.key)},
                                                     provider_id, registered_answers=registered)
    pair = Pair(consumer, provider, handle, proc, answers, pki)  # type: ignore[arg-type]
    try:
        r = pair.call("POST", "/SID0003004", content=_unsigned_smev3(),
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:SendRequest"'})
        if registered:
            assert r.status_code == 200, r.text
            assert b"SenderInformationSystemSignature" in r.content
        else:
            assert r.status_code == 502 and "response-signature-invalid" in r.text
    finally:
        handle.stop()
        proc.stop()
        answers.server.shutdown()


# the real SMEV 3 transport WSDL, version 1.3, and its XSDs (noadavis/smevsign, MIT: tests/data/real)
SMEV3_WSDL = (Path(__file__).resolve().parents[1] / "data/real/noadavis__smevsign/src/main/resources/smevsign/"
              "smev/v1_3/smev-message-exchange-service-1.3.wsdl")
TYPES13 = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.3"


def _metadata_ack() -> bytes:
    """SMEV's acceptance of a request as the 1.3 schema defines SendRequestResponse."""
    return (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><t:SendRequestResponse xmlns:t="{TYPES13}">'
            f"<t:MessageMetadata><t:MessageId>{uuid.uuid1()}</t:MessageId><t:MessageType>REQUEST</t:MessageType>"
            "<t:SendingTimestamp>2026-12-02T10:00:00.000+03:00</t:SendingTimestamp>"
            "<t:DeliveryTimestamp>2026-12-02T10:00:01.000+03:00</t:DeliveryTimestamp>"
            "<t:Status>requestIsQueued</t:Status></t:MessageMetadata></t:SendRequestResponse>"
            "</s:Body></s:Envelope>").encode()


def test_zeep_with_the_real_smev3_wsdl_through_two_sidecars(tmp_path: Path, pki: Pki, keys: Keys,
                                                            gost_pki: GostPki) -> None:
    """zeep as the agency's client, built from the real SMEV 3 1.3 WSDL: it sends a typed
    SendRequestRequest without a signature; ved1's sidecar signs it (GOST), ved3's verifies it
    and forwards the signed bytes; the upstream's SendRequestResponse (MessageMetadata, an
    acknowledgement: no sender-provided data, so nothing to sign) comes back and zeep reads it
    by the schema. Signed answers through two sidecars: test_signed_answers_round_trip."""
    me, provider_id = gost_pki.issue("ved1-zeep"), gost_pki.issue("ved3-zeep")
    answers = _SmevAnswers(answer=_metadata_ack())
    consumer, provider, handle, proc = _signing_pair(tmp_path, pki, keys, answers, me, {"key_file": str(me.key)},
                                                     provider_id)
    try:
        session = requests.Session()
        session.cert = str(pki.clients["internal"].pem)
        session.verify = str(pki.ca_pem)
        session.trust_env = False
        client = zeep.Client(str(SMEV3_WSDL), transport=Transport(session=session))
        port = consumer.outbound.listen.port  # type: ignore[union-attr]
        service = client.create_service(
            "{urn://x-artefacts-smev-gov-ru/services/message-exchange/1.3}SMEVMessageExchangeSoap11Binding",
            f"https://127.0.0.1:{port}/SID0003004")
        (payload,) = etree.fromstring(SMEV3_REQUEST).xpath("//*[local-name()='PublicPrintOutRequest']")
        message_id = str(uuid.uuid1())
        answer = service.SendRequest(SenderProvidedRequestData={
            "Id": "SIGNED_BY_CONSUMER", "MessageID": message_id, "MessagePrimaryContent": {"_value_1": payload}})
        assert answer.MessageMetadata.Status == "requestIsQueued"  # zeep read the answer by the real schema
        assert answer.MessageMetadata.MessageType == "REQUEST"
        (forwarded,) = answers.calls
        names = [etree.QName(el).localname for el in etree.fromstring(forwarded).iter(f"{{{TYPES13}}}*")]
        assert "CallerInformationSystemSignature" in names  # the provider's system got the signed message
        mine = certs.read(me.der).sha256
        provider_records = list(export(provider.journal.path))  # type: ignore[arg-type]
        request = next(x for x in provider_records if x["kind"] == "request" and x["sid"] == "SID0003004")
        assert request["decision"] == "allow" and request["message_id"] == message_id
        assert request["signature_check"].startswith("valid ") and request["signature_check"].endswith(mine)
        outbound = next(x for x in export(consumer.journal.path)  # type: ignore[arg-type]
                        if x["kind"] == "request" and x["sid"] == "SID0003004")
        assert outbound["signature_check"] == request["signature_check"]  # what ved1 made is what ved3 checked
    finally:
        handle.stop()
        proc.stop()
        answers.server.shutdown()

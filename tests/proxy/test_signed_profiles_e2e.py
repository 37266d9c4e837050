"""SMEV 2 and plain signed services through two real sidecars (ved1's consumer sidecar in a thread,
ved3's provider sidecar a real process; real TLS with client certificates): ved1's sidecar signs
the request by the service's profile, ved3's verifies it and refuses a replay, the upstream
answers, ved3's sidecar signs the answer, ved1's verifies it — and refuses an answer signed by
someone else or changed after signing. Every record on both sides carries `signature_check`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from proxy.config import SidecarConfig, load_config
from proxy.journal.query import export
from proxy.runner import ProcessHandle, ThreadHandle, start_in_thread, start_subprocess
from proxy.soap import authorship
from proxy.soap.gost import certs
from proxy.soap.header_signing import PemSigner
from proxy.soap.signing import KeyFileSigner, Signer
from tests.proxy.conftest import (
    Keys,
    Pki,
    free_port,
    serve_http,
    sign,
    signed_bundle,
    signed_consumer_bundle,
    write_config,
)
from tests.proxy.gost_pki import GostIdentity, GostPki
from tests.proxy.test_header_signing import PUT_DATA, SOAP11, unsigned_smev2

pytestmark = pytest.mark.slow

REV = "http://smev.gosuslugi.ru/rev120315"
RESPONSE = PUT_DATA.parent / "response.xml"
SIDS = {"smev2": "SID0003007", "plain": "SID0003008"}
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:PutData"'}


def _answer() -> etree._Element:
    """The real mvvact putData answer without its (anonymised, no longer valid) signature."""
    root = etree.fromstring(RESPONSE.read_bytes())
    header = root.find(f"{SOAP11}Header")
    if header is not None:
        root.remove(header)
    return root


class Answers:
    """The provider's system: answers every call with `body` (set by each test)."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.body = etree.tostring(_answer())
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                upstream.calls.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(upstream.body)))
                self.end_headers()
                self.wfile.write(upstream.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server, self.url = serve_http(Handler)


@dataclass
class Pair:
    consumer: SidecarConfig
    provider: SidecarConfig
    handle: ThreadHandle
    proc: ProcessHandle
    answers: Answers
    pki: Pki
    ids: dict[str, GostIdentity]
    provider_path: Path

    def call(self, profile: str, body: bytes) -> httpx.Response:
        port = self.consumer.outbound.listen.port  # type: ignore[union-attr]
        return httpx.post(f"https://127.0.0.1:{port}/{SIDS[profile]}", content=body, headers=HEADERS,
                          timeout=15, verify=self.pki.client_context("internal"))

    def direct(self, who: str, profile: str, body: bytes) -> httpx.Response:
        """A call straight to ved3's sidecar with `who`'s client certificate (no consumer sidecar)."""
        return httpx.post(f"https://127.0.0.1:{self.provider.listen.port}/{SIDS[profile]}", content=body,
                          headers=HEADERS, timeout=15, verify=self.pki.client_context(who))

    def records(self, side: str) -> list[dict[str, Any]]:
        cfg = self.provider if side == "provider" else self.consumer
        return list(export(cfg.journal.path))  # type: ignore[arg-type]

    def exchange(self, side: str, record_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        by_id = {r["id"]: r for r in self.records(side)}
        exchange = by_id[record_id]["exchange"]
        request = next(r for r in by_id.values() if r["exchange"] == exchange and r["kind"] == "request")
        response = next(r for r in by_id.values() if r["exchange"] == exchange and r["kind"] == "response")
        return request, response


def _entry(identity: GostIdentity, who: str) -> tuple[str, dict[str, str]]:
    cert = certs.read(identity.der)
    return cert.sha256, {"participant": who, "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys, gost_pki: GostPki) -> Iterator[Pair]:
    d = tmp_path_factory.mktemp("signed-profiles")
    ids = {who: gost_pki.issue(f"{who}-profiles") for who in ("ved1", "ved2", "ved3", "ved3-other")}
    operations = {"putData": {"soap_action": "urn:PutData", "body_element": f"{{{REV}}}putData"}}
    provider_bundle = signed_bundle(pki)
    callers = provider_bundle["services"]["SID0003001"]["callers"]
    provider_bundle["signing_certificates"] = dict(_entry(ids[w], w) for w in ("ved1", "ved2"))
    for profile, sid in SIDS.items():
        provider_bundle["services"][sid] = {
            "name": f"mvvact {profile}", "protocol": "soap", "profile": profile, "classification": "restricted",
            "signed_messages": True, "operations": operations,
            "callers": {w: {**callers[w], "signing_certificates": [_entry(ids[w], w)[0]]} for w in ("ved1", "ved2")}}
    (d / "ved3.json").write_bytes(sign(provider_bundle, keys.operator))
    answers = Answers()
    provider_path = write_config(
        d / "ved3", pki, keys, answers.url, str(d / "ved3.json"), tls={"server_bundle": str(pki.clients["ved3"].pem)},
        limits={"max_body_bytes": 1 << 20},
        signatures={"signer": {"certificate": str(ids["ved3"].cert_pem), "key_file": str(ids["ved3"].key)}})
    provider = load_config(provider_path)
    consumer_bundle = signed_consumer_bundle(pki, f"https://127.0.0.1:{provider.listen.port}")
    fp, entry = _entry(ids["ved3"], "ved3")
    consumer_bundle["signing_certificates"] = {fp: entry}
    for profile, sid in SIDS.items():
        consumer_bundle["grants"][sid] = {
            **consumer_bundle["grants"]["SID0003002"], "name": f"mvvact {profile}", "profile": profile,
            "signed_messages": True, "operations": ["putData"], "operation_defs": operations,
            "provider_signing_certificates": [fp]}
    (d / "ved1.json").write_bytes(sign(consumer_bundle, keys.operator))
    consumer = load_config(write_config(
        d / "ved1", pki, keys, "http://127.0.0.1:9", str(d / "ved1.json"), participant="ved1",
        limits={"max_body_bytes": 1 << 20}, outbound={"listen": {"host": "127.0.0.1", "port": free_port()},
                  "client_bundle": str(pki.clients["ved1"].pem), "provider_ca": str(pki.ca_pem),
                  "clients": [{"name": "internal-app", "certificate": str(pki.clients["internal"].cert_only())}]},
        signatures={"signer": {"certificate": str(ids["ved1"].cert_pem), "key_file": str(ids["ved1"].key)}}))
    proc = start_subprocess(provider_path)
    try:
        handle = start_in_thread(consumer)
    except BaseException:
        proc.stop()
        raise
    running = Pair(consumer, provider, handle, proc, answers, pki, ids, provider_path)
    yield running
    handle.stop()
    running.proc.stop()
    answers.server.shutdown()


def _gost(identity: GostIdentity) -> KeyFileSigner:
    return KeyFileSigner.load(identity.key, identity.der)


@pytest.mark.parametrize("profile", ["smev2", "plain"])
def test_signed_both_ways_and_journaled_on_both_sides(pair: Pair, profile: str) -> None:
    pair.answers.body = etree.tostring(_answer())
    before = len(pair.answers.calls)
    r = pair.call(profile, etree.tostring(unsigned_smev2()))
    assert r.status_code == 200, r.text
    assert len(pair.answers.calls) == before + 1
    assert authorship.already_signed(etree.fromstring(pair.answers.calls[-1]), profile)  # signed on the way
    assert authorship.already_signed(etree.fromstring(r.content), profile)  # the answer came back signed
    if profile == "smev2":
        theirs, mine = certs.read(pair.ids["ved3"].der).sha256, certs.read(pair.ids["ved1"].der).sha256
        method = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256"
    else:
        theirs, mine = pair.pki.clients["ved3"].sha256, pair.pki.clients["ved1"].sha256
        method = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    out_req, out_resp = pair.exchange("consumer", int(r.headers["Reestr-Journal-Id"]))
    in_req, in_resp = pair.exchange("provider", int(r.headers["Reestr-Provider-Journal-Id"]))
    assert [x["signature_check"] for x in (out_req, in_req, in_resp, out_resp)] == [
        f"valid {method} {mine}", f"valid {method} {mine}", f"valid {method} {theirs}", f"valid {method} {theirs}"]
    assert in_req["message_id"] is not None and in_req["message_id"].startswith("sig-sha256:")


def _signed_answer(pair: Pair, profile: str, by: str, change: bool = False) -> bytes:
    root = _answer()
    signer: Signer = (_gost(pair.ids[by]) if profile == "smev2"
                      else PemSigner.load(pair.pki.clients[by.removesuffix("-other")].pem if by == "ved3"
                                          else pair.pki.clients["ved2"].pem))
    authorship.sign(root, profile, signer)  # type: ignore[arg-type]
    if change:
        (status,) = root.xpath("//*[local-name()='Status']")
        status.text = "CHANGED"
    return etree.tostring(root)


@pytest.mark.parametrize(("profile", "by", "change", "provider_check"), [
    ("smev2", "ved3-other", False, "valid"),  # cryptographically valid, but not a registered certificate of ved3
    ("smev2", "ved3", True, "invalid"),       # ved3's own key, the answer changed after signing
    ("plain", "ved2", False, "invalid"),      # not the key of ved3's TLS certificate
    ("plain", "ved3", True, "invalid"),       # ved3's TLS key, the answer changed after signing
], ids=["smev2-answer-signed-by-someone-else", "smev2-answer-changed-after-signing",
        "plain-answer-signed-by-someone-else", "plain-answer-changed-after-signing"])
def test_answers_not_signed_by_the_provider_are_refused(pair: Pair, profile: str, by: str, change: bool,
                                                         provider_check: str) -> None:
    pair.answers.body = _signed_answer(pair, profile, by, change)
    try:
        r = pair.call(profile, etree.tostring(unsigned_smev2()))
    finally:
        pair.answers.body = etree.tostring(_answer())
    assert r.status_code == 502 and "response-signature-invalid" in r.text
    assert b"putDataResponse" not in r.content  # nothing of the answer reaches the agency's system
    _, out_resp = pair.exchange("consumer", int(r.headers["Reestr-Journal-Id"]))
    assert out_resp["signature_check"].split()[0] == ("wrong-signer" if provider_check == "valid" else "invalid")
    _, in_resp = pair.exchange("provider", int(r.headers["Reestr-Provider-Journal-Id"]))
    assert in_resp["signature_check"].split()[0] == provider_check  # the provider journals what it forwarded


@pytest.mark.parametrize("profile", ["smev2", "plain"], ids=["smev2-replay", "plain-replay"])
def test_a_signed_message_is_accepted_once(pair: Pair, profile: str) -> None:
    root = unsigned_smev2()
    signer: Signer = _gost(pair.ids["ved1"]) if profile == "smev2" else PemSigner.load(pair.pki.clients["ved1"].pem)
    authorship.sign(root, profile, signer)  # type: ignore[arg-type]
    body = etree.tostring(root)
    assert pair.direct("ved1", profile, body).status_code == 200
    before = len(pair.answers.calls)
    again = pair.direct("ved1", profile, body)
    assert again.status_code == 409 and "replayed-message" in again.text
    assert len(pair.answers.calls) == before


@pytest.mark.parametrize(("age", "who", "code"), [
    (dt.timedelta(hours=2), "ved1", "replayed-message"),
    (None, "ved1", "replayed-message"),
    (dt.timedelta(0), "ved2", "signature-wrong-signer"),
], ids=["smev2-outside-the-window", "smev2-without-date", "smev2-signed-by-another-participant"])
def test_smev2_refusals_at_the_provider(pair: Pair, age: dt.timedelta | None, who: str, code: str) -> None:
    root = unsigned_smev2(age)
    authorship.sign(root, "smev2", _gost(pair.ids[who]))
    before = len(pair.answers.calls)
    r = pair.direct("ved1", "smev2", etree.tostring(root))
    assert r.status_code in (403, 409) and code in r.text
    assert len(pair.answers.calls) == before


@pytest.mark.parametrize(("profile", "change", "code"), [
    ("smev2", True, "signature-invalid"), ("plain", True, "signature-invalid"), ("plain", False, "signature-invalid"),
], ids=["smev2-agency-signed-then-changed", "plain-agency-signed-then-changed", "plain-agency-signed-with-another-key"])
def test_requests_the_agency_signed_badly_never_leave(pair: Pair, profile: str, change: bool, code: str) -> None:
    """A request the agency's system signed itself is checked at its own sidecar, not re-signed."""
    root = unsigned_smev2()
    signer: Signer = (_gost(pair.ids["ved1"]) if profile == "smev2" else
                      PemSigner.load(pair.pki.clients["ved1" if change else "ved2"].pem))
    authorship.sign(root, profile, signer)  # type: ignore[arg-type]
    if change:
        (status,) = root.xpath("//*[local-name()='ServiceName']")
        status.text = "Other"
    before = len(pair.answers.calls)
    r = pair.call(profile, etree.tostring(root))
    assert r.status_code == 403 and code in r.text
    assert len(pair.answers.calls) == before and "Reestr-Provider-Journal-Id" not in r.headers  # never sent
    out_req, _ = pair.exchange("consumer", int(r.headers["Reestr-Journal-Id"]))
    assert (out_req["reason"], out_req["signature_check"].split()[0]) == (code, "invalid")


def test_smev2_replay_protection_survives_a_restart(pair: Pair) -> None:
    """The restarted provider sidecar reads the replay ids (`sig-sha256:…`) back from its journal."""
    root = unsigned_smev2()
    authorship.sign(root, "smev2", _gost(pair.ids["ved1"]))
    body = etree.tostring(root)
    assert pair.direct("ved1", "smev2", body).status_code == 200
    pair.proc.stop()
    pair.proc = start_subprocess(pair.provider_path)
    before = len(pair.answers.calls)
    again = pair.direct("ved1", "smev2", body)
    assert again.status_code == 409 and "replayed-message" in again.text
    assert len(pair.answers.calls) == before

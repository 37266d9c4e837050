"""Consumer side: ved1's systems call ved1's sidecar, which checks ved1's grants and forwards with
ved1's client certificate to ved3's sidecar (a real second process), which decides again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from proxy.config import SidecarConfig, load_config
from proxy.journal.query import export
from proxy.policy import Request, evaluate_outbound, parse_policy
from proxy.runner import ProcessHandle, ThreadHandle, start_in_thread, start_subprocess
from tests.proxy.conftest import (
    NOW,
    Keys,
    Pki,
    Upstream,
    free_port,
    sign,
    signed_bundle,
    signed_consumer_bundle,
    write_config,
)

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

"""The inbound path through a real in-process mitmproxy: real TLS, client certificates, a real
upstream, a real journal. One sidecar is shared by the whole module (2-core machine)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from proxy.addons.pipeline import Pipeline
from proxy.config import SidecarConfig, load_config
from proxy.journal.query import export
from proxy.runner import ThreadHandle, journal_store, start_in_thread
from tests.proxy.conftest import Keys, Pki, Upstream, sign, signed_bundle, write_config

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def envelope(inner: str) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP}"><s:Body>{inner}</s:Body></s:Envelope>'.encode()


@dataclass
class Running:
    config: SidecarConfig
    handle: ThreadHandle
    pki: Pki
    upstream: Upstream
    clients: dict[str | None, httpx.Client]

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.config.listen.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.config.admin.port}"

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        if who not in self.clients:
            self.clients[who] = httpx.Client(verify=self.pki.client_context(who), timeout=10)
        return self.clients[who].request(method, self.base + path, **kw)


@contextmanager
def run_sidecar(d: Path, pki: Pki, keys: Keys, upstream: Upstream, bundle: dict[str, Any],
                **overrides: Any) -> Iterator[Running]:
    """An in-process sidecar on `bundle` (signed by the operator key), stopped on exit."""
    (d / "bundle.json").write_bytes(sign(bundle, keys.operator))
    config = load_config(write_config(d, pki, keys, upstream.url, str(d / "bundle.json"), **overrides))
    handle = start_in_thread(config)
    running = Running(config, handle, pki, upstream, {})
    try:
        yield running
    finally:
        for client in running.clients.values():
            client.close()
        handle.stop()


def postgres_journal(dsn: str, keys: Keys, chain: str = "ved3-a") -> dict[str, Any]:
    """The `journal` section of a sidecar config on a PostgreSQL database."""
    return {"backend": "postgres", "dsn": dsn, "chain": chain, "signing_key": str(keys.sidecar_key)}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sidecar(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys,
            upstream: Upstream) -> Iterator[Running]:
    """The same sidecar on each journal backend: every test below runs against both."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        overrides["journal"] = postgres_journal(request.getfixturevalue("pg_cluster").new_database(), keys)
    bundle = signed_bundle(pki)
    bundle["services"]["SID0003001"]["tariff"] = {"currency": "RUB", "per_call": "0.50"}  # R13
    with run_sidecar(tmp_path_factory.mktemp("inproc"), pki, keys, upstream, bundle, **overrides) as running:
        yield running


def records(sidecar: Running) -> list[dict[str, Any]]:
    return list(export(journal_store(sidecar.config)))


ALLOWED = [
    ("ved1", "GET", "/SID0003001/certificates/7", {}, None, "op1"),
    ("ved1", "POST", "/SID0003001/certificates", {}, b'{"a": 1}', "op2"),
    ("ved2", "GET", "/SID0003001/certificates", {}, None, "op3"),
    ("ved3", "POST", "/SID0003001/certificates", {}, None, "op2"),
    ("ved2", "POST", "/SID0003002", {"SOAPAction": '"urn:getStatus"', "Content-Type": "text/xml"},
     envelope('<t:GetStatus xmlns:t="urn:test"/>'), "op1"),
    ("stranger", "POST", "/SID0003002", {"Content-Type": "text/xml; charset=utf-8"},
     envelope('<t:Cancel xmlns:t="urn:test"/>'), "op2"),
]


@pytest.mark.parametrize(("who", "method", "path", "headers", "body", "operation"), ALLOWED,
                         ids=["full", "full-post", "operations", "owner", "soap-action", "soap-body"])
def test_allowed_reaches_upstream(sidecar: Running, who: str, method: str, path: str,
                                  headers: dict[str, str], body: bytes | None, operation: str) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call(who, method, path, headers={**headers, "Reestr-Consumer": "forged"},
                     content=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"path": path, "consumer": who, "operation": operation}
    assert len(sidecar.upstream.calls) == before + 1
    reached = sidecar.upstream.calls[-1]
    assert reached["body"] == (body or b"")
    # the journal: a durable request record (its id went upstream) and a response record
    rid = int(r.headers["Reestr-Journal-Id"])
    by_id = {rec["id"]: rec for rec in records(sidecar)}
    response, request = by_id[rid], by_id[int(reached["headers"]["Reestr-Journal-Id"])]
    assert request["kind"] == "request" and response["kind"] == "response"
    assert request["exchange"] == response["exchange"]
    assert (response["decision"], response["consumer"], response["operation"], response["status"]) == (
        "allow", who, operation, 200)
    assert request["client_fingerprint"] == sidecar.pki.clients[who].sha256
    assert request["bundle_serial"] == 10 and request["grant"]


DENIED = [
    (None, "GET", "/SID0003001/certificates", {}, None, 403, "no-client-certificate"),
    ("unregistered", "GET", "/SID0003001/certificates", {}, None, 403, "unknown-certificate"),
    ("expired", "GET", "/SID0003001/certificates", {}, None, 403, "certificate-expired"),
    ("ved6", "GET", "/SID0003001/certificates", {}, None, 403, "caller-suspended"),
    ("ved5", "GET", "/SID0003001/certificates", {}, None, 403, "caller-terminated"),
    ("stranger", "GET", "/SID0003001/certificates", {}, None, 403, "no-grant"),
    ("ved2", "POST", "/SID0003001/certificates", {}, None, 403, "operation-not-granted"),
    ("ved4", "GET", "/SID0003001/certificates", {}, None, 403, "grant-expired"),
    ("ved1", "GET", "/SID9999999/certificates", {}, None, 404, "unknown-sid"),
    ("ved1", "DELETE", "/SID0003001/certificates/1", {}, None, 404, "unknown-operation"),
    ("ved1", "POST", "/SID0003001/certificates", {}, b"x" * 5000, 413, "body-too-large"),
    ("ved2", "GET", "/SID0003001/certificates/..%2F..%2Fadmin", {}, None, 400, "malformed-request"),
]


@pytest.mark.parametrize(("who", "method", "path", "headers", "body", "status", "code"), DENIED,
                         ids=[d[-1] for d in DENIED])
def test_rest_denials_are_problem_json(sidecar: Running, who: str | None, method: str, path: str,
                                       headers: dict[str, str], body: bytes | None, status: int,
                                       code: str) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call(who, method, path, headers=headers, content=body)
    assert (r.status_code, r.headers["content-type"]) == (status, "application/problem+json")
    problem = r.json()
    assert (problem["code"], problem["status"]) == (code, status)
    assert len(sidecar.upstream.calls) == before  # never forwarded
    rec = {x["id"]: x for x in records(sidecar)}[int(r.headers["Reestr-Journal-Id"])]
    assert (rec["kind"], rec["decision"], rec["reason"], rec["status"]) == ("response", "deny", code, status)


SOAP_DENIED = [
    ("ved2", {}, envelope('<t:Cancel xmlns:t="urn:test"/>'), 403, "operation-not-granted"),
    ("ved1", {}, envelope('<t:Nope xmlns:t="urn:test"/>'), 404, "unknown-operation"),
    ("ved1", {}, b'<!DOCTYPE x [<!ENTITY e "e">]>' + envelope("<t:A xmlns:t='urn:test'/>"), 400,
     "malformed-request"),
    (None, {"SOAPAction": '"urn:getStatus"'}, envelope("<x/>"), 403, "no-client-certificate"),
]


@pytest.mark.parametrize(("who", "headers", "body", "status", "code"), SOAP_DENIED,
                         ids=[d[-1] for d in SOAP_DENIED])
def test_soap_denials_are_faults(sidecar: Running, who: str | None, headers: dict[str, str],
                                 body: bytes, status: int, code: str) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call(who, "POST", "/SID0003002", headers={"Content-Type": "text/xml", **headers},
                     content=body)
    assert r.status_code == status and r.headers["content-type"].startswith("text/xml")
    fault = etree.fromstring(r.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == "soap:Client"
    assert fault.findtext("detail/{urn:reestr}code") == code
    assert "Reestr-Journal-Id" in r.headers
    assert len(sidecar.upstream.calls) == before


def test_plain_http_on_the_tls_port_is_denied(sidecar: Running) -> None:
    r = httpx.get(f"http://127.0.0.1:{sidecar.config.listen.port}/SID0003001/certificates")
    assert r.status_code == 403 and r.json()["code"] == "no-client-certificate"


def test_chunked_body_over_limit(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    r = sidecar.call("ved1", "POST", "/SID0003001/certificates",
                     content=iter([b"y" * 3000, b"y" * 3000]))
    assert r.status_code == 413 and r.json()["code"] == "body-too-large"
    assert len(sidecar.upstream.calls) == before


def test_body_over_mitmproxy_hard_cap_is_refused_and_journaled(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    with httpx.Client(verify=sidecar.pki.client_context("ved1")) as client:
        r = client.post(sidecar.base + "/SID0003001/certificates", content=b"z" * 100_000)
    assert r.status_code == 413
    assert len(sidecar.upstream.calls) == before
    last = records(sidecar)[-1]
    assert (last["decision"], last["reason"], last["status"]) == ("error", "body-too-large", 413)


def test_admin_endpoints(sidecar: Running) -> None:
    assert httpx.get(sidecar.admin + "/healthz").status_code == 200
    ready = httpx.get(sidecar.admin + "/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    sidecar.call("ved2", "POST", "/SID0003001/certificates")
    metrics = httpx.get(sidecar.admin + "/metrics").text
    assert ('reestr_requests_total{consumer="ved2",decision="deny",direction="inbound",'
            'operation="op2",reason="operation-not-granted",sid="SID0003001"}') in metrics
    assert "reestr_bundle_serial 10.0" in metrics
    assert "reestr_request_duration_seconds_bucket" in metrics
    assert "reestr_journal_queue_depth" in metrics
    assert httpx.get(sidecar.admin + "/nope").status_code == 404


@contextmanager
def journal_outage(config: SidecarConfig) -> Iterator[None]:
    """Make the journal unwritable: the SQLite file moved away, or the PostgreSQL database closed
    to connections with the sidecar's connection cut; put it back on exit."""
    if config.journal.backend == "sqlite":
        assert config.journal.path is not None
        path = Path(config.journal.path)
        moved = path.with_name("moved.sqlite")
        os.rename(path, moved)
        try:
            yield
        finally:
            os.rename(moved, path)
        return
    import psycopg

    assert config.journal.dsn is not None
    name = config.journal.dsn.rsplit("/", 1)[1]
    admin = config.journal.dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # type: ignore[arg-type]


def test_journal_unwritable_means_503_and_nothing_forwarded(sidecar: Running) -> None:
    before = len(sidecar.upstream.calls)
    with journal_outage(sidecar.config):
        r = sidecar.call("ved1", "GET", "/SID0003001/certificates/1")
        assert r.status_code == 503 and r.json()["code"] == "journal-unavailable"
        assert len(sidecar.upstream.calls) == before
        ready = httpx.get(sidecar.admin + "/readyz")
        assert ready.status_code == 503 and "journal cannot be written" in ready.text
    wait_until(lambda: httpx.get(sidecar.admin + "/readyz").status_code == 200)  # resumes by itself
    r = sidecar.call("ved1", "GET", "/SID0003001/certificates/1")
    assert r.status_code == 200 and len(sidecar.upstream.calls) == before + 1
    assert json.loads(r.text)["consumer"] == "ved1"


def test_stats_from_the_config_counts_and_prices_this_sidecars_calls(sidecar: Running) -> None:
    """`stats --config`: the config's journal (either backend) and, for --priced, its bundle in force."""
    import subprocess
    import sys

    config = sidecar.config.state_dir.parent / "sidecar.yaml"

    def stats(*args: str) -> Any:
        result = subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()", "stats", "--config",
                                 str(config), "--format", "json", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    before = {(r["consumer"], r["operation"]): r["calls"] for r in stats() if r["decision"] == "allow"}
    for _ in range(3):
        assert sidecar.call("ved1", "GET", "/SID0003001/certificates/9").status_code == 200
    after = {(r["consumer"], r["operation"]): r["calls"] for r in stats() if r["decision"] == "allow"}
    assert after[("ved1", "op1")] == before.get(("ved1", "op1"), 0) + 3
    priced = stats("--priced")
    assert priced["bundle_serial"] == 10
    ved1 = next(r for r in priced["rows"] if (r["consumer"], r["operation"]) == ("ved1", "op1"))
    assert (ved1["calls"], ved1["per_call"]) == (after[("ved1", "op1")], "0.50")
    assert {r["sid"] for r in priced["rows"]} == {"SID0003001"}  # SID0003002 has no tariff


@contextmanager
def _sidecar_warning_at(d: Path, pki: Pki, keys: Keys, upstream: Upstream, seconds: float) -> Iterator[str]:
    """A sidecar on a bundle that expires in 4 hours, warning `seconds` before; yields /readyz's URL."""
    d.mkdir(parents=True, exist_ok=True)
    bundle = signed_bundle(pki)
    bundle["source"] = {**bundle["source"], "commit": "c0ffee" * 6 + "c0ff"}
    (d / "bundle.json").write_bytes(sign(bundle, keys.operator))
    section = {"source": str(d / "bundle.json"), "poll_seconds": 0.2, "trusted_keys": [str(keys.operator_pub)],
               "threshold": 1, "expiry_warning_seconds": seconds}
    handle = start_in_thread(load_config(write_config(d, pki, keys, upstream.url, section["source"],
                                                      bundle=section)))
    try:
        admin = f"http://127.0.0.1:{handle.admin_port}"
        wait_until(lambda: httpx.get(admin + "/readyz").status_code == 200)
        yield admin
    finally:
        handle.stop()


def test_readyz_and_metrics_warn_before_the_bundle_expires(tmp_path: Path, pki: Pki, keys: Keys,
                                                            upstream: Upstream) -> None:
    """Within the margin the sidecar stays ready (it still has a valid bundle) but says so, for
    the monitoring: /readyz's body and the reestr_bundle_expiry_warning gauge (issue 11 item 8)."""
    with _sidecar_warning_at(tmp_path / "near", pki, keys, upstream, 5 * 3600) as admin:
        ready = httpx.get(admin + "/readyz")
        assert ready.status_code == 200
        assert ready.text.startswith("ready; warning: bundle serial 10 expires in ")
        assert "(warning margin 18000 s): is the publisher re-signing?" in ready.text
        assert "reestr_bundle_expiry_warning 1.0" in httpx.get(admin + "/metrics").text
    with _sidecar_warning_at(tmp_path / "calm", pki, keys, upstream, 3600) as admin:
        assert httpx.get(admin + "/readyz").text == "ready\n"
        assert "reestr_bundle_expiry_warning 0.0" in httpx.get(admin + "/metrics").text
    from proxy.bundles import read_state, render_status

    status = render_status(read_state(tmp_path / "calm" / "state"))
    assert f"commit:        {'c0ffee' * 6}c0ff" in status  # `reestr-sidecar status` names the commit


class _Boom(Exception):
    pass


@pytest.mark.parametrize(("stage", "hook"), [
    pytest.param("proxy.addons.enforce.Enforce", "request", id="enforce-request"),
    pytest.param("proxy.addons.hygiene.Hygiene", "requestheaders", id="hygiene-requestheaders"),
    pytest.param("proxy.addons.responses.ResponseCheck", "response", id="response-check"),
])
def test_a_stage_that_raises_refuses_the_call_and_journals_it(
        sidecar: Running, monkeypatch: pytest.MonkeyPatch, stage: str, hook: str) -> None:
    """A bug in a stage must fail closed. With the stages as separate mitmproxy addons, mitmproxy
    logged the exception and went on: `Enforce.request` raising let the call go upstream with no
    decision. Now the call is refused (500 internal-error), the request is not forwarded (or the
    upstream's answer is not returned), the refusal is journaled, and the text of the exception
    (which may quote the message) is not in the answer."""
    module, _, cls = stage.rpartition(".")
    target = getattr(__import__(module, fromlist=[cls]), cls)

    def boom(self: object, flow: Any) -> None:
        raise _Boom("secret-snils-123-456-789 00")

    # the running pipeline's stage gets the bug; the pipeline's dispatcher of that hook is made
    # again from its stages (it holds their bound methods from the start)
    master = sidecar.handle.sidecar.master
    assert master is not None
    pipeline = next(a for a in master.addons.chain if isinstance(a, Pipeline))
    stage_obj = next(s for s in pipeline.stages if isinstance(s, target))
    monkeypatch.setattr(stage_obj, hook, boom.__get__(stage_obj))
    monkeypatch.setattr(pipeline, hook, getattr(Pipeline(*pipeline.stages), hook))
    before = len(sidecar.upstream.calls)
    r = sidecar.call("ved1", "GET", "/SID0003001/applicants/7")
    assert r.status_code == 500 and r.json()["code"] == "internal-error"
    assert "secret-snils" not in r.text
    if hook != "response":
        assert len(sidecar.upstream.calls) == before
    rid = int(r.headers["Reestr-Journal-Id"])
    records = {rec["id"]: rec for rec in export(journal_store(sidecar.config))}
    assert records[rid]["decision"] == "deny" and records[rid]["reason"] == "internal-error"


def test_a_sidecar_without_tuf_or_postgres_does_not_load_them() -> None:
    """python-tuf and psycopg (≈13 MB of a sidecar's RSS) are imported only by the sidecars
    configured to use them (docs/performance.md)."""
    import subprocess
    import sys

    code = ("import sys, proxy.runner, proxy.cli; "
            "print(sorted(m for m in ('tuf', 'securesystemslib', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

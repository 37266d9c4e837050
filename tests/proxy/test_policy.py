"""Routing, operation matching and decisions, without mitmproxy."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from proxy.errors import PolicyFormatError
from proxy.paths import template_matches
from proxy.policy import (
    OWNER_GRANT,
    REASONS,
    Policy,
    Request,
    compile_template,
    evaluate,
    parse_policy,
    route,
)
from proxy.soap.errors import MessageError
from proxy.soap.message import read_message
from tests.proxy.conftest import NOW, Pki, signed_bundle, signed_consumer_bundle

TODAY = NOW.date()
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def envelope(inner: str, prolog: str = "") -> bytes:
    return (f'{prolog}<soap:Envelope xmlns:soap="{SOAP}"><soap:Header/>'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()


@pytest.fixture(scope="module")
def policy(pki: Pki) -> Policy:
    return parse_policy(signed_bundle(pki))


@pytest.mark.parametrize(("path", "expected"), [
    ("/SID0003001/certificates/5", ("SID0003001", "/certificates/5")),
    ("/SID0003001/certificates?x=1", ("SID0003001", "/certificates")),
    ("/SID0003001", ("SID0003001", "/")),
    ("/", None),
    ("", None),
], ids=["nested", "query", "bare-sid", "root", "empty"])
def test_route(path: str, expected: tuple[str, str] | None) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(("template", "path", "matches"), [
    ("/certificates/{id}", "/certificates/5", True),
    ("/certificates/{id}", "/certificates/5/x", False),
    ("/certificates/{id}", "/certificates/", False),
    ("/a.b/{x}", "/aXb/1", False),
    ("/c/{a}/d/{b}", "/c/1/d/2", True),
    ("/v{version}/x", "/v2/x", True),
    ("/v{version}/x", "/v/x", False),
    ("/{id}.json", "/5.json", True),
    ("/{id}.json", "/5.xml", False),
], ids=["one-segment", "extra-segment", "empty-segment", "dot-is-literal", "two-params",
        "prefix", "prefix-empty-param", "suffix", "suffix-differs"])
def test_template(template: str, path: str, matches: bool) -> None:
    assert template_matches(compile_template(template), tuple(path[1:].split("/"))) is matches


@pytest.mark.parametrize(("consumer", "method", "path", "reason", "operation"), [
    ("ved1", "GET", "/SID0003001/certificates/5", None, "op1"),
    ("ved1", "POST", "/SID0003001/certificates", None, "op2"),
    ("ved2", "GET", "/SID0003001/certificates/5", None, "op1"),
    ("ved2", "GET", "/SID0003001/certificates", None, "op3"),
    ("ved3", "POST", "/SID0003001/certificates", None, "op2"),
    ("ved2", "POST", "/SID0003001/certificates", "operation-not-granted", "op2"),
    ("stranger", "GET", "/SID0003001/certificates", "no-grant", "op3"),
    ("nobody", "GET", "/SID0003001/certificates", "no-grant", "op3"),
    ("ved4", "GET", "/SID0003001/certificates", "grant-expired", "op3"),
    ("ved5", "GET", "/SID0003001/certificates", "caller-terminated", "op3"),
    ("ved6", "GET", "/SID0003001/certificates", "caller-suspended", "op3"),
    ("ved1", "GET", "/SID9999999/certificates", "unknown-sid", None),
    ("ved1", "GET", "/", "unknown-sid", None),
    ("ved1", "DELETE", "/SID0003001/certificates/5", "unknown-operation", None),
    ("ved1", "GET", "/SID0003001/other", "unknown-operation", None),
], ids=["full", "full-op2", "ops-op1", "ops-op3", "owner", "op-not-granted", "no-grant", "no-grant-unknown",
        "grant-expired", "terminated", "suspended", "unknown-sid", "root", "unknown-method",
        "unknown-path"])
def test_evaluate_rest(policy: Policy, consumer: str, method: str, path: str, reason: str | None,
                       operation: str | None) -> None:
    d = evaluate(policy, consumer, Request(method, path), TODAY)
    assert (d.reason, d.operation) == (reason, operation)
    if reason is not None:
        assert d.status == REASONS[reason][0]


def test_owner_has_implicit_rights_even_when_not_listed(pki: Pki) -> None:
    signed = signed_bundle(pki)
    del signed["services"]["SID0003001"]["callers"]["ved3"]
    d = evaluate(parse_policy(signed), "ved3", Request("GET", "/SID0003001/certificates"), TODAY)
    assert d.allowed and d.grant == OWNER_GRANT


def test_grant_valid_until_is_inclusive(pki: Pki) -> None:
    signed = signed_bundle(pki)
    signed["services"]["SID0003001"]["callers"]["ved4"]["valid_until"] = TODAY.isoformat()
    d = evaluate(parse_policy(signed), "ved4", Request("GET", "/SID0003001/certificates"), TODAY)
    assert d.allowed


@pytest.mark.parametrize(("status", "ends_on", "reason"), [
    ("suspended", None, "provider-suspended"),
    ("active", (TODAY - dt.timedelta(days=1)).isoformat(), "provider-terminated"),
], ids=["suspended", "terminated"])
def test_provider_status_denies_everyone(pki: Pki, status: str, ends_on: str | None,
                                         reason: str) -> None:
    signed = signed_bundle(pki)
    signed["participant"].update(status=status, ends_on=ends_on)
    d = evaluate(parse_policy(signed), "ved1", Request("GET", "/SID0003001/certificates"), TODAY)
    assert d.reason == reason


@pytest.mark.parametrize(("consumer", "action", "body", "reason", "operation"), [
    ("ved1", '"urn:getStatus"', envelope('<t:GetStatus xmlns:t="urn:test"/>'), None, "op1"),
    ("ved1", '"urn:getStatus"', envelope('<t:Cancel xmlns:t="urn:test"/>'), "operation-mismatch", "op2"),
    ("ved1", '"urn:other"', envelope('<t:GetStatus xmlns:t="urn:test"/>'), "operation-mismatch", "op1"),
    ("ved1", '"urn:getStatus"', envelope("<x/>"), "unknown-operation", None),
    ("ved1", None, envelope('<t:GetStatus xmlns:t="urn:test"/>'), None, "op1"),
    ("ved1", None, envelope('<t:Cancel xmlns:t="urn:test"/>'), None, "op2"),
    ("ved2", None, envelope('<t:Cancel xmlns:t="urn:test"/>'), "operation-not-granted", "op2"),
    ("ved1", None, envelope('<t:Other xmlns:t="urn:test"/>'), "unknown-operation", None),
    ("ved1", None, b"<not-xml", "malformed-request", None),
    ("ved1", None, b"<a/>", "malformed-request", None),
    ("ved1", None, envelope(""), "malformed-request", None),
    ("ved1", None, envelope('<t:Cancel xmlns:t="urn:test"/>',
                            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'),
     "malformed-request", None),
], ids=["soapaction-and-body", "soapaction-names-another-op", "unknown-soapaction",
        "soapaction-alone-decides-nothing", "body-element", "body-element-op2", "not-granted", "unknown-element",
        "not-xml", "not-envelope", "empty-body", "doctype"])
def test_evaluate_soap(policy: Policy, consumer: str, action: str | None, body: bytes,
                       reason: str | None, operation: str | None) -> None:
    request = Request("POST", "/SID0003002", body, "text/xml; charset=utf-8", (action,) if action else ())
    d = evaluate(policy, consumer, request, TODAY)
    assert (d.reason, d.operation, d.protocol) == (reason, operation, "soap")


def test_soap_parser_does_not_expand_entities(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    doc = (f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'.encode()
           + envelope('<t:A xmlns:t="urn:test">&e;</t:A>'))
    with pytest.raises(MessageError, match="DOCTYPE"):
        read_message(doc, "text/xml", [], "plain")


@pytest.mark.parametrize("mutate", [
    lambda s: s.pop("participant"),
    lambda s: s["services"]["SID0003001"]["callers"]["ved1"].pop("access"),
    lambda s: s["services"]["SID0003001"]["callers"]["ved1"].update(valid_until="tomorrow"),
    lambda s: s["certificates"][s["participant"]["certificates"][0]].update(not_after="never"),
    lambda s: s["certificates"].pop(s["services"]["SID0003002"]["callers"]["stranger"]["certificates"][0]),
    lambda s: s["services"]["SID0003001"]["callers"]["ved1"].update(
        certificates=s["services"]["SID0003001"]["callers"]["ved2"]["certificates"]),
    lambda s: s["services"]["SID0003001"]["callers"]["ved1"].update(certificates=[["a"]]),
    lambda s: s.update(certificates=["x"]),
], ids=["no-participant", "no-access", "bad-date", "bad-cert-time", "certificate-not-in-table",
        "certificate-of-another-participant", "fingerprint-not-a-string", "table-not-an-object"])
def test_malformed_bundle_content(pki: Pki, mutate: Any) -> None:
    signed = signed_bundle(pki)
    mutate(signed)
    with pytest.raises(PolicyFormatError):
        parse_policy(signed)


def test_certificates_come_from_the_table_for_the_entries_that_name_them(pki: Pki) -> None:
    """Inbound callers are known by the certificates of the audience and the caller entries; a
    certificate only in the table (a provider's, in a consumer bundle) names no caller."""
    policy = parse_policy(signed_bundle(pki))
    names = ("ved1", "ved2", "ved3", "ved4", "ved5", "ved6", "expired", "stranger")
    assert {fp: c.participant for fp, c in policy.certificates.items()} == {
        pki.clients[who].sha256: who for who in names}
    assert policy.certificates[pki.clients["ved1"].sha256].not_after == \
        pki.clients["ved1"].cert.not_valid_after_utc
    consumer = parse_policy(signed_consumer_bundle(pki, "https://127.0.0.1:2"))
    assert set(consumer.certificates) == {pki.clients["ved1"].sha256}


def test_bundles_of_the_real_compiler_parse_and_decide(tmp_path: Any) -> None:
    """The sidecar reads what `reestr compile` writes from the example registry (no drift)."""
    import subprocess
    import sys
    from pathlib import Path

    from compiler.trust import load_public_key, verify_envelope

    root = Path(__file__).resolve().parents[2]
    reestr = [sys.executable, "-c", "from compiler.cli import main; main()"]
    subprocess.run([*reestr, "keygen", "--out", str(tmp_path / "op")], check=True, capture_output=True)
    subprocess.run([*reestr, "compile", str(root / "registry"), "--key", str(tmp_path / "op.key"),
                    "--out", str(tmp_path / "b"), "--serial", "3"], check=True, capture_output=True)
    data = (tmp_path / "b" / "ved3.json").read_bytes()
    verified = verify_envelope(data, [load_public_key(tmp_path / "op.pub")], audience="ved3")
    policy = parse_policy(verified.signed)
    allowed = evaluate(policy, "ved2", Request("GET", "/SID0003001/applicants/1"), TODAY)
    denied = evaluate(policy, "ved2", Request("POST", "/SID0003001/applicants/search"), TODAY)
    assert (allowed.reason, allowed.operation) == (None, "operation1")
    assert (denied.reason, denied.operation) == ("operation-not-granted", "operation2")
    assert evaluate(policy, "ved1", Request("POST", "/SID0003001/applicants/search"), TODAY).allowed


@pytest.mark.parametrize("path", [
    "/SID0003001/certificates/..%2F..%2Fadmin",
    "/SID0003001/certificates/%2e%2e",
    "/SID0003001/certificates/../../admin",
    "/SID0003001/./certificates",
    "/SID0003001/certificates/a\\b",
    "/SID0003001/certificates/%00",
], ids=["encoded-slash", "encoded-dots", "dot-dot", "dot", "backslash", "nul"])
def test_ambiguous_paths_are_refused(policy: Policy, path: str) -> None:
    d = evaluate(policy, "ved1", Request("GET", path), TODAY)
    assert (d.reason, d.status) == ("malformed-request", 400)


def test_query_may_contain_encoded_characters(policy: Policy) -> None:
    assert evaluate(policy, "ved1", Request("GET", "/SID0003001/certificates?next=%2Fa"), TODAY).allowed

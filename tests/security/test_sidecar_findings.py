"""Issue 10, the inbound sidecar: one case per finding (ids `finding-NN-...`) and per deny path.

Each case drives a real `reestr-sidecar run` process over real TLS with raw bytes or raw HTTP/2
frames, and checks both what the caller got and what reached the upstream (nothing, or exactly
the request that was decided). Every finding case failed against the code before its fix.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.proxy.conftest import Pki
from tests.security.conftest import Live
from tests.security.helpers import h2_request, raw_http1

pytestmark = pytest.mark.slow

OK = "/SID0003001/certificates/5"


def get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", *extra, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


@dataclass(frozen=True)
class Refused:
    """A request the sidecar must answer itself with `status` and `code`, forwarding nothing."""

    request: bytes
    status: int
    code: str | None  # None: mitmproxy's own HTTP/1 parser refuses it, before any hook runs
    who: str | None = "ved1"


REFUSED = {
    "finding-01-long-target-414": Refused(get("/SID0003001/reports/" + "1-" * 50_000 + ".json"),
                                          414, "target-too-long"),
    "finding-01-many-headers-431": Refused(get(OK, *(f"X-H{i}: v" for i in range(150))),
                                           431, "headers-too-large"),
    "finding-01-big-header-431": Refused(get(OK, "X-Big: " + "a" * 40_000), 431, "headers-too-large"),
    "guard-h1-tab-in-target": Refused(get(OK + "\tx"), 400, None),
    "finding-05-dotdot-semicolon": Refused(get("/SID0003001/certificates/..;"), 400, "malformed-request"),
    "finding-05-dotdot-semicolon-deep": Refused(get("/SID0003001/..;/certificates"), 400,
                                                "malformed-request"),
    "finding-05-double-encoding": Refused(get("/SID0003001/certificates/%252e%252e%252f"), 400,
                                          "malformed-request"),
    "finding-05-encoded-question-mark": Refused(get("/SID0003001/certificates/5%3Fa=1"), 400,
                                                "malformed-request"),
    "finding-05-encoded-hash": Refused(get("/SID0003001/certificates/5%23x"), 400, "malformed-request"),
    "finding-05-bad-percent": Refused(get("/SID0003001/certificates/5%zz"), 400, "malformed-request"),
    "finding-05-double-slash": Refused(get("/SID0003001//certificates"), 400, "malformed-request"),
    "deny-encoded-slash": Refused(get("/SID0003001/certificates/a%2Fb"), 400, "malformed-request"),
    "finding-05-non-ascii-raw": Refused("GET /SID0003001/certificates/\u00e9 HTTP/1.1\r\nHost: x\r\n"
                                        "Connection: close\r\n\r\n".encode("utf-8"), 400,
                                        "malformed-request"),
    "finding-06-method-override": Refused(get(OK, "X-HTTP-Method-Override: DELETE"), 400, "header-refused"),
    "finding-06-method-override-underscore": Refused(get(OK, "X_HTTP_Method_Override: DELETE"), 400,
                                                     "header-refused"),
    "finding-06-x-http-method": Refused(get(OK, "X-HTTP-Method: DELETE"), 400, "header-refused"),
    "finding-06-x-original-url": Refused(get(OK, "X-Original-URL: /admin"), 400, "header-refused"),
    "finding-08-obs-fold": Refused(get(OK, "X-Note: first", " folded: value"), 400, "malformed-request"),
    # deny paths (they held before this issue; kept here so none of them regresses)
    "deny-no-client-certificate": Refused(get(OK), 403, "no-client-certificate", who=None),
    "deny-unknown-certificate": Refused(get(OK), 403, "unknown-certificate", who="unregistered"),
    "deny-certificate-expired": Refused(get(OK), 403, "certificate-expired", who="expired"),
    "deny-no-grant": Refused(get(OK), 403, "no-grant", who="stranger"),
    "deny-operation-not-granted": Refused(get("/SID0003001/reports/1.json"), 403,
                                          "operation-not-granted", who="ved2"),
    "deny-grant-expired": Refused(get(OK), 403, "grant-expired", who="ved4"),
    "deny-caller-terminated": Refused(get(OK), 403, "caller-terminated", who="ved5"),
    "deny-caller-suspended": Refused(get(OK), 403, "caller-suspended", who="ved6"),
    "deny-unknown-sid": Refused(get("/SID0009999/x"), 404, "unknown-sid"),
    "deny-unknown-operation": Refused(get("/SID0003001/nothing"), 404, "unknown-operation"),
    "deny-dot-segment": Refused(get("/SID0003001/certificates/../x"), 400, "malformed-request"),
    "deny-body-too-large": Refused(b"POST /SID0003001/certificates HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: 5000\r\nConnection: close\r\n\r\n" + b"x" * 5000,
                                   413, "body-too-large"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused_and_nothing_forwarded(live: Live, pki: Pki, case: Refused) -> None:
    before = live.upstream.count()
    status, headers, body = raw_http1(live.port, pki.client_context(case.who), case.request)
    assert live.upstream.since(before) == []
    assert status == case.status, body[:200]
    if case.code is not None:
        assert case.code.encode() in body
        assert "reestr-journal-id" in headers  # journaled, however it was refused


_H2 = [(":scheme", "https"), (":authority", "localhost")]
H2_REFUSED: dict[str, tuple[list[tuple[str, str]], set[int]]] = {
    # 0: the stream or connection reset by the sidecar's HTTP/2 layer; 400: refused by the sidecar
    "guard-h2-crlf-in-path": ([(":method", "GET"), *_H2, (":path", OK + " HTTP/1.1\r\nX-Smuggled: 1")],
                              {0, 400}),
    "finding-04-h2-plain-space": ([(":method", "GET"), *_H2, (":path", "/SID0003001/certificates/5 x")],
                                  {400}),
    "finding-06-h2-method-override": ([(":method", "GET"), *_H2, (":path", OK),
                                       ("x-http-method-override", "DELETE")], {400}),
    # a denial of HEAD carries no body (an HTTP/2 client rejects the whole answer otherwise)
    "extra-h2-head-denied-without-body": ([(":method", "HEAD"), *_H2, (":path", "/SID0009999/x")], {404}),
}


@pytest.mark.parametrize(("fields", "statuses"), H2_REFUSED.values(), ids=H2_REFUSED.keys())
def test_h2_refused_and_nothing_forwarded(live: Live, pki: Pki, fields: list[tuple[str, str]],
                                          statuses: set[int]) -> None:
    before = live.upstream.count()
    status, _, _ = h2_request(live.port, pki.client_context("ved1"), fields)
    assert live.upstream.since(before) == []
    assert status in statuses


def _absolute_form(live: Live, ctx: ssl.SSLContext) -> None:
    status, _, _ = raw_http1(live.port, ctx, get("http://admin.internal" + OK))
    assert status == 200


def _underscore_identity(live: Live, ctx: ssl.SSLContext) -> None:
    status, _, _ = raw_http1(live.port, ctx, get(OK, "Reestr_Consumer: ved9", "reestr-operation: op9"))
    assert status == 200


def _encoded_literal(live: Live, ctx: ssl.SSLContext) -> None:
    status, _, _ = raw_http1(live.port, ctx, get("/SID0003001/%63ertificates/5"))
    assert status == 200


FORWARDED: dict[str, tuple[Callable[[Live, ssl.SSLContext], None], str]] = {
    "finding-03-absolute-form": (_absolute_form, OK),
    "finding-07-underscore-identity-header": (_underscore_identity, OK),
    "finding-05-one-decoding-pass-canonical": (_encoded_literal, OK),
}


@pytest.mark.parametrize(("send", "target"), FORWARDED.values(), ids=FORWARDED.keys())
def test_forwarded_exactly_as_decided(live: Live, pki: Pki,
                                      send: Callable[[Live, ssl.SSLContext], None], target: str) -> None:
    before = live.upstream.count()
    send(live, pki.client_context("ved1"))
    (got,) = live.upstream.since(before)
    assert got.target == target  # origin form, canonical: what was decided
    identity = sorted((k.lower().replace("_", "-"), v) for k, v in got.headers
                      if k.lower().replace("_", "-").startswith("reestr-"))
    assert [(k, v) for k, v in identity if k != "reestr-journal-id"] == [
        ("reestr-consumer", "ved1"), ("reestr-operation", "op1")]
    assert [k for k, _ in identity].count("reestr-journal-id") == 1


def test_finding_09_metric_labels_are_bounded(live: Live, pki: Pki) -> None:
    ctx = pki.client_context("ved1")
    for i in range(30):
        raw_http1(live.port, ctx, get(f"/1234567890{i:02d}/x"))  # a SNILS-shaped "SID"
    page = live.admin("/metrics").text
    assert "1234567890" not in page
    assert 'sid="unknown"' in page

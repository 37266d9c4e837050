"""The invariant (issue 10): nothing reaches the upstream except a request whose journaled decision
was `allow` for exactly that consumer, SID and operation, with the method and path decided.

Hypothesis generates requests — raw HTTP/1.1 bytes on a TLS socket, or raw HTTP/2 frames — from
pieces that have broken proxies before (dot segments, `..;`, encoded and double-encoded
separators, spaces and controls, absolute-form targets, override and identity headers, obs-fold,
oversized parts), sent with one of the test PKI's certificates or none, to a live sidecar in front
of an upstream that records every request line and header field it receives. Checked for every
request the upstream received:

- it carries exactly one `Reestr-Journal-Id`, and the journal's request record with that id has
  decision `allow`; its consumer is the participant whose certificate sent it; its SID, operation,
  method and path are the ones the upstream saw (`Reestr-Consumer`, `Reestr-Operation`, the request
  line);
- the policy itself (`proxy.policy.evaluate`, run here on the same bundle) allows that caller that
  operation;
- no generated request reached the upstream more than once, and none from an unknown caller.

Bounded for `make test` (REESTR_FUZZ_EXAMPLES, default 2,500 generated requests, under a minute
here); `make fuzz` runs 20,000.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.policy import Policy, Request, evaluate, parse_policy
from tests.proxy.conftest import NOW, Keys, Pki
from tests.security.conftest import Live, security_bundle, start_live
from tests.security.helpers import Received, h2_request, raw_http1

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("REESTR_FUZZ_EXAMPLES", "2500"))

WHO = [None, "ved1", "ved2", "ved3", "ved4", "ved6", "stranger", "unregistered", "expired"]
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "get", "G ET", "GET\t"]
SIDS = ["SID0003001", "SID0003002", "SID0009999", "%53ID0003001", "SID0003001%2f", "", ".."]
SEGMENTS = ["certificates", "reports", "5", "5.json", "1.json", ".json", "..", ".", "..;", ";x",
            "%2e", "%2e%2e", "%2f", "%2F", "%252e%252e%252f", "%3F", "%23", "%", "%zz", "%C3%A9",
            "%ff", "a b", "a\tb", "\\", "é", "%63ertificates", "x%00", "%0d%0a", "", "~", "@:!$&'()*+,="]
PREFIXES = ["", "", "", "http://admin.internal", "https://127.0.0.1:1", "//evil"]
QUERIES = ["", "", "?a=1", "?next=%2Fa", "?x=../y", "?#frag", "?a b", "#frag"]
HEADERS = [
    ("X-HTTP-Method-Override", "DELETE"), ("X_HTTP_Method_Override", "DELETE"),
    ("X-Original-URL", "/SID0003001/certificates"), ("Reestr-Consumer", "ved9"),
    ("Reestr_Consumer", "ved9"), ("REESTR-OPERATION", "op9"), ("reestr_journal_id", "7"),
    ("X-Note", "a\r\n folded"), ("X-Ctl", "a\x01b"), ("X-Big", "b" * 20000), ("Bad Name", "v"),
    ("SOAPAction", '"urn:getStatus"'), ("Content-Type", "text/xml"), ("X-Forwarded-For", "10.0.0.1"),
    ("Host", "admin.internal"), ("Transfer-Encoding", "chunked"),
]


@dataclass(frozen=True)
class Sent:
    who: str | None
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    h2: bool


VALID = ["/SID0003001/certificates/5", "/SID0003001/certificates", "/SID0003001/reports/7.json",
         "/SID0003001/certificates/%35", "/SID0003001/%63ertificates/x-1"]


@st.composite
def requests(draw: Any) -> Sent:
    """Half near-valid (a granted call with at most two mutations), half assembled from pieces."""
    if draw(st.booleans()):
        parts = draw(st.sampled_from(VALID)).split("/")
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            at = draw(st.integers(1, len(parts)))
            piece = draw(st.sampled_from(SEGMENTS))
            if draw(st.booleans()) and at < len(parts):
                parts[at] = piece
            else:
                parts.insert(at, piece)
        target = (draw(st.sampled_from([""] * 6 + PREFIXES)) + "/".join(parts)
                  + draw(st.sampled_from([""] * 4 + QUERIES)))
        who = draw(st.sampled_from(["ved1"] * 6 + ["ved2", "ved3", *WHO]))
        method = draw(st.sampled_from(["GET"] * 12 + ["POST", "DELETE", *METHODS]))
    else:
        segments = draw(st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=4))
        target = (draw(st.sampled_from(PREFIXES)) + "/" + draw(st.sampled_from(SIDS))
                  + "".join("/" + s for s in segments) + draw(st.sampled_from(QUERIES)))
        who = draw(st.sampled_from(WHO))
        method = draw(st.sampled_from(METHODS))
    if draw(st.integers(0, 40)) == 0:
        target += "/" + "1-" * 6000  # over the target cap
    headers = tuple(draw(st.lists(st.sampled_from(HEADERS), max_size=2, unique=True))) \
        if draw(st.booleans()) else ()
    body = draw(st.sampled_from([b"", b"", b"", b"{}", b"<x/>" * 3, b"z" * 5000]))
    return Sent(who, method, target, headers, body, draw(st.booleans()))


def send(live: Live, pki: Pki, req: Sent) -> None:
    ctx = pki.client_context(req.who)
    if req.h2:
        fields = [(":method", req.method), (":scheme", "https"), (":authority", "localhost"),
                  (":path", req.target), *((k.lower(), v) for k, v in req.headers)]
        if req.body:
            fields.append(("content-length", str(len(req.body))))
        with contextlib.suppress(OSError):  # the sidecar may close a connection it refuses
            h2_request(live.port, ctx, fields, req.body)
        return
    head = [f"{req.method} {req.target} HTTP/1.1", "Host: localhost",
            *(f"{k}: {v}" for k, v in req.headers if k.lower() != "transfer-encoding"),
            "Connection: close"]
    if req.body:
        head.append(f"Content-Length: {len(req.body)}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + req.body
    with contextlib.suppress(OSError):  # the sidecar may close a connection it refuses mid-request
        raw_http1(live.port, ctx, raw)


@pytest.fixture(scope="module")
def fuzz_live(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys) -> Iterator[Live]:
    site = start_live(tmp_path_factory.mktemp("fuzz"), pki, keys, security_bundle(pki),
                      limits={"max_body_bytes": 4096})
    yield site
    site.proc.stop()
    site.upstream.close()


def test_nothing_reaches_upstream_without_a_matching_allow(fuzz_live: Live, pki: Pki) -> None:
    policy = parse_policy(security_bundle(pki))
    forwarded: list[tuple[Sent, Received]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests())
    def one(req: Sent) -> None:
        before = fuzz_live.upstream.count()
        send(fuzz_live, pki, req)
        got = fuzz_live.upstream.since(before)
        assert len(got) <= 1, (req, got)
        if got:
            assert req.who in ("ved1", "ved2", "ved3"), (req, got)  # callers with some access
            forwarded.append((req, got[0]))

    one()
    journal = fuzz_live.journal()
    for req, got in forwarded:
        check(policy, journal, req, got)
    print(f"invariant fuzz: {EXAMPLES} generated, {len(forwarded)} reached the upstream, all checked")
    assert forwarded, "no generated request was allowed: the generator is too narrow"


def check(policy: Policy, journal: dict[int, dict[str, Any]], req: Sent, got: Received) -> None:
    ids = got.header("Reestr-Journal-Id")
    assert len(ids) == 1 and ids[0].isdigit(), (req, got)
    record = journal[int(ids[0])]
    assert (record["kind"], record["decision"]) == ("request", "allow"), (req, record)
    assert record["consumer"] == req.who, (req, record)
    assert got.header("Reestr-Consumer") == [req.who], (req, got)
    assert got.header("Reestr-Operation") == [record["operation"]], (req, got, record)
    assert got.method == record["method"], (req, got, record)
    assert got.target == record["path"], (req, got, record)
    assert got.target.split("?")[0].split("/")[1] == record["sid"], (req, got, record)
    assert [k for k, _ in got.headers if k.lower().replace("_", "-").startswith("reestr-")] == [
        "Reestr-Consumer", "Reestr-Operation", "Reestr-Journal-Id"], (req, got)
    request = Request(got.method, got.target, got.body, dict(got.headers).get("Content-Type"),
                      tuple(v for k, v in got.headers if k.lower() == "soapaction"))
    decided = evaluate(policy, record["consumer"], request, NOW.date())
    assert decided.allowed and decided.operation == record["operation"], (req, record, decided)

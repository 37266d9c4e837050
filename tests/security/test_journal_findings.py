"""Issue 10, finding 2 (journal flood without a certificate) and finding 12 (truncation made
visible), against a live sidecar and its real journal."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.proxy.conftest import Pki
from tests.security.conftest import Live
from tests.security.helpers import raw_http1

pytestmark = pytest.mark.slow




FLOOD = {
    "finding-02-no-certificate-long-target": (None, "/SID0003001/" + "a" * 8000),
    "finding-02-unknown-certificate-long-target": ("unregistered", "/SID0003001/" + "b" * 8000),
    "finding-02-denied-caller-long-sid": ("stranger", "/" + "S" * 8000 + "/x"),
    "finding-02-over-the-cap": (None, "/SID0003001/" + "c" * 200_000),
}


@pytest.mark.parametrize(("who", "target"), FLOOD.values(), ids=FLOOD.keys())
def test_refused_requests_are_journaled_bounded(live: Live, pki: Pki, who: str | None, target: str) -> None:
    before = max(live.journal(), default=0)
    raw_http1(live.port, pki.client_context(who),
              f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    new = [r for rid, r in live.journal().items() if rid > before]
    assert new and all(r["decision"] != "allow" for r in new)
    for record in new:
        assert len(record["path"]) <= 256 and len(record["sid"] or "") <= 96
        if len(target) <= 8192:  # under the 414 cap mitmproxy hands the whole target over
            digest = hashlib.sha256(target.encode()).hexdigest()
            assert record["path"].endswith("…sha256:" + digest)
            assert target.startswith(record["path"].split("…sha256:")[0])


def test_finding_02_five_long_requests_grow_the_journal_little(live: Live, pki: Pki) -> None:
    before = max(live.journal(), default=0)
    for i in range(5):
        raw_http1(live.port, pki.client_context(None),
                  f"GET /SID0003001/{str(i) * 8000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    new = [r for rid, r in live.journal().items() if rid > before]
    assert len(new) == 10  # a request and a response record each
    assert sum(len(json.dumps(r)) for r in new) < 10 * 2048  # before: 10 × 8 KB of paths alone

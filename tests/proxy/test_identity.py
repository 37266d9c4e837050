"""Client certificate -> participant, without mitmproxy (duck-typed connections)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import Cert

from proxy.identity import Identity, Leaf, identify, leaf_of
from proxy.policy import Policy, parse_policy
from tests.proxy.conftest import NOW, Pki, signed_bundle


@dataclass
class Conn:
    tls_established: bool = True
    certificate_list: list[Any] = field(default_factory=list)


def cert_of(pki: Pki, who: str) -> Cert:
    return Cert.from_pem(pki.clients[who].cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def policy(pki: Pki) -> Policy:
    return parse_policy(signed_bundle(pki))


def test_leaf_only_and_fingerprint(pki: Pki) -> None:
    leaf = leaf_of(Conn(certificate_list=[cert_of(pki, "ved1"), cert_of(pki, "ved2")]))
    assert leaf is not None and leaf.sha256 == pki.clients["ved1"].sha256


@pytest.mark.parametrize("conn", [Conn(tls_established=False), Conn(certificate_list=[]), object()],
                         ids=["plain-http", "no-cert", "not-a-connection"])
def test_no_leaf(conn: Any) -> None:
    assert leaf_of(conn) is None


@pytest.mark.parametrize(("who", "participant", "reason"), [
    ("ved1", "ved1", None),
    ("ved3", "ved3", None),
    ("expired", "expired", "certificate-expired"),
], ids=["caller", "owner", "expired"])
def test_identify(pki: Pki, policy: Policy, who: str, participant: str, reason: str | None) -> None:
    leaf = leaf_of(Conn(certificate_list=[cert_of(pki, who)]))
    assert identify(policy, leaf, NOW) == Identity(participant, reason, pki.clients[who].sha256)


def test_fingerprint_compared_case_insensitively(pki: Pki, policy: Policy) -> None:
    c = pki.clients["ved1"].cert
    leaf = Leaf(pki.clients["ved1"].sha256.upper(), c.not_valid_before_utc, c.not_valid_after_utc)
    assert identify(policy, leaf, NOW).participant == "ved1"


@pytest.mark.parametrize(("leaf", "reason"), [
    (None, "no-client-certificate"),
    (Leaf("ab" * 32, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)), "unknown-certificate"),
], ids=["none", "unregistered"])
def test_unknown(policy: Policy, leaf: Leaf | None, reason: str) -> None:
    who = identify(policy, leaf, NOW)
    assert (who.participant, who.reason) == (None, reason)


@pytest.mark.parametrize(("shift", "reason"), [
    (dt.timedelta(days=-3), "certificate-not-yet-valid"),
    (dt.timedelta(days=60), "certificate-expired"),
], ids=["before", "after"])
def test_validity_dates_of_the_presented_certificate(pki: Pki, policy: Policy, shift: dt.timedelta,
                                                     reason: str) -> None:
    leaf = leaf_of(Conn(certificate_list=[cert_of(pki, "ved1")]))
    assert identify(policy, leaf, NOW + shift).reason == reason


def test_registered_dates_also_bind(pki: Pki) -> None:
    """A certificate still valid by itself but registered with an earlier end is refused."""
    signed = signed_bundle(pki)
    signed["certificates"][pki.clients["ved1"].sha256]["not_after"] = \
        (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    leaf = leaf_of(Conn(certificate_list=[cert_of(pki, "ved1")]))
    assert identify(parse_policy(signed), leaf, NOW).reason == "certificate-expired"


def test_leaf_is_computed_once_per_tls_connection_and_forgotten_on_disconnect(pki: Pki) -> None:
    from mitmproxy.test import tflow

    from proxy.addons._responses import _LEAVES, client_leaf, forget_client

    conn = tflow.tclient_conn()
    conn.certificate_list = [cert_of(pki, "ved1")]
    conn.timestamp_tls_setup = 1.0  # TLS established
    first, second = tflow.tflow(), tflow.tflow()
    first.client_conn = second.client_conn = conn
    leaf = client_leaf(first)
    assert leaf is not None and leaf.sha256 == pki.clients["ved1"].sha256
    conn.certificate_list = [cert_of(pki, "ved2")]  # cannot happen; shows the cache is used
    assert client_leaf(second) is leaf
    forget_client(conn)
    assert conn.id not in _LEAVES
    third = tflow.tflow()
    third.client_conn = conn
    assert client_leaf(third) == leaf_of(conn)
    forget_client(conn)


def test_leaf_of_plain_connection_is_not_cached() -> None:
    from mitmproxy.test import tflow

    from proxy.addons._responses import _LEAVES, client_leaf

    flow = tflow.tflow()
    flow.client_conn.timestamp_tls_setup = None
    assert client_leaf(flow) is None and flow.client_conn.id not in _LEAVES

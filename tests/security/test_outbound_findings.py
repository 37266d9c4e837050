"""Issue 10, findings 10 and 11, the outbound side: ved1's sidecar calls out only for a registered
internal system, and only to a provider sidecar presenting one of the provider's registered
certificates. The "provider" here is an impostor: a real sidecar whose server certificate the same
CA issued for the same address (valid chain, valid hostname), but not one ved3 registered. Before
the fixes every case below reached the impostor's upstream."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509

from proxy.config import SidecarConfig, load_config
from proxy.runner import ProcessHandle, start_subprocess
from tests.proxy.conftest import Keys, Pki, free_port, sign, signed_bundle, signed_consumer_bundle, write_config
from tests.security.helpers import RecordingUpstream, read_response

pytestmark = pytest.mark.slow
PATH = "/SID0003001/certificates/5"


@dataclass
class Outbound:
    consumer: SidecarConfig
    upstream: RecordingUpstream  # behind the impostor

    @property
    def port(self) -> int:
        assert self.consumer.outbound is not None
        return self.consumer.outbound.listen.port


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys) -> Iterator[Outbound]:
    d = tmp_path_factory.mktemp("outbound-sec")
    up = RecordingUpstream()
    (d / "ved3.json").write_bytes(sign(signed_bundle(pki), keys.operator))
    impostor = write_config(d / "ved3", pki, keys, up.url, str(d / "ved3.json"),
                            tls={"server_bundle": str(pki.server.pem)})  # same CA, not registered
    provider = load_config(impostor)
    (d / "ved1.json").write_bytes(sign(signed_consumer_bundle(
        pki, f"https://127.0.0.1:{provider.listen.port}"), keys.operator))
    consumer = write_config(
        d / "ved1", pki, keys, "http://127.0.0.1:9", str(d / "ved1.json"), participant="ved1",
        outbound={"listen": {"host": "127.0.0.1", "port": free_port()},
                  "client_bundle": str(pki.clients["ved1"].pem), "provider_ca": str(pki.ca_pem),
                  "clients": [{"name": "internal-app",
                               "certificate": str(pki.clients["internal"].cert_only())}]})
    procs: list[ProcessHandle] = [start_subprocess(impostor)]
    try:
        procs.append(start_subprocess(consumer))
        yield Outbound(load_config(consumer), up)
    finally:
        for proc in procs:
            proc.stop()
        up.close()


def _plain_http(o: Outbound, pki: Pki) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", o.port), timeout=10) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status, _, body = read_response(sock)
        return status, body.decode("utf-8", "replace")


def _tls_as(who: str | None) -> object:
    def call(o: Outbound, pki: Pki) -> tuple[int, str]:
        r = httpx.get(f"https://127.0.0.1:{o.port}{PATH}", verify=pki.client_context(who), timeout=10)
        return r.status_code, r.text
    return call


CASES = {
    "finding-11-plain-http-no-certificate": (_plain_http, 403, "no-client-certificate"),
    "finding-11-tls-without-certificate": (_tls_as(None), 403, "no-client-certificate"),
    "finding-11-another-participants-certificate": (_tls_as("ved2"), 403, "unknown-certificate"),
    "finding-11-the-agencys-own-certificate": (_tls_as("ved1"), 403, "unknown-certificate"),
    "finding-10-registered-caller-impostor-provider": (_tls_as("internal"), 502, None),
}


@pytest.mark.parametrize(("call", "status", "code"), CASES.values(), ids=CASES.keys())
def test_nothing_reaches_an_unpinned_provider(outbound: Outbound, pki: Pki, call: object, status: int,
                                              code: str | None) -> None:
    before = outbound.upstream.count()
    got_status, body = call(outbound, pki)  # type: ignore[operator]
    assert outbound.upstream.since(before) == []
    assert got_status == status, body[:300]
    if code is not None:
        assert code in body


def test_the_impostor_is_valid_for_the_address(pki: Pki) -> None:
    """Same CA, an IP SAN for 127.0.0.1: CA and hostname checks accept it, only the pin refuses."""
    sans = pki.server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert pki.server.cert.issuer == pki.ca_cert.subject
    assert pki.server.sha256 != pki.clients["ved3"].sha256

"""Shared fixtures for the sidecar tests: a test PKI, signed bundles, a real upstream, configs.

Bundles are built here, in one place, from the documented format (docs/bundle-format.md) and signed
with `compiler.trust.sign_envelope`, so the tests do not depend on the compiler's registry code.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from compiler.trust import format_time, sign_envelope

UTC = dt.UTC
NOW = dt.datetime.now(UTC)
PARTICIPANTS = ("ved1", "ved2", "ved3", "ved4", "ved5", "ved6", "stranger", "unregistered")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- PKI ----------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: Path  # key + cert (+ CA) in one file

    @property
    def sha256(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def cert_only(self) -> Path:
        """The certificate alone, PEM, beside the key + chain file."""
        path = self.pem.with_suffix(".crt")
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def entry(self, participant: str) -> dict[str, str]:
        """The <certificate> object of the bundle format (an entry of its `certificates` table)."""
        return {"participant": participant, "subject": self.cert.subject.rfc4514_string(),
                "not_before": format_time(self.cert.not_valid_before_utc),
                "not_after": format_time(self.cert.not_valid_after_utc)}


@dataclass
class Pki:
    dir: Path
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca_pem: Path
    server: Issued
    clients: dict[str, Issued] = field(default_factory=dict)

    def issue(self, name: str, *, server: bool = False, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or NOW - dt.timedelta(days=1))
                   .not_valid_after(not_after or NOW + dt.timedelta(days=30)))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address(
                    "127.0.0.1"))]), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        pem = self.dir / f"{name}.pem"
        pem.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM)
            + self.ca_cert.public_bytes(serialization.Encoding.PEM))
        return Issued(cert, key, pem)

    def client_context(self, who: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        if who is not None:
            ctx.load_cert_chain(str(self.clients[who].pem))
        return ctx


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reestr test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=2))
               .not_valid_after(NOW + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki = Pki(directory, ca_cert, ca_key, ca_pem, server=None)  # type: ignore[arg-type]
    pki.server = pki.issue("server", server=True)
    for who in PARTICIPANTS:  # ved3's doubles as its sidecar's server certificate (outbound pinning)
        pki.clients[who] = pki.issue(who, server=who == "ved3")
    pki.clients["internal"] = pki.issue("internal")  # an agency system calling out through ved1
    pki.clients["expired"] = pki.issue("expired", not_before=NOW - dt.timedelta(days=10),
                                       not_after=NOW - dt.timedelta(days=1))
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- operator keys and bundles ------------------------------------------------------------------


@dataclass
class Keys:
    operator: Ed25519PrivateKey
    other: Ed25519PrivateKey
    operator_pub: Path
    sidecar_key: Path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    operator, other, sidecar = (Ed25519PrivateKey.generate() for _ in range(3))
    pub = d / "operator.pub"
    pub.write_bytes(operator.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    sk = d / "sidecar.key"
    sk.write_bytes(sidecar.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return Keys(operator, other, pub, sk)


def _caller(pki: Pki, who: str, access: str = "full", operations: list[str] | None = None,
            **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "access": access, "operations": operations, "grant": f"registry/consumers/{who}.yaml:7",
        "legal_basis": "test act", "valid_until": None, "ends_on": None,
        "certificates": [pki.clients[who].sha256]}
    entry.update(extra)
    return entry


def _table(pki: Pki, *owners: str) -> dict[str, dict[str, str]]:
    """The bundle's top-level `certificates` table with the test certificate of each owner."""
    return {pki.clients[who].sha256: pki.clients[who].entry(who) for who in owners}


def _rest(method: str, path: str) -> dict[str, Any]:
    """An operation as compiler.bundle writes it: absent members are null."""
    return {"method": method, "path": path}


def _soap(action: str | None, element: str | None) -> dict[str, Any]:
    return {name: value for name, value in (("soap_action", action), ("body_element", element)) if value}


def signed_bundle(pki: Pki, serial: int = 10, audience: str = "ved3",
                  expires_in: dt.timedelta = dt.timedelta(hours=4),
                  expires_at: dt.datetime | None = None) -> dict[str, Any]:
    """The `signed` part of ved3's bundle: a REST service, a SOAP service, a range of callers.

    ved1 full; ved2 operations op1+op3; ved4 grant expired; ved5 agreement ended; ved6 suspended
    (kept in the bundle with a status so the sidecar's own check is exercised); ved3 the owner;
    stranger is registered (a caller of the SOAP service only); unregistered is in no bundle.
    """
    yesterday = (NOW - dt.timedelta(days=1)).date().isoformat()
    callers = {
        "ved1": _caller(pki, "ved1"),
        "ved2": _caller(pki, "ved2", "operations", ["op1", "op3"]),
        "ved4": _caller(pki, "ved4", valid_until=yesterday),
        "ved5": _caller(pki, "ved5", ends_on=NOW.date().isoformat()),
        "ved6": _caller(pki, "ved6", status="suspended"),
        "ved3": {**_caller(pki, "ved3"), "grant": "implicit:owner", "legal_basis": None},
    }
    callers["expired"] = _caller(pki, "expired")
    own = [audience] if audience in pki.clients else []
    return {
        "type": "reestr-bundle", "format": 1, "audience": audience, "serial": serial,
        "issued_at": format_time(NOW - dt.timedelta(minutes=5)),
        "expires_at": format_time(expires_at or NOW + expires_in),
        "source": {"commit": None, "registry_digest": "sha256:" + "0" * 64},
        "certificates": _table(pki, *own, *callers, "stranger"),
        "participant": {"id": audience, "name": "Ведомство 3", "status": "active",
                        "ends_on": None, "sidecar": "https://127.0.0.1:8443",
                        "certificates": [pki.clients[who].sha256 for who in own]},
        "services": {
            "SID0003001": {
                "name": "REST service", "protocol": "rest", "classification": "personal-data",
                "signed_messages": False, "callers": callers,
                "operations": {"op1": _rest("GET", "/certificates/{id}"),
                               "op2": _rest("POST", "/certificates"),
                               "op3": _rest("GET", "/certificates")}},
            "SID0003002": {
                "name": "SOAP service", "protocol": "soap", "classification": "restricted",
                "signed_messages": False,
                "callers": {**copy.deepcopy(callers), "stranger": _caller(pki, "stranger")},
                "operations": {"op1": _soap("urn:getStatus", "{urn:test}GetStatus"),
                               "op2": _soap(None, "{urn:test}Cancel")}},
        },
        "grants": {},
    }


def sign(signed: dict[str, Any], *keys: Ed25519PrivateKey) -> bytes:
    return sign_envelope(signed, keys)


# --- upstream -----------------------------------------------------------------------------------


class Upstream:
    """A real HTTP server on 127.0.0.1 that records what reached it and echoes who called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.calls.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                out = json.dumps({"path": self.path,
                                  "consumer": self.headers.get("Reestr-Consumer"),
                                  "operation": self.headers.get("Reestr-Operation")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_http(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A real HTTP server on 127.0.0.1 with `handler`, serving in a daemon thread: (server, URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


# --- config -------------------------------------------------------------------------------------


def write_config(directory: Path, pki: Pki, keys: Keys, upstream_url: str, bundle_source: str,
                 **overrides: Any) -> Path:
    """A complete sidecar config for ved3 on free ports; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "participant": "ved3",
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "admin": {"host": "127.0.0.1", "port": free_port()},
        "upstream": upstream_url,
        "tls": {"server_bundle": str(pki.server.pem)},
        "bundle": {"source": bundle_source, "poll_seconds": 0.2,
                   "trusted_keys": [str(keys.operator_pub)], "threshold": 1},
        "state_dir": str(directory / "state"),
        "journal": {"path": str(directory / "journal.sqlite"), "signing_key": str(keys.sidecar_key),
                    "synchronous": "NORMAL"},
        "limits": {"max_body_bytes": 4096},
    }
    cfg.update(overrides)
    path = directory / "sidecar.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def signed_consumer_bundle(pki: Pki, provider_sidecar: str, serial: int = 10,
                           audience: str = "ved1") -> dict[str, Any]:
    """The `signed` part of ved1's bundle (consumer side): op1+op3 of ved3's REST service, op1 of
    its SOAP service."""
    rest = signed_bundle(pki)["services"]["SID0003001"]
    soap = signed_bundle(pki)["services"]["SID0003002"]
    return {
        "type": "reestr-bundle", "format": 1, "audience": audience, "serial": serial,
        "issued_at": format_time(NOW - dt.timedelta(minutes=5)),
        "expires_at": format_time(NOW + dt.timedelta(hours=4)),
        "source": {"commit": None, "registry_digest": "sha256:" + "0" * 64},
        "certificates": _table(pki, audience, "ved3"),
        "participant": {"id": audience, "name": "Ведомство 1", "status": "active", "ends_on": None,
                        "sidecar": "https://127.0.0.1:1", "certificates": [pki.clients[audience].sha256]},
        "services": {},
        "grants": {
            "SID0003001": {
                "provider": "ved3", "provider_sidecar": provider_sidecar,
                "provider_certificates": [pki.clients["ved3"].sha256],
                "name": "REST service", "protocol": "rest", "classification": "personal-data",
                "signed_messages": False, "access": "operations", "operations": ["op1", "op3"],
                "operation_defs": rest["operations"], "grant": "registry/consumers/ved1.yaml:7",
                "legal_basis": "test act", "valid_until": None},
            "SID0003002": {
                "provider": "ved3", "provider_sidecar": provider_sidecar,
                "provider_certificates": [pki.clients["ved3"].sha256],
                "name": "SOAP service", "protocol": "soap", "profile": "plain", "classification": "restricted",
                "signed_messages": False, "access": "operations", "operations": ["op1"],
                "operation_defs": soap["operations"], "grant": "registry/consumers/ved1.yaml:12",
                "legal_basis": "test act", "valid_until": None}},
    }


# --- PostgreSQL (journal backend) ---------------------------------------------------------------

from tests.proxy.gost_pki import gost_pki  # noqa: E402, F401  (fixture: GOST keys made by OpenSSL)
from tests.proxy.pgcluster import pg_cluster, pg_dsn  # noqa: E402, F401  (fixtures: a real server)

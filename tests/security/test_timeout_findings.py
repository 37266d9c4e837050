"""Issue 10, finding 16: slow connections are closed (the live sidecar runs with a 1 s header
timeout and a 2 s idle timeout). Each case keeps a connection trickling, or silent, and checks
that the sidecar closes it; before the fix each stayed open until the case gave up."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

import pytest

from tests.proxy.conftest import Pki
from tests.security.conftest import Live
from tests.security.helpers import read_response, tls_socket

pytestmark = pytest.mark.slow

GIVE_UP = 20.0  # seconds; the configured deadlines are 1 s and 2 s


def closed_while(sock: socket.socket, trickle: Callable[[int], bytes | None]) -> bool:
    """Send trickle(i) every 0.25 s (None: send nothing); True once the peer has closed."""
    sock.settimeout(0.25)
    deadline = time.monotonic() + GIVE_UP
    i = 0
    while time.monotonic() < deadline:
        data = trickle(i)
        i += 1
        try:
            if data:
                sock.sendall(data)
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return True
    return False


def _tls(live: Live, pki: Pki) -> socket.socket:
    return tls_socket(live.port, pki.client_context("ved1"))


def test_finding_16_slow_headers(live: Live, pki: Pki) -> None:
    with _tls(live, pki) as sock:
        sock.sendall(b"GET /SID0003001/certificates/5 HTTP/1.1\r\nHost: x\r\n")
        assert closed_while(sock, lambda i: f"X-Slow-{i}: a\r\n".encode())


def test_finding_16_silent_tcp_connection(live: Live) -> None:
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        assert closed_while(sock, lambda i: None)


def test_finding_16_slow_body(live: Live, pki: Pki) -> None:
    with _tls(live, pki) as sock:
        sock.sendall(b"POST /SID0003001/certificates HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        assert closed_while(sock, lambda i: b"x")


def test_finding_16_idle_keep_alive(live: Live, pki: Pki) -> None:
    with _tls(live, pki) as sock:
        sock.sendall(b"GET /SID0003001/certificates/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert closed_while(sock, lambda i: None)

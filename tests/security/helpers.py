"""Raw clients and a recording upstream for the security suite.

The clients write bytes on a real TLS socket (HTTP/1.1) or real HTTP/2 frames (the `h2` library
mitmproxy itself uses), so a test can send what httpx would refuse to: absolute-form targets,
folded headers, spaces in `:path`. The upstream records every request line and header field as
received, duplicates and case included.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass
class Received:
    method: str  # "" when the upstream could not parse the request line (`target` is the line)
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class RecordingUpstream:
    """An HTTP/1.1 server on 127.0.0.1 that keeps what reached it."""

    calls: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with upstream.lock:
                    upstream.calls.append(Received(self.command, self.path,
                                                   list(self.headers.items()), body))
                out = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def parse_request(self) -> bool:
                ok = super().parse_request()
                if not ok:  # reached the upstream all the same: keep its raw request line
                    line = self.raw_requestline.decode("latin-1").rstrip("\r\n")
                    with upstream.lock:
                        upstream.calls.append(Received("", line, [], b""))
                return ok

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def since(self, n: int) -> list[Received]:
        with self.lock:
            return list(self.calls[n:])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tls_socket(port: int, ctx: ssl.SSLContext, alpn: list[str] | None = None,
               timeout: float = 10.0) -> ssl.SSLSocket:
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed, as the sidecar answers); (0, {}, b"") if the
    connection closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def raw_http1(port: int, ctx: ssl.SSLContext, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is on a new TLS connection; the response."""
    with tls_socket(port, ctx) as sock:
        sock.sendall(request)
        return read_response(sock)


def h2_request(port: int, ctx: ssl.SSLContext, headers: list[tuple[str, str]],
               body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/2 request with exactly these header fields (pseudo-headers included, unchecked);
    (status, headers, body), status 0 if the stream or connection was reset, -1 if the answer
    broke the HTTP/2 rules (our client refuses it)."""
    with tls_socket(port, ctx, alpn=["h2"]) as sock:
        if sock.selected_alpn_protocol() != "h2":
            raise AssertionError("the sidecar did not negotiate h2")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, got, data = 0, {}, b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return status, got, data
            try:
                events = conn.receive_data(chunk)
            except h2.exceptions.ProtocolError:  # e.g. a body on a HEAD answer: the answer is refused
                return -1, got, data
            for event in events:
                if isinstance(event, h2.events.ResponseReceived):
                    got = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                           for k, v in event.headers}
                    status = int(got.get(":status", "0"))
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset
                                | h2.events.ConnectionTerminated):
                    return status, got, data
            sock.sendall(conn.data_to_send())

"""Issue 10, finding 15: a bundle over the limit is refused before it is read, from a file or a URL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from proxy.bundles import FileSource, UrlSource
from proxy.errors import BundleSourceError

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def big_server() -> Iterator[str]:
    """Serves 100 MB (declared, or streamed chunked without a length) and counts what it sent."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            if self.path == "/declared":
                self.send_header("Content-Length", str(100 * 1024 * 1024))
                self.end_headers()
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(1600):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _file(tmp: Path, url: str) -> FileSource | UrlSource:
    path = tmp / "bundle.json"
    with open(path, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: 100 MB that cost no disk
    return FileSource(path, LIMIT)


CASES = {
    "finding-15-file-100mb": _file,
    "finding-15-url-declared-100mb": lambda tmp, url: UrlSource(url + "/declared", max_bytes=LIMIT),
    "finding-15-url-chunked-100mb": lambda tmp, url: UrlSource(url + "/chunked", max_bytes=LIMIT),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_oversized_bundle_refused_unread(tmp_path: Path, big_server: str, make: Any) -> None:
    source = make(tmp_path, big_server)
    with pytest.raises(BundleSourceError, match="over the bundle limit"):
        asyncio.run(source.fetch())

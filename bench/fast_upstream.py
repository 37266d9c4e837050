"""A minimal, fast HTTP/1.1 upstream for the sidecar benchmark: (c) in `bench/sidecar_bench.py`.

    .venv/bin/python bench/fast_upstream.py PORT [SECONDS]

One asyncio protocol, no framework: it reads a request head (and a Content-Length body), answers
every request with the same small JSON document, and keeps the connection alive. It exits by itself
after SECONDS (default 900) so a crashed benchmark never leaves it running. Listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"path":"/applicants/42","answer":"ok"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
MAX_HEAD = 64 * 1024


class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.close()
                break
            length = 0
            lower = self.buf[:end].lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17:line_end if line_end >= 0 else end].strip() or b"0")
            total = end + 4 + length
            if len(self.buf) < total:
                break
            self.buf = self.buf[total:]
            out.append(RESPONSE)
        if out:
            self.transport.write(b"".join(out))


async def main(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(seconds)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 900.0))

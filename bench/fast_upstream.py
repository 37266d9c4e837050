"""A minimal, fast HTTP/1.1 upstream for the sidecar benchmark: (c) in `bench/sidecar_bench.py`.

    .venv/bin/python bench/fast_upstream.py PORT [SECONDS] [POST_ANSWER.xml]

One asyncio protocol, no framework: it reads a request head (and a Content-Length body), answers
every request with the same small JSON document, and keeps the connection alive. It exits by itself
after SECONDS (default 900) so a crashed benchmark never leaves it running. Listens on 127.0.0.1.
With POST_ANSWER.xml, POST requests are answered with that file as `text/xml` instead (the SOAP
answer of `bench/soap_bench.py`); GET requests keep the JSON document.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"path":"/applicants/42","answer":"ok"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
MAX_HEAD = 64 * 1024
POST_RESPONSE = RESPONSE  # replaced by the XML answer when one is given


def _xml_response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/xml; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


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
            post = self.buf.startswith(b"POST ")
            self.buf = self.buf[total:]
            out.append(POST_RESPONSE if post else RESPONSE)
        if out:
            self.transport.write(b"".join(out))


async def main(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(seconds)


if __name__ == "__main__":
    if len(sys.argv) > 3:
        with open(sys.argv[3], "rb") as answer:
            POST_RESPONSE = _xml_response(answer.read())
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 900.0))

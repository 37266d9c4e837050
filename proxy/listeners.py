"""Listening sockets shared by worker processes: bound once by the supervisor, inherited by each.

Why inherited rather than `SO_REUSEPORT`: with `SO_REUSEPORT` every process has its own accept
queue, and a process that exits (a crash, a drain) takes the connections waiting in its queue
with it — they are reset. With one socket inherited by all workers there is one queue: a worker
that stops accepting leaves waiting connections to the others, so neither a restart nor a drain
loses a connection that the kernel has accepted.

mitmproxy (12.x) binds its listeners itself (`AsyncioServerInstance.listen` calls
`asyncio.start_server(handler, host, port)`); `use_inherited` wraps that method so that an
address the supervisor handed over is served from the inherited socket instead, and any other
address is bound as before. It is installed in worker processes only.

The hand-over: the supervisor passes the file descriptors to the child (`pass_fds`) and names
them in the environment variable `REESTR_LISTEN_FDS` as `host:port=fd,host:port=fd`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from proxy.errors import SidecarError

ENV = "REESTR_LISTEN_FDS"
BACKLOG = 1024
ACCEPTS_PER_WAKEUP = 1
"""asyncio accepts up to its `backlog` argument connections each time the listening socket is
readable. With one queue shared by N workers, the first worker to wake took every waiting
connection (ten connections that arrive together all went to one worker; the others idled), so a
worker takes one per wake-up and the kernel wakes each worker that waits (docs/performance.md)."""


class _OneAtATime(socket.socket):
    """The inherited listening socket; asyncio calls `listen(backlog)` with the accepts per
    wake-up, but the queue the workers share keeps its full length."""

    def listen(self, backlog: int = BACKLOG) -> None:
        super().listen(BACKLOG)


class ListenerError(SidecarError):
    """A listening socket could not be bound or inherited."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket, inheritable, as mitmproxy would have bound it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise ListenerError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.set_inheritable(True)
    return sock


def spell(sockets: dict[tuple[str, int], socket.socket]) -> str:
    return ",".join(f"{host}:{port}={s.fileno()}" for (host, port), s in sockets.items())


def parse(text: str) -> dict[tuple[str, int], int]:
    """`host:port=fd,…` → {(host, port): fd}; ListenerError on anything else."""
    out: dict[tuple[str, int], int] = {}
    for item in filter(None, text.split(",")):
        addr, _, fd = item.rpartition("=")
        host, _, port = addr.rpartition(":")
        if not (host and port.isdigit() and fd.isdigit()):
            raise ListenerError(f"{ENV}: bad entry {item[:80]!r}")
        out[(host, int(port))] = int(fd)
    return out


def use_inherited(fds: dict[tuple[str, int], int]) -> None:
    """Serve mitmproxy's TCP listeners on these addresses from the inherited descriptors."""
    from mitmproxy.proxy import mode_servers

    cls = mode_servers.AsyncioServerInstance
    original = cls.listen
    if getattr(original, "_reestr_inherited", False):
        raise ListenerError("inherited listeners installed twice")

    async def listen(self: Any, host: str, port: int) -> list[Any]:
        fd = fds.get((host, port))
        if fd is None or self.mode.transport_protocol == "udp":
            return await original(self, host, port)
        # TCP only: mitmproxy would also open a UDP (QUIC) listener for an https:// reverse mode
        # (the outbound listener); N processes cannot share one, and the sidecar's callers speak TLS
        # over TCP
        # a duplicate: asyncio closes its socket when mitmproxy stops the server (a drain), and the
        # inherited descriptor must stay valid for a later start
        sock = _OneAtATime(fileno=socket.dup(fd))
        sock.setblocking(False)
        return [await asyncio.start_server(self.handle_stream, sock=sock, backlog=ACCEPTS_PER_WAKEUP)]

    listen._reestr_inherited = True  # type: ignore[attr-defined]
    cls.listen = listen  # type: ignore[method-assign]

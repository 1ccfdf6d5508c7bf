"""A notification target that consents and then never answers: a tarpit.

:class:`Tarpit` listens on one or more loopback ports. It answers a
subscription verification request (``{"m2m:sgn": {"vrq": true, ...}}``) at
once with 2000 -- an attacker's own receiver consents to anything -- and
holds every other request open, without a byte of answer, until
:meth:`Tarpit.stop`. It counts what it holds now (``held``), the most it
held at once (``most_held``) and every request it saw (``seen``), so a test
can tell how many of the CSE's sends it ties up.
"""

from __future__ import annotations

import asyncio
import json

__all__ = ["Tarpit"]


class Tarpit:
    """See module docstring."""

    def __init__(self, ports: int = 1) -> None:
        self.n_ports = ports
        self.urls: list[str] = []
        self.held = 0
        self.most_held = 0
        self.seen = 0
        self.verifications = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()

    async def start(self) -> Tarpit:
        for _ in range(self.n_ports):
            server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
            self._servers.append(server)
            self.urls.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/notify")
        return self

    async def stop(self) -> None:
        """Let go of every held request (their connections are closed) and the ports."""
        self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    async def wait_held(self, n: int, timeout: float = 10.0) -> None:
        """Wait until at least ``n`` requests are being held."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.held >= n), timeout)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                self.seen += 1
                if _is_verification(body):
                    self.verifications += 1
                    rqi = headers.get(b"x-m2m-ri", b"")
                    writer.write(b"HTTP/1.1 200 OK\r\nX-M2M-RSC: 2000\r\nX-M2M-RI: " + rqi
                                 + b"\r\nX-M2M-RVI: 3\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                await self._hold(reader)
                return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Hold until stopped or until the sender gives up (closes its side)."""
        async with self._changed:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            self._changed.notify_all()
        stop = asyncio.ensure_future(self._stopping.wait())
        eof = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({stop, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            eof.cancel()
            self.held -= 1


def _is_verification(body: bytes) -> bool:
    try:
        sgn = json.loads(body).get("m2m:sgn")
    except (ValueError, AttributeError):
        return False
    return isinstance(sgn, dict) and sgn.get("vrq") is True

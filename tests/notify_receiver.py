"""A fake notification receiver for tests: a real HTTP server on loopback.

:class:`Receiver` plays an AE's (or any notification target's) HTTP endpoint:

* ``url`` -- ``http://127.0.0.1:<port>/notify`` (port 0 at bind time, so
  tests never collide; ``host="::1"`` listens on the IPv6 loopback);
* every request is recorded *on arrival* (before any delay) as a
  :class:`Received` (method, path, query, headers, body parsed as JSON, or
  as CBOR when its Content-Type says so) into an
  asyncio queue; ``await receiver.next(timeout)`` returns the next one and
  raises :class:`TimeoutError` when none comes;
* the answer is ``X-M2M-RSC: <rsc>`` (default 2000) echoing ``X-M2M-RI``;
  ``reject_verification`` answers 4103 to verification requests
  (``{"m2m:sgn": {"vrq": true, ...}}``);
* ``delay`` holds the answer back: a number of seconds, or an
  :class:`asyncio.Event` to wait for (``gate()`` installs one, ``release()``
  opens it). This simulates a slow peer; verification requests are not
  delayed unless ``delay_verification`` is set. ``stop()`` releases every
  held answer first, so shutdown never waits for a slow handler.

``closed_url()`` gives a URL on a loopback port that nobody listens on.
The ``receiver`` fixture yields a started :class:`Receiver`; import it with
the ``receiver`` fixture (re-exported by tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from aiohttp import web

__all__ = ["Receiver", "Received", "receiver", "closed_url", "http_status"]

_STATUS = {2000: 200, 2001: 201, 2002: 200, 2004: 200, 4000: 400, 4004: 404, 4005: 405,
           4101: 403, 4103: 403, 4105: 409, 5000: 500, 5103: 503}


def http_status(rsc: int) -> int:
    """A plausible HTTP status for an RSC (TS-0009 Table 6.3.1-1 for the common ones)."""
    if rsc in _STATUS:
        return _STATUS[rsc]
    if rsc < 3000:
        return 200
    if rsc < 5000:
        return 400
    return 500


def closed_url(path: str = "/notify") -> str:
    """An http URL on a loopback port that was free a moment ago (nobody listens)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    finally:
        sock.close()
    return f"http://127.0.0.1:{port}{path}"


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes

    def header(self, name: str) -> str | None:
        """A header value, case-insensitively."""
        low = name.lower()
        for key, value in self.headers.items():
            if key.lower() == low:
                return value
        return None

    @property
    def sgn(self) -> dict[str, Any]:
        """The ``m2m:sgn`` object (fails the test when absent)."""
        assert isinstance(self.body, dict) and "m2m:sgn" in self.body, self.body
        return dict(self.body["m2m:sgn"])

    @property
    def is_verification(self) -> bool:
        """Whether this is a subscription verification request."""
        return isinstance(self.body, dict) and isinstance(self.body.get("m2m:sgn"), dict) \
            and self.body["m2m:sgn"].get("vrq") is True


class Receiver:
    """A loopback HTTP notification target (see module docstring)."""

    def __init__(self, *, rsc: int = 2000, reject_verification: bool = False,
                 delay: float | asyncio.Event | None = None, delay_verification: bool = False,
                 path: str = "/notify", host: str = "127.0.0.1") -> None:
        self.rsc = rsc
        self.host = host
        self.reject_verification = reject_verification
        self.delay = delay
        self.delay_verification = delay_verification
        self.path = path
        self.received: list[Received] = []
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0
        self.in_flight = 0
        self._flight = asyncio.Condition()

    async def wait_in_flight(self, n: int, timeout: float = 5.0) -> None:
        """Wait until at least ``n`` answers are being held back (``delay``)."""
        async with self._flight:
            await asyncio.wait_for(self._flight.wait_for(lambda: self.in_flight >= n), timeout)

    async def _flight_changed(self) -> None:
        async with self._flight:
            self._flight.notify_all()

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.port, "receiver not started"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._stopping = asyncio.Event()
        return self

    async def stop(self) -> None:
        """Release held answers and close the port (later sends are refused)."""
        self._stopping.set()
        if isinstance(self.delay, asyncio.Event):
            self.delay.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- behaviour ---------------------------------------------------------------
    def gate(self) -> asyncio.Event:
        """Hold every (non-verification) answer until :meth:`release`."""
        ev = asyncio.Event()
        self.delay = ev
        return ev

    def release(self) -> None:
        """Open the gate installed by :meth:`gate` (held answers go out)."""
        if isinstance(self.delay, asyncio.Event):
            self.delay.set()

    # -- inspection -----------------------------------------------------------------
    async def next(self, timeout: float = 5.0) -> Received:
        """The next received request; :class:`TimeoutError` if none within ``timeout`` s."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"receiver {self.port}: no request within {timeout:g} s "
                f"({len(self.received)} received so far)") from None

    async def next_notification(self, timeout: float = 5.0) -> Received:
        """The next request that is not a verification request."""
        while True:
            item = await self.next(timeout)
            if not item.is_verification:
                return item

    def pending(self) -> list[Received]:
        """Everything received but not yet taken with :meth:`next` (removes it)."""
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    # -- the handler ------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Received:
        """Read, parse and remember one incoming request (before any answer)."""
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                cbor = "cbor" in request.headers.get("Content-Type", "")
                body = cbor2.loads(raw) if cbor else json.loads(raw)
            except (ValueError, cbor2.CBORDecodeError):
                body = None
        item = Received(request.method, request.path, dict(request.query), dict(request.headers), body, raw)
        self.received.append(item)
        self._queue.put_nowait(item)
        return item

    async def _handle(self, request: web.Request) -> web.Response:
        item = await self._record(request)
        rsc = self.rsc
        if item.is_verification and self.reject_verification:
            rsc = 4103
        if not item.is_verification or self.delay_verification:
            await self._hold()
        headers = {"X-M2M-RSC": str(rsc), "X-M2M-RVI": request.headers.get("X-M2M-RVI", "3")}
        ri = request.headers.get("X-M2M-RI")
        if ri is not None:
            headers["X-M2M-RI"] = ri
        return web.Response(status=http_status(rsc), headers=headers)

    async def _hold(self) -> None:
        delay = self.delay
        if delay is None or self._stopping.is_set():
            return
        self.in_flight += 1
        await self._flight_changed()
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if isinstance(delay, asyncio.Event):
            waiters.append(asyncio.ensure_future(delay.wait()))
        try:
            await asyncio.wait(waiters, timeout=None if isinstance(delay, asyncio.Event) else float(delay),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            self.in_flight -= 1
            await self._flight_changed()


def sevt_of(item: Received) -> dict[str, Any] | None:
    """The ``m2m:sevt`` (session event) a notification carries, or None."""
    body = item.body
    if not isinstance(body, dict) or not isinstance(body.get("m2m:sgn"), dict):
        return None
    rep = (body["m2m:sgn"].get("nev") or {}).get("rep")
    if isinstance(rep, dict) and isinstance(rep.get("m2m:sevt"), dict):
        return dict(rep["m2m:sevt"])
    return None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A started :class:`Receiver` with default behaviour (answers 2000)."""
    async with Receiver() as r:
        yield r

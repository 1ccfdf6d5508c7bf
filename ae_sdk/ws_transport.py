"""The oneM2M WebSocket binding (TS-0020) for an AE: requests to the CSE and
the CSE's requests to the AE on one connection (docs/bindings.md "WebSocket", docs/sdk.md).

:class:`WsTransport` is a :class:`~ae_sdk.transport.Transport`: it opens
``ws://host:port/`` (``wss://`` with TLS) with the subprotocol
``oneM2M.json`` (or ``oneM2M.cbor``), sends each request primitive as a
message (:mod:`cse.core.ws_wire`) and returns the response primitive of the
same ``rqi``. The CSE associates the connection with the AE it registers or
speaks as, and sends that AE's notifications on it: the AE opens no port and
needs no ``poa``.

:class:`WsNotificationReceiver` is the
:class:`~ae_sdk.notify_server.NotificationServer` of an AE on a WebSocket:
the CSE's requests arriving on the connection are handled with the same
rules and callbacks as the HTTP server; its ``url`` is the AE-ID, so a
subscription names the AE in ``nu`` (as with a polling channel). While it
runs, a connection that drops is opened again (the delay doubling from 0.2
up to 5 s) and the AE announces itself on it (a RETRIEVE of its CSEBase as
its AE-ID), after which what waited for it at the CSE arrives.

Example::

    client = AEClient("ws://127.0.0.1:8080")
    await client.register("myapp")
    await client.start_notifications()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp

from cse.core.errors import M2MError
from cse.core.messages import Request, Response
from cse.core.timestamps import format_ts
from cse.core.ws_wire import (
    CBOR_PROTOCOL,
    JSON_PROTOCOL,
    WS_PATH,
    access_token,
    encode_request,
    encode_response,
    kind_of,
    request_from_message,
    response_from_message,
    rqi_of,
)

from .connection_receiver import ConnectionReceiver
from .errors import TransportError
from .notify_server import NotificationCallback, VerifyHook
from .transport import Serialization

__all__ = ["WsTransport", "WsNotificationReceiver"]

log = logging.getLogger("ae_sdk.ws")

_MAX_MESSAGE = 4 * 1024 * 1024
_RECONNECT_MIN_S, _RECONNECT_MAX_S = 0.2, 5.0

OnRequest = Callable[[Request], Awaitable[Response]]


class WsTransport:
    """Requests to the CSE at ``url`` over one WebSocket (module docstring).

    ``url`` is ``ws://host:port`` (``wss://`` with ``cafile`` or ``ssl``
    saying whom to trust); ``timeout`` bounds one exchange in seconds;
    ``token`` goes into the handshake as ``Authorization: Bearer``
    (docs/security.md), replaced by the token of the AE-ID when the CSE
    returns one with a registration (``atk``, as ``X-Access-Token`` over
    HTTP); ``serialization="cbor"`` speaks ``oneM2M.cbor``.
    ``max_in_flight`` bounds the requests waiting for their answers on the
    connection; more wait here for a turn. The default is the CSE's default
    ``[websocket] max_pending`` (16), past which the CSE answers 5207
    (docs/bindings.md "Limits"); a CSE configured lower needs it lower.
    Connects lazily; :meth:`close` (or ``async with``) disconnects.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None, cafile: str | None = None,
                 ssl: _ssl.SSLContext | None = None, serialization: Serialization = "json",
                 max_in_flight: int = 16) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"'{url}' is not a WebSocket URL of a CSE, e.g. ws://127.0.0.1:8080")
        if serialization not in ("json", "cbor"):
            raise ValueError(f"serialization must be 'json' or 'cbor', not {serialization!r}")
        if cafile is not None and ssl is not None:
            raise ValueError("give cafile or ssl, not both")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.url = f"{parts.scheme}://{parts.netloc}{WS_PATH}"
        self.timeout = timeout
        self.token = token
        self.protocol = CBOR_PROTOCOL if serialization == "cbor" else JSON_PROTOCOL
        self._ssl = ssl if ssl is not None else (
            _ssl.create_default_context(cafile=cafile) if cafile is not None else None)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self._slots = asyncio.Semaphore(max_in_flight)  # our requests the CSE is handling at once
        self._on_request: OnRequest | None = None
        self._announce: Callable[[], Awaitable[None]] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._closing = False
        self.connects = 0  # connections opened (reconnects show here)

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self._ws is not None and not self._ws.closed

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        async with self._lock:
            if self._ws is not None and not self._ws.closed:
                return self._ws
            if self._session is None or self._session.closed:
                connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
                self._session = aiohttp.ClientSession(connector=connector)
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                ws = await self._session.ws_connect(self.url, protocols=(self.protocol,), headers=headers,
                                                    timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout),
                                                    max_msg_size=_MAX_MESSAGE, autoping=True, heartbeat=30.0)
            except aiohttp.WSServerHandshakeError as exc:
                raise TransportError(f"the CSE at {self.url} refused the WebSocket: {exc.status} {exc.message}") \
                    from None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise TransportError(f"cannot open a WebSocket to the CSE at {self.url}: {exc}") from None
            if ws.protocol != self.protocol:
                await ws.close()
                raise TransportError(f"the CSE at {self.url} did not accept the subprotocol {self.protocol}")
            self._ws = ws
            self.connects += 1
            self._reader = asyncio.get_running_loop().create_task(self._read(ws), name="ae-ws")
            return ws

    async def send(self, req: Request) -> Response:
        """Send ``req`` and wait for its answer; TransportError when none comes.
        With ``max_in_flight`` requests unanswered it first waits for one of
        them (each ends within ``timeout``), rather than have the CSE refuse it."""
        async with self._slots:
            return await self._exchange(req)

    async def _exchange(self, req: Request) -> Response:
        ws = await self._connect()
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[req.rqi] = future
        try:
            await self._send(ws, encode_request(req, self.protocol))
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise TransportError(f"no answer from the CSE at {self.url} within {self.timeout:g} s") from None
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise TransportError(f"WebSocket exchange with {self.url} failed: {exc}") from None
        finally:
            self._pending.pop(req.rqi, None)

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, out: bytes | str) -> None:
        async with self._send_lock:
            if ws.closed:
                raise ConnectionResetError("the WebSocket is closed")
            if isinstance(out, str):
                await ws.send_str(out)
            else:
                await ws.send_bytes(out)

    async def serve(self, on_request: OnRequest, announce: Callable[[], Awaitable[None]]) -> None:
        """Answer the CSE's requests with ``on_request``; ``announce`` (a
        request as the AE) is sent now and after every reconnection."""
        self._on_request = on_request
        self._announce = announce
        await announce()
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="ae-ws-keep")

    async def unserve(self) -> None:
        """Stop answering and reconnecting."""
        self._on_request = None
        self._announce = None
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None

    async def _keep(self) -> None:
        """Open the WebSocket again whenever it drops, and announce the AE on it."""
        delay = _RECONNECT_MIN_S
        while True:
            reader = self._reader
            if reader is not None:
                await asyncio.wait({reader})  # until the connection closes (its outcome is not ours)
            if self._closing:
                return
            try:
                await self._connect()
                if self._announce is not None:
                    await self._announce()
                delay = _RECONNECT_MIN_S
            except (TransportError, M2MError, OSError) as exc:
                log.info("WebSocket to %s: reconnecting in %.1f s (%s)", self.url, delay, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, _RECONNECT_MAX_S)
            except Exception as exc:  # an announcement refused: try again later, louder
                log.warning("WebSocket to %s: announcing the AE failed: %s", self.url, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, _RECONNECT_MAX_S)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                try:
                    kind, raw = kind_of(msg.data, self.protocol)
                except M2MError:
                    continue
                if kind == "response":
                    try:
                        resp = response_from_message(raw)
                    except M2MError:
                        continue
                    issued = access_token(raw)
                    if issued:  # the CSE assigned our AE-ID and a token for it: the next handshakes use it
                        self.token = issued
                    future = self._pending.get(resp.rqi)
                    if future is not None and not future.done():
                        future.set_result(resp)
                else:
                    task = asyncio.get_running_loop().create_task(self._answer(ws, raw))
                    self._answering.add(task)  # held until done (the loop keeps only weak references)
                    task.add_done_callback(self._answering.discard)
        finally:
            if self._ws is ws:
                self._ws = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(TransportError(f"the WebSocket to {self.url} was closed"))

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, raw: bytes) -> None:
        req: Request | None = None
        try:
            req = request_from_message(raw)
            handler = self._on_request
            resp = await handler(req) if handler else Response(rsc=5103, rqi=req.rqi)
        except M2MError as exc:
            resp = Response(rsc=int(exc.rsc), rqi=rqi_of(raw, JSON_PROTOCOL), pc={"m2m:dbg": exc.message})
        except Exception:  # a bug in the receiver: logged, answered 5000
            log.exception("failed to handle a request over the WebSocket")
            resp = Response(rsc=5000, rqi=req.rqi if req else "", pc={"m2m:dbg": "internal error (logged)"})
        out = encode_response(resp, self.protocol, to=req.fr if req else None, fr=req.to if req else "",
                              now_ts=format_ts(time.time()))
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self._send(ws, out)

    async def drop(self) -> None:
        """Close the WebSocket as a network failure would (the receiver reconnects)."""
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def close(self) -> None:
        """Disconnect and stop reconnecting (a later request connects again)."""
        self._closing = True
        try:
            await self.unserve()
            ws, self._ws = self._ws, None
            if ws is not None:
                await ws.close()
            if self._reader is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._reader
                self._reader = None
            if self._session is not None:
                await self._session.close()
                self._session = None
        finally:
            self._closing = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"WsTransport({self.url!r}, {self.protocol})"


class WsNotificationReceiver(ConnectionReceiver):
    """A :class:`NotificationServer` fed by the AE's :class:`WsTransport` (module docstring).

    ``aei`` gives the AE-ID (known after registration): start it after
    :meth:`AEClient.register`. ``announce`` is the request that tells the
    CSE which AE the connection is (sent again after each reconnection).
    """

    over = "a WebSocket"

    def __init__(self, transport: WsTransport, aei: Callable[[], str | None],
                 announce: Callable[[], Awaitable[Any]], *, verify: VerifyHook | None = None,
                 catch_all: NotificationCallback | None = None) -> None:
        super().__init__(aei, verify=verify, catch_all=catch_all)
        self.transport = transport
        self._announce = announce

    @property
    def url(self) -> str:
        """The AE-ID: the ``nu`` whose notifications come over the WebSocket."""
        return self.serving

    async def _attach(self, aei: str) -> None:
        async def announce() -> None:
            await self._announce()
        await self.transport.serve(self.on_request, announce)

    async def _detach(self) -> None:
        await self.transport.unserve()

"""The WebSocket binding (TS-0020; docs/bindings.md "WebSocket"): AEs on a connection of their own.

An AE opens a WebSocket on the CSE's HTTP port with ``GET /`` (TS-0020
6.2.2.1) and the subprotocol ``oneM2M.json`` or ``oneM2M.cbor``; a
handshake offering neither is refused with HTTP 400 (``X-M2M-RSC: 4000``
and an ``m2m:dbg``), as is one to another path. Each message then carries
one primitive (:mod:`cse.core.ws_wire`):

* a request primitive goes through the same ``handle`` as an HTTP request
  (rate limit, dispatcher) and its response primitive goes back on the
  connection, under the request's ``rqi``;
* the connection is associated with the AE-ID it speaks for (TS-0020 6.4):
  the AE it registers, or the AE whose AE-ID a request it sent names as
  originator and that was answered with success. From then on the CSE's
  requests for that AE -- notifications, verification requests, session
  establishment offers, relayed requests -- are sent on the connection:
  they wait in the AE's mailbox (:class:`cse.csf.polling.Mailboxes`) and
  the connection is its poller, so when the connection is gone they wait
  there (up to the sender's timeout, as for a polling AE) and go out when
  the AE connects again. No ``poa`` is needed;
* a response primitive from the AE answers the request of that ``rqi``.

Who may speak for whom (docs/security.md): the same rules as over HTTP.
With ``[auth] enabled`` the handshake must carry ``Authorization: Bearer
<token>`` and every request's ``fr`` must be allowed by it (else 4103, the
request unhandled); a registration with a CSE-assigned AE-ID lets the
connection act as the new AE-ID, and the answer carries that AE-ID's
token in ``atk`` (:func:`cse.core.ws_wire.encode_response`), as the
``X-Access-Token`` header does over HTTP. A
connection speaks for one AE only: once associated, a request from
another originator (but ``C``/``S``, a new registration) is refused 4103;
and an AE-ID held by a live connection cannot be claimed by another
connection without a token (4103) -- with one, the newer connection takes
the AE over and the older is closed.

Bounds (docs/bindings.md "WebSocket"): at most ``max_connections`` open
WebSockets (one more is refused with HTTP 503, 5207); a message longer than
``max_message`` is answered 4000 unread (twice as long closes the connection,
1009); at most ``max_pending`` requests of one connection are handled at
once (one more is answered 5207 at once); a connection whose peer stops
answering pings (every ``heartbeat_s``) is closed. A malformed primitive is
answered 4000 (4001 for a release version not supported) with an
``m2m:dbg``, never a crash; frames that break the WebSocket protocol itself
close the connection (1002/1007, RFC 6455).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from aiohttp import WSMsgType, web

from cse.core.errors import M2MError, NotAcceptable, OriginatorHasNoPrivilege
from cse.core.ids import normalize_originator
from cse.core.messages import Operation, Request, Response
from cse.core.timestamps import format_ts
from cse.core.ws_wire import (
    SUBPROTOCOLS,
    WS_PATH,
    choose_protocol,
    encode_request,
    encode_response,
    kind_of,
    request_from_message,
    response_from_message,
    rqi_of,
)

if TYPE_CHECKING:
    from cse.security.binding import BindingSecurity

__all__ = ["WsBinding", "WsSettings"]

log = logging.getLogger("cse.ws")

Handle = Callable[[Request], Awaitable[Response]]
#: The ri of the local AE whose AE-ID is given, or None.
ResolveAE = Callable[[str], Awaitable[str | None]]

class Mailboxes(Protocol):
    """The AEs' mailboxes (``cse.csf.polling.Mailboxes``, given by the composition
    root): where the CSE's requests for an AE wait for its connection."""

    def attach(self, ae: str) -> None: ...

    async def poll(self, ae: str, wait_s: float) -> Request | None: ...

    def answer(self, ae: str, rsp: Response) -> bool: ...

    async def give_back(self, ae: str, req: Request) -> None: ...


_POLL_S = 30.0  # one wait of a connection's poll of its AE's mailbox (repeated while open)
_AE_TY = 2


class WsSettings:
    """Bounds of the binding (``[websocket]``, docs/configuration.md)."""

    def __init__(self, *, max_connections: int = 256, max_message: int = 1024 * 1024, max_pending: int = 16,
                 heartbeat_s: float = 30.0) -> None:
        self.max_connections = max_connections
        self.max_message = max_message
        self.max_pending = max_pending
        self.heartbeat_s = heartbeat_s


class _Conn:
    """One open WebSocket: its subprotocol, credentials, AE and tasks."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str, authorization: str, peer: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.authorization = authorization
        self.peer = peer
        self.ae_id: str | None = None  # the AE-ID it speaks for (normalized), once associated
        self.ae_ri: str | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.pump: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()

    def adopt(self, token: str) -> None:
        """Act with ``token`` from now on (the one minted for the AE-ID it registered)."""
        self.authorization = f"Bearer {token}"

    def speak_for(self, ae_id: str, ri: str, pump: asyncio.Task[None]) -> None:
        """Associate with the AE ``ae_id`` (resource ``ri``), whose requests ``pump`` hands over."""
        self.ae_id, self.ae_ri, self.pump = ae_id, ri, pump


def _refusal(status: int, rsc: int, dbg: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"m2m:dbg": dbg}).encode(), content_type="application/json",
                        headers={"X-M2M-RSC": str(rsc), "X-M2M-RI": ""})


class WsBinding:
    """Serves ``handle`` to AEs over WebSockets upgraded from the HTTP server (module docstring)."""

    def __init__(self, handle: Handle, csi: str, boxes: Mailboxes, resolve_ae: ResolveAE, settings: WsSettings, *,
                 security: BindingSecurity | None = None, clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.csi = csi
        self.boxes = boxes
        self.resolve_ae = resolve_ae
        self.settings = settings
        self.security = security
        self.clock = clock
        self._conns: set[_Conn] = set()
        self._by_ae: dict[str, _Conn] = {}  # AE ri -> the connection that speaks for it
        self.refused = 0

    @property
    def open(self) -> int:
        """WebSockets open now."""
        return len(self._conns)

    @staticmethod
    def wants(request: web.BaseRequest) -> bool:
        """Whether ``request`` asks for a WebSocket (an ``Upgrade: websocket`` GET)."""
        return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"

    async def stop(self) -> None:
        """Close every WebSocket (1001, going away)."""
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"CSE stopping")

    # -- the handshake ---------------------------------------------------------
    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """Upgrade ``request`` (TS-0020 6.2) and serve the WebSocket until it closes."""
        if request.raw_path.partition("?")[0] != WS_PATH:
            return _refusal(400, 4000, f"a oneM2M WebSocket is opened with GET {WS_PATH} (TS-0020 6.2.2.1), "
                                       f"not {request.raw_path[:100]}")
        protocol = choose_protocol(request.headers.get("Sec-WebSocket-Protocol"))
        if protocol is None:
            offered = request.headers.get("Sec-WebSocket-Protocol", "")[:100] or "none"
            return _refusal(400, 4000, f"subprotocol {offered} is not supported: offer one of "
                                       f"{', '.join(SUBPROTOCOLS)} (TS-0020 6.2.2)")
        authorization = request.headers.get("Authorization", "")
        guard = self.security.guard if self.security is not None else None
        if guard is not None:
            try:
                guard.claims(authorization)  # refused before anything is held for it
            except M2MError as exc:
                return _refusal(403, int(exc.rsc), exc.message)
        if len(self._conns) >= self.settings.max_connections:
            self.refused += 1
            return _refusal(503, 5207, f"{len(self._conns)} WebSockets are open, the limit "
                                       "(websocket.max_connections); try again later")
        ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=2 * self.settings.max_message,
                                   heartbeat=self.settings.heartbeat_s, autoping=True)
        await ws.prepare(request)
        peer = str(request.remote or "unknown")
        conn = _Conn(ws, protocol, authorization, peer)
        self._conns.add(conn)
        log.info("WebSocket from %s opened (%s)", peer, protocol)
        try:
            await self._read(conn)
        finally:
            await self._closed(conn)
        return ws

    async def _read(self, conn: _Conn) -> None:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
                await self._on_message(conn, msg.data)
            elif msg.type == WSMsgType.ERROR:
                log.info("WebSocket from %s: %s", conn.peer, str(msg.data)[:200])
                return

    async def _closed(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn.pump is not None:
            conn.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.pump
        if conn.ae_ri is not None and self._by_ae.get(conn.ae_ri) is conn:
            del self._by_ae[conn.ae_ri]
        # requests still being handled finish (their answers are lost): a change is never cut short
        log.info("WebSocket from %s closed (AE %s)", conn.peer, (conn.ae_id or "-")[:100])

    # -- receiving -------------------------------------------------------------
    async def _on_message(self, conn: _Conn, data: bytes | str) -> None:
        size = len(data)
        if size > self.settings.max_message:
            await self._answer(conn, Response(rsc=4000, rqi=rqi_of(data[:65536], conn.protocol), pc={
                "m2m:dbg": f"message of {size} bytes exceeds the limit of {self.settings.max_message} bytes "
                           "(websocket.max_message)"}), None)
            return
        try:
            kind, raw = kind_of(data, conn.protocol)
        except M2MError as exc:
            await self._answer(conn, Response(rsc=int(exc.rsc), rqi="", pc={"m2m:dbg": exc.message}), None)
            return
        if kind == "response":
            self._on_response(conn, raw)
            return
        if len(conn.tasks) >= self.settings.max_pending:
            await self._answer(conn, Response(rsc=5207, rqi=rqi_of(raw[:65536], "oneM2M.json"), pc={
                "m2m:dbg": f"{len(conn.tasks)} requests of this WebSocket are in progress, the limit "
                           "(websocket.max_pending); wait for their answers"}), None)
            return
        task = asyncio.get_running_loop().create_task(self._serve(conn, raw), name="ws-req")
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    def _on_response(self, conn: _Conn, raw: bytes) -> None:
        try:
            resp = response_from_message(raw)
        except M2MError:
            log.info("WebSocket from %s: malformed response primitive ignored", conn.peer)
            return
        if conn.ae_ri is None or not self.boxes.answer(conn.ae_ri, resp):
            log.info("WebSocket from %s: answer %s matches no request waiting for it", conn.peer, resp.rqi[:80])

    async def _serve(self, conn: _Conn, raw: bytes) -> None:
        started = time.perf_counter()
        req: Request | None = None
        token: str | None = None
        try:
            req = request_from_message(raw)
            self._authorize(conn, req)
            resp = await self.handle(req)
            token = await self._associate(conn, req, resp)
        except M2MError as exc:
            resp = Response(rsc=int(exc.rsc), rqi=req.rqi if req else rqi_of(raw, "oneM2M.json"),
                            pc={"m2m:dbg": exc.message})
        except Exception:  # a bug: answered 5000 (logged), the connection goes on
            log.exception("WebSocket: failed to handle a request from %s", conn.peer)
            resp = Response(rsc=5000, rqi=req.rqi if req else "", pc={"m2m:dbg": "internal error (logged)"})
        await self._answer(conn, resp, req.fr if req else None, token)
        if log.isEnabledFor(logging.INFO):
            log.info("WS op %s %s from %s -> %d (%.1f ms)", int(req.op) if req else "-",
                     req.to[:200] if req else "-", (req.fr or "-")[:80] if req else conn.peer, resp.rsc,
                     (time.perf_counter() - started) * 1000)

    def _authorize(self, conn: _Conn, req: Request) -> None:
        """The token's rules and the connection's AE (module docstring); 4103 otherwise."""
        if self.security is not None:
            self.security.check({"Authorization": conn.authorization, "X-M2M-Origin": req.fr or ""})
        fr = normalize_originator(req.fr, self.csi) or "C"
        if fr in ("C", "S"):
            return
        if conn.ae_id is not None and fr != conn.ae_id:
            raise OriginatorHasNoPrivilege(f"this WebSocket speaks for AE {conn.ae_id[:80]}: a request from "
                                           f"{fr[:80]} needs a connection of its own (TS-0020 6.4)")
        if conn.ae_id is None and (self.security is None or self.security.guard is None):
            holder = next((c for c in self._by_ae.values() if c.ae_id == fr and c is not conn), None)
            if holder is not None:
                raise OriginatorHasNoPrivilege(f"AE {fr[:80]} is connected over another WebSocket: "
                                               "a connection without a token cannot take it over")

    async def _associate(self, conn: _Conn, req: Request, resp: Response) -> str | None:
        """Associate ``conn`` with the AE it registered or proved to be
        (module docstring); the token minted for a new AE-ID, if any."""
        if resp.rsc >= 4000:
            return None
        token: str | None = None
        if req.op == Operation.CREATE and req.ty == _AE_TY and resp.rsc == 2001 and isinstance(resp.pc, dict):
            ae = resp.pc.get("m2m:ae")
            if isinstance(ae, dict) and isinstance(ae.get("aei"), str) and isinstance(ae.get("ri"), str):
                if self.security is not None:  # the new AE-ID's token, as over HTTP (X-Access-Token)
                    token = next(iter(self.security.response_headers(req, resp).values()), None)
                    if token:
                        conn.adopt(token)
                await self._bind(conn, normalize_originator(ae["aei"], self.csi) or ae["aei"], ae["ri"])
            return token
        fr = normalize_originator(req.fr, self.csi) or "C"
        if conn.ae_id is not None or fr in ("C", "S") or fr.startswith("/"):
            return None
        ri = await self.resolve_ae(fr)
        if ri is not None:
            await self._bind(conn, fr, ri)
        return None

    async def _bind(self, conn: _Conn, ae_id: str, ri: str) -> None:
        old = self._by_ae.get(ri)
        if old is not None and old is not conn:  # a token proved it (else _authorize refused): take over
            self._by_ae.pop(ri, None)
            with contextlib.suppress(Exception):
                await old.ws.close(code=1008, message=b"the AE connected again")
        if conn.pump is not None:
            conn.pump.cancel()
        if conn.ae_ri is not None and self._by_ae.get(conn.ae_ri) is conn:
            del self._by_ae[conn.ae_ri]
        conn.speak_for(ae_id, ri, asyncio.get_running_loop().create_task(self._pump(conn, ri), name="ws-pump"))
        self._by_ae[ri] = conn
        self.boxes.attach(ri)
        log.info("WebSocket from %s speaks for AE %s", conn.peer, ae_id[:100])

    # -- sending ---------------------------------------------------------------
    async def _pump(self, conn: _Conn, ri: str) -> None:
        """Hand the AE's waiting requests to the connection, one at a time, while it is open."""
        while not conn.ws.closed:
            try:
                req = await self.boxes.poll(ri, _POLL_S)
            except NotAcceptable:  # its pollingChannel's pollers hold every turn: the next one, later
                await asyncio.sleep(1.0)
                continue
            if req is None:
                continue
            try:
                async with conn.send_lock:
                    await self._send(conn, encode_request(req, conn.protocol))
            except (ConnectionError, RuntimeError):
                await self.boxes.give_back(ri, req)  # for the next connection of the AE
                return
            except asyncio.CancelledError:
                await self.boxes.give_back(ri, req)
                raise

    async def _answer(self, conn: _Conn, resp: Response, to: str | None, token: str | None = None) -> None:
        out = encode_response(resp, conn.protocol, to=to, fr=self.csi, now_ts=format_ts(self.clock()), token=token)
        try:
            async with conn.send_lock:
                await self._send(conn, out)
        except (ConnectionError, RuntimeError) as exc:
            log.info("WebSocket from %s: answer %s lost: %s", conn.peer, resp.rqi[:80], exc)

    @staticmethod
    async def _send(conn: _Conn, out: bytes | str) -> None:
        if conn.ws.closed:
            raise ConnectionResetError("the WebSocket is closed")
        if isinstance(out, str):
            await conn.ws.send_str(out)
        else:
            await conn.ws.send_bytes(out)


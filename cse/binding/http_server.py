"""The aiohttp side of the HTTP binding: sockets in, the dispatcher, sockets out.

Uses aiohttp's low-level server (no router or middleware: every path is a
oneM2M target, and slash merging or normalisation must not happen). Bodies are
read with our own size limit so an oversized request is a oneM2M error, not a
bare HTTP 413. The mapping itself lives in :mod:`cse.binding.http_mapping`.

Connections are bounded (docs/security.md "Limits"): a request head must
be complete within ``limits.header_timeout_s`` of the connection opening or
of its first byte arriving (else the connection is closed), and at most
``limits.max_connections`` connections are open at once, at most
``limits.max_connections_per_peer`` from one address. A connection beyond
either is answered at once with HTTP 503, ``X-M2M-RSC: 5207`` and an
``m2m:dbg`` naming the limit, and closed: idle connections cannot use up
the process's file descriptors and lock everybody out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import http_exceptions, web, web_protocol

from cse.core.errors import BadRequest, M2MError, RequestTimeout
from cse.core.messages import Request, Response
from cse.core.timestamps import format_ts

from .http_mapping import request_from_http, response_media, response_to_http

if TYPE_CHECKING:
    from cse.observe.requestlog import RequestFeed
    from cse.security.binding import BindingSecurity

    from .ops_http import OpsEndpoints
    from .webui_http import WebConsole
    from .ws import WsBinding

__all__ = ["HttpServer", "ConnectionLimits"]

log = logging.getLogger("cse.http")

Handle = Callable[[Request], Awaitable[Response]]


#: File descriptors kept free when ``limits.max_connections`` is held below
#: the process's limit on open files: the store, outbound connections and
#: the listening socket (64), refused connections reading their 503
#: (:data:`REFUSED_LINGERING`), and a burst of connections accepted before
#: any of them is counted (asyncio accepts up to the listen backlog, 128, at once).
FD_RESERVE = 64 + 64 + 128

#: How long a refused connection may stay to read its 503 before it is
#: closed, and how many may do so at once (beyond, they are closed at once:
#: a flood of refused connections must not hold file descriptors either).
REFUSED_LINGER_S = 2.0
REFUSED_LINGERING = 64


class ConnectionLimits:
    """Open connections, in total and per peer address (module docstring)."""

    def __init__(self, total: int, per_peer: int, header_timeout: float) -> None:
        self.total = total
        self.per_peer = per_peer
        self.header_timeout = header_timeout
        self.open = 0
        self.by_peer: dict[str, int] = {}
        self.refused = 0
        self.lingering = 0  # refused connections still open to read their 503

    def admit(self, peer: str) -> str | None:
        """Count a new connection from ``peer``; the reason it is refused, if it is."""
        if self.open >= self.total:
            return f"the CSE has {self.open} connections open, its limit (limits.max_connections)"
        held = self.by_peer.get(peer, 0)
        if held >= self.per_peer:
            return f"{held} connections are open from {peer}, the limit per address (limits.max_connections_per_peer)"
        self.open += 1
        self.by_peer[peer] = held + 1
        return None

    def refuse(self) -> int:
        """Count a refused connection; how many so far."""
        self.refused += 1
        return self.refused

    def may_linger(self) -> bool:
        """Whether one more refused connection may stay open to read its 503
        (then it is counted until :meth:`lingered`)."""
        if self.lingering >= REFUSED_LINGERING:
            return False
        self.lingering += 1
        return True

    def lingered(self) -> None:
        """A refused connection that lingered has closed."""
        self.lingering -= 1

    def fit(self, room: int) -> bool:
        """Hold the total to ``room``; whether it had to be lowered."""
        if self.total <= room:
            return False
        self.total = room
        return True

    def release(self, peer: str) -> None:
        """A counted connection from ``peer`` has closed."""
        self.open -= 1
        left = self.by_peer.get(peer, 1) - 1
        if left > 0:
            self.by_peer[peer] = left
        else:
            self.by_peer.pop(peer, None)


def _refusal(reason: str) -> bytes:
    """A complete HTTP answer for a connection the CSE cannot take now."""
    body = json.dumps({"m2m:dbg": f"too many connections: {reason}; try again later"}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"X-M2M-RSC: 5207\r\nX-M2M-RI: \r\nRetry-After: 1\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


class _M2MRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering HTTP-level parse failures
    (unknown method, oversized or malformed request line or headers) as
    oneM2M errors with ``X-M2M-RSC`` and ``m2m:dbg`` instead of bare text,
    and holding the connection limits and the header timeout (module
    docstring)."""

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._peer: str | None = None  # set once the connection is counted
        self._refused = False  # answered 503 and never handed to aiohttp
        self._lingering: asyncio.Transport | None = None  # ... and still open to read it
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = _peer_host(transport)
        reason = self._limits.admit(peer)
        if reason is not None:
            self._refuse(transport, reason)
            return
        self._peer = peer
        super().connection_made(transport)
        self._arm_head_timer()

    def _refuse(self, transport: asyncio.BaseTransport, reason: str) -> None:
        """Answer 503 without reading a request, then close: at once when the
        peer closes, or after :data:`REFUSED_LINGER_S` (whatever it sent is
        read and dropped meanwhile, so the close does not reset the answer away)."""
        limits = self._limits
        refused = limits.refuse()
        if refused == 1 or refused % 1000 == 0:
            log.warning("connection from %s refused: %s (%d refused so far)", _peer_host(transport), reason, refused)
        self._refused = True
        tcp = transport if isinstance(transport, asyncio.Transport) else None
        if tcp is None:
            transport.close()
            return
        tcp.write(_refusal(reason))
        if not limits.may_linger():
            tcp.close()  # a flood: no linger (what the peer sent unread may reset the answer away)
            return
        self._lingering = tcp
        if tcp.can_write_eof():
            tcp.write_eof()
        self._loop.call_later(REFUSED_LINGER_S, tcp.close)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._limits.header_timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._awaiting_head:
            self.log_debug("no complete request head within %g s: closing", self._limits.header_timeout)
            self.force_close()

    def head_received(self) -> None:
        """A request head is complete and its handling starts."""
        self._awaiting_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def request_done(self) -> None:
        """Its handling is over: the next bytes begin another head."""
        self._awaiting_head = True

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped
        if data and self._awaiting_head:
            self._arm_head_timer()  # the first bytes of a head: the clock runs from here
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refused:
            if self._lingering is not None:
                self._lingering.close()  # the peer is done: so are we
            return
        super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            if self._lingering is not None:
                self._lingering = None
                self._limits.lingered()
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._peer is not None:
            self._limits.release(self._peer)
            self._peer = None
        super().connection_lost(exc)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        resp = super().handle_error(request, status, exc, message)
        rsc = 5000 if status >= 500 else 4000
        text = "internal server error" if rsc == 5000 else f"malformed HTTP request: {(message or '')[:200]}"
        body = json.dumps({"m2m:dbg": text}).encode()
        out = web.Response(status=resp.status, body=body, content_type="application/json",
                           headers={"X-M2M-RSC": str(rsc), "X-M2M-RI": ""})
        out.force_close()
        return out

    def log_exception(self, *args: object, **kw: object) -> None:
        """The client's malformed HTTP (a bad request line or header, a body
        that does not decode) is answered 4000 and is not our error: one line
        at info, no traceback, so garbage at the port cannot flood the log
        at ERROR. Everything else keeps aiohttp's logging."""
        exc = kw.get("exc_info")
        if isinstance(exc, (http_exceptions.HttpProcessingError, web_protocol.RequestPayloadError)):
            self.logger.info("malformed HTTP request: %s", str(exc).replace("\n", " ")[:200])
            return
        super().log_exception(*args, **kw)


class _M2MServer(web.Server):
    """A low-level server whose connections use :class:`_M2MRequestHandler`."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits

    def __call__(self) -> web_protocol.RequestHandler:
        return _M2MRequestHandler(self, limits=self.limits, loop=self._loop, **self._kwargs)


class HttpServer:
    """Serves the oneM2M HTTP binding on ``host:port`` for ``handle``."""

    def __init__(self, handle: Handle, host: str, port: int, *, max_body: int = 1024 * 1024,
                 clock: Callable[[], float] = time.time, ssl_context: ssl.SSLContext | None = None,
                 security: BindingSecurity | None = None, body_timeout: float = 30.0,
                 keepalive: float = 75.0, header_timeout: float = 10.0, max_connections: int = 512,
                 max_connections_per_peer: int = 128, ops: OpsEndpoints | None = None,
                 observe: Callable[[Request | None, Response, float], None] | None = None,
                 feed: RequestFeed | None = None, console: WebConsole | None = None,
                 websocket: WsBinding | None = None, reuse_port: bool = False) -> None:
        """``reuse_port``: several worker processes listen on one port, the
        kernel spreading connections among them (SO_REUSEPORT, docs/scaling.md).
        ``ops`` answers /health and /metrics (cse.binding.ops_http);
        ``observe(request, response, seconds)`` counts each oneM2M request
        answered (cse.observe.metrics), with None for one refused before it
        was a oneM2M request (a malformed header, an oversized body);
        ``feed`` receives the fields of each request log line (the web
        console's live log, cse.observe.requestlog); ``console`` answers
        ``/webui`` (cse.binding.webui_http); ``websocket`` serves the
        WebSocket upgrades (TS-0020, cse.binding.ws)."""
        self.handle = handle
        self.websocket = websocket
        self.reuse_port = reuse_port
        self.ops = ops
        self.feed = feed
        self.console = console
        self._ops_paths = ops.paths if ops is not None else frozenset()
        self.observe = observe
        self.limits = ConnectionLimits(max_connections, max_connections_per_peer, header_timeout)
        self.body_timeout = body_timeout  # a body that stops arriving: 4008, connection closed
        self.keepalive = keepalive  # idle keep-alive connections are closed after this long
        self.ssl_context = ssl_context  # HTTPS when set (docs/security.md)
        self.security = security  # bearer tokens and the token endpoint, when configured
        self.host = host
        self.port = port
        self.max_body = max_body
        self.clock = clock
        self._runner: web.ServerRunner | None = None
        self._log_info = log.isEnabledFor(logging.INFO)

    async def start(self) -> None:
        """Bind and serve; raises OSError when the port is taken."""
        self._fit_to_open_files()
        server = _M2MServer(self._serve, limits=self.limits, access_log=None, keepalive_timeout=self.keepalive)
        self._runner = web.ServerRunner(server, shutdown_timeout=10.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context,
                           reuse_port=self.reuse_port or None)
        await site.start()
        if self.port == 0:  # report the port the OS picked
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    def _fit_to_open_files(self) -> None:
        """Keep ``limits.max_connections`` below the process's limit on open
        files (less :data:`FD_RESERVE`): past it, accepting fails for
        everybody instead of a clean 503."""
        try:
            import resource
        except ImportError:  # not a POSIX system: nothing to read
            return
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        asked = self.limits.total
        if self.limits.fit(max(1, soft - FD_RESERVE)):
            log.warning("limits.max_connections %d lowered to %d: the process may open %d files",
                        asked, self.limits.total, soft)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close."""
        if self.feed is not None:
            self.feed.close()  # open live log streams end now, not at the shutdown timeout
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _fields(request: web.BaseRequest, resp: Response, took: float) -> dict[str, Any]:
        """The request line's fields (docs/configuration.md "[log]"): method,
        path with its query string, originator, rsc, time, request ID, and
        the dbg of an error; bounded, and the target still percent-encoded,
        so no newline reaches a log."""
        fields: dict[str, Any] = {"method": request.method, "target": request.raw_path[:300],
                                  "origin": request.headers.get("X-M2M-Origin", "-")[:80],
                                  "rsc": resp.rsc, "ms": round(took * 1000, 2),
                                  "rqi": request.headers.get("X-M2M-RI", "")[:80]}
        dbg = resp.pc.get("m2m:dbg") if resp.rsc >= 4000 and isinstance(resp.pc, dict) else None
        if isinstance(dbg, str):
            fields["dbg"] = dbg[:300]
        return fields

    @staticmethod
    def _log(fields: dict[str, Any]) -> None:
        """The request line at info; the same fields under ``request`` for the JSON format."""
        if "dbg" in fields:
            log.info("%s %s from %s -> %d (%.1f ms) dbg=%s", fields["method"], fields["target"], fields["origin"],
                     fields["rsc"], fields["ms"], json.dumps(fields["dbg"]), extra={"request": fields})
        else:
            log.info("%s %s from %s -> %d (%.1f ms)", fields["method"], fields["target"], fields["origin"],
                     fields["rsc"], fields["ms"], extra={"request": fields})

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise BadRequest(f"request body of {length} bytes exceeds the limit of {self.max_body} bytes")
        if not request.body_exists:
            return b""
        content = request.content
        if content.is_eof():            # all of it came with the headers (framed, and
            body = await content.read()  # decoded if compressed): no wait, so no timer
            if len(body) > self.max_body:
                raise BadRequest(f"request body exceeds the limit of {self.max_body} bytes")
            return body
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for chunk in request.content.iter_chunked(65536):
                    total += len(chunk)
                    if total > self.max_body:
                        raise BadRequest(f"request body exceeds the limit of {self.max_body} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestTimeout(f"request body not received within {self.body_timeout:g} s "
                                 f"({total} bytes arrived)") from None
        except web_protocol.RequestPayloadError as exc:  # e.g. a Content-Encoding that does not decode
            raise BadRequest(f"request body cannot be read: {str(exc).replace(chr(10), ' ')[:200]}") from None
        return b"".join(chunks)

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = request.protocol
        if isinstance(conn, _M2MRequestHandler):
            conn.head_received()
        try:
            return await self._answer(request)
        finally:
            if isinstance(conn, _M2MRequestHandler):
                conn.request_done()

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._ops_paths and (path := request.raw_path.partition("?")[0]) in self._ops_paths:
            assert self.ops is not None
            return await self.ops.answer(request, path)
        if self.console is not None and self.console.serves(request.raw_path):
            return await self.console.answer(request)
        if self.websocket is not None and self.websocket.wants(request):
            return await self.websocket.serve(request)  # its own checks: token, subprotocol, limits
        timed = self._log_info or self.observe is not None or self.feed is not None
        started = time.perf_counter() if timed else 0.0
        media: str | None = None  # the request body's serialization, once parsed
        extra: dict[str, str] = {}
        req: Request | None = None
        if self.security is not None and (answer := await self.security.intercept(request)) is not None:
            return answer  # the OAuth token endpoint
        close = False
        try:
            if self.security is not None:  # before the body is read: the token must allow X-M2M-Origin
                self.security.check(request.headers)
            try:
                body = await self._read_body(request)
            except M2MError:
                close = True  # the body is unread or unreadable: the connection cannot carry another request
                raise
            req = request_from_http(request.method, request.raw_path, request.headers, body)
            media = req.media
            resp = await self.handle(req)
            if self.security is not None:
                extra = self.security.response_headers(req, resp)
        except M2MError as exc:
            rvi = request.headers.get("X-M2M-RVI", "3")
            resp = Response(rsc=int(exc.rsc), rqi=request.headers.get("X-M2M-RI", "")[:256],
                            pc={"m2m:dbg": exc.message}, rvi=rvi if len(rvi) < 8 else "3")
            extra = getattr(exc, "http_headers", {})
        status, headers, payload = response_to_http(resp, format_ts(self.clock()),
                                                    response_media(request.headers, media))
        headers.update(extra)
        if timed:
            took = time.perf_counter() - started
            if self.observe is not None:
                self.observe(req, resp, took)
            # The feed's fields only when someone reads them: the console's live log
            # is usually closed, and building them is ~1% of a request's CPU.
            if self._log_info or (self.feed is not None and self.feed.readers):
                fields = self._fields(request, resp, took)
                if self._log_info:
                    self._log(fields)
                if self.feed is not None:
                    self.feed.publish(fields)
        out = web.Response(status=status, headers=headers, body=payload)
        if close:
            out.force_close()
        return out

"""The aiohttp side of the HTTP binding: sockets in, the dispatcher, sockets out.

Uses aiohttp's low-level server (no router or middleware: every path is a
oneM2M target, and slash merging or normalisation must not happen). Bodies are
read with our own size limit so an oversized request is a oneM2M error, not a
bare HTTP 413. The mapping itself lives in :mod:`cse.binding.http_mapping`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import http_exceptions, web, web_protocol

from cse.core.errors import BadRequest, M2MError, RequestTimeout
from cse.core.messages import Request, Response
from cse.core.timestamps import format_ts

from .http_mapping import request_from_http, response_to_http

if TYPE_CHECKING:
    from cse.security.binding import BindingSecurity

__all__ = ["HttpServer"]

log = logging.getLogger("cse.http")

Handle = Callable[[Request], Awaitable[Response]]


class _M2MRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering HTTP-level parse failures
    (unknown method, oversized or malformed request line or headers) as
    oneM2M errors with ``X-M2M-RSC`` and ``m2m:dbg`` instead of bare text."""

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

    def __call__(self) -> web_protocol.RequestHandler:
        return _M2MRequestHandler(self, loop=self._loop, **self._kwargs)


class HttpServer:
    """Serves the oneM2M HTTP binding on ``host:port`` for ``handle``."""

    def __init__(self, handle: Handle, host: str, port: int, *, max_body: int = 1024 * 1024,
                 clock: Callable[[], float] = time.time, ssl_context: ssl.SSLContext | None = None,
                 security: BindingSecurity | None = None, body_timeout: float = 30.0,
                 keepalive: float = 75.0) -> None:
        self.handle = handle
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
        server = _M2MServer(self._serve, access_log=None, keepalive_timeout=self.keepalive)
        self._runner = web.ServerRunner(server, shutdown_timeout=10.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context)
        await site.start()
        if self.port == 0:  # report the port the OS picked
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        started = time.perf_counter() if self._log_info else 0.0
        media = "application/json"
        extra: dict[str, str] = {}
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
        status, headers, payload = response_to_http(resp, format_ts(self.clock()), media)
        headers.update(extra)
        if self._log_info:
            log.info("%s %s from %s -> %d (%.1f ms)", request.method, request.path[:200],
                     request.headers.get("X-M2M-Origin", "-")[:80], resp.rsc,
                     (time.perf_counter() - started) * 1000)
        out = web.Response(status=status, headers=headers, body=payload)
        if close:
            out.force_close()
        return out

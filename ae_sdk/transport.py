"""How an :class:`~ae_sdk.client.AEClient` reaches its CSE (a seam: tests send in process, no sockets).

A :class:`Transport` has one job: ``send(Request) -> Response``. Two are provided:

* :class:`HttpTransport` -- the oneM2M HTTP binding (TS-0009; docs/onem2m.md "Headers")
  over one pooled aiohttp session, using the pure codec of
  :mod:`cse.core.http_wire`. Failures to get any answer raise
  :class:`~ae_sdk.errors.TransportError`; oneM2M error answers are returned
  as Responses (the client turns them into exceptions).
* :class:`InProcessTransport` -- calls a handler such as ``cse.app.CSE.handle``
  directly: no sockets, for tests. Contents go through the same JSON
  serialization as on the wire, so nothing is shared with the CSE by reference.

Example::

    async with HttpTransport("http://127.0.0.1:8080") as transport:
        client = AEClient(transport)
"""

from __future__ import annotations

import json
import ssl as _ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from cse.core.http_wire import decode_response, encode_request
from cse.core.messages import Request, Response
from cse.core.serialization import CBOR

from .errors import TransportError

__all__ = ["ACCESS_TOKEN_HEADER", "Handler", "HttpTransport", "InProcessTransport", "Serialization", "Transport"]

ACCESS_TOKEN_HEADER = "X-Access-Token"  # cse.security.guard.TOKEN_HEADER (the SDK imports only cse.core)

Handler = Callable[[Request], Awaitable[Response]]
Serialization = Literal["json", "cbor"]


@runtime_checkable
class Transport(Protocol):
    """Delivers one request primitive and returns the response primitive.

    Implementations may also offer ``async close()``; :class:`AEClient` calls
    it when it is closed.
    """

    async def send(self, req: Request) -> Response: ...


class HttpTransport:
    """The oneM2M HTTP binding towards the CSE at ``base_url``.

    ``base_url`` is the CSE's point of access (``http://host:port``, optionally
    with a path prefix); each request goes to ``base_url`` + the To path
    (``/cse-in/...``, ``/~/id-in/...``, ``/_/sp/...``). ``timeout`` bounds one
    whole exchange, in seconds. One aiohttp session is opened lazily and
    reused; :meth:`close` it (or use ``async with``).

    Security (docs/security.md): ``token`` is sent as ``Authorization:
    Bearer`` on every request; when the CSE answers a registration with a
    token for the new AE-ID (``X-Access-Token``) the transport uses that
    one from then on (``.token``). For ``https://`` CSEs, ``cafile`` (a
    PEM CA bundle) or a ready ``ssl`` context says whom to trust; without
    them the system trust store is used.

    ``serialization="cbor"`` sends contents as CBOR
    (``application/vnd.onem2m-res+cbor``) and asks for CBOR answers
    (docs/onem2m.md "Serializations"); Responses carry the same decoded
    values either way. A request whose ``body`` is already set (session
    MACs are computed over it) is sent as it is.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0, token: str | None = None,
                 cafile: str | None = None, ssl: _ssl.SSLContext | None = None,
                 serialization: Serialization = "json") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"'{base_url}' is not an http(s) URL of a CSE, e.g. http://127.0.0.1:8080")
        if cafile is not None and ssl is not None:
            raise ValueError("give cafile or ssl, not both")
        if serialization not in ("json", "cbor"):
            raise ValueError(f"serialization must be 'json' or 'cbor', not {serialization!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.serialization = serialization
        self.token = token
        self._ssl = ssl if ssl is not None else (
            _ssl.create_default_context(cafile=cafile) if cafile is not None else None)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  connector=connector)
        return self._session

    async def send(self, req: Request) -> Response:
        """Send ``req``; a oneM2M answer of any RSC is returned as a Response."""
        if self.serialization == "cbor" and not req.body:
            req = replace(req, media=CBOR)
        method, path, headers, body = encode_request(req)
        headers["Accept"] = CBOR if self.serialization == "cbor" else "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = URL(self.base_url + path, encoded=True)
        try:
            async with self._client().request(method, url, headers=headers, data=body or None) as resp:
                payload = await resp.read()
                issued = resp.headers.get(ACCESS_TOKEN_HEADER)
                if issued:  # the CSE assigned our AE-ID and a token for it
                    self.token = issued
                return decode_response(resp.status, resp.headers, payload, req.rqi)
        except TimeoutError:
            raise TransportError(
                f"no answer from the CSE at {self.base_url} within {self.timeout:g} s "
                f"({method} {path[:120]})") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TransportError(f"the TLS certificate of the CSE at {self.base_url} is not trusted: "
                                 f"{exc.certificate_error} (pass cafile= the CA that signed it)") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise TransportError(f"cannot connect to the CSE at {self.base_url}: {reason}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"HTTP exchange with the CSE at {self.base_url} failed "
                f"({method} {path[:120]}): {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        """Close pooled connections (the transport may be used again afterwards)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self.base_url!r}, timeout={self.timeout:g}, serialization={self.serialization!r})"


class InProcessTransport:
    """Calls ``handler`` (e.g. ``cse.handle`` of an in-process CSE) directly.

    The request's content is serialized exactly as :class:`HttpTransport` would
    send it (``Request.body`` is filled in too) and the response content is a
    fresh JSON copy, so callers and the CSE never share mutable objects.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def send(self, req: Request) -> Response:
        """Hand ``req`` to the handler and return its Response."""
        if req.pc is not None and not req.body:
            body = encode_request(req)[3]
            req = replace(req, body=body, pc=json.loads(body))
        resp = await self.handler(req)
        if resp.pc is not None:
            resp = replace(resp, pc=json.loads(json.dumps(resp.pc)))
        return resp

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

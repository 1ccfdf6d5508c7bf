"""Outbound HTTP: the CSE's client for notifications and forwarded requests.

One shared aiohttp session (connection pooling, keep-alive), a per-call
timeout, and the pure codec of :mod:`cse.core.http_wire`. Loopback and
configured peers only: the CSE never invents addresses, it uses the ``poa``
and notification URIs it was given.

Notification URLs (``exact``) go through a session of their own whose
resolver drops every address the outbound policy refuses
(docs/security.md "Outbound requests"): the notifier checks a URL's
addresses before it sends, and this keeps a name that answers differently
a moment later (DNS rebinding) from reaching a refused address anyway.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from cse.core.errors import BadRequest, NotListening, RequestTimeout, TargetNotReachable
from cse.core.http_wire import decode_response, encode_request
from cse.core.messages import Request, Response

if TYPE_CHECKING:
    from cse.security.tokens import TokenSource

__all__ = ["HttpOutbound", "PolicyResolver"]

AddressAllowed = Callable[[str], bool]


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver without the addresses ``allowed`` refuses (module docstring)."""

    def __init__(self, allowed: AddressAllowed, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if self._allowed(r["host"])]
        if found and not kept:
            raise OSError(f"every address of '{host[:100]}' is refused by the outbound policy")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class HttpOutbound:
    """:class:`cse.core.ports.Outbound` over aiohttp.

    ``ssl_context`` verifies ``https://`` peers (``[tls] ca``). ``tokens``
    gives the bearer token sent on CSE-to-CSE requests (``exact=False``:
    registration, forwarding; minted for ``peer``, the CSE it goes to) --
    never to notification URLs, which belong to AEs. A peer that refuses the token with a ``WWW-Authenticate: Bearer``
    challenge gets one retry with a fresh token (docs/security.md).
    """

    def __init__(self, *, limit: int = 256, ssl_context: ssl.SSLContext | None = None,
                 tokens: TokenSource | None = None, address_allowed: AddressAllowed | None = None) -> None:
        """``address_allowed`` (the outbound policy) filters what names
        resolve to for notification URLs."""
        self._limit = limit
        self._ssl = ssl_context
        self.tokens = tokens
        self._allowed = address_allowed
        self._session: aiohttp.ClientSession | None = None
        self._notify_session: aiohttp.ClientSession | None = None

    def _client(self, exact: bool = False) -> aiohttp.ClientSession:
        if exact and self._allowed is not None:
            if self._notify_session is None or self._notify_session.closed:
                self._notify_session = self._new_session(PolicyResolver(self._allowed))
            return self._notify_session
        if self._session is None or self._session.closed:
            self._session = self._new_session(None)
        return self._session

    def _new_session(self, resolver: AbstractResolver | None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            # No per-host cap: many AEs on one host (loopback) are normal; the
            # notifier's send slots and the forwarding path bound concurrency.
            connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl if self._ssl is not None else True,
                                           resolver=resolver),
            auto_decompress=False)

    async def close(self) -> None:
        """Close pooled connections."""
        for session in (self._session, self._notify_session):
            if session is not None:
                await session.close()
        self._session = self._notify_session = None

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response:
        method, path, headers, body = encode_request(req)
        parts = urlsplit(poa)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequest(f"'{poa[:100]}' is not an http(s) URL")
        if exact:
            url = poa
        else:
            url = poa.rstrip("/") + path
        try:
            for attempt in (1, 2):
                token = None if exact or self.tokens is None else await self.tokens.token(self._client(), peer)
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                async with self._client(exact).request(
                        method, url, headers=headers, data=body or None,
                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    payload = await resp.read()
                    refused = resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer")
                    if token is not None and refused and resp.status in (401, 403) and attempt == 1:
                        assert self.tokens is not None
                        self.tokens.invalidate(token)  # expired or revoked: one retry with a fresh one
                        continue
                    return decode_response(resp.status, resp.headers, payload, req.rqi)
            raise AssertionError("unreachable")
        except TimeoutError:
            raise RequestTimeout(f"no answer from {poa[:100]} within {timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: its TLS certificate is not trusted "
                                     f"({exc.certificate_error})") from None
        except aiohttp.ClientSSLError as exc:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: TLS handshake failed ({exc})"[:300]) from None
        except aiohttp.ClientConnectorError as exc:
            kind = NotListening if isinstance(exc.os_error, ConnectionRefusedError) else TargetNotReachable
            raise kind(f"cannot reach {poa[:100]}: {type(exc).__name__}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: {type(exc).__name__}") from None

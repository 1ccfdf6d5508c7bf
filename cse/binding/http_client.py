"""Outbound HTTP: the CSE's client for notifications and forwarded requests.

One shared aiohttp session (connection pooling, keep-alive), a per-call
timeout, and the pure codec of :mod:`cse.core.http_wire`. Loopback and
configured peers only: the CSE never invents addresses, it uses the ``poa``
and notification URIs it was given.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from cse.core.errors import BadRequest, RequestTimeout, TargetNotReachable
from cse.core.http_wire import decode_response, encode_request
from cse.core.messages import Request, Response

if TYPE_CHECKING:
    from cse.security.tokens import TokenSource

__all__ = ["HttpOutbound"]


class HttpOutbound:
    """:class:`cse.core.ports.Outbound` over aiohttp.

    ``ssl_context`` verifies ``https://`` peers (``[tls] ca``). ``tokens``
    gives the bearer token sent on CSE-to-CSE requests (``exact=False``:
    registration, forwarding; minted for ``peer``, the CSE it goes to) --
    never to notification URLs, which belong to AEs. A peer that refuses the token with a ``WWW-Authenticate: Bearer``
    challenge gets one retry with a fresh token (docs/security.md).
    """

    def __init__(self, *, limit: int = 256, ssl_context: ssl.SSLContext | None = None,
                 tokens: TokenSource | None = None) -> None:
        self._limit = limit
        self._ssl = ssl_context
        self.tokens = tokens
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # No per-host cap: many AEs on one host (loopback) are normal; the
                # notifier's worker pool and the forwarding path bound concurrency.
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl if self._ssl is not None else True),
                auto_decompress=False)
        return self._session

    async def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

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
                async with self._client().request(
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
        except (aiohttp.ClientError, OSError) as exc:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: {type(exc).__name__}") from None

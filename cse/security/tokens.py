"""The bearer token this CSE presents on CSE-to-CSE requests (registration, forwarding).

Three sources, chosen by :func:`outbound_tokens` from the configuration:

* :class:`ClientCredentials` (``[auth_client] token_url, client_id,
  client_secret_file``): the OAuth 2.0 client credentials grant
  (RFC 6749 4.4) against the issuer's token endpoint; the token is cached until
  shortly before it expires and fetched again after the peer refused it.
* :class:`StaticToken` (``[auth_client] token_file``): a token minted by an
  operator (``python -m ae_sdk token``).
* :class:`SelfMinted` (no ``[auth_client]`` but a signing key in
  ``[auth]``): the issuer CSE signs its own token, allowing its CSE-ID and
  everything below it, one per peer with that peer's CSE-ID as audience
  (a token is good only at the CSE it was issued for, docs/security.md);
  peers trust it through ``auth.verify_keys``.

The tokens of the first two are what their issuer made them: a token from a
CSE's token endpoint is for that CSE.

Concurrent requests share one fetch (a lock), and a fetch is plain async
HTTP on the outbound session: nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote_plus

import aiohttp

from cse.core.errors import TargetNotReachable

from .guard import Guard
from .settings import AuthClientConfig

__all__ = ["ClientCredentials", "SelfMinted", "StaticToken", "TokenSource", "outbound_tokens"]

_MARGIN = 0.1  # refresh when less than this fraction of the lifetime is left (at least 5 s)


class TokenSource(Protocol):
    """Gives the current token; :meth:`invalidate` after a peer refused it."""

    async def token(self, session: aiohttp.ClientSession, peer: str | None = None) -> str:
        """The token to send to ``peer`` (a CSE-ID; None: not known)."""
        ...

    def invalidate(self, token: str) -> None: ...


class StaticToken:
    """A fixed token read from a file at start-up."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, session: aiohttp.ClientSession, peer: str | None = None) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        """Nothing to do: the file is all there is."""


class _Cached:
    """Tokens with their expiry, one per key (:meth:`_key`), renewed by
    :meth:`_fetch` when near their end or invalidated."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._tokens: dict[str | None, tuple[str, float]] = {}  # key -> (token, renew at)
        self._lock = asyncio.Lock()

    def _key(self, peer: str | None) -> str | None:
        return None  # one token for every peer

    async def token(self, session: aiohttp.ClientSession, peer: str | None = None) -> str:
        key = self._key(peer)
        held = self._tokens.get(key)
        if held is not None and self.clock() < held[1]:
            return held[0]
        async with self._lock:
            held = self._tokens.get(key)
            if held is None or self.clock() >= held[1]:
                token, life = await self._fetch(session, key)
                held = (token, self.clock() + life - max(5.0, life * _MARGIN))
                self._tokens[key] = held
            return held[0]

    def invalidate(self, token: str) -> None:
        for key, held in list(self._tokens.items()):
            if held[0] == token:
                del self._tokens[key]

    async def _fetch(self, session: aiohttp.ClientSession, key: str | None) -> tuple[str, float]:
        raise NotImplementedError


class SelfMinted(_Cached):
    """Tokens signed with this CSE's own key, for its CSE-ID and the entities
    below it, each for the one peer CSE it is sent to (its audience)."""

    def __init__(self, guard: Guard, csi: str) -> None:
        super().__init__(guard.clock)
        self.guard = guard
        self.csi = csi

    def _key(self, peer: str | None) -> str | None:
        return peer

    async def _fetch(self, session: aiohttp.ClientSession, key: str | None) -> tuple[str, float]:
        return self.guard.mint(self.csi, [self.csi, self.csi + "/*"], audience=key)


class ClientCredentials(_Cached):
    """OAuth 2.0 client credentials grant (RFC 6749 4.4) against ``token_url``."""

    def __init__(self, token_url: str, client_id: str, secret: str, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.token_url = token_url
        self.client_id = client_id
        self._basic = "Basic " + base64.b64encode(
            f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode("ascii")
        self.timeout = timeout
        self.fetches = 0

    async def _fetch(self, session: aiohttp.ClientSession, key: str | None) -> tuple[str, float]:
        self.fetches += 1
        where = f"cannot obtain an access token from {self.token_url[:100]}"
        try:
            async with session.post(self.token_url, data={"grant_type": "client_credentials"},
                                    headers={"Authorization": self._basic, "Accept": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
                status = resp.status
        except TimeoutError:
            raise TargetNotReachable(f"{where}: no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TargetNotReachable(f"{where}: its TLS certificate is not trusted ({exc.certificate_error})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TargetNotReachable(f"{where}: {type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise TargetNotReachable(f"{where}: HTTP {status} without an OAuth JSON answer")
        if status != 200:
            why = str(doc.get("error_description", ""))[:120]
            raise TargetNotReachable(f"{where}: {doc.get('error', status)} ({why})")
        token, life = doc.get("access_token"), doc.get("expires_in", 300)
        if not isinstance(token, str) or str(doc.get("token_type", "")).lower() != "bearer":
            raise TargetNotReachable(f"{where}: the answer holds no bearer access_token")
        if isinstance(life, bool) or not isinstance(life, (int, float)) or life <= 0:
            life = 300
        return token, float(life)


def outbound_tokens(client: AuthClientConfig | None, guard: Guard | None, csi: str) -> TokenSource | None:
    """The token source the configuration asks for (see module docstring), or None."""
    if client is not None and client.token_file is not None:
        with open(client.token_file, encoding="utf-8") as f:
            return StaticToken(f.read().strip())
    if client is not None:
        assert client.token_url and client.client_id and client.client_secret_file
        with open(client.client_secret_file, encoding="utf-8") as f:
            return ClientCredentials(client.token_url, client.client_id, f.read().strip())
    if guard is not None and guard.signing is not None:
        return SelfMinted(guard, csi)
    return None

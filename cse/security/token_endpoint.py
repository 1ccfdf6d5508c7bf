"""``POST /oauth2/token``: the OAuth 2.0 client credentials grant (RFC 6749 section 4.4).

Servers obtain their bearer tokens this way (docs/security.md): a peer CSE
(or any configured client) authenticates with its client id and secret and
gets a short-lived JWT whose ``orig`` claim is what ``[[auth.clients]]``
allows it (by default its own CSE-ID and everything below it, so a CSE can
forward the requests of its AEs). Only clients listed in the configuration
exist; secrets are stored as SHA-256 and compared in constant time.

Client authentication: HTTP Basic (``client_id:client_secret``, each
form-urlencoded, RFC 6749 2.3.1) or ``client_id``/``client_secret`` in the
form body -- not both. Answers are OAuth JSON (``access_token``,
``token_type``, ``expires_in``; or ``error``), never cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from urllib.parse import parse_qs, unquote_plus

from aiohttp import web

from .guard import Guard
from .settings import OAuthClient

__all__ = ["TOKEN_PATH", "TokenEndpoint"]

log = logging.getLogger("cse.security")

TOKEN_PATH = "/oauth2/token"
_MAX_FORM = 8192
_DUMMY = "0" * 64


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _answer(status: int, doc: dict[str, object], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc).encode(), content_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})


class TokenEndpoint:
    """Issues tokens to the configured clients, signed by ``guard``'s key."""

    def __init__(self, guard: Guard, clients: tuple[OAuthClient, ...]) -> None:
        self.guard = guard
        self.clients = {c.id: c for c in clients}

    async def handle(self, request: web.BaseRequest) -> web.Response:
        """Answer one request to :data:`TOKEN_PATH`."""
        try:
            if request.method != "POST":
                raise _OAuthError(405, "invalid_request", "use POST")
            media = (request.content_type or "").lower()
            if media != "application/x-www-form-urlencoded":
                raise _OAuthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
            if request.content_length is not None and request.content_length > _MAX_FORM:
                raise _OAuthError(400, "invalid_request", "request body too large")
            raw = await request.content.read(_MAX_FORM + 1)
            if len(raw) > _MAX_FORM:
                raise _OAuthError(400, "invalid_request", "request body too large")
            try:
                form = parse_qs(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False)
            except (UnicodeDecodeError, ValueError):
                raise _OAuthError(400, "invalid_request", "the body is not a valid form") from None
            if any(len(v) > 1 for v in form.values()):
                raise _OAuthError(400, "invalid_request", "a parameter was given more than once")
            params = {k: v[0] for k, v in form.items()}
            grant = params.get("grant_type")
            if grant != "client_credentials":
                raise _OAuthError(400, "unsupported_grant_type" if grant else "invalid_request",
                                  "only grant_type=client_credentials is supported")
            client = self._authenticate(request.headers.get("Authorization"), params)
            token, life = self.guard.mint(client.id, client.originators)
            log.info("issued an access token to client %s for %d s", client.id, life)
            return _answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": life})
        except _OAuthError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="oneM2M"'} if exc.status == 401 else None
            return _answer(exc.status, {"error": exc.error, "error_description": exc.description}, headers)

    def _authenticate(self, authorization: str | None, params: dict[str, str]) -> OAuthClient:
        in_body = "client_id" in params or "client_secret" in params
        if authorization:
            if in_body:
                raise _OAuthError(400, "invalid_request", "client credentials given twice (header and body)")
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise _OAuthError(401, "invalid_client", "client authentication must be HTTP Basic")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _OAuthError(401, "invalid_client", "malformed Basic credentials") from None
            cid, sep, secret = decoded.partition(":")
            if not sep:
                raise _OAuthError(401, "invalid_client", "malformed Basic credentials")
            cid, secret = unquote_plus(cid), unquote_plus(secret)
        else:
            cid, secret = params.get("client_id", ""), params.get("client_secret", "")
        if not cid or not secret:
            raise _OAuthError(401, "invalid_client", "client authentication required")
        client = self.clients.get(cid)
        digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        ok = hmac.compare_digest(digest, client.secret_sha256 if client else _DUMMY)
        if client is None or not ok:
            log.warning("token request with bad credentials for client %r", cid[:80])
            raise _OAuthError(401, "invalid_client", "unknown client or wrong secret")
        return client

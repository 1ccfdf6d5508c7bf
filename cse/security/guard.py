"""Who may claim which ``X-M2M-Origin``: bearer tokens checked before the pipeline runs.

Without authentication anyone can send ``X-M2M-Origin: CAdmin``. With
``[auth] enabled = true`` every request must carry ``Authorization: Bearer
<JWT>`` whose ``orig`` claim lists the originators the holder may use
(``*`` is a wildcard: ``/id-cse2/*``). The check is done on the headers,
before the body is read, so an unauthenticated client costs little.

Token claims (what :meth:`Guard.mint` writes and :meth:`Guard.check` reads):
``iss``, ``sub`` (who the token was issued to), ``aud``, ``iat``/``nbf``/``exp``,
``jti`` and ``orig`` (a list of originator patterns).

Audience: a token is for the CSE it was issued for. Every token a CSE
mints names that CSE's CSE-ID in ``aud`` (next to ``[auth] audience``, the
service provider's audience, when configured): its own for the tokens its
AEs and token-endpoint clients use here, the peer's for the tokens it sends
to a peer. A token whose ``aud`` names CSE-IDs (values starting with ``/``)
is refused by every CSE it does not name; a token naming none (minted by an
operator for a whole service provider) is good wherever its issuer is
trusted.

A CSE-ID originator (``/id-cse2``, the identity that registers and changes
a ``<remoteCSE>``) must be proven by a token issued to that CSE: ``sub`` is
that CSE-ID, whatever wildcards ``orig`` holds (a transit CSE allowed
``/*`` forwards others' requests; it does not become them).

Registration with a CSE-assigned AE-ID (``X-M2M-Origin: C`` or ``S``; an
empty origin counts as ``C``): the token must allow that literal ``C`` (or
``S``); such a token is a *registration credential* and lets its holder do
nothing else, because a bare ``C`` originator owns nothing. When the
registration succeeds the CSE returns a token for the new AE-ID in the
``X-Access-Token`` response header (when it can sign), which the AE uses
from then on.

A failure is :class:`AuthFailure`: oneM2M 4103 (HTTP 403) with a
``WWW-Authenticate: Bearer`` challenge and an ``m2m:dbg`` naming the
problem (missing, expired, bad signature, originator not allowed, ...).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from cse.core import jwt
from cse.core.errors import OriginatorHasNoPrivilege
from cse.core.ids import normalize_originator
from cse.core.messages import Operation, Request, Response

from .keys import load_signing_key, load_verify_key
from .settings import AuthConfig

__all__ = ["TOKEN_HEADER", "AuthFailure", "Guard", "originator_allowed"]

TOKEN_HEADER = "X-Access-Token"
_REALM = "oneM2M"


class AuthFailure(OriginatorHasNoPrivilege):
    """4103 with a bearer challenge; ``http_headers`` go onto the HTTP answer."""

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        challenge = f'Bearer realm="{_REALM}"'
        if error is not None:
            desc = message.replace('"', "'").replace("\\", "/")[:200]
            challenge += f', error="{error}", error_description="{desc}"'
        self.http_headers = {"WWW-Authenticate": challenge}


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def originator_allowed(originator: str, patterns: Sequence[str]) -> bool:
    """Whether ``originator`` matches one of ``patterns`` (``*`` matches any run of characters)."""
    return any(_pattern(p).fullmatch(originator) is not None for p in patterns)


class Guard:
    """Verifies bearer tokens against the configured keys, and mints tokens when it has a signing key."""

    def __init__(self, auth: AuthConfig, csi: str, *, clock: Callable[[], float] = time.time) -> None:
        self.auth = auth
        self.csi = csi
        self.clock = clock
        self.signing: jwt.SigningKey | None = None
        if auth.signing_key is not None:
            self.signing = load_signing_key(pem_file=auth.signing_key)
        elif auth.hs256_secret_file is not None:
            self.signing = load_signing_key(secret_file=auth.hs256_secret_file)
        keys = [load_verify_key(p) for p in auth.verify_keys]
        if self.signing is not None:
            keys.append(self.signing.public())
        self.keys: tuple[jwt.VerifyKey, ...] = tuple(keys)

    # -- inbound --------------------------------------------------------------------
    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the bearer token in an ``Authorization`` header value."""
        if not authorization:
            raise AuthFailure("access token missing: authentication is on at this CSE, send "
                              "'Authorization: Bearer <token>'", error=None)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailure(f"Authorization scheme '{scheme[:20]}' is not accepted: send 'Bearer <token>'",
                              error="invalid_request")
        try:
            claims = jwt.verify(token.strip(), self.keys, issuers=self.auth.trusted_issuers,
                                audience=self.auth.audience, leeway=self.auth.leeway_s, now=self.clock())
        except jwt.TokenError as exc:
            raise AuthFailure(f"access token refused: {exc}") from None
        orig = claims.get("orig")
        if not isinstance(orig, list) or not orig or not all(isinstance(o, str) for o in orig):
            raise AuthFailure("access token refused: it names no originator (claim 'orig' must be a list of strings)")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        cses = [a for a in auds if isinstance(a, str) and a.startswith("/") and a != self.auth.audience]
        if cses and self.csi not in cses:
            raise AuthFailure(f"access token refused: it was issued for {', '.join(cses)[:120]} "
                              f"(claim 'aud'), not for this CSE {self.csi}")
        return claims

    def check(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """Verify the token of a request and that it allows the request's ``X-M2M-Origin``."""
        claims = self.claims(headers.get("Authorization"))
        fr = headers.get("X-M2M-Origin") or ""
        effective = normalize_originator(fr, self.csi) or "C"
        if not originator_allowed(effective, claims["orig"]):
            allowed = ", ".join(claims["orig"])[:200]
            raise AuthFailure(f"originator '{fr[:80] or '(empty: C)'}' is not allowed by the access token "
                              f"(issued to {str(claims.get('sub', '?'))[:80]}; it allows: {allowed})",
                              error="insufficient_scope")
        if effective.startswith("/") and "/" not in effective[1:] and claims.get("sub") != effective:
            raise AuthFailure(f"originator '{effective[:80]}' is a CSE-ID: it needs a token issued to that CSE "
                              f"(claim 'sub' {effective[:80]}), this one was issued to "
                              f"{str(claims.get('sub', '?'))[:80]}", error="insufficient_scope")
        return claims

    # -- minting --------------------------------------------------------------------
    def mint(self, subject: str, originators: Sequence[str], lifetime: float | None = None, *,
             audience: str | None = None) -> tuple[str, int]:
        """A token for ``subject`` allowing ``originators`` at the CSE ``audience``
        (default: this one); returns it and its lifetime in seconds."""
        if self.signing is None:
            raise RuntimeError("this CSE has no signing key (auth.signing_key or auth.hs256_secret_file)")
        now = int(self.clock())
        life = int(lifetime if lifetime is not None else self.auth.token_lifetime_s)
        claims: dict[str, Any] = {"iss": self.auth.issuer, "sub": subject, "iat": now, "nbf": now,
                                  "exp": now + life, "jti": secrets.token_urlsafe(12), "orig": list(originators)}
        cse = audience or self.csi
        claims["aud"] = [self.auth.audience, cse] if self.auth.audience is not None else cse
        return jwt.encode(claims, self.signing), life

    def registration_headers(self, req: Request, resp: Response) -> dict[str, str]:
        """After an AE registered with a CSE-assigned AE-ID: a token for that AE-ID."""
        if (self.signing is None or req.op != Operation.CREATE or req.ty != 2 or resp.rsc != 2001
                or (req.fr or "C") not in ("C", "S") or not isinstance(resp.pc, dict)):
            return {}
        aei = (resp.pc.get("m2m:ae") or {}).get("aei") if isinstance(resp.pc.get("m2m:ae"), dict) else None
        if not isinstance(aei, str) or not aei:
            return {}
        return {TOKEN_HEADER: self.mint(aei, [aei])[0]}

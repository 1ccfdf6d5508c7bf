"""Minting bearer tokens for a CSE with authentication on (docs/security.md).

An operator who holds the CSE's signing key (``[auth] signing_key``, EC
P-256, or ``hs256_secret_file``) gives each AE a token naming the
originators it may use; ``python -m ae_sdk token`` is the command-line
form. The token is a JWT with the claims the CSE checks: ``orig`` (the
allowed ``X-M2M-Origin`` values, ``*`` a wildcard), ``sub``, ``iat``,
``nbf``, ``exp`` and, when given, ``iss`` and ``aud``.

Example::

    token = mint_token(["Cmyapp"], key_file="issuer-key.pem", audience="m2m.example")
    client = AEClient("https://127.0.0.1:8443", token=token, cafile="ca.pem")
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from cse.core import jwt

__all__ = ["mint_token"]


def mint_token(originators: Sequence[str], *, key_file: str | None = None, secret_file: str | None = None,
               subject: str | None = None, issuer: str | None = None, audience: str | Sequence[str] | None = None,
               lifetime: float = 3600.0, now: float | None = None) -> str:
    """A signed token allowing ``originators``: ES256 with ``key_file`` (PEM), HS256 with ``secret_file``."""
    if not originators:
        raise ValueError("a token needs at least one originator")
    if (key_file is None) == (secret_file is None):
        raise ValueError("give key_file (ES256, PEM EC P-256 private key) or secret_file (HS256), not both")
    if lifetime <= 0:
        raise ValueError(f"lifetime must be positive, got {lifetime}")
    with open(key_file if key_file is not None else str(secret_file), "rb") as f:  # cse.core.jwt reads no file
        data = f.read()
    key = jwt.es256_private_key(data) if key_file is not None else jwt.hs256_key(data.strip())
    t = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": subject or originators[0], "iat": t, "nbf": t, "exp": t + int(lifetime),
                              "jti": secrets.token_urlsafe(12), "orig": list(originators)}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:  # one value, or several (a service provider's and a CSE-ID, docs/security.md)
        claims["aud"] = audience if isinstance(audience, str) else list(audience)
    return jwt.encode(claims, key)

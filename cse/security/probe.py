"""How a local tool reaches a CSE that has TLS and authentication on (used by ``cse.cluster``).

A launcher polling a CSE as its admin needs to trust the CSE's certificate
(``[tls] ca``) and, with ``[auth] enabled``, an admin token; it mints one
with the CSE's own signing key, read from the same configuration file, so
nothing extra has to be configured. Works on the raw TOML dictionary
because the launcher does not build a CSE.
"""

from __future__ import annotations

import ssl
from typing import Any

from cse.core import jwt

from .keys import load_signing_key

__all__ = ["admin_access"]


def admin_access(raw: dict[str, Any], lifetime: float = 600.0, now: float | None = None
                 ) -> tuple[ssl.SSLContext | None, dict[str, str]]:
    """(SSL context or None, extra headers) for admin requests to the CSE configured by ``raw``."""
    import time

    tls = raw.get("tls", {})
    ctx = ssl.create_default_context(cafile=tls["ca"]) if tls.get("ca") else None
    auth = raw.get("auth", {})
    if not auth.get("enabled"):
        return ctx, {}
    cse = raw.get("cse", {})
    csi, admin = str(cse.get("cse_id", "/id-in")), str(cse.get("admin", "CAdmin"))
    if auth.get("signing_key"):
        key = load_signing_key(pem_file=auth["signing_key"])
    elif auth.get("hs256_secret_file"):
        key = load_signing_key(secret_file=auth["hs256_secret_file"])
    else:
        raise RuntimeError(f"{csi} has authentication on but no signing key: cannot mint an admin token for it")
    t = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": auth.get("issuer", csi), "sub": admin, "iat": t, "nbf": t,
                              "exp": t + int(lifetime), "orig": [admin]}
    claims["aud"] = [auth["audience"], csi] if auth.get("audience") else csi  # for this CSE only
    return ctx, {"Authorization": f"Bearer {jwt.encode(claims, key)}"}

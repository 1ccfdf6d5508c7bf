"""The ``[tls]``, ``[auth]`` and ``[auth_client]`` configuration sections.

Kept out of :mod:`cse.config` so that module only gains a few lines; the
rules are the same (unknown keys and wrong types are errors naming the key,
see ``_SECTIONS`` there). Files named here are read once at start-up, here,
so a missing or unreadable certificate, key or secret is a configuration
error naming the key instead of a failure on the first request. Relative
paths are relative to the working directory, like ``store.path``.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import Any

from cse.core import jwt

__all__ = [
    "SECURITY_SECTIONS",
    "AuthClientConfig",
    "AuthConfig",
    "OAuthClient",
    "SecurityConfigError",
    "TlsConfig",
    "hash_secret",
    "parse_security",
]

SECURITY_SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "tls": {"cert": (str,), "key": (str,), "ca": (str,)},
    "auth": {"enabled": (bool,), "issuer": (str,), "audience": (str,), "trusted_issuers": (list,),
             "signing_key": (str,), "hs256_secret_file": (str,), "verify_keys": (list,),
             "token_lifetime_s": (int, float), "leeway_s": (int, float), "clients": (list,)},
    "auth_client": {"token_url": (str,), "client_id": (str,), "client_secret_file": (str,), "token_file": (str,)},
}
_CLIENT_KEYS = {"id": (str,), "secret_sha256": (str,), "secret_sha256_file": (str,), "originators": (list,)}
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SecurityConfigError(ValueError):
    """A problem in a security section; :mod:`cse.config` turns it into ``ConfigError``."""


def hash_secret(secret: str | bytes) -> str:
    """The hex SHA-256 of a client secret, as ``secret_sha256`` stores it.

    A plain hash is enough because client secrets are random (``secrets.token_urlsafe``),
    not passwords: nothing to brute-force from a dictionary.
    """
    return hashlib.sha256(secret.encode("utf-8") if isinstance(secret, str) else secret).hexdigest()


@dataclass(frozen=True)
class TlsConfig:
    """``cert`` + ``key``: serve HTTPS. ``ca``: trust anchors for outbound HTTPS."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    @property
    def serving(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class OAuthClient:
    """One client of the token endpoint: its id, the SHA-256 of its secret and what it may claim."""

    id: str
    secret_sha256: str
    originators: tuple[str, ...]


@dataclass(frozen=True)
class AuthConfig:
    """Bearer-token authentication of requests (off by default)."""

    enabled: bool = False
    issuer: str = ""
    audience: str | None = None
    trusted_issuers: tuple[str, ...] | None = None
    signing_key: str | None = None
    hs256_secret_file: str | None = None
    verify_keys: tuple[str, ...] = ()
    token_lifetime_s: float = 3600.0
    leeway_s: float = 30.0
    clients: tuple[OAuthClient, ...] = ()

    @property
    def can_sign(self) -> bool:
        return self.signing_key is not None or self.hs256_secret_file is not None


@dataclass(frozen=True)
class AuthClientConfig:
    """How this CSE gets the token it presents to its peers (client credentials, or a static token)."""

    token_url: str | None = None
    client_id: str | None = None
    client_secret_file: str | None = None
    token_file: str | None = None


def _strings(name: str, value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v for v in value):
        raise SecurityConfigError(f"'{name}' must be a list of non-empty strings")
    return tuple(value)


def _readable(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SecurityConfigError(f"'{name}': cannot read '{path}': {exc.strerror or exc}") from None


def _tls(raw: dict[str, Any]) -> TlsConfig:
    tls = TlsConfig(**raw)
    if (tls.cert is None) != (tls.key is None):
        raise SecurityConfigError("'tls.cert' and 'tls.key' go together: give both to serve HTTPS")
    if tls.cert is not None and tls.key is not None:
        _readable("tls.cert", tls.cert)
        _readable("tls.key", tls.key)
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
        except (ssl.SSLError, ValueError) as exc:
            raise SecurityConfigError(f"'tls.cert'/'tls.key' do not form a usable certificate and key: {exc}") from None
    if tls.ca is not None:
        _readable("tls.ca", tls.ca)
        try:
            ssl.create_default_context(cafile=tls.ca)
        except ssl.SSLError as exc:
            raise SecurityConfigError(f"'tls.ca' is not a PEM CA bundle: {exc}") from None
    return tls


def _client(i: int, raw: Any) -> OAuthClient:
    where = f"auth.clients[{i}]"
    if not isinstance(raw, dict):
        raise SecurityConfigError(f"'{where}' must be a table with id and secret_sha256")
    for key, value in raw.items():
        if key not in _CLIENT_KEYS:
            raise SecurityConfigError(f"unknown key '{where}.{key}' (known: {', '.join(sorted(_CLIENT_KEYS))})")
        if not isinstance(value, _CLIENT_KEYS[key]) or isinstance(value, bool):
            raise SecurityConfigError(f"'{where}.{key}' must be {_CLIENT_KEYS[key][0].__name__}")
    cid = raw.get("id")
    if not cid or ":" in cid:
        raise SecurityConfigError(f"'{where}.id' is required and may not contain ':'")
    if ("secret_sha256" in raw) == ("secret_sha256_file" in raw):
        raise SecurityConfigError(f"'{where}' needs exactly one of secret_sha256, secret_sha256_file")
    digest = raw.get("secret_sha256")
    if digest is None:
        digest = _readable(f"{where}.secret_sha256_file", raw["secret_sha256_file"]).decode("ascii", "replace").strip()
    digest = digest.lower()
    if not _HEX64.fullmatch(digest):
        raise SecurityConfigError(f"'{where}' secret hash must be 64 hex digits (SHA-256 of the secret)")
    default = (cid, cid.rstrip("/") + "/*") if cid.startswith("/") else (cid,)
    originators = _strings(f"{where}.originators", raw["originators"]) if "originators" in raw else default
    return OAuthClient(cid, digest, originators)


def _auth(raw: dict[str, Any], cse_id: str) -> AuthConfig:
    values = dict(raw)
    values.setdefault("issuer", cse_id)
    for name in ("trusted_issuers", "verify_keys"):
        if name in values:
            values[name] = _strings(f"auth.{name}", values[name])
    values["clients"] = tuple(_client(i, c) for i, c in enumerate(values.get("clients", [])))
    auth = AuthConfig(**values)
    if auth.signing_key is not None and auth.hs256_secret_file is not None:
        raise SecurityConfigError("give 'auth.signing_key' (ES256) or 'auth.hs256_secret_file' (HS256), not both")
    try:
        if auth.signing_key is not None:
            jwt.es256_private_key(_readable("auth.signing_key", auth.signing_key))
        if auth.hs256_secret_file is not None:
            jwt.hs256_key(_readable("auth.hs256_secret_file", auth.hs256_secret_file).strip())
    except SecurityConfigError:
        raise
    except ValueError as exc:
        which = "auth.signing_key" if auth.signing_key is not None else "auth.hs256_secret_file"
        raise SecurityConfigError(f"'{which}': {exc}") from None
    for i, path in enumerate(auth.verify_keys):
        data = _readable(f"auth.verify_keys[{i}]", path)
        try:
            jwt.es256_public_key(data)
        except ValueError as exc:
            raise SecurityConfigError(f"'auth.verify_keys[{i}]' ({path}): {exc}") from None
    if auth.enabled and not auth.can_sign and not auth.verify_keys:
        raise SecurityConfigError("'auth.enabled' needs a key to verify tokens: "
                                  "auth.signing_key, auth.hs256_secret_file or auth.verify_keys")
    if auth.clients and not auth.can_sign:
        raise SecurityConfigError("'auth.clients' (the token endpoint) needs auth.signing_key or "
                                  "auth.hs256_secret_file")
    if not auth.token_lifetime_s > 0:
        raise SecurityConfigError(f"'auth.token_lifetime_s' must be positive, got {auth.token_lifetime_s}")
    if not 0 <= auth.leeway_s <= 300:
        raise SecurityConfigError(f"'auth.leeway_s' must be 0..300, got {auth.leeway_s}")
    return auth


def _auth_client(raw: dict[str, Any]) -> AuthClientConfig:
    cfg = AuthClientConfig(**raw)
    oauth = (cfg.token_url, cfg.client_id, cfg.client_secret_file)
    if cfg.token_file is not None:
        if any(v is not None for v in oauth):
            raise SecurityConfigError("[auth_client]: give token_file or token_url + client_id + "
                                      "client_secret_file, not both")
        if not _readable("auth_client.token_file", cfg.token_file).strip():
            raise SecurityConfigError("'auth_client.token_file' is empty")
        return cfg
    for name, value in zip(("token_url", "client_id", "client_secret_file"), oauth, strict=True):
        if value is None:
            raise SecurityConfigError(f"'auth_client.{name}' is required in [auth_client] (or give token_file)")
    assert cfg.token_url is not None and cfg.client_secret_file is not None
    if not cfg.token_url.startswith(("http://", "https://")):
        raise SecurityConfigError(f"'auth_client.token_url' must be an http(s) URL, got '{cfg.token_url}'")
    if not _readable("auth_client.client_secret_file", cfg.client_secret_file).strip():
        raise SecurityConfigError("'auth_client.client_secret_file' is empty")
    return cfg


def parse_security(raw: dict[str, Any], cse_id: str) -> tuple[TlsConfig, AuthConfig, AuthClientConfig | None]:
    """The three sections from the raw TOML (already type-checked key by key)."""
    try:
        tls = _tls(dict(raw.get("tls", {})))
        auth = _auth(dict(raw.get("auth", {})), cse_id)
        client = _auth_client(dict(raw["auth_client"])) if "auth_client" in raw else None
    except TypeError as exc:  # a dataclass refused a value: should not happen after the type checks
        raise SecurityConfigError(str(exc)) from None
    return tls, auth, client

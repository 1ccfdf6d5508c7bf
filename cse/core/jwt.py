"""Compact JWS / JWT (RFC 7515, 7519) with ES256 and HS256, and nothing else.

Why our own: the project depends on ``cryptography`` already and a JWT
library would be one more dependency for about 150 lines. Why in
``cse.core``: the CSE's binding verifies tokens and the AE SDK mints them
(``python -m ae_sdk token``), and the SDK may import only ``cse.core``.

Rules that keep the classic JWT mistakes out:

* The algorithm is chosen by the *key*, never by the token: an HS256 token
  is only checked against an HMAC secret, an ES256 token only against an EC
  P-256 public key. ``alg: none`` and every other algorithm are rejected.
* ES256 signatures are the 64-byte raw ``r || s`` form of RFC 7518 3.4
  (DER signatures are rejected); HMAC tags are compared in constant time.
* ``exp`` and ``nbf`` are checked with a small leeway; ``iss`` and ``aud``
  only when the verifier is configured with them, but then strictly.

Every failure raises :class:`TokenError` whose message says what was wrong
(it ends up in ``m2m:dbg``), and never contains the token or key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

__all__ = ["TokenError", "SigningKey", "VerifyKey", "hs256_key", "es256_private_key", "es256_public_key",
           "load_signing_key", "load_verify_key", "encode", "decode", "verify", "b64u", "unb64u"]

_MAX_TOKEN = 8192


class TokenError(ValueError):
    """A token that must not be accepted; the message names the problem."""


def b64u(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str, what: str = "value") -> bytes:
    """Strict base64url without padding; :class:`TokenError` if malformed."""
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise TokenError(f"malformed token: the {what} is not base64url")
    if len(text) % 4 == 1:
        raise TokenError(f"malformed token: the {what} has an impossible base64url length")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(f"malformed token: the {what} is not base64url") from None


@dataclass(frozen=True)
class SigningKey:
    """A key that can sign: ``alg`` is ``HS256`` (``secret``) or ``ES256`` (``private``)."""

    alg: str
    secret: bytes | None = None
    private: ec.EllipticCurvePrivateKey | None = None

    def public(self) -> "VerifyKey":
        """The matching verification key."""
        if self.alg == "HS256":
            return VerifyKey("HS256", secret=self.secret)
        assert self.private is not None
        return VerifyKey("ES256", public=self.private.public_key())


@dataclass(frozen=True)
class VerifyKey:
    """A key that can verify: ``HS256`` (``secret``) or ``ES256`` (``public``)."""

    alg: str
    secret: bytes | None = None
    public: ec.EllipticCurvePublicKey | None = None


def hs256_key(secret: bytes) -> SigningKey:
    """An HMAC-SHA256 key; at least 32 bytes, since a short secret is guessable offline."""
    if len(secret) < 32:
        raise ValueError(f"an HS256 secret must be at least 32 bytes, got {len(secret)}")
    return SigningKey("HS256", secret=secret)


def es256_private_key(pem: bytes) -> SigningKey:
    """An ES256 signing key from a PEM EC P-256 private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not an EC P-256 private key (ES256 needs curve P-256)")
    return SigningKey("ES256", private=key)


def es256_public_key(pem: bytes) -> VerifyKey:
    """An ES256 verification key from a PEM EC P-256 public key (or certificate)."""
    if b"BEGIN CERTIFICATE" in pem:
        from cryptography import x509
        key: Any = x509.load_pem_x509_certificate(pem).public_key()
    elif b"PRIVATE KEY" in pem:
        return es256_private_key(pem).public()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an EC P-256 public key (ES256 needs curve P-256)")
    return VerifyKey("ES256", public=key)


def load_signing_key(*, pem_file: str | None = None, secret_file: str | None = None) -> SigningKey:
    """Read a signing key from a PEM file (ES256) or a secret file (HS256, raw bytes, stripped)."""
    if pem_file is not None:
        with open(pem_file, "rb") as f:
            return es256_private_key(f.read())
    if secret_file is not None:
        with open(secret_file, "rb") as f:
            return hs256_key(f.read().strip())
    raise ValueError("give a PEM key file or a secret file")


def load_verify_key(pem_file: str) -> VerifyKey:
    """Read an ES256 verification key (public key, certificate or private key PEM)."""
    with open(pem_file, "rb") as f:
        return es256_public_key(f.read())


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def encode(claims: Mapping[str, Any], key: SigningKey, *, kid: str | None = None) -> str:
    """Sign ``claims`` into a compact JWS."""
    header: dict[str, Any] = {"alg": key.alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = f"{b64u(_json(header))}.{b64u(_json(claims))}".encode("ascii")
    if key.alg == "HS256":
        assert key.secret is not None
        sig = hmac.new(key.secret, signing_input, hashlib.sha256).digest()
    else:
        assert key.private is not None
        r, s = decode_dss_signature(key.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input.decode("ascii") + "." + b64u(sig)


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and parse without verifying: (header, claims, signing input, signature)."""
    if len(token) > _MAX_TOKEN:
        raise TokenError(f"malformed token: longer than {_MAX_TOKEN} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(f"malformed token: a JWS has 3 dot-separated parts, this one has {len(parts)}")
    out: list[dict[str, Any]] = []
    for text, what in ((parts[0], "header"), (parts[1], "payload")):
        raw = unb64u(text, what)
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise TokenError(f"malformed token: the {what} is not JSON") from None
        if not isinstance(value, dict):
            raise TokenError(f"malformed token: the {what} is not a JSON object")
        out.append(value)
    sig = unb64u(parts[2], "signature") if parts[2] else b""
    return out[0], out[1], f"{parts[0]}.{parts[1]}".encode("ascii"), sig


def _signature_ok(key: VerifyKey, signing_input: bytes, sig: bytes) -> bool:
    if key.alg == "HS256":
        assert key.secret is not None
        return hmac.compare_digest(hmac.new(key.secret, signing_input, hashlib.sha256).digest(), sig)
    assert key.public is not None
    if len(sig) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"token claim '{name}' must be a number (seconds since 1970)")
    return float(value)


def verify(token: str, keys: Sequence[VerifyKey], *, issuers: Iterable[str] | None = None,
           audience: str | None = None, leeway: float = 30.0, now: float | None = None,
           require_exp: bool = True) -> dict[str, Any]:
    """The claims of ``token`` once its signature and time/issuer/audience claims check out.

    ``keys``: any one that verifies will do, but only keys of the token's
    ``alg``. ``issuers``: when given, ``iss`` must be one of them.
    ``audience``: when given, ``aud`` (a string or a list) must contain it.
    """
    header, claims, signing_input, sig = decode(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise TokenError("unsigned token (alg none) refused")
    if alg not in ("HS256", "ES256"):
        raise TokenError(f"token algorithm {alg[:20]} is not accepted (ES256 and HS256 are)")
    if "crit" in header:
        raise TokenError("token header has critical extensions ('crit') this CSE does not understand")
    usable = [k for k in keys if k.alg == alg]
    if not usable:
        raise TokenError(f"token algorithm {alg} is not accepted here (no {alg} key configured)")
    if not sig:
        raise TokenError("token has an empty signature")
    if not any(_signature_ok(k, signing_input, sig) for k in usable):
        raise TokenError("token signature is not valid (wrong key or altered token)")
    t = time.time() if now is None else now
    exp, nbf = _number(claims, "exp"), _number(claims, "nbf")
    if exp is None and require_exp:
        raise TokenError("token has no expiry ('exp' claim)")
    if exp is not None and t > exp + leeway:
        raise TokenError(f"token expired {int(t - exp)} s ago")
    if nbf is not None and t < nbf - leeway:
        raise TokenError(f"token not valid yet (nbf is {int(nbf - t)} s in the future)")
    if issuers is not None:
        allowed = list(issuers)
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in allowed:
            raise TokenError(f"token issuer {str(iss)[:80]!r} is not trusted here")
    if audience is not None:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in auds:
            raise TokenError(f"token audience {str(aud)[:80]!r} does not include {audience!r}")
    return claims

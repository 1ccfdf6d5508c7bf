"""Bearer tokens: compact JWS / JWT (RFC 7515, 7519) with ES256 and HS256, on PyJWT.

Why PyJWT: signing and signature checks (ECDSA in the raw ``r || s`` form
of RFC 7518 3.4, HMAC compared in constant time), key preparation and the
algorithm allow-list come from a maintained, audited implementation; this
module only decides which key may verify which token and turns every
refusal into a message that says what was wrong. Why in ``cse.core``: the
CSE's binding verifies tokens and the AE SDK mints them (``python -m
ae_sdk token``), and the SDK may import only ``cse.core``.

Rules that keep the classic JWT mistakes out:

* The algorithm is chosen by the *key*, never by the token: each key is
  handed to PyJWT with its own algorithm as the only one allowed, so an
  HS256 token is only checked against an HMAC secret and an ES256 token
  only against an EC P-256 public key (no algorithm confusion, such as an
  HS256 tag made with a public key as the secret). ``alg: none`` and every
  other algorithm are refused before PyJWT sees the token.
* The token's shape (three parts, strict base64url, JSON objects) is
  checked first, here, so that a malformed token gets a precise message.
* Claims are checked here once the signature is good: ``exp`` and ``nbf``
  against the caller's ``now`` with a leeway, ``iss`` and ``aud`` only when
  the verifier is configured with them, but then strictly. PyJWT's JWS
  layer is used, not its JWT layer, whose claim checks read the wall clock
  (even with its time checks switched off).

This module reads no file and no clock: keys come in as bytes or key
objects (``cse.security.keys`` reads key files), the time as ``now``.

Every failure raises :class:`TokenError` whose message says what was wrong
(it ends up in ``m2m:dbg``), and never contains the token or key material.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "SigningKey",
    "TokenError",
    "VerifyKey",
    "b64u",
    "decode",
    "encode",
    "es256_private_key",
    "es256_public_key",
    "hs256_key",
    "unb64u",
    "verify",
]

_MAX_TOKEN = 8192
_ALGORITHMS = ("ES256", "HS256")
# PyJWT's JWS layer: signatures and the algorithm allow-list, without its JWT claim checks (they read the clock)
_JWS = pyjwt.PyJWS(algorithms=list(_ALGORITHMS))
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class TokenError(ValueError):
    """A token that must not be accepted; the message names the problem."""


def b64u(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str, what: str = "value") -> bytes:
    """Strict base64url without padding; :class:`TokenError` if malformed.

    Strict (alphabet, length, canonical trailing bits) because a lenient
    decoder lets one token have many spellings.
    """
    if not text or any(c not in _B64URL for c in text):
        raise TokenError(f"malformed token: the {what} is not base64url")
    if len(text) % 4 == 1:
        raise TokenError(f"malformed token: the {what} has an impossible base64url length")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(f"malformed token: the {what} is not base64url") from None
    if b64u(data) != text:
        raise TokenError(f"malformed token: the {what} is not canonical base64url")
    return data


@dataclass(frozen=True)
class SigningKey:
    """A key that can sign: ``alg`` is ``HS256`` (``secret``) or ``ES256`` (``private``)."""

    alg: str
    secret: bytes | None = None
    private: ec.EllipticCurvePrivateKey | None = None

    def public(self) -> VerifyKey:
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
    """An HMAC-SHA256 key; at least 32 bytes, since a short secret is guessable offline.

    A PEM/DER key or certificate is refused as a secret (PyJWT's check):
    public keys are not secret, so a token "signed" with one proves nothing.
    """
    if len(secret) < 32:
        raise ValueError(f"an HS256 secret must be at least 32 bytes, got {len(secret)}")
    try:
        _JWS.get_algorithm_by_name("HS256").prepare_key(secret)
    except pyjwt.InvalidKeyError:
        raise ValueError("an HS256 secret must not be a public/private key or certificate") from None
    return SigningKey("HS256", secret=secret)


def es256_private_key(pem: bytes) -> SigningKey:
    """An ES256 signing key from a PEM EC P-256 private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not an EC P-256 private key (ES256 needs curve P-256)")
    return SigningKey("ES256", private=key)


def es256_public_key(pem: bytes) -> VerifyKey:
    """An ES256 verification key from a PEM EC P-256 public key (or certificate, or private key)."""
    key: object
    if b"BEGIN CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    elif b"PRIVATE KEY" in pem:
        return es256_private_key(pem).public()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an EC P-256 public key (ES256 needs curve P-256)")
    return VerifyKey("ES256", public=key)


def encode(claims: Mapping[str, Any], key: SigningKey, *, kid: str | None = None) -> str:
    """Sign ``claims`` into a compact JWS (header ``alg`` from the key, ``typ: JWT``)."""
    material = key.secret if key.alg == "HS256" else key.private
    assert material is not None
    return pyjwt.encode(dict(claims), material, algorithm=key.alg, headers={"kid": kid} if kid else None)


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and parse without verifying: (header, claims, signing input, signature).

    Also the shape check :func:`verify` does first, for precise messages.
    """
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
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise TokenError(f"malformed token: the {what} is not JSON") from None
        if not isinstance(value, dict):
            raise TokenError(f"malformed token: the {what} is not a JSON object")
        out.append(value)
    sig = unb64u(parts[2], "signature") if parts[2] else b""
    return out[0], out[1], f"{parts[0]}.{parts[1]}".encode("ascii"), sig


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"token claim '{name}' must be a number (seconds since 1970)")
    return float(value)


def _check_claims(claims: Mapping[str, Any], *, issuers: Iterable[str] | None, audience: str | None,
                  leeway: float, now: float, require_exp: bool) -> None:
    """``exp``, ``nbf``, ``iss``, ``aud`` (RFC 7519 4.1.1-4.1.5) of a token whose signature checked out.

    Here rather than PyJWT's claim checks, which read the wall clock even
    with their time checks off: ``now`` is the caller's.
    """
    exp, nbf = _number(claims, "exp"), _number(claims, "nbf")
    if exp is None and require_exp:
        raise TokenError("token has no expiry ('exp' claim)")
    if exp is not None and now > exp + leeway:
        raise TokenError(f"token expired {int(now - exp)} s ago")
    if nbf is not None and now < nbf - leeway:
        raise TokenError(f"token not valid yet (nbf is {int(nbf - now)} s in the future)")
    if issuers is not None:
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in set(issuers):
            raise TokenError(f"token issuer {str(iss)[:80]!r} is not trusted here")
    if audience is not None:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in auds:
            raise TokenError(f"token audience {str(aud)[:80]!r} does not include {audience!r}")


def verify(token: str, keys: Sequence[VerifyKey], *, issuers: Iterable[str] | None = None,
           audience: str | None = None, leeway: float = 30.0, now: float,
           require_exp: bool = True) -> dict[str, Any]:
    """The claims of ``token`` once its signature and time/issuer/audience claims check out.

    ``keys``: any one that verifies will do, but only keys of the token's
    ``alg``. ``issuers``: when given, ``iss`` must be one of them.
    ``audience``: when given, ``aud`` (a string or a list) must contain it.
    ``now``: the time (seconds since 1970) ``exp`` and ``nbf`` are held to.
    """
    header, claims, _, sig = decode(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise TokenError("unsigned token (alg none) refused")
    if alg not in _ALGORITHMS:
        raise TokenError(f"token algorithm {alg[:20]} is not accepted (ES256 and HS256 are)")
    if "crit" in header:
        raise TokenError("token header has critical extensions ('crit') this CSE does not understand")
    usable = [k for k in keys if k.alg == alg]
    if not usable:
        raise TokenError(f"token algorithm {alg} is not accepted here (no {alg} key configured)")
    if not sig:
        raise TokenError("token has an empty signature")
    for key in usable:
        material = key.secret if alg == "HS256" else key.public
        assert material is not None
        try:
            _JWS.decode_complete(token, material, algorithms=[key.alg])
        except pyjwt.InvalidSignatureError:
            continue  # maybe another key of this algorithm signed it
        except pyjwt.DecodeError as exc:
            raise TokenError(f"malformed token: {str(exc)[:120]}") from None
        except pyjwt.InvalidTokenError as exc:
            raise TokenError(f"token refused: {str(exc)[:120]}") from None
        except pyjwt.InvalidKeyError as exc:
            raise TokenError(f"token cannot be checked with the configured {alg} key ({str(exc)[:80]})") from None
        _check_claims(claims, issuers=issuers, audience=audience, leeway=leeway, now=now, require_exp=require_exp)
        return claims
    raise TokenError("token signature is not valid (wrong key or altered token)")

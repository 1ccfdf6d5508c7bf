"""Session cryptography of M2M service sessions (docs/sessions.md "Request MAC" and
"End-to-end encryption") for AEs: a thin, stricter layer over
:mod:`cse.core.session_crypto`, the pure functions the CSE verifies with.

The bytes come from ``cse.core.session_crypto`` (one implementation for both
sides, so an SDK MAC always verifies at a CSE). What this module adds:

* the SDK's names (:func:`mac`, :func:`verify_mac`, :func:`sp_relative_to`,
  :func:`b64u_encode`, :func:`b64u_decode`, :func:`is_token`, :func:`token_kid`);
* strict input checks with messages that say what is wrong (key lengths,
  empty or multi-line canonical fields, non-canonical base64url, truncated
  tokens, a ``kid`` that does not match);
* :class:`SessionCryptoError`, an :class:`~ae_sdk.errors.SDKError` (and a
  ``ValueError``): every ``cse.core.session_crypto.SessionCryptoError`` is
  translated into it, so SDK callers catch one type.

From the 32-byte session key ``K`` (``scr.key``, base64url) two keys are derived
with HKDF-SHA256 (salt = the sid's UTF-8 bytes, length 32): ``K_mac`` (info
``m2m-session-mac``) signs session-based requests, ``X-M2M-SMAC`` = base64url
(no ``=``) of HMAC-SHA256(K_mac, canonical) over six lines joined by ``\\n``
(operation, SP-relative To without query, sid, rqi, ``X-M2M-OT`` as sent,
lowercase hex SHA-256 of the body bytes); ``K_enc`` (info ``m2m-session-enc``)
encrypts content with AES-256-GCM, a 96-bit random nonce and AAD = the sid,
as ``sess1.<kid>.<nonce>.<ciphertext+tag>``.

Example::

    k_mac, k_enc = derive_keys(key, sid)
    text = canonical("UPDATE", "/id-cse2/cse2/Cae2/container1", sid, "rq1",
                     "20250101T000000", b'{"m2m:cnt":{"lbl":["x"]}}')
    headers = {"X-M2M-SID": sid, "X-M2M-SMAC": mac(k_mac, text)}
    token = encrypt(k_enc, sid, kid, "21.5")     # 'sess1.<kid>.<nonce>.<ct>'
    assert decrypt(k_enc, sid, token) == b"21.5"
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from cse.core import session_crypto as core

from .errors import SDKError

__all__ = [
    "INFO_ENC",
    "INFO_MAC",
    "OPERATIONS",
    "TOKEN_PREFIX",
    "SessionCryptoError",
    "b64u_decode",
    "b64u_encode",
    "canonical",
    "decrypt",
    "derive_keys",
    "encrypt",
    "is_token",
    "mac",
    "sp_relative_to",
    "token_kid",
    "verify_mac",
]

INFO_MAC = b"m2m-session-mac"
INFO_ENC = b"m2m-session-enc"
TOKEN_PREFIX = "sess1"
OPERATIONS = ("CREATE", "RETRIEVE", "UPDATE", "DELETE")
KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
_B64U = re.compile(r"[A-Za-z0-9_-]*")


class SessionCryptoError(SDKError, ValueError):
    """A session key, MAC input or encrypted value is unusable (tampered,
    wrong key or sid, malformed). The message says which."""


@contextmanager
def _translated(prefix: str = "") -> Iterator[None]:
    """Re-raise the core's SessionCryptoError as the SDK's."""
    try:
        yield
    except core.SessionCryptoError as exc:
        raise SessionCryptoError(f"{prefix}{exc}") from None


# -- base64url without padding ----------------------------------------------------------

def b64u_encode(data: bytes) -> str:
    """base64url of ``data`` without ``=`` padding (RFC 4648 section 5)."""
    return core.b64u(bytes(data))


def b64u_decode(text: str, *, what: str = "value") -> bytes:
    """Bytes of unpadded base64url ``text``.

    Strict: padding (``=``), standard-alphabet characters (``+``, ``/``),
    whitespace, impossible lengths and non-canonical forms (stray bits in the
    last character) raise :class:`SessionCryptoError` naming ``what``.
    """
    if not isinstance(text, str):
        raise SessionCryptoError(f"{what} must be a base64url string, not {type(text).__name__}")
    if "=" in text:
        raise SessionCryptoError(f"{what} is padded with '=': session values are base64url without padding")
    if not _B64U.fullmatch(text):
        raise SessionCryptoError(f"{what} is not base64url (only A-Z a-z 0-9 - _ are allowed)")
    if len(text) % 4 == 1:
        raise SessionCryptoError(f"{what} has an impossible base64url length ({len(text)} characters)")
    with _translated(f"{what}: "):
        raw = core.unb64u(text)
    if core.b64u(raw) != text:  # unused trailing bits set: another string for the same bytes
        raise SessionCryptoError(f"{what} is not canonical base64url (its last character has stray bits)")
    return raw


def _key(key: bytes, what: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise SessionCryptoError(f"{what} must be bytes, not {type(key).__name__}")
    if len(key) != KEY_LEN:
        raise SessionCryptoError(f"{what} must be {KEY_LEN} bytes, not {len(key)}")
    return bytes(key)


def _sid(sid: str) -> str:
    if not isinstance(sid, str) or not sid:
        raise SessionCryptoError("the session ID (sid) must be a non-empty string")
    return sid


# -- keys ---------------------------------------------------------------------------------

def derive_keys(key: bytes, sid: str) -> tuple[bytes, bytes]:
    """``(K_mac, K_enc)`` from the session key (32 bytes) and the sid.

    HKDF-SHA256, salt = UTF-8 of ``sid``, 32 bytes each, info
    ``m2m-session-mac`` and ``m2m-session-enc``.
    """
    ikm = _key(key, "the session key")
    with _translated():
        return core.derive_keys(ikm, _sid(sid))


# -- request MAC --------------------------------------------------------------------------

def sp_relative_to(to: str, csi: str, *, http_path: bool = False) -> str:
    """The target of a request in the SP-relative form the MAC covers.

    ``to`` is the request's To primitive (``cse2/Cae2/x`` CSE-relative,
    ``/id-cse2/cse2/Cae2/x`` SP-relative, ``//sp/id-cse2/...`` absolute) or,
    with ``http_path``, the HTTP request path (``/cse2/Cae2/x``
    CSE-relative, ``/~/id-cse2/...`` SP-relative, ``/_/sp/id-cse2/...``
    absolute). ``csi`` is the CSE-ID of the CSE receiving the request: it is
    put before a CSE-relative target. Query strings are dropped::

        sp_relative_to("cse2/Cae2/x?rcn=1", "/id-cse2")                      -> "/id-cse2/cse2/Cae2/x"
        sp_relative_to("/cse2/Cae2/x", "/id-cse2", http_path=True)           -> "/id-cse2/cse2/Cae2/x"
        sp_relative_to("/~/id-cse2/cse2/Cae2/x", "/id-cse1", http_path=True) -> "/id-cse2/cse2/Cae2/x"
        sp_relative_to("//sp.example/id-cse2/cse2", "/id-cse1")              -> "/id-cse2/cse2"
    """
    path = to.partition("?")[0]
    if http_path:
        path = unquote(path)
        if not path.startswith("/"):
            raise ValueError(f"'{to}' is not an HTTP request path (it starts with '/')")
        if path.startswith("/~/"):
            path = path[2:]
        elif path.startswith("/_/"):
            path = "/" + path[2:]
        else:
            path = path[1:]
    if path.startswith("//"):
        rest = path[2:].split("/", 1)
        if len(rest) != 2 or not rest[1]:
            raise ValueError(f"'{to}' is an absolute target without a CSE-ID after the SP-ID")
    elif not path:
        raise ValueError("empty target")
    elif not path.startswith("/") and (
            not csi.startswith("/") or csi.startswith("//") or "/" in csi[1:] or len(csi) < 2):
        raise ValueError(f"'{csi}' is not a CSE-ID (/<cse-id>)")
    return core.sp_relative_target(path, csi)


def canonical(op_name: str, to_sp_relative: str, sid: str, rqi: str, ot: str, body: bytes | str) -> bytes:
    """The bytes the request MAC is computed over (docs/sessions.md "Request MAC").

    The UTF-8 of six lines joined by ``\\n`` (no trailing newline): ``op_name``
    (CREATE, RETRIEVE, UPDATE, DELETE; case-insensitive, or an Operation),
    the SP-relative To without query (see :func:`sp_relative_to`), ``sid``,
    ``rqi``, ``ot`` exactly as sent, and the lowercase hex SHA-256 of ``body``
    (of ``b""`` when there is none: ``e3b0c442...b855``). A ``str`` body is
    its UTF-8.
    """
    op = str(getattr(op_name, "name", op_name)).upper()
    if op not in OPERATIONS:
        raise ValueError(f"operation '{op_name}' cannot be session-signed (one of {', '.join(OPERATIONS)})")
    if not to_sp_relative.startswith("/") or to_sp_relative.startswith("//"):
        raise ValueError(f"To '{to_sp_relative}' is not SP-relative (/<cse-id>/...): use sp_relative_to()")
    if "?" in to_sp_relative:
        raise ValueError(f"To '{to_sp_relative}' must not carry a query string")
    for name, value in (("sid", sid), ("rqi", rqi), ("ot", ot)):
        if not isinstance(value, str) or not value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty single-line string")
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    return core.canonical(op, to_sp_relative, sid, rqi, ot, data)


def mac(k_mac: bytes, canonical_bytes: bytes) -> str:
    """``X-M2M-SMAC``: base64url (no padding) of HMAC-SHA256(K_mac, canonical)."""
    return core.sign(_key(k_mac, "K_mac"), bytes(canonical_bytes))


def verify_mac(k_mac: bytes, canonical_bytes: bytes, smac: str) -> bool:
    """Whether ``smac`` is the MAC of ``canonical_bytes`` (constant-time compare)."""
    if not isinstance(smac, str) or not smac.isascii():
        return False
    return core.verify(_key(k_mac, "K_mac"), bytes(canonical_bytes), smac)


# -- payload encryption -------------------------------------------------------------------

def encrypt(k_enc: bytes, sid: str, kid: str, plaintext: bytes | str) -> str:
    """``sess1.<kid>.<nonce>.<ciphertext+tag>``: AES-256-GCM under ``k_enc``,
    a fresh 96-bit random nonce, AAD = UTF-8 of ``sid``. A ``str`` plaintext
    is encrypted as its UTF-8 (decrypt returns bytes)."""
    key = _key(k_enc, "K_enc")
    _sid(sid)
    if not isinstance(kid, str) or not kid or not _B64U.fullmatch(kid):
        raise SessionCryptoError(f"key ID '{kid}' must be a non-empty base64url string")
    data = plaintext if isinstance(plaintext, str) else bytes(plaintext)
    with _translated():
        return core.encrypt(key, sid, kid, data)


def is_token(value: object) -> bool:
    """Whether ``value`` looks like an encrypted session value (``sess1.``...)."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX + ".") and value.count(".") == 3


def token_kid(token: str) -> str:
    """The key ID named by an encrypted value (not verified)."""
    return _check_token(token)


def _check_token(token: str) -> str:
    """The token's kid, after the strict checks of its form (the core then decrypts)."""
    if not isinstance(token, str):
        raise SessionCryptoError(f"an encrypted session value is a string, not {type(token).__name__}")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
        raise SessionCryptoError(
            "not an encrypted session value: expected 'sess1.<kid>.<nonce>.<ciphertext>' "
            f"(got {len(parts)} part(s){', prefix ' + repr(parts[0][:10]) if parts else ''})")
    _, kid, nonce_b64, ct_b64 = parts
    if not kid or not _B64U.fullmatch(kid):
        raise SessionCryptoError("the key ID part of the encrypted value is empty or not base64url")
    nonce = b64u_decode(nonce_b64, what="the nonce part")
    if len(nonce) != NONCE_LEN:
        raise SessionCryptoError(f"the nonce must be {NONCE_LEN} bytes (96 bits), not {len(nonce)}")
    ct = b64u_decode(ct_b64, what="the ciphertext part")
    if len(ct) < TAG_LEN:
        raise SessionCryptoError(f"the ciphertext is shorter than the {TAG_LEN}-byte GCM tag: truncated")
    return kid


def decrypt(k_enc: bytes, sid: str, token: str, *, kid: str | None = None) -> bytes:
    """The plaintext of ``token`` (from :func:`encrypt`).

    Raises :class:`SessionCryptoError` when the value is malformed, was made
    under another key (``kid``, when given, must match the token's) or
    another session (AAD = sid), or was altered in any way.
    """
    key = _key(k_enc, "K_enc")
    _sid(sid)
    token_kid_ = _check_token(token)
    if kid is not None and token_kid_ != kid:
        raise SessionCryptoError(
            f"the value was encrypted under key '{token_kid_}', not this session's key '{kid}'")
    with _translated("decryption failed: "):
        return core.decrypt(key, sid, token)

"""Session request MACs and end-to-end content encryption (docs/sessions.md).

Pure functions over bytes, shared by the CSE's SMG (verification) and the
AE SDK (signing, encryption), so both sides compute exactly the same thing.

* Keys: from the session key K (32 bytes), HKDF-SHA256 with salt = the sid's
  UTF-8 bytes and length 32 derives ``K_mac`` (info ``m2m-session-mac``) and
  ``K_enc`` (info ``m2m-session-enc``).
* ``X-M2M-SMAC`` = base64url (no padding) of HMAC-SHA256(K_mac, canonical),
  canonical being six lines joined by ``\\n``: operation name, SP-relative
  target without query, sid, rqi, ``X-M2M-OT`` as sent, lowercase hex
  SHA-256 of the body bytes.
* Content: AES-256-GCM under ``K_enc``, 96-bit random nonce, AAD = sid, as
  ``sess1.<kid>.<nonce>.<ciphertext+tag>`` (base64url, no padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "SessionCryptoError", "b64u", "unb64u", "derive_keys", "canonical", "sign", "verify",
    "encrypt", "decrypt", "sp_relative_target",
]


class SessionCryptoError(ValueError):
    """A session key, MAC or encrypted value that cannot be used."""


def b64u(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    """Inverse of :func:`b64u`; padding is not accepted."""
    if "=" in text:
        raise SessionCryptoError("base64url values carry no '=' padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise SessionCryptoError(f"not base64url: {exc}") from None


def derive_keys(key: bytes, sid: str) -> tuple[bytes, bytes]:
    """``(K_mac, K_enc)`` for the session key ``key`` and session ``sid``."""
    if len(key) != 32:
        raise SessionCryptoError(f"a session key is 32 bytes, got {len(key)}")
    out = []
    for info in (b"m2m-session-mac", b"m2m-session-enc"):
        out.append(HKDF(algorithm=hashes.SHA256(), length=32, salt=sid.encode("utf-8"), info=info).derive(key))
    return out[0], out[1]


def sp_relative_target(to: str, receiving_csi: str) -> str:
    """The MAC's target line: SP-relative, no query (docs/sessions.md "Request MAC", line 2)."""
    to = to.split("?", 1)[0]
    if to.startswith("//"):
        rest = to[2:]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    if to.startswith("/"):
        return to
    return f"{receiving_csi}/{to}"


def canonical(op_name: str, target: str, sid: str, rqi: str, ot: str, body: bytes) -> bytes:
    """The six-line string the MAC covers."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((op_name, target, sid, rqi, ot, digest)).encode("utf-8")


def sign(k_mac: bytes, data: bytes) -> str:
    """``X-M2M-SMAC`` for ``data`` (a canonical string)."""
    return b64u(hmac.new(k_mac, data, hashlib.sha256).digest())


def verify(k_mac: bytes, data: bytes, smac: str) -> bool:
    """Constant-time check of ``smac`` against ``data``."""
    return hmac.compare_digest(sign(k_mac, data), smac)


def encrypt(k_enc: bytes, sid: str, kid: str, plaintext: bytes | str) -> str:
    """``sess1.<kid>.<nonce>.<ct+tag>`` for ``plaintext``."""
    raw = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    nonce = os.urandom(12)
    ct = AESGCM(k_enc).encrypt(nonce, raw, sid.encode("utf-8"))
    return f"sess1.{kid}.{b64u(nonce)}.{b64u(ct)}"


def decrypt(k_enc: bytes, sid: str, token: str, kid: str | None = None) -> bytes:
    """The plaintext of ``token``; :class:`SessionCryptoError` on any problem."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 4 or parts[0] != "sess1":
        raise SessionCryptoError("not an encrypted session value (sess1.<kid>.<nonce>.<ciphertext>)")
    if kid is not None and parts[1] != kid:
        raise SessionCryptoError(f"encrypted with key '{parts[1]}', not this session's key '{kid}'")
    nonce, ct = unb64u(parts[2]), unb64u(parts[3])
    if len(nonce) != 12:
        raise SessionCryptoError("the nonce must be 96 bits")
    try:
        return AESGCM(k_enc).decrypt(nonce, ct, sid.encode("utf-8"))
    except InvalidTag:
        raise SessionCryptoError("the encrypted value was tampered with, or belongs to another session") from None

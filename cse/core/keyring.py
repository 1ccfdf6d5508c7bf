"""Session keys at rest: wrapped under a store key (docs/security.md "Keys at rest").

Why: a session's credentials (``scr``: ``kid``, ``key``, ``alg``) must be
kept by every CSE on the session's path to verify its MACs, and the store
writes what it keeps to its journal and snapshot. Whoever could read those
files (a backup, a copied disk) would hold every live session key. So the
SMG keeps only a *wrapped* key in a session document: the ``key`` member is
replaced by ``wrp``, AES-256-GCM of the key under a store key that lives in a
file of its own (``[store] key_file``), never in the store:

    "_scr": {"kid": "...", "alg": "A256GCM", "wrp": "<key id>.<nonce>.<ciphertext+tag>"}

(base64url without padding; the additional data is the sid, so a wrapped
key is only valid for its own session). ``key id`` names the store key (16
hex digits of a SHA-256 of it), so a store opened with another key file is
recognised at start-up instead of failing later, session by session.

Pure: no files here. The composition root reads or creates the key file
(:mod:`cse.store.keyfile`) and passes a :class:`Keyring` to the SMG.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cse.core.session_crypto import SessionCryptoError, b64u, unb64u

__all__ = ["Keyring", "KeyringError", "STORE_KEY_BYTES"]

STORE_KEY_BYTES = 32
_AAD = b"m2m-store-scr\0"


class KeyringError(ValueError):
    """A stored session key that this keyring cannot unwrap."""


class Keyring:
    """Wraps and unwraps session credentials under one store key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != STORE_KEY_BYTES:
            raise KeyringError(f"a store key is {STORE_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"m2m-store-key-id\0" + key).hexdigest()[:16]

    def wrap(self, sid: str, scr: Mapping[str, Any]) -> dict[str, Any]:
        """``scr`` as it is stored: ``key`` replaced by ``wrp``."""
        key = scr.get("key")
        if not isinstance(key, str):
            raise KeyringError("session credentials without a key cannot be wrapped")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, key.encode("utf-8"), _AAD + sid.encode("utf-8"))
        out = {k: v for k, v in scr.items() if k != "key"}
        out["wrp"] = f"{self.key_id}.{b64u(nonce)}.{b64u(sealed)}"
        return out

    def unwrap(self, sid: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The credentials ``wrap`` stored for session ``sid``."""
        wrapped = stored.get("wrp")
        if not isinstance(wrapped, str):
            raise KeyringError(f"the stored key of session {sid[:16]} is not wrapped")
        key_id, _, rest = wrapped.partition(".")
        if key_id != self.key_id:
            raise KeyringError(f"the key of session {sid[:16]} was wrapped with store key {key_id[:16]}, "
                               f"not with this one ({self.key_id})")
        nonce, _, sealed = rest.partition(".")
        try:
            key = self._aead.decrypt(unb64u(nonce), unb64u(sealed), _AAD + sid.encode("utf-8"))
        except (InvalidTag, SessionCryptoError, ValueError):
            raise KeyringError(f"the stored key of session {sid[:16]} does not unwrap with store key "
                               f"{self.key_id} (damaged or not this session's)") from None
        out = {k: v for k, v in stored.items() if k != "wrp"}
        out["key"] = key.decode("utf-8")
        return out

    @staticmethod
    def wrapped_with(stored: Any) -> str | None:
        """The key id a stored ``scr`` is wrapped with; None when it is not
        wrapped (stored in plain by an earlier version)."""
        if isinstance(stored, Mapping) and isinstance(stored.get("wrp"), str):
            return str(stored["wrp"]).partition(".")[0]
        return None

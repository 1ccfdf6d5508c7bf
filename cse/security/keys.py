"""Reading token keys from the files the configuration names.

Here, beside the configuration, because :mod:`cse.core.jwt` reads no file:
it takes keys as bytes or key objects, so the core stays free of I/O.
"""

from __future__ import annotations

from cse.core import jwt

__all__ = ["load_signing_key", "load_verify_key"]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def load_signing_key(*, pem_file: str | None = None, secret_file: str | None = None) -> jwt.SigningKey:
    """A signing key from a PEM file (ES256) or a secret file (HS256, raw bytes, stripped)."""
    if pem_file is not None:
        return jwt.es256_private_key(_read(pem_file))
    if secret_file is not None:
        return jwt.hs256_key(_read(secret_file).strip())
    raise ValueError("give a PEM key file or a secret file")


def load_verify_key(pem_file: str) -> jwt.VerifyKey:
    """An ES256 verification key from a public key, certificate or private key PEM file."""
    return jwt.es256_public_key(_read(pem_file))

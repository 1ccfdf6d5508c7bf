"""Throwaway credentials for tests and samples: ``python -m cse.security.devcerts DIR``.

Writes into DIR (created if needed):

* ``ca.pem`` -- a self-signed CA (its key is not kept: nothing more can be signed later);
* ``<name>.pem`` / ``<name>-key.pem`` -- a server certificate for 127.0.0.1 and
  localhost signed by that CA, per name (default ``cse1 cse2``);
* ``rogue.pem`` / ``rogue-key.pem`` -- the same, signed by *another* CA (a peer to refuse);
* ``issuer-key.pem`` / ``issuer.pub.pem`` -- an ES256 (EC P-256) token signing key and its public key;
* ``<name>-signing-key.pem`` -- a signing key per name (lets each CSE mint admin tokens for itself);
* ``<name>.secret`` / ``<name>.secret.sha256`` -- an OAuth client secret and its SHA-256, per name.

Development only: short-lived (30 days), unencrypted keys, file mode 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .settings import hash_secret

__all__ = ["CertAuthority", "write_dev_credentials", "new_ec_key", "write_key"]

_DAYS = 30


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 key (ES256 and TLS alike)."""
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """PEM (PKCS#8, unencrypted), mode 0600."""
    return _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), private=True)


class CertAuthority:
    """A self-signed CA that signs server certificates for loopback."""

    def __init__(self, name: str = "oneM2M test CA") -> None:
        self.key = new_ec_key()
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=_DAYS))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def server(self, common_name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost")
               ) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        """A server certificate (PEM) for ``hosts`` (IP addresses or DNS names) and its key."""
        key = new_ec_key()
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=_DAYS))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), key


def write_dev_credentials(directory: Path, names: Sequence[str] = ("cse1", "cse2")) -> dict[str, Path]:
    """Write the files of the module docstring; returns them by a short name
    (``ca``, ``<name>.cert``, ``<name>.key``, ``issuer.key``, ``<name>.secret``, ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertAuthority()
    out: dict[str, Path] = {"ca": _write(directory / "ca.pem", ca.pem())}
    for name in names:
        cert, key = ca.server(name)
        out[f"{name}.cert"] = _write(directory / f"{name}.pem", cert)
        out[f"{name}.key"] = write_key(directory / f"{name}-key.pem", key)
        out[f"{name}.signing_key"] = write_key(directory / f"{name}-signing-key.pem", new_ec_key())
        secret = secrets.token_urlsafe(32)
        out[f"{name}.secret"] = _write(directory / f"{name}.secret", secret.encode() + b"\n", private=True)
        out[f"{name}.secret_sha256"] = _write(directory / f"{name}.secret.sha256", hash_secret(secret).encode() + b"\n")
    rogue_cert, rogue_key = CertAuthority("rogue CA").server("rogue")
    out["rogue.cert"] = _write(directory / "rogue.pem", rogue_cert)
    out["rogue.key"] = write_key(directory / "rogue-key.pem", rogue_key)
    issuer = new_ec_key()
    out["issuer.key"] = write_key(directory / "issuer-key.pem", issuer)
    out["issuer.pub"] = _write(directory / "issuer.pub.pem", issuer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cse.security.devcerts",
                                description="Write a throwaway CA, loopback certificates, token keys and "
                                            "client secrets (development and tests only).")
    p.add_argument("directory")
    p.add_argument("names", nargs="*", default=["cse1", "cse2"], help="one certificate per name (default cse1 cse2)")
    args = p.parse_args(argv)
    files = write_dev_credentials(Path(args.directory), args.names)
    for what, path in files.items():
        print(f"{what:22} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

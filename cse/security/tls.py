"""SSL contexts from ``[tls]``: one to serve HTTPS, one to verify peers.

Built once at start-up (loading certificates is blocking file I/O, fine
then, not at request time). Outbound verification is always on for
``https://`` peers: with ``tls.ca`` the peer must chain to that CA (and its
certificate must name the host we dial, e.g. IP 127.0.0.1); without it the
system trust store applies. There is no "insecure" switch on purpose.
"""

from __future__ import annotations

import ssl

from .settings import TlsConfig

__all__ = ["client_context", "server_context"]


def server_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The context to serve HTTPS with, or None to serve plain HTTP."""
    if tls.cert is None or tls.key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


def client_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The context verifying ``https://`` peers against ``tls.ca``; None: the system defaults."""
    if tls.ca is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx

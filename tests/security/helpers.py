"""Shared helpers for the security tests (no tests here).

A throwaway CA, loopback certificates, token keys and client secrets
written into the test's tmp dir (:func:`creds`, via
``cse.security.devcerts``), the TOML of the ``[tls]``/``[auth]``/
``[auth_client]`` sections for a CSE, a token minter and an HTTPS flavour
of the ``Http`` test client that trusts the throwaway CA.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from ae_sdk import mint_token
from cse.security.devcerts import write_dev_credentials
from tests.conftest import CSEProcess, Http

AUD = "sec-tests"


def creds(tmp_path: Path) -> dict[str, Path]:
    """Credentials for cse1 and cse2 (see cse.security.devcerts)."""
    return write_dev_credentials(tmp_path / "creds", ("cse1", "cse2"))


def tls_toml(c: dict[str, Path], name: str, *, cert: str | None = None) -> str:
    """``[tls]`` serving ``name``'s certificate (or ``cert``: e.g. ``rogue``), trusting the CA."""
    who = cert or name
    return f'\n[tls]\ncert = "{c[who + ".cert"]}"\nkey = "{c[who + ".key"]}"\nca = "{c["ca"]}"\n'


def issuer_toml(c: dict[str, Path], csi: str = "/id-cse1", clients: Sequence[str] = ("/id-cse2",),
                lifetime: float | None = None) -> str:
    """``[auth]`` of the issuer: signs with issuer-key.pem, serves the token endpoint to ``clients``."""
    text = (f'\n[auth]\nenabled = true\nissuer = "{csi}"\naudience = "{AUD}"\n'
            f'signing_key = "{c["issuer.key"]}"\ntrusted_issuers = ["{csi}"]\n')
    if lifetime is not None:
        text += f"token_lifetime_s = {lifetime}\n"
    for cid in clients:
        name = cid.rsplit("-", 1)[-1]  # /id-cse2 -> cse2
        text += f'\n[[auth.clients]]\nid = "{cid}"\nsecret_sha256_file = "{c[name + ".secret_sha256"]}"\n'
    return text


def member_toml(c: dict[str, Path], name: str, csi: str, token_url: str) -> str:
    """``[auth]`` + ``[auth_client]`` of a CSE that trusts the issuer and gets its token from it."""
    return (f'\n[auth]\nenabled = true\nissuer = "{csi}"\naudience = "{AUD}"\n'
            f'signing_key = "{c[name + ".signing_key"]}"\nverify_keys = ["{c["issuer.pub"]}"]\n'
            f'trusted_issuers = ["/id-cse1", "{csi}"]\n'
            f'\n[auth_client]\ntoken_url = "{token_url}"\nclient_id = "{csi}"\n'
            f'client_secret_file = "{c[name + ".secret"]}"\n')


def token(c: dict[str, Path], *originators: str, key: str = "issuer.key", lifetime: float = 600,
          audience: str | list[str] | None = AUD, issuer: str | None = "/id-cse1", now: float | None = None,
          subject: str | None = None) -> str:
    """A token signed with one of the throwaway keys (``audience``: one value or several)."""
    return mint_token(list(originators), key_file=str(c[key]), audience=audience, issuer=issuer,
                      lifetime=lifetime, now=now, subject=subject)


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def url(p: CSEProcess) -> str:
    """The https URL of a CSE process (``CSEProcess.url`` says http)."""
    return f"https://127.0.0.1:{p.port}"


@asynccontextmanager
async def https_client(c: dict[str, Path]) -> AsyncIterator[Http]:
    """An ``Http`` test client trusting the throwaway CA."""
    ctx = ssl.create_default_context(cafile=str(c["ca"]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Http(session)

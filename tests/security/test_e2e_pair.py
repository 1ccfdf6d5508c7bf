"""A CSE pair over HTTPS: registration and forwarding with CA-verified TLS and
CSE-to-CSE tokens from the OAuth 2.0 client credentials grant (seed 003).

CSE1 (``/id-cse1``) is the issuer: it signs every token of the pair with
issuer-key.pem and serves ``POST /oauth2/token`` to client ``/id-cse2``.
CSE2 trusts issuer.pub.pem and CSE1's issuer name; its own signing key is
*not* trusted by CSE1, so the only way CSE2 can register with CSE1 or
forward to it is the token it obtains from CSE1's endpoint. CSE1 forwards to
CSE2 with a token it signs itself.

Why: issue 9 -- the CSE-to-CSE client must verify its peers against the
configured CA and authenticate itself; a peer whose certificate the CA did
not sign must be refused with a clear error, quickly, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN, CSEProcess, Http
from tests.e2e.test_intercse_helpers import registrar_toml, until
from tests.security.helpers import (
    bearer,
    creds,
    https_client,
    issuer_toml,
    member_toml,
    tls_toml,
    token,
    url,
)

FAST = 5.0  # "answers at once, does not hang" (not a performance limit)


async def start_secure_pair(cse_process: Callable[..., Any], c: dict[str, Path], http: Http, *,
                            cse2_cert: str | None = None) -> tuple[CSEProcess, CSEProcess]:
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1",
                             extra=tls_toml(c, "cse1") + issuer_toml(c))
    u1 = url(cse1)
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=registrar_toml("/id-cse1", "cse1", u1) + tls_toml(c, "cse2", cert=cse2_cert)
                             + member_toml(c, "cse2", "/id-cse2", f"{u1}/oauth2/token"))

    async def registered() -> bool:  # CSE1 holds CSE2's remoteCSE
        r = await http.send("GET", f"{u1}/cse1/id-cse2", fr=ADMIN, headers=bearer(token(c, ADMIN)))
        return r.rsc == 2000
    await until(registered, "CSE2 registered with CSE1 over TLS")
    return cse1, cse2


async def register(http: Http, c: dict[str, Path], cse: CSEProcess, cb: str, rn: str) -> tuple[str, dict[str, str]]:
    """An AE registered with a registration token; returns its AE-ID and the token the CSE gave it."""
    r = await http.send("POST", f"{url(cse)}/{cb}", fr="C", ty=2, headers=bearer(token(c, "C")),
                        body={"m2m:ae": {"rn": rn, "api": f"N{rn}", "rr": False, "srv": ["3"]}})
    assert r.rsc == 2001, r.body
    return r.body["m2m:ae"]["aei"], bearer(r.headers["X-Access-Token"])


async def grant(http: Http, cse: CSEProcess, cb: str, rn: str, aei: str, auth: dict[str, str], who: str) -> None:
    """Container ``rn/data`` of ``aei`` with an ACP letting ``who`` do everything."""
    base = f"{url(cse)}/{cb}/{rn}"
    r = await http.send("POST", base, fr=aei, ty=1, headers=auth, body={"m2m:acp": {
        "rn": "acp", "pv": {"acr": [{"acor": [who, aei], "acop": 63}]}, "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}})
    assert r.rsc == 2001, r.body
    r = await http.send("POST", base, fr=aei, ty=3, headers=auth,
                        body={"m2m:cnt": {"rn": "data", "acpi": [r.body["m2m:acp"]["ri"]]}})
    assert r.rsc == 2001, r.body


async def test_secure_pair_registers_and_forwards_both_ways(cse_process: Callable[..., Any], tmp_path: Path) -> None:
    c = creds(tmp_path)
    async with https_client(c) as http:
        cse1, cse2 = await start_secure_pair(cse_process, c, http)
        u1, u2 = url(cse1), url(cse2)
        # both remoteCSEs carry https points of access
        r = await http.send("GET", f"{u1}/cse1/id-cse2", fr=ADMIN, headers=bearer(token(c, ADMIN)))
        assert r.body["m2m:csr"]["poa"] == [u2]
        admin2 = bearer(token(c, ADMIN, key="cse2.signing_key", issuer="/id-cse2"))
        r = await http.send("GET", f"{u2}/cse2/id-cse1", fr=ADMIN, headers=admin2)
        assert r.rsc == 2000 and r.body["m2m:csr"]["poa"] == [u1]
        # CSE2's own key is not trusted at CSE1: only the OAuth token got it registered
        r = await http.send("GET", f"{u1}/cse1", fr="/id-cse2",
                            headers=bearer(token(c, "/id-cse2", key="cse2.signing_key", issuer="/id-cse2")))
        assert r.rsc == 4103 and "signature is not valid" in r.body["m2m:dbg"]

        aei1, auth1 = await register(http, c, cse1, "cse1", "ae1")
        aei2, auth2 = await register(http, c, cse2, "cse2", "ae2")
        await grant(http, cse2, "cse2", "ae2", aei2, auth2, f"/id-cse1/{aei1}")
        await grant(http, cse1, "cse1", "ae1", aei1, auth1, f"/id-cse2/{aei2}")

        # CSE1 -> CSE2: AE1's request, forwarded with CSE1's self-signed token
        r = await http.send("POST", f"{u1}/~/id-cse2/cse2/ae2/data", fr=aei1, ty=4, headers=auth1,
                            body={"m2m:cin": {"con": "from ae1"}})
        assert r.rsc == 2001, r.body
        r = await http.send("GET", f"{u2}/cse2/ae2/data/la", fr=aei2, headers=auth2)
        assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == "from ae1"

        # CSE2 -> CSE1: AE2's request, forwarded with the client-credentials token
        r = await http.send("POST", f"{u2}/~/id-cse1/cse1/ae1/data", fr=aei2, ty=4, headers=auth2,
                            body={"m2m:cin": {"con": "from ae2"}})
        assert r.rsc == 2001, r.body
        r = await http.send("GET", f"{u2}/~/id-cse1/cse1/ae1/data/la", fr=aei2, headers=auth2)
        assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == "from ae2"

        # the forwarding CSE still checks its own client first: AE2's token does not make AE1
        r = await http.send("GET", f"{u2}/~/id-cse1/cse1/ae1/data/la", fr=aei1, headers=auth2)
        assert r.rsc == 4103 and "not allowed by the access token" in r.body["m2m:dbg"]


async def test_peer_whose_certificate_the_ca_did_not_sign_is_refused(cse_process: Callable[..., Any],
                                                                    tmp_path: Path) -> None:
    c = creds(tmp_path)
    async with https_client(c) as http:
        # CSE2 serves a certificate from another CA; it can still reach CSE1 and register
        cse1, cse2 = await start_secure_pair(cse_process, c, http, cse2_cert="rogue")
        started = time.monotonic()
        r = await http.send("GET", f"{url(cse1)}/~/id-cse2/cse2", fr=ADMIN, headers=bearer(token(c, ADMIN)))
        assert time.monotonic() - started < FAST
        assert r.rsc == 5103, r.body
        assert f"cannot reach {url(cse2)}: its TLS certificate is not trusted" in r.body["m2m:dbg"], r.body

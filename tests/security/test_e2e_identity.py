"""The secure pair: a token proves a CSE-ID only when issued to that CSE, and is
good only at the CSE it was issued for (docs/security.md "Bearer tokens",
"Originators and remote CSEs").

Why: with ``[auth]`` on, a token whose ``orig`` allowed ``/*`` (a transit
CSE's, or a tool's) let its holder claim ``/id-cse2`` and move CSE2's
``poa`` at CSE1 (forwarding hijacked) or register a fake CSE; and a token
CSE1 issued for one of its AEs registered that AE at CSE2 (2001), which
then minted a token of its own for it -- every CSE trusting the issuer's
key accepted every token it signed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cse.core import jwt
from tests.conftest import ADMIN
from tests.security.helpers import AUD, bearer, creds, https_client, token, url
from tests.security.test_e2e_pair import register, start_secure_pair


async def test_a_cse_id_is_claimed_only_with_that_cse_s_token(cse_process: Callable[..., Any], tmp_path: Path) -> None:
    c = creds(tmp_path)
    async with https_client(c) as http:
        cse1, cse2 = await start_secure_pair(cse_process, c, http)
        u1 = url(cse1)
        wide = bearer(token(c, "/*", subject="/id-transit"))  # signed by the trusted issuer, allows any CSE-ID
        r = await http.send("PUT", f"{u1}/cse1/id-cse2", fr="/id-cse2", headers=wide,
                            body={"m2m:csr": {"poa": ["https://127.0.0.1:9"]}})
        assert r.rsc == 4103, r.body
        assert "'/id-cse2' is a CSE-ID: it needs a token issued to that CSE" in r.body["m2m:dbg"]
        assert "issued to /id-transit" in r.body["m2m:dbg"]
        r = await http.send("POST", f"{u1}/cse1", fr="/id-evil", ty=16, headers=wide, body={"m2m:csr": {
            "cb": "/id-evil/cb", "rr": True, "poa": ["https://127.0.0.1:9"], "dcse": ["/id-leaf"]}})
        assert r.rsc == 4103, r.body
        admin = bearer(token(c, ADMIN))
        r = await http.send("GET", f"{u1}/cse1/id-cse2", fr=ADMIN, headers=admin)
        assert r.body["m2m:csr"]["poa"] == [url(cse2)]
        # the same wide token still carries entities of other CSEs (what a transit CSE forwards)
        r = await http.send("GET", f"{u1}/cse1", fr="/id-cse2/Cany", headers=wide)
        assert r.rsc == 2000, r.body
        # and the pair still forwards with the tokens the CSEs got for themselves
        r = await http.send("GET", f"{u1}/~/id-cse2/cse2", fr=ADMIN, headers=admin)
        assert r.rsc == 2000 and r.body["m2m:cb"]["csi"] == "/id-cse2", r.body


async def test_a_token_is_good_only_at_the_cse_it_was_issued_for(cse_process: Callable[..., Any],
                                                                 tmp_path: Path) -> None:
    c = creds(tmp_path)
    async with https_client(c) as http:
        cse1, cse2 = await start_secure_pair(cse_process, c, http)
        u1, u2 = url(cse1), url(cse2)
        aei, auth1 = await register(http, c, cse1, "cse1", "ae1")
        claims = jwt.decode(auth1["Authorization"].split()[1])[1]
        assert claims["aud"] == [AUD, "/id-cse1"], claims

        reg = {"m2m:ae": {"rn": "ae1", "api": "Nae1", "rr": False, "srv": ["3"]}}
        r = await http.send("POST", f"{u2}/cse2", fr=aei, ty=2, headers=auth1, body=reg)
        assert r.rsc == 4103, r.body
        assert "issued for /id-cse1 (claim 'aud'), not for this CSE /id-cse2" in r.body["m2m:dbg"]
        assert "X-Access-Token" not in r.headers
        # a registration credential an operator bound to CSE1 is refused by CSE2 too
        for_cse1 = bearer(token(c, "C", audience=[AUD, "/id-cse1"]))
        r = await http.send("POST", f"{u2}/cse2", fr="C", ty=2, headers=for_cse1, body=reg)
        assert r.rsc == 4103 and "not for this CSE /id-cse2" in r.body["m2m:dbg"], r.body
        assert "X-Access-Token" not in r.headers
        r = await http.send("POST", f"{u1}/cse1", fr="C", ty=2, headers=for_cse1,
                            body={"m2m:ae": {"rn": "ae1b", "api": "Nae1b", "rr": False, "srv": ["3"]}})
        assert r.rsc == 2001, r.body
        # CSE1's AE still reaches CSE2 through CSE1 (CSE1's token for CSE2 names CSE2)
        r = await http.send("GET", f"{u1}/~/id-cse2/cse2", fr=aei, headers=auth1)
        assert r.rsc == 2000 and r.body["m2m:cb"]["csi"] == "/id-cse2", r.body

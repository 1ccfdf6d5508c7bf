"""One real CSE over HTTPS with bearer tokens: who may claim which originator.

Why: with authentication on, a client can no longer send any
X-M2M-Origin it likes; every refusal must be a 4103 that says why (never a
5000), and an AE must still be able to register with a CSE-assigned AE-ID
and then work under that ID, from curl-like clients and from the SDK.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ae_sdk import AEClient, TransportError
from cse.core import jwt
from tests.conftest import ADMIN, CSEProcess
from tests.security.helpers import bearer, creds, https_client, issuer_toml, tls_toml, token, url


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication (RFC 6749 2.3.1; ids and secrets here need no form-encoding)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def start_issuer(cse_process: Callable[..., Any], c: dict[str, Path], extra: str = "") -> CSEProcess:
    p: CSEProcess = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1",
                                      extra=tls_toml(c, "cse1") + issuer_toml(c) + extra)
    assert any(line.startswith(f"READY /id-cse1 https://127.0.0.1:{p.port}") for line in p.lines), p.lines
    return p


def orig_of(tok: str) -> list[str]:
    return list(jwt.decode(tok)[1]["orig"])


async def test_register_and_crud_with_tokens_and_every_refusal(cse_process: Callable[..., Any],
                                                               tmp_path: Path) -> None:
    c = creds(tmp_path)
    cse = await start_issuer(cse_process, c)
    base = f"{url(cse)}/cse1"
    async with https_client(c) as http:
        # no token at all: 403 / 4103 with a bearer challenge
        r = await http.send("GET", base, fr=ADMIN)
        assert (r.status, r.rsc) == (403, 4103), r.body
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="oneM2M"')
        assert "access token missing" in r.body["m2m:dbg"]
        # the admin with an admin token
        r = await http.send("GET", base, fr=ADMIN, headers=bearer(token(c, ADMIN)))
        assert r.rsc == 2000 and r.body["m2m:cb"]["poa"] == [url(cse)]

        # registration with a CSE-assigned AE-ID needs a token allowing the literal "C"
        reg = {"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}}
        r = await http.send("POST", base, fr="C", ty=2, body=reg, headers=bearer(token(c, "Cother")))
        assert r.rsc == 4103 and "originator 'C' is not allowed by the access token" in r.body["m2m:dbg"]
        r = await http.send("POST", base, fr="C", ty=2, body=reg, headers=bearer(token(c, "C")))
        assert r.rsc == 2001, r.body
        aei = r.body["m2m:ae"]["aei"]
        mine = r.headers["X-Access-Token"]  # the CSE's token for the new AE-ID
        assert orig_of(mine) == [aei] and jwt.decode(mine)[1]["sub"] == aei
        auth = bearer(mine)

        # CRUD under the new AE-ID with its token
        r = await http.send("POST", f"{base}/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}}, headers=auth)
        assert r.rsc == 2001, r.body
        r = await http.send("POST", f"{base}/app/data", fr=aei, ty=4, body={"m2m:cin": {"con": "21.5"}},
                            headers=auth)
        assert r.rsc == 2001, r.body
        r = await http.send("GET", f"{base}/app/data/la", fr=aei, headers=auth)
        assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == "21.5"
        r = await http.send("GET", f"{url(cse)}/~/id-cse1/cse1/app/data", fr=f"/id-cse1/{aei}", headers=auth)
        assert r.rsc == 2000, r.body  # the SP-relative form of the same AE-ID is the same originator
        r = await http.send("PUT", f"{base}/app/data", fr=aei, body={"m2m:cnt": {"mni": 5}}, headers=auth)
        assert r.rsc == 2004, r.body

        # a token for A used with X-M2M-Origin B
        for fr in (ADMIN, "Cintruder", "/id-cse2"):
            r = await http.send("GET", f"{base}/app/data", fr=fr, headers=auth)
            assert (r.status, r.rsc) == (403, 4103), (fr, r.body)
            assert f"originator '{fr}' is not allowed by the access token (issued to {aei}" in r.body["m2m:dbg"]
            assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        # the registration token cannot act as the registered AE
        r = await http.send("GET", f"{base}/app/data", fr=aei, headers=bearer(token(c, "C")))
        assert r.rsc == 4103

        # bad tokens, each named
        bad = {
            "expired": token(c, aei, lifetime=1, now=1_000_000_000),
            "not valid yet": token(c, aei, now=4_000_000_000),
            "signature is not valid": token(c, aei, key="cse2.signing_key"),
            "does not include 'sec-tests'": token(c, aei, audience="elsewhere"),
            "issuer '/id-evil' is not trusted": token(c, aei, issuer="/id-evil"),
            "malformed token": "not-a-jwt",
        }
        for why, tok in bad.items():
            r = await http.send("GET", f"{base}/app/data", fr=aei, headers=bearer(tok))
            assert (r.status, r.rsc) == (403, 4103), (why, r.body)
            assert why in r.body["m2m:dbg"], (why, r.body)
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        r = await http.send("GET", f"{base}/app/data", fr=aei, headers={"Authorization": f"Basic {mine}"})
        assert r.rsc == 4103 and "scheme 'Basic' is not accepted" in r.body["m2m:dbg"]

        r = await http.send("DELETE", f"{base}/app", fr=aei, headers=auth)
        assert r.rsc == 2002, r.body


async def test_sdk_over_https_with_a_registration_token(cse_process: Callable[..., Any], tmp_path: Path) -> None:
    c = creds(tmp_path)
    cse = await start_issuer(cse_process, c)
    async with AEClient(url(cse), cse_name="cse1", cse_id="/id-cse1", token=token(c, "C"),
                        cafile=str(c["ca"])) as client:
        ae = await client.register("sdkapp")
        assert client.originator == ae["aei"]
        assert orig_of(client.transport.token) == [ae["aei"]]  # type: ignore[attr-defined]
        await client.create_container("sdkapp", "data")
        await client.create_content_instance("sdkapp/data", "42")
        assert (await client.retrieve("sdkapp/data/la"))["con"] == "42"
    # without the CA the CSE's certificate is not trusted, and the error says so
    async with AEClient(url(cse), cse_name="cse1", token=token(c, ADMIN)) as stranger:
        with pytest.raises(TransportError, match=r"TLS certificate .* is not trusted"):
            await stranger.retrieve("cse1")


async def test_token_endpoint_client_credentials(cse_process: Callable[..., Any], tmp_path: Path) -> None:
    c = creds(tmp_path)
    tool = (f'\n[[auth.clients]]\nid = "tool"\nsecret_sha256_file = "{c["cse1.secret_sha256"]}"\n'
            f'originators = ["{ADMIN}"]\n')
    cse = await start_issuer(cse_process, c, extra=tool)
    endpoint = f"{url(cse)}/oauth2/token"
    secret = c["cse1.secret"].read_text().strip()
    async with https_client(c) as http:
        s = http.session

        async def post(data: dict[str, str], auth: dict[str, str] | None = None) -> tuple[int, Any, Any]:
            async with s.post(endpoint, data=data, headers=auth) as resp:
                return resp.status, await resp.json(), resp.headers

        status, doc, headers = await post({"grant_type": "client_credentials"}, basic("tool", secret))
        assert status == 200 and doc["token_type"] == "Bearer" and doc["expires_in"] == 3600, doc
        assert headers["Cache-Control"] == "no-store"
        claims = jwt.decode(doc["access_token"])[1]
        assert claims["orig"] == [ADMIN] and claims["sub"] == "tool"
        assert claims["aud"] == ["sec-tests", "/id-cse1"]  # the SP's audience and the CSE it is for
        r = await http.send("GET", f"{url(cse)}/cse1", fr=ADMIN, headers=bearer(doc["access_token"]))
        assert r.rsc == 2000
        # credentials in the body work too; CSE clients default to their CSE-ID and below
        status, doc, _ = await post({"grant_type": "client_credentials", "client_id": "/id-cse2",
                                     "client_secret": c["cse2.secret"].read_text().strip()})
        assert status == 200 and jwt.decode(doc["access_token"])[1]["orig"] == ["/id-cse2", "/id-cse2/*"]

        status, doc, headers = await post({"grant_type": "client_credentials"}, basic("tool", "wrong"))
        assert (status, doc["error"]) == (401, "invalid_client") and headers["WWW-Authenticate"].startswith("Basic")
        status, doc, _ = await post({"grant_type": "client_credentials"}, basic("nobody", secret))
        assert (status, doc["error"]) == (401, "invalid_client")
        status, doc, _ = await post({"grant_type": "client_credentials"})
        assert (status, doc["error"]) == (401, "invalid_client")
        status, doc, _ = await post({"grant_type": "password"}, basic("tool", secret))
        assert (status, doc["error"]) == (400, "unsupported_grant_type")
        status, doc, _ = await post({"grant_type": "client_credentials", "client_id": "tool"},
                                    basic("tool", secret))
        assert (status, doc["error"]) == (400, "invalid_request")
        async with s.get(endpoint) as resp:
            assert resp.status == 405 and (await resp.json())["error"] == "invalid_request"

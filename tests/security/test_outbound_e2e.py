"""Outbound requests end to end: a real CSE process and loopback endpoints.

Why (docs/security.md "Outbound requests"): an AE could make the CSE send
requests wherever it liked. It registered with a ``poa`` pointing at a
local admin endpoint (``/admin/reboot?x=1``) and subscribed its own AE-ID:
no verification, so every event POSTed there. ``su`` and ``X-M2M-RTU``
were never verified (130 RTU URLs: 130 POSTs), and ``nu`` = 5,000 copies
of its own AE-ID turned one contentInstance into 1,002 POSTs. Here each
of those is tried against a CSE process over HTTP, and the endpoints
count what reaches them.

The "admin endpoint" is a plain aiohttp server that answers 200 to
anything, like a real one, without speaking oneM2M.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import ADMIN, CSEProcess, Http
from tests.notify_receiver import Receiver
from tests.waiting import until


class AdminEndpoint:
    """A non-oneM2M HTTP endpoint on loopback: answers 200 "ok", records every hit."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, bytes]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/admin/reboot?x=1"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append((request.method, request.path_qs, await request.read()))
        return web.Response(text="ok")

    async def start(self) -> AdminEndpoint:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def admin() -> AsyncIterator[AdminEndpoint]:
    endpoint = await AdminEndpoint().start()
    try:
        yield endpoint
    finally:
        await endpoint.stop()


async def register(http: Http, base: str, name: str, poa: list[str] | None = None) -> str:
    aei = f"C{name}"
    ae: dict[str, Any] = {"rn": name, "api": "Ntest", "rr": True, "srv": ["3"]}
    if poa is not None:
        ae["poa"] = poa
    r = await http.send("POST", f"{base}/cse-in", fr=aei, ty=2, body={"m2m:ae": ae})
    assert r.rsc == 2001, r.body
    r = await http.send("POST", f"{base}/cse-in/{name}", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.body
    return aei


async def subscribe(http: Http, base: str, name: str, aei: str, **sub: Any) -> Any:
    sub.setdefault("enc", {"net": [3]})
    return await http.send("POST", f"{base}/cse-in/{name}/data", fr=aei, ty=23, body={"m2m:sub": sub})


async def add_cin(http: Http, base: str, name: str, aei: str, con: str) -> None:
    r = await http.send("POST", f"{base}/cse-in/{name}/data", fr=aei, ty=4, body={"m2m:cin": {"con": con}})
    assert r.rsc == 2001, r.body


async def test_own_ae_id_with_a_poa_on_an_admin_endpoint(cse_process: Callable[..., Any], http: Http,
                                                        admin: AdminEndpoint, receiver: Receiver) -> None:
    """Default configuration (loopback allowed): the admin endpoint gets one
    verification request, which it cannot answer as a oneM2M receiver, and
    nothing else -- ever."""
    cse: CSEProcess = await cse_process()
    aei = await register(http, cse.url, "app", poa=[admin.url])
    r = await subscribe(http, cse.url, "app", aei, nu=[aei])
    assert r.rsc == 5204, r.body
    assert "answered the verification request with 5000" in r.body["m2m:dbg"]
    r = await subscribe(http, cse.url, "app", aei, nu=[aei] * 5000)
    assert r.rsc == 4000 and "nu lists 5000 targets; at most 16" in r.body["m2m:dbg"]
    # events on the container, a relayed NOTIFY, an rt=2 result to its poa: each is preceded by a
    # verification request the endpoint cannot pass, so nothing else reaches it
    await add_cin(http, cse.url, "app", aei, "x")
    r = await http.send("POST", f"{cse.url}/cse-in/app", fr=ADMIN, body={"m2m:sgn": {"sur": "/id-x/s"}})
    assert r.rsc == 5204, r.body
    r = await http.send("POST", f"{cse.url}/cse-in/app?rt=2", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c2"}})
    assert r.rsc == 1002, r.body
    await until(lambda: _async(len(admin.hits) >= 3), "the verification request for the rt=2 result")
    # a marker: a healthy subscription's notification, sent after all of the above
    other = await register(http, cse.url, "other")
    r = await subscribe(http, cse.url, "other", other, nu=[receiver.url])
    assert r.rsc == 2001 and (await receiver.next()).is_verification
    await add_cin(http, cse.url, "other", other, "marker")
    assert (await receiver.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] == "marker"
    assert len(admin.hits) == 3, admin.hits
    for method, path, body in admin.hits:
        assert (method, path) == ("POST", "/admin/reboot?x=1")
        assert json.loads(body)["m2m:sgn"]["vrq"] is True, body


async def _async(value: bool) -> bool:
    return value


async def test_su_and_rtu_are_verified(cse_process: Callable[..., Any], http: Http, receiver: Receiver) -> None:
    cse: CSEProcess = await cse_process()
    aei = await register(http, cse.url, "app")
    async with Receiver(reject_verification=True) as refuses:
        # su: asked at creation; a refusal is 5204 and nothing is created
        r = await subscribe(http, cse.url, "app", aei, rn="s1", nu=[receiver.url], su=refuses.url)
        assert r.rsc == 5204, r.body
        assert (await receiver.next()).is_verification  # nu is asked first
        assert (await refuses.next()).is_verification
        r = await subscribe(http, cse.url, "app", aei, rn="s1", nu=[receiver.url], su=receiver.url)
        assert r.rsc == 2001, r.body
        vrq = await receiver.next()
        assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{r.body['m2m:sub']['ri']}", "cr": aei}
        assert (await http.send("DELETE", f"{cse.url}/cse-in/app/data/s1", fr=aei)).rsc == 2002
        assert (await receiver.next()).sgn["sud"] is True  # no second question: remembered
        # X-M2M-RTU: a target that refuses gets the question and no result
        for i in range(2):
            r = await http.send("POST", f"{cse.url}/cse-in/app?rt=2", fr=aei, ty=3,
                                body={"m2m:cnt": {"rn": f"c{i}"}}, headers={"X-M2M-RTU": refuses.url})
            assert r.rsc == 1002, r.body
            got = await refuses.next()
            assert got.sgn == {"vrq": True, "sur": f"/id-in/{r.body['m2m:uri']}", "cr": aei}, got.body
        # one that accepts gets the question, then the result; the next result goes without a question
        async with Receiver() as accepts:
            for rn in ("c8", "c9"):
                r = await http.send("POST", f"{cse.url}/cse-in/app?rt=2", fr=aei, ty=3,
                                    body={"m2m:cnt": {"rn": rn}}, headers={"X-M2M-RTU": accepts.url})
                assert r.rsc == 1002, r.body
                if rn == "c8":
                    assert (await accepts.next()).is_verification
                assert (await accepts.next()).body["m2m:rsp"]["pc"]["m2m:cnt"]["rn"] == rn
        assert refuses.pending() == []
    # 130 RTU URLs: refused outright, nothing stored, nothing sent
    rtu = "&".join(f"http://127.0.0.1:{receiver.port}/?{i}" for i in range(130))  # under the 4 KiB header limit
    r = await http.send("POST", f"{cse.url}/cse-in/app?rt=2", fr=aei, ty=3,
                        body={"m2m:cnt": {"rn": "many"}}, headers={"X-M2M-RTU": rtu})
    assert r.rsc == 4000 and "X-M2M-RTU lists 130 targets; at most 16" in r.body["m2m:dbg"], r.body
    assert (await http.send("GET", f"{cse.url}/cse-in/app/many", fr=ADMIN)).rsc == 4004
    assert receiver.pending() == []


async def test_allow_list_keeps_loopback_admin_endpoints_out(cse_process: Callable[..., Any], http: Http,
                                                            admin: AdminEndpoint) -> None:
    """With ``allow`` set to where the AEs listen (here the IPv6 loopback),
    the admin endpoint on 127.0.0.1 is not even asked."""
    cse: CSEProcess = await cse_process(extra='\n[outbound]\nallow = ["::1/128"]\nmax_subscriptions = 2\n')
    aei = await register(http, cse.url, "app", poa=[admin.url])
    async with Receiver(host="::1") as v6:
        for sub in ({"nu": [admin.url]}, {"nu": [aei]}, {"nu": [v6.url], "su": admin.url}):
            r = await subscribe(http, cse.url, "app", aei, **sub)
            assert r.rsc == 4000, r.body
            assert "127.0.0.1 is not in any allowed network ([outbound] allow)" in r.body["m2m:dbg"]
        r = await http.send("POST", f"{cse.url}/cse-in/app?rt=2", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c"}},
                            headers={"X-M2M-RTU": admin.url})
        assert r.rsc == 4000, r.body
        # the IPv6 receiver is allowed; the per-originator cap is 2
        for _ in range(2):
            r = await subscribe(http, cse.url, "app", aei, nu=[v6.url], enc={"net": [3], "chty": [4]})
            assert r.rsc == 2001, r.body
            assert (await v6.next()).is_verification
        r = await subscribe(http, cse.url, "app", aei, nu=[v6.url])
        assert r.rsc == 4103 and "already has 2 subscriptions" in r.body["m2m:dbg"], r.body
        await add_cin(http, cse.url, "app", aei, "v6")
        assert (await v6.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] == "v6"
    assert admin.hits == []

"""The public SDK functions no other test exercises directly.

Why: every public SDK function has a test; these are the
small ones (request building, AE lookup, routing clean-up, session paths and
refresh, content helpers) that the flow tests only use in passing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ae_sdk import (
    ROOTS,
    AEClient,
    InProcessTransport,
    M2MResponseError,
    NotificationServer,
    SDKError,
    unwrap,
    wrap,
)
from cse.app import CSE
from cse.core.messages import Operation

T = 10.0


@pytest.fixture
async def client(cse_app: CSE) -> AsyncIterator[AEClient]:
    c = AEClient(InProcessTransport(cse_app.handle))
    await c.register("rest", scp=["smg"])
    try:
        yield c
    finally:
        await c.close()


async def test_build_makes_a_request_from_this_client(client: AEClient) -> None:
    a = client.build(Operation.RETRIEVE, "rest/x", rcn=4)
    b = client.build(Operation.CREATE, "rest", ty=3, pc={"m2m:cnt": {"rn": "d"}}, fr="CAdmin")
    assert a.op == Operation.RETRIEVE and a.to == "cse-in/rest/x" and a.rcn == 4
    assert a.fr == client.originator and a.rvi == "3" and a.rqi and a.rqi != b.rqi
    assert b.fr == "CAdmin" and b.ty == 3 and b.pc == {"m2m:cnt": {"rn": "d"}}


async def test_require_ae_returns_the_registered_ae(client: AEClient, cse_app: CSE) -> None:
    ae = await client.require_ae()
    assert ae["aei"] == client.originator and ae["rn"] == "rest"
    later = AEClient(InProcessTransport(cse_app.handle), originator=client.originator)
    try:  # constructed with originator=: retrieved once
        assert (await later.require_ae())["aei"] == client.originator
    finally:
        await later.close()
    nobody = AEClient(InProcessTransport(cse_app.handle))
    try:
        with pytest.raises(SDKError, match="no AE"):
            await nobody.require_ae()
    finally:
        await nobody.close()


async def test_notification_server_forgets_routes() -> None:
    got: list[Any] = []
    sgn = {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": "x"}}, "net": 3}, "sur": "/id-in/sub1"}}
    headers = {"X-M2M-Origin": "/id-in", "X-M2M-RI": "n1", "X-M2M-RVI": "3", "Content-Type": "application/json"}
    async with NotificationServer() as server, aiohttp.ClientSession() as http:
        server.add_subscription("/id-in/sub1", got.append)
        server.remove_subscription("/id-in/sub1")
        server.remove_result_callback("rq-unknown")  # nothing registered: no error
        async with http.post(server.url, data=json.dumps(sgn), headers=headers) as r:
            assert r.headers["X-M2M-RSC"] == "2000"
        unclaimed = await server.next(T)  # it went to nobody's callback, only to the queue
        assert unclaimed.sur == "/id-in/sub1"
    assert got == []


async def test_session_paths_refresh_and_own_epa(cse_app: CSE) -> None:
    a1 = AEClient(InProcessTransport(cse_app.handle))
    a2 = AEClient(InProcessTransport(cse_app.handle))
    await a1.register("p1", scp=["smg"])
    await a2.register("p2", scp=["smg"])
    try:
        await a2.enable_sessions()
        s1 = await a1.establish(a2.originator or "", epa={"k": "v"})
        assert s1.own_epa == {"k": "v"} == s1.epa
        assert s1.policies_path == f"{s1.path}/sessionPolicies"
        res = await s1.refresh()
        assert res["sid"] == s1.sid and res["sst"] == 2 and "scr" not in res and s1.resource == res
        await s1.terminate()
        with pytest.raises(M2MResponseError) as err:
            await s1.refresh()
        assert err.value.rsc == 4004
    finally:
        await a1.close()
        await a2.close()


async def test_session_manager_enable_and_paths(cse_app: CSE) -> None:
    from ae_sdk.session_manager import SessionManager

    c = AEClient(InProcessTransport(cse_app.handle))
    await c.register("m1", scp=["smg"])
    try:
        mgr = SessionManager(c)
        assert mgr.enabled is False
        assert await mgr.sessions_path() == "cse-in/m1/sessions"
        sub = await mgr.enable(lambda offer: True)
        assert mgr.enabled is True and sub["nu"]
    finally:
        await c.close()


def test_wrap_unwrap_and_roots() -> None:
    assert ROOTS[3] == "m2m:cnt" and ROOTS[9002] == "m2m:sess"
    assert unwrap({"m2m:cnt": {"rn": "d"}}) == {"rn": "d"}
    assert unwrap(None) == {}
    assert unwrap({"m2m:uril": ["a"]}) == {"m2m:uril": ["a"]}
    assert wrap(3, {"rn": "d"}) == {"m2m:cnt": {"rn": "d"}}

"""AEClient against an in-process CSE (InProcessTransport, no sockets).

Registration (and re-registration of a script re-run), CRUD, discovery,
errors with rsc and dbg, path forms, what every request carries, and the
non-blocking rt=1 flow.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ae_sdk import AEClient, InProcessTransport, M2MResponseError, SDKError
from cse.app import CSE
from cse.core.messages import Operation

from .conftest import Recorder


async def test_register_assigns_and_uses_ae_id(client: AEClient, recorder: Recorder) -> None:
    ae = await client.register("app", api="Ntest", lbl=["k:v"])
    assert ae["rn"] == "app" and ae["api"] == "Ntest" and ae["lbl"] == ["k:v"]
    assert ae["aei"].startswith("C") and ae["ri"] == ae["aei"]
    assert ae["rr"] is False and ae["srv"] == ["3"]
    assert client.originator == ae["aei"]
    assert client.ae_path == "cse-in/app"
    assert client.registration_reused is False
    assert recorder.requests[0].fr == "C" and recorder.requests[0].ty == 2
    await client.retrieve("app")
    assert recorder.requests[-1].fr == ae["aei"]


async def test_register_with_poa_defaults_rr_true(client: AEClient) -> None:
    ae = await client.register("app", poa="http://127.0.0.1:9/notify", scp="smg")
    assert ae["poa"] == ["http://127.0.0.1:9/notify"]
    assert ae["rr"] is True
    assert ae["scp"] == ["smg"]


async def test_register_rerun_with_known_originator_reuses_ae(cse_app: CSE) -> None:
    first = AEClient(InProcessTransport(cse_app.handle))
    ae = await first.register("app", origin="Cscript")
    assert ae["aei"] == "Cscript"
    # a re-run of the same script: the CSE says 4117, the SDK adopts the AE
    again = AEClient(InProcessTransport(cse_app.handle))
    ae2 = await again.register("app", origin="Cscript", poa=["http://127.0.0.1:9/n"])
    assert again.registration_reused is True
    assert again.originator == "Cscript"
    assert ae2["ri"] == ae["ri"]
    assert ae2["poa"] == ["http://127.0.0.1:9/n"]  # a changed poa is updated
    # same with the AE-ID given to the constructor
    third = AEClient(InProcessTransport(cse_app.handle), originator=ae["aei"])
    assert (await third.register("app"))["ri"] == ae["ri"]
    assert third.registration_reused is True


async def test_register_conflict_without_known_originator_raises(cse_app: CSE) -> None:
    await AEClient(InProcessTransport(cse_app.handle)).register("app")
    other = AEClient(InProcessTransport(cse_app.handle))
    with pytest.raises(M2MResponseError) as info:
        await other.register("app")  # origin "C": a new AE-ID, but the name is taken
    assert info.value.rsc == 4105
    assert other.originator is None


async def test_register_rerun_does_not_adopt_someone_elses_ae(cse_app: CSE) -> None:
    await AEClient(InProcessTransport(cse_app.handle)).register("app", origin="Cowner")
    intruder = AEClient(InProcessTransport(cse_app.handle))
    with pytest.raises(M2MResponseError) as info:
        await intruder.register("app", origin="Cintruder")  # rn taken by Cowner
    assert info.value.rsc == 4105
    assert any("re-registration" in n for n in getattr(info.value, "__notes__", []))
    assert intruder.originator is None
    with pytest.raises(M2MResponseError) as info:
        await intruder.register("other", origin="Cowner")  # AE-ID exists under another rn
    assert info.value.rsc == 4117


async def test_deregister(client: AEClient) -> None:
    ae = await client.register("app")
    await client.deregister()
    assert client.ae is None and client.originator is None
    admin = AEClient(client.transport, originator="CAdmin")
    with pytest.raises(M2MResponseError) as info:
        await admin.retrieve(admin.ri_path(ae["ri"]))
    assert info.value.rsc == 4004
    with pytest.raises(SDKError):
        await client.deregister()


async def test_crud_round_trip(client: AEClient) -> None:
    await client.register("app")
    cnt = await client.create_container("app", "data", mni=3, lbl=["room:kitchen"])
    assert cnt["rn"] == "data" and cnt["ty"] == 3 and cnt["mni"] == 3 and cnt["cni"] == 0
    cin = await client.create_content_instance("app/data", "21.5", cnf="text/plain:0")
    assert cin["con"] == "21.5" and cin["cnf"] == "text/plain:0" and cin["ty"] == 4
    assert (await client.retrieve("app/data/la"))["ri"] == cin["ri"]
    got = await client.retrieve("app/data")
    assert got["cni"] == 1 and got["lbl"] == ["room:kitchen"]
    partial = await client.retrieve("app/data", atrl=["mni", "cni"])
    assert partial == {"mni": 3, "cni": 1}
    updated = await client.update("app/data", {"mni": 5, "lbl": None})  # type learnt from the CSE
    assert updated["mni"] == 5 and "lbl" not in updated and updated["st"] == got["st"] + 1
    assert (await client.update("app/data", {"mni": 6}, ty=3))["mni"] == 6
    assert (await client.update("app/data", {"m2m:cnt": {"mni": 7}}))["mni"] == 7
    await client.delete("app/data")
    with pytest.raises(M2MResponseError) as info:
        await client.retrieve("app/data")
    assert info.value.rsc == 4004
    assert "cse-in/app/data" in info.value.dbg


async def test_create_generic_and_result_content(client: AEClient) -> None:
    await client.register("app")
    grp_like = await client.create("app", 3, {"m2m:cnt": {"mbs": 100}}, rn="wrapped")
    assert grp_like["rn"] == "wrapped" and grp_like["mbs"] == 100
    assert await client.create("app", 3, {}, rn="quiet", rcn=0) == {}
    assert await client.create("app", 3, {}, rn="addr", rcn=2) == {"m2m:uri": "cse-in/app/addr"}


async def test_create_container_exist_ok(client: AEClient) -> None:
    await client.register("app")
    first = await client.create_container("app", "data")
    with pytest.raises(M2MResponseError) as info:
        await client.create_container("app", "data")
    assert info.value.rsc == 4105
    again = await client.create_container("app", "data", exist_ok=True)
    assert again["ri"] == first["ri"]


async def test_errors_carry_rsc_dbg_and_response(client: AEClient) -> None:
    await client.register("app")
    with pytest.raises(M2MResponseError) as info:
        await client.create_container("app/missing", "x")
    err = info.value
    assert err.rsc == 4004
    assert err.dbg and "does not exist" in err.dbg
    assert err.response.rsc == 4004 and err.response.pc == {"m2m:dbg": err.dbg}
    assert err.request is not None and err.request.op == Operation.CREATE
    assert "4004" in str(err) and "NOT_FOUND" in str(err) and err.dbg in str(err)
    with pytest.raises(M2MResponseError) as info:
        await client.update("app/data/la", {"con": "x"}, ty=4)
    assert info.value.rsc in (4004, 4005)
    with pytest.raises(M2MResponseError) as info:
        await client.retrieve("app", rcn=2)
    assert info.value.rsc == 4000


async def test_access_denied_for_another_ae(cse_app: CSE) -> None:
    owner = AEClient(InProcessTransport(cse_app.handle))
    await owner.register("owner")
    await owner.create_container("owner", "data")
    other = AEClient(InProcessTransport(cse_app.handle))
    await other.register("other")
    with pytest.raises(M2MResponseError) as info:
        await other.create_content_instance("owner/data", "x")
    assert info.value.rsc == 4103


async def test_discover(client: AEClient) -> None:
    await client.register("app")
    await client.create_container("app", "kitchen", lbl=["room:kitchen"])
    await client.create_container("app", "hall", lbl=["room:hall"])
    await client.create_container("app", "attic", lbl=["room:attic"])
    await client.create_content_instance("app/kitchen", "1")
    found = await client.discover("app", ty=3, lbl=["room:kitchen", "room:hall"])
    assert sorted(found) == ["cse-in/app/hall", "cse-in/app/kitchen"]
    assert await client.discover("app", ty=4) == [
        f"cse-in/app/kitchen/{(await client.retrieve('app/kitchen/la'))['rn']}"]
    assert len(await client.discover("app", ty=[3, 4], lim=2)) == 2
    assert await client.discover("app", lbl="room:none") == []
    ids = await client.discover("app", ty=3, drt=2)
    assert len(ids) == 3 and all("cse-in/" not in i for i in ids)
    refs = await client.discover("app", ty=3, rcn=6)
    assert sorted(refs) == ["cse-in/app/attic", "cse-in/app/hall", "cse-in/app/kitchen"]
    with pytest.raises(M2MResponseError) as info:
        await client.discover("app", nonsense_attribute=1)
    assert info.value.rsc == 4000


def test_target_paths() -> None:
    c = AEClient(InProcessTransport(_never), cse_name="cse-in", cse_id="/id-in")
    assert c.target("myapp/data") == "cse-in/myapp/data"
    assert c.target("myapp") == "cse-in/myapp"
    assert c.target("cse-in") == "cse-in"
    assert c.target("cse-in/myapp") == "cse-in/myapp"
    assert c.target("-/myapp") == "-/myapp"
    assert c.target("/id-in/cnt123") == "/id-in/cnt123"
    assert c.target("/id-in/cse-in/myapp") == "/id-in/cse-in/myapp"
    assert c.target("//sp.example/id-in/cnt1") == "//sp.example/id-in/cnt1"
    assert c.target("cse-inx/a") == "cse-in/cse-inx/a"  # only the exact CSE name counts
    assert c.ri_path("cnt123") == "/id-in/cnt123"
    assert AEClient(InProcessTransport(_never), cse_id="id-x").ri_path("a") == "/id-x/a"
    with pytest.raises(ValueError):
        c.target("")


async def _never(req: Any) -> Any:
    raise AssertionError("no request expected")


async def test_all_path_forms_reach_the_resource(client: AEClient) -> None:
    await client.register("app")
    cnt = await client.create_container("app", "data")
    for path in ("app/data", "cse-in/app/data", "-/app/data", "/id-in/cse-in/app/data",
                 client.ri_path(cnt["ri"]), f"/id-in/{client.originator}/data"):
        assert (await client.retrieve(path))["ri"] == cnt["ri"], path


async def test_every_request_has_fresh_ri_rvi_and_originator(client: AEClient, recorder: Recorder) -> None:
    await client.register("app")
    await client.create_container("app", "data")
    await client.retrieve("app/data")
    await client.discover("app", ty=3)
    await client.delete("app/data")
    rqis = [r.rqi for r in recorder.requests]
    assert len(set(rqis)) == len(rqis) and all(rqis)
    assert all(r.rvi == "3" for r in recorder.requests)
    assert all(r.fr == client.originator for r in recorder.requests[1:])
    assert [resp.rqi for resp in recorder.responses] == rqis
    discovery = next(r for r in recorder.requests if r.query)  # registration may also read the CSEBase
    assert discovery.query["fu"] == ("1",) and discovery.query["ty"] == ("3",)


async def test_non_blocking_synch_and_wait(client: AEClient) -> None:
    await client.register("app")
    ref = await client.create("app", 3, {"mni": 2}, rn="slow", rt=1)
    assert isinstance(ref, str) and ref
    ors = await client.wait_request(ref, 10)
    assert ors["rsc"] == 2001
    assert ors["pc"]["m2m:cnt"]["rn"] == "slow"
    ref = await client.retrieve("app/slow", rt=1)
    assert (await client.wait_request(ref, 10))["pc"]["m2m:cnt"]["mni"] == 2
    ref = await client.create("app", 3, {"nonsense": 1}, rt=1)  # rejected in the background
    failed = await client.wait_request(ref, 10)
    assert failed["rsc"] == 4000 and failed["pc"]["m2m:dbg"]
    ref = await client.delete("app/slow", rt=1)
    assert (await client.wait_request(ref, 10))["rsc"] == 2002


async def test_wait_request_polls_until_not_pending() -> None:
    polls: list[str] = []
    states = iter([3, 3, 1])

    async def fake(req: Any) -> Any:
        from cse.core.messages import Response
        if req.op == Operation.CREATE:
            assert req.rt == 1
            return Response(rsc=1001, rqi=req.rqi, pc={"m2m:uri": "req42"})
        polls.append(req.to)
        rs = next(states)
        ors = {"rsc": 2001, "rqi": "x"} if rs == 1 else {"rsc": 1000}
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:req": {"rs": rs, "ors": ors}})

    c = AEClient(InProcessTransport(fake), originator="Cme")
    ref = await c.create("x", 3, {}, rt=1)
    assert ref == "req42"
    assert await c.wait_request(ref, 5, interval=0) == {"rsc": 2001, "rqi": "x"}
    assert polls == ["/id-in/req42"] * 3


async def test_wait_request_times_out() -> None:
    async def pending(req: Any) -> Any:
        from cse.core.messages import Response
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:req": {"rs": 3, "ors": {"rsc": 1000}}})

    c = AEClient(InProcessTransport(pending), originator="Cme")
    with pytest.raises(TimeoutError):
        await c.wait_request("cse-in/req1", 0.05, interval=0.01)
    with pytest.raises(ValueError):
        await c.wait_request("", 1)


async def test_bad_rt_and_misuse(client: AEClient) -> None:
    await client.register("app")
    with pytest.raises(ValueError):
        await client.retrieve("app", rt=6)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        await client.retrieve("app", on_result=lambda rsp: None)  # type: ignore[call-overload]
    with pytest.raises(SDKError):
        await client.subscribe("app", lambda sgn: None)  # no notification server


async def test_in_process_transport_copies_content(cse_app: CSE) -> None:
    c = AEClient(InProcessTransport(cse_app.handle))
    await c.register("app")
    labels = ["a"]
    cnt = await c.create_container("app", "data", lbl=labels)
    labels.append("b")
    cnt["lbl"].append("c")
    assert (await c.retrieve("app/data"))["lbl"] == ["a"]


async def test_subscribe_in_process_with_loopback_notifications(client: AEClient) -> None:
    """The in-process CSE still notifies over HTTP: the SDK's server receives it."""
    server = await client.start_notifications()
    await client.register("app")
    await client.create_container("app", "data")
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sub = await client.subscribe("app/data", got.put_nowait, rn="s")
    assert (await server.next(5)).kind == "verification"
    await client.create_content_instance("app/data", "x")
    sgn = await asyncio.wait_for(got.get(), 5)
    assert sgn["nev"]["net"] == 3 and sgn["sur"].endswith(sub["ri"])
    # replace=True re-creates a subscription of the same name (a script re-run)
    with pytest.raises(M2MResponseError):
        await client.subscribe("app/data", got.put_nowait, rn="s", replace=False)
    sub2 = await client.subscribe("app/data", got.put_nowait, rn="s", replace=True)
    assert sub2["ri"] != sub["ri"]


async def test_rejected_rt2_request_forgets_its_result_callback(client: AEClient) -> None:
    server = await client.start_notifications()
    await client.register("app")
    with pytest.raises(M2MResponseError):
        await client.retrieve("app/missing", rt=2, on_result=lambda rsp: None)
    assert not server._results  # no callback left behind


async def test_specialization_roots_are_content_roots(client: AEClient) -> None:
    """A flexContainer specialization has its own namespace root (``cod:binSh``):
    the SDK sends it as given, unwraps the answer and finds it for an UPDATE
    without ``ty`` (docs/sdk.md)."""
    await client.register("app", api="Ntest")
    cnd = "org.onem2m.common.moduleclass.binarySwitch"
    sw = await client.create("app", 28, {"cod:binSh": {"cnd": cnd, "powSe": False}}, rn="sw")
    assert sw["cnd"] == cnd and sw["powSe"] is False
    assert (await client.update("app/sw", {"powSe": True}))["powSe"] is True
    assert (await client.retrieve("app/sw"))["powSe"] is True
    fc = await client.create("app", 28, {"cnd": "com.example.meter", "kWh": 1.5}, rn="m")
    assert fc["kWh"] == 1.5
    assert sorted(await client.discover("app", ty=28)) == ["cse-in/app/m", "cse-in/app/sw"]

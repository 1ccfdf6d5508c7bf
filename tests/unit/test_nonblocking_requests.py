"""Non-blocking requests and the <request> resource (docs/onem2m.md "request"
and "Non-blocking requests"): rt=1 with polling, rt=2 with result notifications, failures,
access and expiry. In-process CSE, real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from cse.core.messages import Operation
from cse.core.timestamps import format_ts, parse_ts
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"
PENDING, COMPLETED, FAILED = 3, 1, 2


async def poll(ip: Any, fr: str, ri: str, timeout: float = 5.0) -> dict[str, Any]:
    """The <request> once the background work is done (waited on, bounded by ``timeout``)."""
    await asyncio.wait_for(ip.cse.nonblocking.stop(), timeout)  # awaits the running requests
    r = await ip.call(RETRIEVE, ri, fr)
    assert r.rsc == 2000, r.pc
    req = r.pc["m2m:req"]
    assert req["rs"] != PENDING, f"<request> {ri} still pending: {req}"
    return dict(req)


async def settled(ip: Any) -> None:
    """Background operations finished and their notifications sent."""
    await asyncio.wait_for(ip.cse.nonblocking.stop(), 5)
    await ip.cse.notifier.drained(5)


# -- rt = 1 ----------------------------------------------------------------------------

async def test_rt1_create_then_poll(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "mni": 3}}, rt=1)
    assert r.rsc == 1001, r.pc
    assert list(r.pc) == ["m2m:uri"], r.pc
    ri = r.pc["m2m:uri"]
    assert isinstance(ri, str) and ri
    req = await poll(ip, aei, ri)
    assert req["rs"] == COMPLETED
    assert req["ty"] == 17 and req["pi"] == "id-in"
    assert req["op"] == 1 and req["org"] == aei and req["tg"] == "cse-in/app"
    ors = req["ors"]
    assert ors["rsc"] == 2001
    cnt = ors["pc"]["m2m:cnt"]
    assert cnt["rn"] == "data" and cnt["mni"] == 3
    # the resource really exists, as reported
    got = await ip.call(RETRIEVE, "cse-in/app/data", aei)
    assert got.rsc == 2000 and got.pc["m2m:cnt"]["ri"] == cnt["ri"]


async def test_rt1_request_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    assert r.rsc == 1001
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["rid"] == r.rqi
    assert req["pc"] == {"m2m:cnt": {"rn": "data"}}
    assert req["lbl"] == [aei]
    assert req["ors"]["rqi"] == r.rqi
    assert req["mi"]["rt"]["rtv"] == 1
    assert req["st"] >= 1  # it was updated when the operation finished


async def test_rt1_retrieve_update_delete(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    r = await ip.call(RETRIEVE, "cse-in/app/data", aei, rt=1)
    assert r.rsc == 1001, r.pc
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["ors"]["rsc"] == 2000 and req["ors"]["pc"]["m2m:cnt"]["rn"] == "data"
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["x"]}}, rt=1)
    assert r.rsc == 1001
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["ors"]["rsc"] == 2004 and req["ors"]["pc"]["m2m:cnt"]["lbl"] == ["x"]
    r = await ip.call(DELETE, "cse-in/app/data", aei, rt=1)
    assert r.rsc == 1001
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["ors"]["rsc"] == 2002 and req["op"] == 4
    assert (await ip.call(RETRIEVE, "cse-in/app/data", aei)).rsc == 4004


async def test_rt1_failing_operation_is_failed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "bogus": 1}}, rt=1)
    assert r.rsc == 1001, r.pc
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["rs"] == FAILED
    assert req["ors"]["rsc"] == 4000
    assert isinstance(req["ors"]["pc"]["m2m:dbg"], str)
    assert (await ip.call(RETRIEVE, "cse-in/app/data", aei)).rsc == 4004


async def test_rt1_conflict_is_failed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    assert r.rsc == 1001
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert req["rs"] == FAILED and req["ors"]["rsc"] == 4105


async def test_rt1_unknown_target_is_4004_at_once(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app/nothing", aei, ty=3, pc={"m2m:cnt": {}}, rt=1)
    assert r.rsc == 4004, r.pc
    r = await ip.call(RETRIEVE, "cse-in/nope", aei, rt=2)
    assert r.rsc == 4004, r.pc
    # no <request> was left behind
    r = await ip.call(RETRIEVE, "cse-in", ADMIN, rcn=6)
    assert r.rsc == 2000
    refs = r.pc["m2m:rrl"].get("rrf", [])
    assert not [x for x in refs if x.get("typ") == 17], refs


async def test_request_create_via_api_is_4005(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    for fr in (aei, ADMIN):
        r = await ip.call(CREATE, "cse-in", fr, ty=17, pc={"m2m:req": {}})
        assert r.rsc == 4005, r.pc


async def test_request_update_is_4005(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    ri = r.pc["m2m:uri"]
    await poll(ip, aei, ri)
    r = await ip.call(UPDATE, ri, aei, pc={"m2m:req": {"lbl": ["x"]}})
    assert r.rsc == 4005, r.pc


async def test_other_ae_cannot_retrieve_my_request(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    other = await ip.register("other")
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    ri = r.pc["m2m:uri"]
    await poll(ip, aei, ri)
    r = await ip.call(RETRIEVE, ri, other)
    assert r.rsc == 4103, r.pc
    r = await ip.call(DELETE, ri, other)
    assert r.rsc == 4103, r.pc
    # the originator may delete it
    assert (await ip.call(DELETE, ri, aei)).rsc == 2002
    assert (await ip.call(RETRIEVE, ri, aei)).rsc == 4004


async def test_request_expires_at_rset(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    clock = ip.clock
    rset = format_ts(clock.now() + 120)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1, rset=rset)
    assert r.rsc == 1001, r.pc
    ri = r.pc["m2m:uri"]
    req = await poll(ip, aei, ri)
    assert req["et"] == rset
    clock.advance(60)
    await ip.cse._expire(clock.now())
    assert (await ip.call(RETRIEVE, ri, aei)).rsc == 2000
    clock.advance(61)
    await ip.cse._expire(clock.now())
    assert (await ip.call(RETRIEVE, ri, aei)).rsc == 4004
    # only the <request> expired, not what it created
    assert (await ip.call(RETRIEVE, "cse-in/app/data", aei)).rsc == 2000


async def test_request_relative_rset(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    clock = ip.clock
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1, rset="30000")
    assert r.rsc == 1001, r.pc
    ri = r.pc["m2m:uri"]
    req = await poll(ip, aei, ri)
    assert abs(parse_ts(req["et"]) - (clock.now() + 30)) < 1
    clock.advance(31)
    await ip.cse._expire(clock.now())
    assert (await ip.call(RETRIEVE, ri, aei)).rsc == 4004


async def test_request_without_rset_has_an_expiry(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    req = await poll(ip, aei, r.pc["m2m:uri"])
    assert parse_ts(req["et"]) > ip.clock.now()


# -- rt = 2 ----------------------------------------------------------------------------

async def test_rt2_with_rtu_notifies_result(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=2,
                      rtu=(receiver.url,))
    assert r.rsc == 1002, r.pc
    ri = r.pc["m2m:uri"]
    # the target is asked first (docs/security.md "Outbound requests"), for this request
    vrq = await receiver.next()
    assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{ri}", "cr": aei}
    item = await receiver.next()
    assert item.method == "POST"
    assert item.header("X-M2M-Origin") == "/id-in"
    rsp = item.body["m2m:rsp"]
    assert rsp["rsc"] == 2001
    assert rsp["rqi"] == r.rqi
    assert rsp["pc"]["m2m:cnt"]["rn"] == "data"
    assert rsp["to"] == "cse-in/app"
    assert rsp["rvi"] == "3"
    req = await poll(ip, aei, ri)
    assert req["rs"] == COMPLETED and req["ors"]["rsc"] == 2001
    assert req["mi"]["rt"] == {"rtv": 2, "nu": [receiver.url]}
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []


async def test_rt2_failure_is_notified(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "bogus": 1}}, rt=2,
                      rtu=(receiver.url,))
    assert r.rsc == 1002
    assert (await receiver.next()).is_verification
    rsp = (await receiver.next()).body["m2m:rsp"]
    assert rsp["rsc"] == 4000 and rsp["rqi"] == r.rqi
    assert isinstance(rsp["pc"]["m2m:dbg"], str)


async def test_rt2_several_rtu(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as second:
        r = await ip.call(DELETE, "cse-in/app", aei, rt=2, rtu=(receiver.url, second.url))
        assert r.rsc == 1002, r.pc
        for rcv in (receiver, second):
            assert (await rcv.next()).is_verification
            rsp = (await rcv.next()).body["m2m:rsp"]
            assert rsp["rsc"] == 2002 and rsp["rqi"] == r.rqi


async def test_rt2_without_rtu_notifies_originator_poa(inproc: Any, receiver: Receiver) -> None:
    aei = await inproc.register("app", poa=[receiver.url])
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=2)
    assert r.rsc == 1002, r.pc
    assert (await receiver.next()).sgn == {"vrq": True, "sur": f"/id-in/{r.pc['m2m:uri']}", "cr": aei}
    item = await receiver.next()
    rsp = item.body["m2m:rsp"]
    assert rsp["rsc"] == 2001 and rsp["rqi"] == r.rqi
    assert rsp["pc"]["m2m:cnt"]["rn"] == "data"


async def test_rt2_empty_rtu_notifies_nobody(inproc: Any, receiver: Receiver) -> None:
    aei = await inproc.register("app", poa=[receiver.url])
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=2, rtu=())
    assert r.rsc == 1002, r.pc
    req = await poll(inproc, aei, r.pc["m2m:uri"])
    assert req["rs"] == COMPLETED
    await settled(inproc)
    assert receiver.pending() == []
    # the operation itself happened
    assert (await inproc.call(RETRIEVE, "cse-in/app/data", aei)).rsc == 2000


async def test_rt2_empty_rtu_entry_notifies_nobody(inproc: Any, receiver: Receiver) -> None:
    """An empty X-M2M-RTU header arrives as a single empty entry."""
    aei = await inproc.register("app", poa=[receiver.url])
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=2, rtu=("",))
    assert r.rsc == 1002, r.pc
    await poll(inproc, aei, r.pc["m2m:uri"])
    await settled(inproc)
    assert receiver.pending() == []


async def test_rt1_notifies_nobody(inproc: Any, receiver: Receiver) -> None:
    aei = await inproc.register("app", poa=[receiver.url])
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1,
                          rtu=(receiver.url,))
    assert r.rsc == 1001
    await poll(inproc, aei, r.pc["m2m:uri"])
    await settled(inproc)
    assert receiver.pending() == []


async def test_rt2_operation_events_still_notify_subscribers(inproc: Any, receiver: Receiver) -> None:
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=23,
                          pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}}})
    assert r.rsc == 2001
    assert (await receiver.next()).is_verification
    async with Receiver() as rtu:
        r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=2,
                              rtu=(rtu.url,))
        assert r.rsc == 1002
        ntf = await receiver.next()
        assert ntf.sgn["nev"]["rep"]["m2m:cnt"]["rn"] == "data"
        assert (await rtu.next()).is_verification
        assert (await rtu.next()).body["m2m:rsp"]["rsc"] == 2001


async def test_many_non_blocking_requests(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    refs = []
    for i in range(20):
        r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": f"c{i}"}}, rt=1)
        assert r.rsc == 1001
        refs.append(r.pc["m2m:uri"])
    assert len(set(refs)) == 20
    for i, ri in enumerate(refs):
        req = await poll(ip, aei, ri)
        assert req["ors"]["rsc"] == 2001 and req["ors"]["pc"]["m2m:cnt"]["rn"] == f"c{i}"


async def test_retrieve_request_non_blocking_is_4000(app: dict[str, Any]) -> None:
    """RETRIEVE/UPDATE/DELETE of a <request> with rt 1 or 2 -> 4000 (docs/onem2m.md "request")."""
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}}, rt=1)
    ri = r.pc["m2m:uri"]
    await poll(ip, aei, ri)
    r = await ip.call(RETRIEVE, ri, aei, rt=1)
    assert r.rsc == 4000, r.pc

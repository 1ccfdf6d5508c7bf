"""<group> and its fanOutPoint through the in-process pipeline (docs/onem2m.md "group";
TS-0001 9.6.13, 9.6.14; TS-0004 7.4.13).

Why: applications address many containers or devices at once through a
group's ``fopt``. The CSE must validate the members it is given (existence,
memberType by the consistencyStrategy, maxNrOfMembers), and a fan-out must
run each member request as an ordinary request of the original originator
(so each member's ACPs decide), collect every answer into one ``m2m:agr``
(a missing member's 4004 beside the others' success), and never let a
session widen into members outside the session's peer AE.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cse.core.messages import Operation
from tests.flow2_helpers import LocalSession
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


async def setup(ip: Any, n: int = 3) -> str:
    """AE ``app`` with containers c0..c(n-1); its AE-ID."""
    aei = await ip.register("app")
    for i in range(n):
        r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": f"c{i}"}})
        assert r.rsc == 2001, r.pc
    return str(aei)


async def mk_group(ip: Any, fr: str, mid: list[str], rn: str = "g", parent: str = "cse-in/app",
                   **attrs: Any) -> Any:
    return await ip.call(CREATE, parent, fr, ty=9, pc={"m2m:grp": {"rn": rn, "mt": 3, "mid": mid, **attrs}})


def rsps(resp: Any) -> list[dict[str, Any]]:
    assert resp.rsc == 2000, resp.pc
    return list(resp.pc["m2m:agr"]["m2m:rsp"])


async def test_create_group_counts_validates_and_deduplicates(inproc: Any) -> None:
    aei = await setup(inproc)
    r = await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1", "cse-in/app/c0"], gn="lamps", mnm=5)
    assert r.rsc == 2001, r.pc
    grp = r.pc["m2m:grp"]
    assert grp["ty"] == 9 and grp["ri"].startswith("grp")
    assert (grp["mid"], grp["cnm"], grp["mtv"], grp["mt"], grp["gn"]) == (
        ["cse-in/app/c0", "cse-in/app/c1"], 2, True, 3, "lamps")
    got = await inproc.call(RETRIEVE, "cse-in/app/g", aei)
    assert got.pc["m2m:grp"]["cnm"] == 2


async def test_member_must_exist_and_mnm_bounds(inproc: Any) -> None:
    aei = await setup(inproc)
    r = await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/nope"])
    assert r.rsc == 4004 and "cse-in/app/nope" in dbg(r), r.pc
    r = await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1", "cse-in/app/c2"], mnm=2)
    assert r.rsc == 6010 and "mnm" in dbg(r), r.pc
    r = await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1"], mnm=2)
    assert r.rsc == 2001, r.pc
    up = await inproc.call(UPDATE, "cse-in/app/g", aei, pc={"m2m:grp": {"mnm": 1}})
    assert up.rsc == 6010, up.pc
    up = await inproc.call(UPDATE, "cse-in/app/g", aei, pc={"m2m:grp": {"mid": ["cse-in/app/c2"]}})
    assert up.rsc == 2004 and up.pc["m2m:grp"]["cnm"] == 1, up.pc
    up = await inproc.call(UPDATE, "cse-in/app/g", aei, pc={"m2m:grp": {"cnm": 5}})
    assert up.rsc == 4000, up.pc  # cnm is the CSE's
    r = await mk_group(inproc, aei, [f"cse-in/app/x{i}" for i in range(1001)], rn="huge")
    assert r.rsc == 4000, r.pc  # at most 1000 member IDs (docs/security.md "Groups")
    r = await mk_group(inproc, aei, ["cse-in/app/g/fopt"], rn="nested")
    assert r.rsc == 4000 and "fanOutPoint" in dbg(r), r.pc


async def test_consistency_strategies(inproc: Any) -> None:
    aei = await setup(inproc, 2)
    mixed = ["cse-in/app/c0", "cse-in/app", "cse-in/app/c1"]  # the AE is ty 2, not mt 3
    r = await mk_group(inproc, aei, mixed, rn="g1")  # csy 1 (default): the member is dropped
    assert r.rsc == 2001 and r.pc["m2m:grp"]["mid"] == ["cse-in/app/c0", "cse-in/app/c1"], r.pc
    r = await mk_group(inproc, aei, mixed, rn="g2", csy=2)
    assert r.rsc == 4110 and "cse-in/app" in dbg(r), r.pc
    r = await mk_group(inproc, aei, mixed, rn="g3", csy=3)
    assert r.rsc == 2001 and r.pc["m2m:grp"]["mt"] == 24 and r.pc["m2m:grp"]["cnm"] == 3, r.pc
    r = await mk_group(inproc, aei, mixed, rn="g4", csy=1)
    up = await inproc.call(UPDATE, "cse-in/app/g4", aei, pc={"m2m:grp": {"mt": 2}})
    assert up.rsc == 2004 and up.pc["m2m:grp"]["mid"] == [], up.pc  # no member is an AE any more
    up = await inproc.call(UPDATE, "cse-in/app/g4", aei, pc={"m2m:grp": {"csy": 2}})
    assert up.rsc == 4000, up.pc  # csy is fixed at creation


async def test_fopt_retrieve_create_update_aggregated(inproc: Any) -> None:
    aei = await setup(inproc)
    members = ["cse-in/app/c0", "cse-in/app/c1", "cse-in/app/c2"]
    assert (await mk_group(inproc, aei, members)).rsc == 2001
    answer = await inproc.call(CREATE, "cse-in/app/g/fopt", aei, ty=4, pc={"m2m:cin": {"con": "on"}})
    made = rsps(answer)
    assert [(x["rsc"], x["to"], x["fr"], x["rqi"]) for x in made] == [
        (2001, m, "/id-in", f"{answer.rqi}-m{i}") for i, m in enumerate(members)]
    assert all(x["pc"]["m2m:cin"]["con"] == "on" for x in made)
    for m in members:  # really stored, one instance each
        la = await inproc.call(RETRIEVE, f"{m}/la", aei)
        assert la.rsc == 2000 and la.pc["m2m:cin"]["con"] == "on", la.pc
    got = rsps(await inproc.call(RETRIEVE, "cse-in/app/g/fopt/la", aei))
    assert [(x["rsc"], x["to"], x["pc"]["m2m:cin"]["con"]) for x in got] == [
        (2000, f"{m}/la", "on") for m in members]
    upd = rsps(await inproc.call(UPDATE, "cse-in/app/g/fopt", aei, pc={"m2m:cnt": {"lbl": ["x"]}}))
    assert [x["rsc"] for x in upd] == [2004] * 3
    assert (await inproc.call(RETRIEVE, "cse-in/app/c1", aei)).pc["m2m:cnt"]["lbl"] == ["x"]
    # the unstructured form reaches the same fanOutPoint
    ri = (await inproc.call(RETRIEVE, "cse-in/app/g", aei)).pc["m2m:grp"]["ri"]
    assert [x["rsc"] for x in rsps(await inproc.call(RETRIEVE, f"{ri}/fopt", aei))] == [2000] * 3


async def test_fopt_member_gone_is_4004_others_succeed(inproc: Any) -> None:
    aei = await setup(inproc)
    assert (await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1", "cse-in/app/c2"])).rsc == 2001
    assert (await inproc.call(DELETE, "cse-in/app/c1", aei)).rsc == 2002
    got = rsps(await inproc.call(RETRIEVE, "cse-in/app/g/fopt", aei))
    assert [x["rsc"] for x in got] == [2000, 4004, 2000]
    assert "m2m:dbg" in got[1]["pc"]


async def test_fopt_runs_as_the_original_originator_per_member_acp(inproc: Any) -> None:
    owner = await setup(inproc, 2)
    other = await inproc.register("other")
    acp = await inproc.call(CREATE, "cse-in/app", owner, ty=1, pc={"m2m:acp": {
        "rn": "readers", "pv": {"acr": [{"acor": [other], "acop": 2}, {"acor": [owner], "acop": 63}]},
        "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}})
    assert acp.rsc == 2001, acp.pc
    acpi = acp.pc["m2m:acp"]["ri"]
    # c0 readable by 'other', c1 not (default policy: the owner only)
    assert (await inproc.call(UPDATE, "cse-in/app/c0", owner, pc={"m2m:cnt": {"acpi": [acpi]}})).rsc == 2004
    assert (await mk_group(inproc, owner, ["cse-in/app/c0", "cse-in/app/c1"], macp=[acpi])).rsc == 2001
    got = rsps(await inproc.call(RETRIEVE, "cse-in/app/g/fopt", other))
    assert [x["rsc"] for x in got] == [2000, 4103]
    # macp decides who may use the fanOutPoint at all: 'other' may not CREATE through it
    refused = await inproc.call(CREATE, "cse-in/app/g/fopt", other, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert refused.rsc == 4103, refused.pc
    # without macp, the group's own acpi (default policy: its owner) decides
    assert (await mk_group(inproc, owner, ["cse-in/app/c0"], rn="g2")).rsc == 2001
    assert (await inproc.call(RETRIEVE, "cse-in/app/g2/fopt", other)).rsc == 4103


async def test_fopt_fans_out_at_most_mnm_members(inproc: Any) -> None:
    aei = await setup(inproc, 3)
    assert (await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1"], mnm=2)).rsc == 2001
    # mnm 2: two member requests, two answers
    assert len(rsps(await inproc.call(RETRIEVE, "cse-in/app/g/fopt", aei))) == 2
    r = await inproc.call(RETRIEVE, "cse-in/app/g/fopt/fopt", aei)
    assert r.rsc == 4000 and "nested" in dbg(r), r.pc
    r = await inproc.call(Operation.NOTIFY, "cse-in/app/g/fopt", aei, pc={"m2m:sgn": {}})
    assert r.rsc == 4005, r.pc


async def test_fopt_concurrency_is_bounded(inproc: Any, monkeypatch: Any) -> None:
    aei = await setup(inproc, 12)
    assert (await mk_group(inproc, aei, [f"cse-in/app/c{i}" for i in range(12)])).rsc == 2001
    seen = {"now": 0, "max": 0}
    dispatch = inproc.cse.groups.dispatch

    async def counting(req: Any) -> Any:
        seen["now"] += 1
        seen["max"] = max(seen["max"], seen["now"])
        await asyncio.sleep(0)  # let the others start if they may
        try:
            return await dispatch(req)
        finally:
            seen["now"] -= 1

    groups = inproc.cse.groups
    monkeypatch.setattr(groups, "dispatch", counting)  # instruments the late-bound dispatcher callable
    got = rsps(await inproc.call(RETRIEVE, "cse-in/app/g/fopt", aei))
    assert [x["rsc"] for x in got] == [2000] * 12
    assert seen["max"] == groups.max_parallel == 8


async def test_session_fopt_only_inside_the_peer_ae(ls: LocalSession) -> None:
    ip, cb = ls.ip, ls.cb
    r = await ip.call(CREATE, f"{cb}/AE2", ls.aei2, ty=3, pc={"m2m:cnt": {"rn": "container2"}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(CREATE, f"{cb}/AE1", ls.aei1, ty=3, pc={"m2m:cnt": {"rn": "mine"}})
    assert r.rsc == 2001, r.pc
    inside = [f"{cb}/AE2/container1", f"{cb}/AE2/container2"]
    assert (await mk_group(ip, ls.aei2, inside, rn="gin", parent=f"{cb}/AE2")).rsc == 2001
    assert (await mk_group(ip, ADMIN, [*inside, f"{cb}/AE1/mine"], rn="gout", parent=f"{cb}/AE2")).rsc == 2001
    refused = await ls.call(RETRIEVE, f"{cb}/AE2/gout/fopt", ls.aei1)
    assert refused.rsc == 4103 and f"{cb}/AE1/mine" in dbg(refused), refused.pc
    # inside: fanned out, each member request an ordinary one of AE1 (the session's
    # grant does not pass through the fanOutPoint): container2's ACP lets AE1 read
    acp = await ip.call(CREATE, f"{cb}/AE2", ls.aei2, ty=1, pc={"m2m:acp": {
        "rn": "ae1reads", "pv": {"acr": [{"acor": [ls.aei1], "acop": 2}, {"acor": [ls.aei2], "acop": 63}]},
        "pvs": {"acr": [{"acor": [ls.aei2], "acop": 63}]}}})
    assert acp.rsc == 2001, acp.pc
    r = await ip.call(UPDATE, f"{cb}/AE2/container2", ls.aei2, pc={"m2m:cnt": {"acpi": [acp.pc["m2m:acp"]["ri"]]}})
    assert r.rsc == 2004, r.pc
    ok = await ls.call(RETRIEVE, f"{cb}/AE2/gin/fopt", ls.aei1)
    assert [x["rsc"] for x in rsps(ok)] == [4103, 2000]


async def test_fopt_non_blocking_keeps_the_aggregated_answer(inproc: Any) -> None:
    aei = await setup(inproc, 2)
    assert (await mk_group(inproc, aei, ["cse-in/app/c0", "cse-in/app/c1"])).rsc == 2001
    accepted = await inproc.call(CREATE, "cse-in/app/g/fopt", aei, ty=4, pc={"m2m:cin": {"con": "nb"}}, rt=1)
    assert accepted.rsc == 1001, accepted.pc
    await asyncio.wait_for(inproc.cse.nonblocking.stop(), 5)  # awaits the running request
    req = (await inproc.call(RETRIEVE, accepted.pc["m2m:uri"], aei)).pc["m2m:req"]
    assert req["ors"]["rsc"] == 2000, req
    assert [x["rsc"] for x in req["ors"]["pc"]["m2m:agr"]["m2m:rsp"]] == [2001, 2001]

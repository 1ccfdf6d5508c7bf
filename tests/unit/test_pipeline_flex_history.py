"""flexContainer history: flexContainerInstances made by the CSE (TS-0001
9.6.35, 9.6.67; docs/onem2m.md "flexContainerInstance"). In-process CSE,
fake clock; a real HTTP receiver on loopback for the notification."""

from __future__ import annotations

from typing import Any

from cse.core.messages import Operation
from cse.core.timestamps import parse_ts
from tests.notify_receiver import Receiver
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"
BINSH = "org.onem2m.common.moduleclass.binarySwitch"


async def mk_flex(ip: Any, fr: str, rn: str, **attrs: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, "cse-in/app", fr, ty=28, pc={"m2m:fcnt": {"rn": rn, "cnd": "x.y", **attrs}})
    assert r.rsc == 2001, r.pc
    return dict(r.pc["m2m:fcnt"])


async def set_attrs(ip: Any, fr: str, rn: str, **attrs: Any) -> dict[str, Any]:
    r = await ip.call(UPDATE, f"cse-in/app/{rn}", fr, pc={"m2m:fcnt": attrs})
    assert r.rsc == 2004, r.pc
    return dict(r.pc["m2m:fcnt"])


async def instances(ip: Any, rn: str) -> list[dict[str, Any]]:
    r = await ip.call(RETRIEVE, f"cse-in/app/{rn}", ADMIN, rcn=4)
    assert r.rsc == 2000, r.pc
    return list(r.pc["m2m:fcnt"].get("m2m:fcin", []))


async def test_create_and_update_keep_snapshots_and_mni_evicts_oldest(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    f = await mk_flex(ip, aei, "f", mni=2, temp=20)
    assert (f["cni"], f["cbs"]) == (1, len('{"temp":20}')), f
    for t in (21, 22, 23):
        ip.clock.advance(1)
        f = await set_attrs(ip, aei, "f", temp=t)
    assert f["cni"] == 2, f
    got = await instances(ip, "f")
    assert [i["temp"] for i in got] == [22, 23], got  # the two newest; 20 and 21 evicted
    assert all(i["cnd"] == "x.y" and i["cs"] == len('{"temp":2x}') for i in got), got
    assert got[-1]["st"] == f["st"], (got, f)
    la = await ip.call(RETRIEVE, "cse-in/app/f/la", aei)
    assert la.rsc == 2000 and la.pc["m2m:fcin"]["temp"] == 23, la.pc
    ol = await ip.call(RETRIEVE, "cse-in/app/f/ol", aei)
    assert ol.rsc == 2000 and ol.pc["m2m:fcin"]["temp"] == 22, ol.pc
    # a deleted instance counts no more
    assert (await ip.call(DELETE, "cse-in/app/f/ol", aei)).rsc == 2002
    r = await ip.call(RETRIEVE, "cse-in/app/f", aei)
    assert (r.pc["m2m:fcnt"]["cni"], r.pc["m2m:fcnt"]["cbs"]) == (1, 11), r.pc
    # clients cannot create or update instances
    r = await ip.call(CREATE, "cse-in/app/f", aei, ty=58, pc={"m2m:fcin": {"temp": 5}})
    assert r.rsc == 4005 and "flexContainerInstance" in dbg(r), r.pc
    r = await ip.call(UPDATE, f"cse-in/app/f/{got[-1]['rn']}", aei, pc={"m2m:fcin": {"temp": 5}})
    assert r.rsc == 4005, r.pc
    # without mni, mbs or mia no history is kept
    g = await mk_flex(ip, aei, "g", temp=1)
    await set_attrs(ip, aei, "g", temp=2)
    assert "cni" not in g and await instances(ip, "g") == []
    r = await ip.call(RETRIEVE, "cse-in/app/g/la", aei)
    assert r.rsc == 4004 and "flexContainerInstance" in dbg(r), r.pc


async def test_mbs_and_lowered_mni_and_mia(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_flex(ip, aei, "f", mbs=30, v="abcd")  # {"v":"abcd"}: 12 bytes
    f = await set_attrs(ip, aei, "f", v="efgh")
    assert (f["cni"], f["cbs"]) == (2, 24), f
    f = await set_attrs(ip, aei, "f", v="ijkl")  # 36 > 30: the oldest goes
    assert (f["cni"], f["cbs"]) == (2, 24), f
    r = await ip.call(UPDATE, "cse-in/app/f", aei, pc={"m2m:fcnt": {"v": "x" * 40}})
    assert r.rsc == 5207 and "flexContainerInstance" in dbg(r), r.pc  # larger than mbs on its own
    f = await set_attrs(ip, aei, "f", mni=1)  # lowering mni evicts down to it (the new snapshot stays)
    assert f["cni"] == 1 and [i["v"] for i in await instances(ip, "f")] == ["ijkl"]
    f = await set_attrs(ip, aei, "f", mia=30)
    (inst,) = await instances(ip, "f")
    assert parse_ts(inst["et"]) == parse_ts(inst["ct"]) + 30, inst
    ip.clock.advance(31)
    await ip.cse._expire(ip.clock.now())
    r = await ip.call(RETRIEVE, "cse-in/app/f", aei)
    assert r.pc["m2m:fcnt"]["cni"] == 0 and await instances(ip, "f") == [], r.pc


async def test_specialization_snapshot_acp_discovery_and_subscription(
        app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"cod:binSh": {"rn": "sw", "cnd": BINSH,
                                                                            "powSe": False, "mni": 5}})
    assert r.rsc == 2001, r.pc
    await ip.call(UPDATE, "cse-in/app/sw", aei, pc={"cod:binSh": {"powSe": True}})
    r = await ip.call(RETRIEVE, "cse-in/app/sw/la", aei)
    assert r.pc["m2m:fcin"]["powSe"] is True and "mni" not in r.pc["m2m:fcin"], r.pc
    other = await ip.register("other", fr="C2")
    r = await ip.call(RETRIEVE, "cse-in/app/sw/la", other)
    assert r.rsc == 4103, r.pc  # the parent's access decides
    r = await ip.call(RETRIEVE, "cse-in/app", aei, query={"fu": ("1",), "ty": ("58",)})
    assert r.rsc == 2000 and len(r.pc["m2m:uril"]) == 2, r.pc
    # a subscription on the flexContainer hears each new instance (net 3)
    await mk_flex(ip, aei, "f", mni=3, temp=1)
    r = await ip.call(CREATE, "cse-in/app/f", aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next(timeout=1)).is_verification
    await set_attrs(ip, aei, "f", temp=2)
    sgn = (await receiver.next(timeout=2)).sgn
    assert sgn["nev"]["net"] == 3 and sgn["nev"]["rep"]["m2m:fcin"]["temp"] == 2, sgn

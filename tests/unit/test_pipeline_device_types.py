"""node, mgmtObj and flexContainer through the pipeline (docs/onem2m.md "node and mgmtObj",
"flexContainer"; TS-0004 7.4.14, 7.4.15, 7.4.37).

Why: a conformance suite's discovery set-up creates a <node> under the CSEBase,
device AEs keep their battery and firmware in mgmtObjs under it, and home
appliances speak flexContainer specializations (binarySwitch, temperature).
Each is declared once in resources/ and must get the same treatment as the
other types: validation by its declaration (a specialization's attributes,
its mgd or cnd), discovery by ty, access through ACPs, notifications on
update, expiry.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from tests.notify_receiver import Receiver
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"
BINSH = "org.onem2m.common.moduleclass.binarySwitch"
TEMPE = "org.onem2m.common.moduleclass.temperature"


async def mk_node(ip: Any, rn: str = "gw1", **attrs: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, "cse-in", ADMIN, ty=14, pc={"m2m:nod": {"rn": rn, "ni": f"urn:dev:{rn}", **attrs}})
    assert r.rsc == 2001, r.pc
    return dict(r.pc["m2m:nod"])


async def discover(ip: Any, fr: str, to: str = "cse-in", **query: str) -> list[str]:
    q = {"fu": ("1",), **{k: (v,) for k, v in query.items()}}
    r = await ip.call(RETRIEVE, to, fr, query=q)
    assert r.rsc == 2000, r.pc
    return list(r.pc["m2m:uril"])


# -- node and mgmtObj -------------------------------------------------------------

async def test_node_under_cse_base_and_discovered_by_ty(inproc: Any) -> None:
    nod = await mk_node(inproc, lbl=["site/a"], hael=["Capp"], nid="net-1", nt=1)
    assert (nod["ty"], nod["ni"], nod["nid"], nod["hael"]) == (14, "urn:dev:gw1", "net-1", ["Capp"])
    assert nod["ri"].startswith("nod")
    assert await discover(inproc, ADMIN, ty="14") == ["cse-in/gw1"]
    assert await discover(inproc, ADMIN, lbl="site/a") == ["cse-in/gw1"]
    cb = (await inproc.call(RETRIEVE, "cse-in", ADMIN)).pc["m2m:cb"]
    assert {13, 14, 28} <= set(cb["srt"])


async def test_node_needs_ni_and_refuses_unknown_attributes(inproc: Any) -> None:
    r = await inproc.call(CREATE, "cse-in", ADMIN, ty=14, pc={"m2m:nod": {"rn": "n"}})
    assert r.rsc == 4000 and "'ni'" in dbg(r), r.pc
    r = await inproc.call(CREATE, "cse-in", ADMIN, ty=14, pc={"m2m:nod": {"ni": "x", "bogus": 1}})
    assert r.rsc == 4000 and "bogus" in dbg(r), r.pc


async def test_mgmt_obj_specializations_by_root_with_mgd_set(inproc: Any) -> None:
    await mk_node(inproc)
    bodies = {
        "m2m:fwr": (1001, {"vr": "1.2", "fwn": "fw", "url": "http://127.0.0.1/fw", "ud": False,
                           "uds": {"acn": "", "sus": 0}}),
        "m2m:swr": (1002, {"vr": "3", "swn": "agent", "url": "http://127.0.0.1/sw"}),
        "m2m:mem": (1003, {"mma": 1024, "mmt": 4096}),
        "m2m:bat": (1006, {"btl": 80, "bts": 1}),
        "m2m:dvi": (1007, {"dlb": "SN-1", "man": "ACME", "mod": "m1", "dty": "gateway", "fwv": "1.2"}),
        "m2m:dvc": (1008, {"can": "camera", "att": True, "cus": False}),
        "m2m:rbo": (1009, {"rbo": False, "far": False}),
    }
    for root, (mgd, attrs) in bodies.items():
        rn = root[4:]
        r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={root: {"rn": rn, **attrs}})
        assert r.rsc == 2001, (root, r.pc)
        got = (await inproc.call(RETRIEVE, f"cse-in/gw1/{rn}", ADMIN)).pc
        assert list(got) == [root], got
        assert got[root]["mgd"] == mgd and got[root]["ty"] == 13
        assert {k: got[root][k] for k in attrs} == attrs
    # mgd may be sent, but only the specialization's own
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:bat": {"mgd": 1006, "btl": 5, "bts": 2}})
    assert r.rsc == 2001, r.pc
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:bat": {"mgd": 1001, "btl": 5, "bts": 2}})
    assert r.rsc == 4000 and "mgd" in dbg(r), r.pc
    assert sorted(await discover(inproc, ADMIN, to="cse-in/gw1", ty="13")) == sorted(
        [f"cse-in/gw1/{root[4:]}" for root in bodies] + [await _named(inproc, "cse-in/gw1", 1006, "bat")])


async def _named(ip: Any, parent: str, mgd: int, skip: str) -> str:
    """The address of the unnamed mgmtObj of ``mgd`` under ``parent`` (not ``skip``)."""
    r = await ip.call(RETRIEVE, parent, ADMIN, rcn=6, query={"fu": ("1",), "ty": ("13",)})
    assert r.rsc == 2000, r.pc
    for ref in r.pc["m2m:rrl"]["rrf"]:
        if ref["nm"] != skip:
            got = (await ip.call(RETRIEVE, ref["val"], ADMIN)).pc
            if next(iter(got.values())).get("mgd") == mgd:
                return str(ref["val"])
    raise AssertionError("not found")


async def test_mgmt_obj_validation(inproc: Any) -> None:
    await mk_node(inproc)
    # the abstract base is not a type of content
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:mgo": {"mgd": 1001}})
    assert r.rsc == 4000 and "m2m:fwr" in dbg(r), r.pc
    # a specialization's own attributes and their schemas
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:bat": {"btl": 101, "bts": 1}})
    assert r.rsc == 4000 and "btl" in dbg(r), r.pc
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:mem": {"mma": 1}})
    assert r.rsc == 4000 and "'mmt'" in dbg(r), r.pc
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:mem": {"mma": 1, "mmt": 2, "btl": 3}})
    assert r.rsc == 4000 and "btl" in dbg(r), r.pc
    # only under a node
    r = await inproc.call(CREATE, "cse-in", ADMIN, ty=13, pc={"m2m:bat": {"btl": 1, "bts": 1}})
    assert r.rsc == 4108, r.pc
    # UPDATE by the specialization's root; mgd is fixed
    ok = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:bat": {"rn": "b", "btl": 1, "bts": 1}})
    assert ok.rsc == 2001, ok.pc
    r = await inproc.call(UPDATE, "cse-in/gw1/b", ADMIN, pc={"m2m:bat": {"btl": 50}})
    assert r.rsc == 2004 and r.pc["m2m:bat"]["btl"] == 50, r.pc
    r = await inproc.call(UPDATE, "cse-in/gw1/b", ADMIN, pc={"m2m:bat": {"mgd": 1006}})
    assert r.rsc == 4000 and "mgd" in dbg(r), r.pc
    r = await inproc.call(UPDATE, "cse-in/gw1/b", ADMIN, pc={"m2m:fwr": {"vr": "2"}})
    assert r.rsc == 4000 and "m2m:bat" in dbg(r), r.pc


async def test_ae_node_link(inproc: Any) -> None:
    nod = await mk_node(inproc)
    aei = await inproc.register("dev", nl=nod["ri"])
    got = (await inproc.call(RETRIEVE, "cse-in/dev", aei)).pc["m2m:ae"]
    assert got["nl"] == nod["ri"]


# -- flexContainer ----------------------------------------------------------------

async def test_flex_container_specialization_validated(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"cod:binSh": {"rn": "sw", "cnd": BINSH, "powSe": False}})
    assert r.rsc == 2001, r.pc
    sw = r.pc["cod:binSh"]
    assert (sw["ty"], sw["cnd"], sw["powSe"], sw["st"]) == (28, BINSH, False, 0)
    bad = [({"cnd": BINSH}, "'powSe'"),                             # mandatory data point
           ({"cnd": BINSH, "powSe": "on"}, "powSe"),                 # its type
           ({"cnd": BINSH, "powSe": True, "curT0": 1.0}, "curT0"),   # not this specialization's
           ({"cnd": TEMPE, "powSe": True}, "cnd"),                   # the cnd of another one
           ({"powSe": True}, "'cnd'")]
    for attrs, word in bad:
        r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"cod:binSh": attrs})
        assert r.rsc == 4000 and word in dbg(r), (attrs, r.pc)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"cod:tempe": {"rn": "t", "cnd": TEMPE, "curT0": 21.5,
                                                                        "unit": 1, "minVe": -20, "maxVe": 50}})
    assert r.rsc == 2001 and r.pc["cod:tempe"]["curT0"] == 21.5, r.pc
    r = await ip.call(UPDATE, "cse-in/app/sw", aei, pc={"cod:binSh": {"powSe": True}})
    assert r.rsc == 2004 and r.pc["cod:binSh"]["powSe"] is True and r.pc["cod:binSh"]["st"] == 1, r.pc
    r = await ip.call(UPDATE, "cse-in/app/sw", aei, pc={"cod:binSh": {"cnd": TEMPE}})
    assert r.rsc == 4000 and "cnd" in dbg(r), r.pc
    assert sorted(await discover(ip, aei, ty="28")) == ["cse-in/app/sw", "cse-in/app/t"]
    assert await discover(ip, aei, ty="28", powSe="true") == ["cse-in/app/sw"]  # a data point as filter
    assert await discover(ip, aei, cnd=TEMPE) == ["cse-in/app/t"]
    # a known cnd under the generic root is refused, naming the root to use
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"m2m:fcnt": {"cnd": BINSH, "powSe": True}})
    assert r.rsc == 4000 and "cod:binSh" in dbg(r), r.pc


async def test_flex_container_of_unknown_cnd_takes_custom_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"m2m:fcnt": {
        "rn": "f", "cnd": "com.example.meter", "lbl": ["m"], "kWh": 12.5, "tags": ["a"], "state": {"on": True}}})
    assert r.rsc == 2001, r.pc
    got = (await ip.call(RETRIEVE, "cse-in/app/f", aei)).pc["m2m:fcnt"]
    assert (got["kWh"], got["tags"], got["state"]) == (12.5, ["a"], {"on": True})
    r = await ip.call(UPDATE, "cse-in/app/f", aei, pc={"m2m:fcnt": {"kWh": 13, "tags": None, "new1": "x"}})
    assert r.rsc == 2004, r.pc
    got = r.pc["m2m:fcnt"]
    assert got["kWh"] == 13 and "tags" not in got and got["new1"] == "x"
    r = await ip.call(RETRIEVE, "cse-in/app/f", aei, atrl=("kWh",))
    assert r.rsc == 2000 and r.pc == {"m2m:fcnt": {"kWh": 13}}, r.pc
    r = await ip.call(RETRIEVE, "cse-in", aei, query={"fu": ("1",), "kWh": ("13",)})
    assert r.rsc == 4000, r.pc  # a custom attribute is no filter (docs/onem2m.md "flexContainer")
    for name in ("_own", "a-b", "x" * 40):  # not short names: an internal key, a dash, too long
        r = await ip.call(UPDATE, "cse-in/app/f", aei, pc={"m2m:fcnt": {name: 1}})
        assert r.rsc == 4000 and "unknown attribute" in dbg(r), (name, r.pc)
    many = {f"a{i}": i for i in range(65)}
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"m2m:fcnt": {"cnd": "c", **many}})
    assert r.rsc == 4000 and "custom attributes" in dbg(r), r.pc
    # instance history is kept (tests/unit/test_pipeline_flex_history.py)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"m2m:fcnt": {"cnd": "c", "mni": 5}})
    assert r.rsc == 2001 and r.pc["m2m:fcnt"]["cni"] == 1, r.pc


async def test_flex_container_acp_applies(inproc: Any) -> None:
    a1 = await inproc.register("app1")
    a2 = await inproc.register("app2", fr="C2")
    r = await inproc.call(CREATE, "cse-in/app1", a1, ty=28, pc={"cod:binSh": {"rn": "sw", "cnd": BINSH,
                                                                           "powSe": False}})
    assert r.rsc == 2001, r.pc
    assert (await inproc.call(RETRIEVE, "cse-in/app1/sw", a2)).rsc == 4103
    acp = await inproc.call(CREATE, "cse-in/app1", a1, ty=1, pc={"m2m:acp": {
        "rn": "acp", "pv": {"acr": [{"acor": [a2], "acop": 2}]}, "pvs": {"acr": [{"acor": [a1], "acop": 63}]}}})
    assert acp.rsc == 2001, acp.pc
    r = await inproc.call(UPDATE, "cse-in/app1/sw", a1, pc={"cod:binSh": {"acpi": [acp.pc["m2m:acp"]["ri"]]}})
    assert r.rsc == 2004, r.pc
    assert (await inproc.call(RETRIEVE, "cse-in/app1/sw", a2)).rsc == 2000
    r = await inproc.call(UPDATE, "cse-in/app1/sw", a2, pc={"cod:binSh": {"powSe": True}})
    assert r.rsc == 4103, r.pc
    assert await discover(inproc, a2, to="cse-in/app1", ty="28") == []  # acop 2 has no discover (32)


async def test_flex_container_update_notifies_subscriber(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"cod:binSh": {"rn": "sw", "cnd": BINSH, "powSe": False}})
    assert r.rsc == 2001, r.pc
    sub = await ip.call(CREATE, "cse-in/app/sw", aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "nct": 1}})
    assert sub.rsc == 2001, sub.pc
    assert (await receiver.next(timeout=1)).is_verification
    assert (await ip.call(UPDATE, "cse-in/app/sw", aei, pc={"cod:binSh": {"powSe": True}})).rsc == 2004
    item = await receiver.next()
    sgn = item.sgn
    assert sgn["nev"]["net"] == 1
    assert sgn["nev"]["rep"]["cod:binSh"]["powSe"] is True, sgn


@pytest.mark.parametrize(("ty", "parent", "root", "attrs"), [
    (14, "cse-in", "m2m:nod", {"ni": "n1"}),
    (28, "cse-in/app", "cod:tempe", {"cnd": TEMPE, "curT0": 1.0}),
    (28, "cse-in/app", "m2m:fcnt", {"cnd": "x.y", "v": 1}),
])
async def test_expiry(app: dict[str, Any], ty: int, parent: str, root: str, attrs: dict[str, Any]) -> None:
    ip = app["ip"]
    et = format_ts(ip.clock.now() + 10)
    r = await ip.call(CREATE, parent, ADMIN, ty=ty, pc={root: {"rn": "x", "et": et, **attrs}})
    assert r.rsc == 2001, r.pc
    assert (await ip.call(RETRIEVE, f"{parent}/x", ADMIN)).rsc == 2000
    ip.clock.advance(11)
    await ip.cse._expire(ip.clock.now())
    assert (await ip.call(RETRIEVE, f"{parent}/x", ADMIN)).rsc == 4004


async def test_mgmt_obj_expires_with_its_node(inproc: Any) -> None:
    et = format_ts(inproc.clock.now() + 10)
    await mk_node(inproc, et=et)
    r = await inproc.call(CREATE, "cse-in/gw1", ADMIN, ty=13, pc={"m2m:bat": {"rn": "b", "btl": 1, "bts": 1}})
    assert r.rsc == 2001 and r.pc["m2m:bat"]["et"] <= et, r.pc
    inproc.clock.advance(11)
    await inproc.cse._expire(inproc.clock.now())
    assert (await inproc.call(RETRIEVE, "cse-in/gw1/b", ADMIN)).rsc == 4004


async def test_cse_base_node_link_follows_the_node_hosting_it(inproc: Any) -> None:
    async def cb_nl() -> Any:
        return (await inproc.call(RETRIEVE, "cse-in", ADMIN)).pc["m2m:cb"].get("nl")

    other = await mk_node(inproc, "dev", hcl="/id-mn")
    assert await cb_nl() is None
    nod = await mk_node(inproc, "self", hcl="/id-in")
    assert await cb_nl() == nod["ri"]
    r = await inproc.call(UPDATE, "cse-in/self", ADMIN, pc={"m2m:nod": {"hcl": "/id-other"}})
    assert r.rsc == 2004, r.pc
    assert await cb_nl() is None
    assert (await inproc.call(UPDATE, "cse-in/dev", ADMIN, pc={"m2m:nod": {"hcl": "id-in"}})).rsc == 2004
    assert await cb_nl() == other["ri"]
    assert (await inproc.call(DELETE, "cse-in/dev", ADMIN)).rsc == 2002
    assert await cb_nl() is None
    r = await inproc.call(UPDATE, "cse-in", ADMIN, pc={"m2m:cb": {"nl": "x"}})
    assert r.rsc in (4000, 4005), r.pc  # read-only through the API


async def test_flex_container_under_a_root_of_its_own_namespace(app: dict[str, Any]) -> None:
    """An application's own specialization (``mio:occSr``) that this CSE does
    not declare: generic, custom attributes, and its root kept in every answer."""
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"mio:occSr": {"rn": "occ", "cnd": "com.mio.occ",
                                                                        "occ": False}})
    assert r.rsc == 2001 and r.pc["mio:occSr"]["occ"] is False, r.pc
    assert "_root" not in r.pc["mio:occSr"]
    r = await ip.call(UPDATE, "cse-in/app/occ", aei, pc={"mio:occSr": {"occ": True}})
    assert r.rsc == 2004 and r.pc["mio:occSr"]["occ"] is True, r.pc
    r = await ip.call(UPDATE, "cse-in/app/occ", aei, pc={"m2m:fcnt": {"occ": True}})
    assert r.rsc == 4000 and "mio:occSr" in dbg(r), r.pc
    got = (await ip.call(RETRIEVE, "cse-in/app", aei, rcn=4)).pc["m2m:ae"]
    assert got["mio:occSr"][0]["occ"] is True, got
    for root, attrs in (("mio:binSh", {"cnd": BINSH, "powSe": True}),   # a declared cnd: its own root
                        ("m2m:xyz", {"cnd": "a.b"}),                     # m2m: is not a namespace of ours
                        ("Bad:x", {"cnd": "a.b"})):
        r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={root: attrs})
        assert r.rsc == 4000, (root, r.pc)

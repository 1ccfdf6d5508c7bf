"""Discovery (fu=1) through the pipeline (TS-0004 7.4.1.2.2; docs/onem2m.md "Discovery and filter criteria").

The tree, created by AE ``app`` at distinct fake-clock times::

    cse-in/app                          t0
      temp   cnt lbl room:kitchen kind:temp   t0+10, st 2, mni 5
        t1   cin "21"   text/plain:0          t0+20  cs 2
        t2   cin "21.5" application/json:0    t0+30  cs 4
      hum    cnt lbl room:bath                t0+40, st 1 (+ update at t0+70)
        h1   cin "55555" text/plain:0         t0+50  cs 5
        hsub cnt lbl deep                     t0+60, et t0+1000
      empty  cnt                              t0+80
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"

TEMP, HUM, HSUB, EMPTY = "cse-in/app/temp", "cse-in/app/hum", "cse-in/app/hum/hsub", "cse-in/app/empty"
T1, T2, H1 = "cse-in/app/temp/t1", "cse-in/app/temp/t2", "cse-in/app/hum/h1"
CONTAINERS = [TEMP, HUM, HSUB, EMPTY]


@pytest.fixture
async def tree(inproc: Any) -> dict[str, Any]:
    ip = inproc
    t0 = ip.clock.now()
    aei = await ip.register("app")
    docs: dict[str, dict[str, Any]] = {}

    async def mk(at: float, parent: str, ty: int, body: dict[str, Any]) -> None:
        ip.clock.t = t0 + at
        root = "m2m:cnt" if ty == 3 else "m2m:cin"
        r = await ip.call(CREATE, parent, aei, ty=ty, pc={root: body})
        assert r.rsc == 2001, r.pc
        docs[f"{parent}/{body['rn']}"] = r.pc[root]

    await mk(10, "cse-in/app", 3, {"rn": "temp", "lbl": ["room:kitchen", "kind:temp"], "mni": 5})
    await mk(20, TEMP, 4, {"rn": "t1", "con": "21", "cnf": "text/plain:0"})
    await mk(30, TEMP, 4, {"rn": "t2", "con": "21.5", "cnf": "application/json:0"})
    await mk(40, "cse-in/app", 3, {"rn": "hum", "lbl": ["room:bath"]})
    await mk(50, HUM, 4, {"rn": "h1", "con": "55555", "cnf": "text/plain:0"})
    await mk(60, HUM, 3, {"rn": "hsub", "lbl": ["deep"], "et": format_ts(t0 + 1000)})
    ip.clock.t = t0 + 70
    r = await ip.call(UPDATE, HUM, aei, pc={"m2m:cnt": {"mni": 9}})
    assert r.rsc == 2004
    docs[HUM] = r.pc["m2m:cnt"]
    await mk(80, "cse-in/app", 3, {"rn": "empty"})
    ip.clock.t = t0 + 100
    return {"ip": ip, "aei": aei, "t0": t0, "docs": docs}


async def disc(tree: dict[str, Any], to: str = "cse-in/app", fr: str | None = None, *,
               rcn: int | None = None, drt: int = 1, **query: Any) -> Any:
    q: dict[str, tuple[str, ...]] = {"fu": ("1",)}
    for k, v in query.items():
        q[k] = tuple(v) if isinstance(v, (list, tuple)) else (str(v),)
    return await tree["ip"].call(RETRIEVE, to, fr or tree["aei"], query=q, rcn=rcn, drt=drt)


async def uril(tree: dict[str, Any], to: str = "cse-in/app", **query: Any) -> list[str]:
    r = await disc(tree, to, **query)
    assert r.rsc == 2000, r.pc
    assert set(r.pc) == {"m2m:uril"}
    return list(r.pc["m2m:uril"])


def ts(tree: dict[str, Any], offset: float) -> str:
    return format_ts(tree["t0"] + offset)


# -- type, labels ------------------------------------------------------------------

async def test_everything_below_target(tree: dict[str, Any]) -> None:
    got = await uril(tree)
    assert got == [TEMP, T1, T2, HUM, H1, HSUB, EMPTY]
    assert "cse-in/app" not in got


async def test_ty_single(tree: dict[str, Any]) -> None:
    assert await uril(tree, ty=3) == CONTAINERS
    assert await uril(tree, ty=4) == [T1, T2, H1]
    assert await uril(tree, "cse-in", ty=2) == ["cse-in/app"]
    assert await uril(tree, ty=1) == []


@pytest.mark.parametrize("value", ["3 4", "3+4", ["3", "4"], ["3 4"]])
async def test_ty_list(tree: dict[str, Any], value: Any) -> None:
    assert await uril(tree, ty=value) == [TEMP, T1, T2, HUM, H1, HSUB, EMPTY]


async def test_ty_list_from_cse_base(tree: dict[str, Any]) -> None:
    got = await uril(tree, "cse-in", ty="2 3")
    assert got == ["cse-in/app", *CONTAINERS]


async def test_labels_any_of(tree: dict[str, Any]) -> None:
    assert await uril(tree, lbl="room:kitchen") == [TEMP]
    assert await uril(tree, lbl="room:kitchen room:bath") == [TEMP, HUM]
    assert await uril(tree, lbl=["deep", "kind:temp"]) == [TEMP, HSUB]
    assert await uril(tree, lbl="room") == []  # whole labels, not keys
    assert await uril(tree, lbl="nope") == []


# -- time conditions ---------------------------------------------------------------

async def test_created_after_before(tree: dict[str, Any]) -> None:
    # ct: temp 10, t1 20, t2 30, hum 40, h1 50, hsub 60, empty 80
    assert await uril(tree, cra=ts(tree, 40)) == [HUM, H1, HSUB, EMPTY]  # inclusive
    assert await uril(tree, crb=ts(tree, 40)) == [TEMP, T1, T2]  # strict
    assert await uril(tree, cra=ts(tree, 20), crb=ts(tree, 50)) == [T1, T2, HUM]
    assert await uril(tree, cra=ts(tree, 40.000001)) == [H1, HSUB, EMPTY]
    assert await uril(tree, crb=ts(tree, 10)) == []
    assert await uril(tree, crb=ts(tree, 10.000001)) == [TEMP]


async def test_modified_since_unmodified_since(tree: dict[str, Any]) -> None:
    # lt: temp 30 (st bumped by t2? no: instances do not change lt), hum 70, others = ct
    lts = {p: d["lt"] for p, d in tree["docs"].items()}
    assert lts[HUM] == ts(tree, 70)
    assert HUM in await uril(tree, ms=ts(tree, 70))
    got = await uril(tree, ms=ts(tree, 70))
    assert set(got) == {p for p, lt in lts.items() if lt >= ts(tree, 70)}
    assert EMPTY in got and HUM in got and HSUB not in got
    got = await uril(tree, us=ts(tree, 70))
    assert HUM not in got and HSUB in got
    assert set(got) == {p for p, lt in lts.items() if lt < ts(tree, 70)}


async def test_expiration_after_before(tree: dict[str, Any]) -> None:
    # hsub expires at t0+1000, everything else in ten years
    assert await uril(tree, exb=ts(tree, 1000.000001)) == [HSUB]
    assert await uril(tree, exb=ts(tree, 1000)) == []  # strict
    assert HSUB in await uril(tree, exa=ts(tree, 1000))  # inclusive
    got = await uril(tree, exa=ts(tree, 1000.000001))
    assert HSUB not in got and TEMP in got
    assert await uril(tree, exa=ts(tree, 500), exb=ts(tree, 2000)) == [HSUB]


@pytest.mark.parametrize("key", ["cra", "crb", "ms", "us", "exa", "exb"])
async def test_bad_timestamp_filters(tree: dict[str, Any], key: str) -> None:
    r = await disc(tree, **{key: "yesterday"})
    assert r.rsc == 4000
    assert key in dbg(r)


# -- state tag and size --------------------------------------------------------------

async def test_state_tag_bounds(tree: dict[str, Any]) -> None:
    # st: temp 2, hum 2 (one instance + one update), hsub 0, empty 0
    assert tree["docs"][HUM]["st"] == 2
    assert await uril(tree, ty=3, stb=2) == [TEMP, HUM]  # 2 <= st
    assert await uril(tree, ty=3, stb=3) == []
    assert await uril(tree, ty=3, sts=2) == [HSUB, EMPTY]  # st < 2
    assert await uril(tree, ty=3, sts=1) == [HSUB, EMPTY]
    assert await uril(tree, ty=3, sts=0) == []
    # instances: t1 st 1, t2 st 2, h1 st 1
    assert await uril(tree, ty=4, stb=2) == [T2]
    assert await uril(tree, ty=4, sts=2) == [T1, H1]


async def test_size_bounds(tree: dict[str, Any]) -> None:
    # cs: t1 2, t2 4, h1 5; containers have no cs
    assert await uril(tree, sza=4) == [T2, H1]  # 4 <= cs
    assert await uril(tree, sza=5) == [H1]
    assert await uril(tree, sza=6) == []
    assert await uril(tree, szb=4) == [T1]  # cs < 4
    assert await uril(tree, szb=5) == [T1, T2]
    assert await uril(tree, szb=2) == []
    assert await uril(tree, sza=0) == [T1, T2, H1]


@pytest.mark.parametrize("key,value", [("sts", "x"), ("stb", "-1"), ("sza", "1.5"),
                                       ("szb", "1 2"), ("lim", "-3"), ("lvl", "0"),
                                       ("fo", "3"), ("fu", "4"), ("ty", "x"), ("ofst", "a")])
async def test_bad_numeric_filters(tree: dict[str, Any], key: str, value: str) -> None:
    r = await disc(tree, **{key: value})
    assert r.rsc == 4000, r.pc
    assert key in dbg(r)


# -- content type, attributes -----------------------------------------------------------

async def test_content_type(tree: dict[str, Any]) -> None:
    assert await uril(tree, cty="text/plain") == [T1, H1]
    assert await uril(tree, cty="application/json") == [T2]
    assert await uril(tree, cty="text/plain application/json") == [T1, T2, H1]
    assert await uril(tree, cty="image/png") == []


async def test_attribute_filter_with_wildcard(tree: dict[str, Any]) -> None:
    assert await uril(tree, rn="temp") == [TEMP]
    assert await uril(tree, rn="te*") == [TEMP]
    assert await uril(tree, rn="*1") == [T1, H1]
    assert await uril(tree, rn="h*") == [HUM, H1, HSUB]
    assert await uril(tree, rn="*") == [TEMP, T1, T2, HUM, H1, HSUB, EMPTY]
    assert await uril(tree, con="21*") == [T1, T2]
    assert await uril(tree, con="21") == [T1]
    assert await uril(tree, mni="5") == [TEMP]
    assert await uril(tree, mni="5 9") == [TEMP, HUM]
    assert await uril(tree, rn="t*", ty=4) == [T1, T2]


@pytest.mark.parametrize("key", ["ct", "lt", "et", "st", "cs", "cnf"])
async def test_dedicated_attributes_not_as_filters(tree: dict[str, Any], key: str) -> None:
    r = await disc(tree, **{key: "x"})
    assert r.rsc == 4000
    assert key in dbg(r)


async def test_filter_operation_or(tree: dict[str, Any]) -> None:
    assert await uril(tree, ty=4, lbl="deep") == []
    assert await uril(tree, ty=4, lbl="deep", fo=1) == []
    assert await uril(tree, ty=4, lbl="deep", fo=2) == [T1, T2, H1, HSUB]
    assert await uril(tree, rn="empty", cty="application/json", fo=2) == [T2, EMPTY]


# -- limits ------------------------------------------------------------------------

async def test_limit(tree: dict[str, Any]) -> None:
    assert await uril(tree, ty=3, lim=2) == [TEMP, HUM]
    assert await uril(tree, lim=1) == [TEMP]
    assert await uril(tree, lim=3) == [TEMP, T1, T2]
    assert await uril(tree, ty=4, lim=100) == [T1, T2, H1]
    assert await uril(tree, lim=0) == []


async def test_offset(tree: dict[str, Any]) -> None:
    # ofst skips the first n-1 direct children with their subtrees
    assert await uril(tree, ofst=1) == [TEMP, T1, T2, HUM, H1, HSUB, EMPTY]
    assert await uril(tree, ofst=2) == [HUM, H1, HSUB, EMPTY]
    assert await uril(tree, ofst=3) == [EMPTY]
    assert await uril(tree, ofst=4) == []
    assert await uril(tree, ofst=2, ty=3, lim=1) == [HUM]


async def test_level(tree: dict[str, Any]) -> None:
    assert await uril(tree, lvl=1) == [TEMP, HUM, EMPTY]
    assert await uril(tree, lvl=2) == [TEMP, T1, T2, HUM, H1, HSUB, EMPTY]
    # The CSEBase's own sessions collection (transit sessions) is there from the start, but only the
    # admin sees it (docs/sessions.md "Who sees sessions").
    assert await uril(tree, "cse-in", lvl=1) == ["cse-in/app"]
    r = await disc(tree, "cse-in", ADMIN, lvl=1)
    assert r.rsc == 2000 and r.pc["m2m:uril"] == ["cse-in/sessions", "cse-in/app"], r.pc
    assert await uril(tree, "cse-in", lvl=2, ty=3) == [TEMP, HUM, EMPTY]


# -- result shapes -------------------------------------------------------------------

async def test_drt_unstructured(tree: dict[str, Any]) -> None:
    r = await disc(tree, ty=3, drt=2)
    assert r.rsc == 2000
    docs = tree["docs"]
    assert r.pc["m2m:uril"] == [docs[p]["ri"] for p in CONTAINERS]
    for ri in r.pc["m2m:uril"]:
        got = await tree["ip"].call(RETRIEVE, ri, tree["aei"])
        assert got.rsc == 2000


async def test_rcn6_reference_list(tree: dict[str, Any]) -> None:
    r = await disc(tree, ty=3, rcn=6)
    assert r.rsc == 2000, r.pc
    assert r.pc == {"m2m:rrl": {"rrf": [
        {"nm": "temp", "typ": 3, "val": TEMP},
        {"nm": "hum", "typ": 3, "val": HUM},
        {"nm": "hsub", "typ": 3, "val": HSUB},
        {"nm": "empty", "typ": 3, "val": EMPTY},
    ]}}
    r = await disc(tree, ty=4, rcn=6, drt=2)
    assert [x["val"] for x in r.pc["m2m:rrl"]["rrf"]] == [tree["docs"][p]["ri"] for p in (T1, T2, H1)]
    assert [x["typ"] for x in r.pc["m2m:rrl"]["rrf"]] == [4, 4, 4]


async def test_rcn11_explicit(tree: dict[str, Any]) -> None:
    r = await disc(tree, ty=4, rcn=11)
    assert r.rsc == 2000
    assert r.pc == {"m2m:uril": [T1, T2, H1]}


@pytest.mark.parametrize("rcn", [0, 1, 2, 3, 4, 5, 7, 8, 9])
async def test_invalid_rcn_for_discovery(tree: dict[str, Any], rcn: int) -> None:
    r = await disc(tree, ty=3, rcn=rcn)
    assert r.rsc == 4000, (rcn, r.pc)
    assert "rcn" in dbg(r)


async def test_no_match_is_empty_list(tree: dict[str, Any]) -> None:
    r = await disc(tree, lbl="nothing")
    assert r.rsc == 2000
    assert r.pc == {"m2m:uril": []}


async def test_discovery_root_missing(tree: dict[str, Any]) -> None:
    r = await disc(tree, "cse-in/app/missing", ty=3)
    assert r.rsc == 4004
    dbg(r)


async def test_discovery_from_unstructured_root(tree: dict[str, Any]) -> None:
    assert await uril(tree, tree["docs"][HUM]["ri"], ty=4) == [H1]
    assert await uril(tree, f"/id-in/{tree['aei']}/hum") == [H1, HSUB]


# -- invalid requests --------------------------------------------------------------

@pytest.mark.parametrize("key", ["foo", "_srn", "xyz.abc", "lbq", "c.rn", "smf"])
async def test_unknown_query_key(tree: dict[str, Any], key: str) -> None:
    r = await disc(tree, **{key: "1"})
    assert r.rsc == 4000, r.pc
    assert key in dbg(r)


async def test_unknown_query_key_without_fu(tree: dict[str, Any]) -> None:
    r = await tree["ip"].call(RETRIEVE, "cse-in/app", tree["aei"], query={"foo": ("1",)})
    assert r.rsc == 4000
    assert "foo" in dbg(r)


@pytest.mark.parametrize("query", [{"lbl": ("x",)}, {"fu": ("1",)}, {"ty": ("3",)},
                                   {"rn": ("x",)}, {"lim": ("1",)}])
async def test_filter_criteria_on_create(tree: dict[str, Any], query: dict[str, tuple[str, ...]]) -> None:
    r = await tree["ip"].call(CREATE, "cse-in/app", tree["aei"], ty=3,
                              pc={"m2m:cnt": {"rn": "new"}}, query=query)
    assert r.rsc == 4000, r.pc
    assert "CREATE" in dbg(r)
    assert (await tree["ip"].call(RETRIEVE, "cse-in/app/new", ADMIN)).rsc == 4004


@pytest.mark.parametrize("rcn", [6, 4, 1])
async def test_discovery_on_delete_rejected(tree: dict[str, Any], rcn: int) -> None:
    r = await tree["ip"].call(DELETE, EMPTY, tree["aei"], query={"fu": ("1",)}, rcn=rcn)
    assert r.rsc == 4000, r.pc
    dbg(r)
    assert (await tree["ip"].call(RETRIEVE, EMPTY, ADMIN)).rsc == 2000


async def test_discovery_on_delete_without_rcn_rejected(tree: dict[str, Any]) -> None:
    """fu=1 (discovery) is only valid on RETRIEVE (the CSE's own rule in
    tree.representation); a DELETE carrying it must not silently delete the
    whole target."""
    r = await tree["ip"].call(DELETE, HUM, tree["aei"], query={"fu": ("1",), "ty": ("4",)})
    assert r.rsc == 4000, r.pc
    dbg(r)
    assert (await tree["ip"].call(RETRIEVE, HUM, ADMIN)).rsc == 2000
    assert (await tree["ip"].call(RETRIEVE, H1, ADMIN)).rsc == 2000


async def test_discovery_on_update_rejected(tree: dict[str, Any]) -> None:
    r = await tree["ip"].call(UPDATE, EMPTY, tree["aei"], query={"fu": ("1",)},
                              pc={"m2m:cnt": {"lbl": ["changed"]}})
    assert r.rsc == 4000, r.pc
    dbg(r)
    got = await tree["ip"].call(RETRIEVE, EMPTY, ADMIN)
    assert "lbl" not in got.pc["m2m:cnt"]


# -- INACTIVE AEs, arp --------------------------------------------------------------

async def test_inactive_ae_skipped(tree: dict[str, Any]) -> None:
    ip = tree["ip"]
    sleepy = await ip.register("sleepy", regs=2)
    r = await ip.call(CREATE, "cse-in/sleepy", sleepy, ty=3, pc={"m2m:cnt": {"rn": "zz"}})
    assert r.rsc == 2001
    r = await disc(tree, "cse-in", ADMIN, ty="2 3")
    assert r.rsc == 2000
    assert "cse-in/sleepy" not in r.pc["m2m:uril"]
    assert "cse-in/sleepy/zz" not in r.pc["m2m:uril"]
    assert "cse-in/app" in r.pc["m2m:uril"]
    r = await ip.call(UPDATE, "cse-in/sleepy", sleepy, pc={"m2m:ae": {"regs": 1}})
    assert r.rsc == 2004
    r = await disc(tree, "cse-in", ADMIN, ty="2 3")
    assert "cse-in/sleepy" in r.pc["m2m:uril"]
    assert "cse-in/sleepy/zz" in r.pc["m2m:uril"]


async def test_arp_latest(tree: dict[str, Any]) -> None:
    assert await uril(tree, ty=3, arp="la") == [T2, H1]
    assert await uril(tree, ty=3, arp="ol") == [T1, H1]
    assert await uril(tree, "cse-in", ty=2, arp="temp") == [TEMP]
    assert await uril(tree, "cse-in", ty=2, arp="temp/la") == [T2]
    assert await uril(tree, ty=3, arp="nothing") == []
    r = await disc(tree, ty=3, arp="la", drt=2)
    assert r.pc["m2m:uril"] == [tree["docs"][T2]["ri"], tree["docs"][H1]["ri"]]


async def filtered(tree: dict[str, Any], to: str = "cse-in/app", fr: str | None = None, *,
                   rcn: int, **query: Any) -> Any:
    """A RETRIEVE with filter criteria and fu=2 (conditional retrieval)."""
    q = {k: tuple(v) if isinstance(v, (list, tuple)) else (str(v),) for k, v in query.items()}
    r = await tree["ip"].call(RETRIEVE, to, fr or tree["aei"], query=q, rcn=rcn)
    assert r.rsc == 2000, r.pc
    return r.pc


async def test_arp_on_retrieve_returns_the_resources_at_the_path(tree: dict[str, Any]) -> None:
    """TS-0004 filter criteria applyRelativePath: applied after matching, the
    result is the resources at <match>/<arp>, for rcn 8 as for discovery;
    a match without a resource there drops out."""
    pc = await filtered(tree, rcn=8, ty=3, lbl="room:kitchen", arp="la")
    body = pc["m2m:ae"]
    assert list(body) == ["m2m:cin"], body  # the instance, not the container
    assert [c["rn"] for c in body["m2m:cin"]] == ["t2"]
    assert body["m2m:cin"][0]["con"] == "21.5"
    pc = await filtered(tree, rcn=8, ty=3, arp="ol")
    assert [c["rn"] for c in pc["m2m:ae"]["m2m:cin"]] == ["t1", "h1"]
    pc = await filtered(tree, rcn=8, ty=3, arp="nothing")
    assert pc["m2m:ae"] == {}
    pc = await filtered(tree, rcn=4, ty=3, lbl="room:bath", arp="hsub")
    assert pc["m2m:ae"]["rn"] == "app" and [c["rn"] for c in pc["m2m:ae"]["m2m:cnt"]] == ["hsub"]
    pc = await filtered(tree, rcn=6, ty=3, lbl="room:kitchen", arp="la")
    assert [x["val"] for x in pc["m2m:rrl"]["rrf"]] == [T2]


async def test_arp_result_needs_its_own_privilege(tree: dict[str, Any]) -> None:
    """The resource at the relative path is returned only when the originator
    may see it itself: a path into another AE's subtree reveals nothing."""
    ip, aei = tree["ip"], tree["aei"]
    other = await ip.register("other")
    r = await ip.call(CREATE, "cse-in/other", other, ty=3, pc={"m2m:cnt": {"rn": "priv"}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(CREATE, "cse-in/other/priv", other, ty=4, pc={"m2m:cin": {"rn": "s", "con": "secret"}})
    assert r.rsc == 2001, r.pc
    # app may discover the AE "other" (any registered originator may), but not what is below it
    assert await uril(tree, "cse-in", ty=2, arp="priv/la") == []
    r = await ip.call(RETRIEVE, "cse-in", aei, query={"ty": ("2",), "arp": ("priv/la",)}, rcn=8)
    assert "secret" not in str(r.pc)
    r = await disc(tree, "cse-in", ADMIN, ty=2, arp="priv/la")
    assert r.pc["m2m:uril"] == ["cse-in/other/priv/s"]


async def test_arp_parent_segments_and_bound(tree: dict[str, Any]) -> None:
    """``..`` steps up (TS-0004's own example is ``../tempContainer/la``); an
    arp longer than the CSE's depth bound is 4000, not a lookup per segment."""
    assert await uril(tree, ty=3, lbl="room:kitchen", arp="../hum") == [HUM]
    assert await uril(tree, ty=3, arp="../hum/la") == [H1]  # two matches, one resource
    r = await disc(tree, ty=3, arp="/".join(["x"] * 65))
    assert r.rsc == 4000, r.pc
    assert "arp" in dbg(r)

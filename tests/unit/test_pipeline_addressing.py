"""Addressing through the in-process pipeline (docs/onem2m.md "Addressing").

CSE-relative structured and unstructured IDs, the ``-`` alias, the hybrid
``ri/child`` form, SP-relative ``/id-in/...`` and absolute ``//sp/id-in/...``
targets (no SP-ID is configured, so any SP is local), remote CSE-IDs, invalid
segments, and the virtual ``la``/``ol`` children.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)


@pytest.fixture
async def tree(inproc: Any) -> dict[str, Any]:
    """AE ``app`` with container ``cnt`` holding instances ``c1`` then ``c2``,
    and an empty container ``empty``."""
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})
    assert r.rsc == 2001, r.pc
    cnt = r.pc["m2m:cnt"]
    cins = {}
    for rn, con in (("c1", "first"), ("c2", "second")):
        r = await inproc.call(CREATE, "cse-in/app/cnt", aei, ty=4,
                              pc={"m2m:cin": {"rn": rn, "con": con}})
        assert r.rsc == 2001, r.pc
        cins[rn] = r.pc["m2m:cin"]
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "empty"}})
    assert r.rsc == 2001, r.pc
    return {"ip": inproc, "aei": aei, "cnt": cnt, "cins": cins, "empty": r.pc["m2m:cnt"]}


async def get(tree: dict[str, Any], to: str, fr: str | None = None) -> Any:
    return await tree["ip"].call(RETRIEVE, to, fr or tree["aei"])


# -- CSE-relative ------------------------------------------------------------------

async def test_cse_relative_structured(tree: dict[str, Any]) -> None:
    r = await get(tree, "cse-in/app/cnt")
    assert r.rsc == 2000, r.pc
    body = r.pc["m2m:cnt"]
    assert body["ri"] == tree["cnt"]["ri"]
    assert body["rn"] == "cnt"
    assert body["pi"] == tree["aei"]
    assert body["ty"] == 3
    r = await get(tree, "cse-in/app")
    assert r.rsc == 2000
    assert r.pc["m2m:ae"]["ri"] == tree["aei"]


async def test_cse_relative_structured_instance(tree: dict[str, Any]) -> None:
    r = await get(tree, "cse-in/app/cnt/c1")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "first"
    assert r.pc["m2m:cin"]["ri"] == tree["cins"]["c1"]["ri"]


async def test_dash_alias(tree: dict[str, Any]) -> None:
    r = await get(tree, "-/app/cnt")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["ri"] == tree["cnt"]["ri"]
    r = await get(tree, "-")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cb"]["ri"] == "id-in"
    r = await get(tree, "-/app/cnt/c2")
    assert r.rsc == 2000
    assert r.pc["m2m:cin"]["con"] == "second"


@pytest.mark.parametrize("to", ["cse-in", "id-in", "-", "/id-in", "/id-in/cse-in", "/id-in/-",
                                "/id-in/id-in", "//any-sp/id-in", "//any-sp/id-in/cse-in",
                                "//other.example.com/id-in/id-in"])
async def test_cse_base_every_form(tree: dict[str, Any], to: str) -> None:
    r = await get(tree, to)
    assert r.rsc == 2000, (to, r.pc)
    cb = r.pc["m2m:cb"]
    assert cb["ri"] == "id-in"
    assert cb["rn"] == "cse-in"
    assert cb["csi"] == "/id-in"
    assert cb["ty"] == 5
    assert cb["pi"] == ""


async def test_unstructured_ri(tree: dict[str, Any]) -> None:
    r = await get(tree, tree["cnt"]["ri"])
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "cnt"
    r = await get(tree, tree["aei"])
    assert r.rsc == 2000
    assert r.pc["m2m:ae"]["rn"] == "app"
    r = await get(tree, tree["cins"]["c1"]["ri"])
    assert r.rsc == 2000
    assert r.pc["m2m:cin"]["con"] == "first"


async def test_unstructured_unknown_ri(tree: dict[str, Any]) -> None:
    r = await get(tree, "cntDoesNotExist")
    assert r.rsc == 4004
    assert "cntDoesNotExist" in dbg(r)


async def test_hybrid_ri_then_child_names(tree: dict[str, Any]) -> None:
    r = await get(tree, f"{tree['aei']}/cnt")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["ri"] == tree["cnt"]["ri"]
    r = await get(tree, f"{tree['aei']}/cnt/c1")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "first"
    r = await get(tree, f"{tree['cnt']['ri']}/c2")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "second"


async def test_hybrid_missing_child(tree: dict[str, Any]) -> None:
    r = await get(tree, f"{tree['aei']}/nope")
    assert r.rsc == 4004
    assert "nope" in dbg(r)
    r = await get(tree, f"{tree['aei']}/cnt/c1/deeper")
    assert r.rsc == 4004
    dbg(r)


async def test_structured_missing(tree: dict[str, Any]) -> None:
    r = await get(tree, "cse-in/app/nope")
    assert r.rsc == 4004
    assert "cse-in/app/nope" in dbg(r)


# -- SP-relative ---------------------------------------------------------------

@pytest.mark.parametrize("to", ["/id-in/cse-in/app/cnt", "/id-in/-/app/cnt"])
async def test_sp_relative_structured(tree: dict[str, Any], to: str) -> None:
    r = await get(tree, to)
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["ri"] == tree["cnt"]["ri"]


async def test_sp_relative_unstructured_and_hybrid(tree: dict[str, Any]) -> None:
    r = await get(tree, f"/id-in/{tree['cnt']['ri']}")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "cnt"
    r = await get(tree, f"/id-in/{tree['aei']}/cnt/c2")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "second"


async def test_sp_relative_create_update_delete(tree: dict[str, Any]) -> None:
    ip, aei = tree["ip"], tree["aei"]
    r = await ip.call(CREATE, "/id-in/cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "viasp"}})
    assert r.rsc == 2001, r.pc
    ri = r.pc["m2m:cnt"]["ri"]
    r = await ip.call(UPDATE, f"/id-in/{ri}", aei, pc={"m2m:cnt": {"mni": 3}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:cnt"]["mni"] == 3
    r = await ip.call(DELETE, "/id-in/cse-in/app/viasp", aei)
    assert r.rsc == 2002, r.pc
    assert (await get(tree, ri)).rsc == 4004


# -- absolute --------------------------------------------------------------------

@pytest.mark.parametrize("sp", ["any-sp", "acme.example.com", "x"])
async def test_absolute_structured_and_ri(tree: dict[str, Any], sp: str) -> None:
    r = await get(tree, f"//{sp}/id-in/cse-in/app/cnt")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["ri"] == tree["cnt"]["ri"]
    r = await get(tree, f"//{sp}/id-in/{tree['cnt']['ri']}")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "cnt"
    r = await get(tree, f"//{sp}/id-in/-/app/cnt/c1")
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "first"


# -- remote CSE ------------------------------------------------------------------

@pytest.mark.parametrize("to", ["/id-other/cse-other/app", "/id-other", "/id-other/someri",
                                "//any-sp/id-other/cse-other"])
async def test_remote_cse_not_found(tree: dict[str, Any], to: str) -> None:
    r = await get(tree, to)
    assert r.rsc == 4004, r.pc
    assert "/id-other" in dbg(r)


async def test_remote_cse_create_not_found(tree: dict[str, Any]) -> None:
    r = await tree["ip"].call(CREATE, "/id-other/cse-other", tree["aei"], ty=3,
                              pc={"m2m:cnt": {"rn": "x"}})
    assert r.rsc == 4004
    assert "/id-other" in dbg(r)


# -- invalid segments --------------------------------------------------------------

@pytest.mark.parametrize("to", [
    "",
    "cse-in/app//cnt",
    "cse-in/app/cnt/",
    "cse-in/./app",
    "cse-in/../cse-in/app",
    "cse-in/app/cnt/..",
    "./cse-in",
    "-/",
    "/",
    "/id-in//cse-in",
    "/id-in/cse-in/app//cnt",
    "/id-in/cse-in/./app",
    "///id-in/cse-in",
    "//",
    "//any-sp",
    "//any-sp/",
    "//any-sp//cse-in",
    "//any-sp/id-in/cse-in//app",
    "//any-sp/id-in/..",
    "a//b",
])
async def test_bad_segments(tree: dict[str, Any], to: str) -> None:
    r = await get(tree, to)
    assert r.rsc == 4000, (to, r.rsc, r.pc)
    dbg(r)


@pytest.mark.parametrize("to", ["/id-in/", "//any-sp/id-in/"])
async def test_empty_last_segment_after_cse_id(tree: dict[str, Any], to: str) -> None:
    """An empty last segment is a malformed ID (ACME rejects it
    with 4000 too), also right after the CSE-ID."""
    r = await get(tree, to)
    assert r.rsc == 4000, (to, r.rsc, r.pc)
    dbg(r)


# -- la / ol ---------------------------------------------------------------------

@pytest.mark.parametrize("suffix,expect", [("la", "c2"), ("ol", "c1")])
async def test_latest_oldest_structured(tree: dict[str, Any], suffix: str, expect: str) -> None:
    for to in (f"cse-in/app/cnt/{suffix}", f"-/app/cnt/{suffix}",
               f"/id-in/cse-in/app/cnt/{suffix}", f"//sp/id-in/cse-in/app/cnt/{suffix}"):
        r = await get(tree, to)
        assert r.rsc == 2000, (to, r.pc)
        assert r.pc["m2m:cin"]["rn"] == expect, to
        assert r.pc["m2m:cin"]["ri"] == tree["cins"][expect]["ri"]


@pytest.mark.parametrize("suffix,expect", [("la", "c2"), ("ol", "c1")])
async def test_latest_oldest_unstructured(tree: dict[str, Any], suffix: str, expect: str) -> None:
    cnt_ri = tree["cnt"]["ri"]
    for to in (f"{cnt_ri}/{suffix}", f"{tree['aei']}/cnt/{suffix}",
               f"/id-in/{cnt_ri}/{suffix}", f"//sp/id-in/{cnt_ri}/{suffix}"):
        r = await get(tree, to)
        assert r.rsc == 2000, (to, r.pc)
        assert r.pc["m2m:cin"]["rn"] == expect, to


@pytest.mark.parametrize("suffix", ["la", "ol"])
async def test_latest_on_empty_container(tree: dict[str, Any], suffix: str) -> None:
    for to in (f"cse-in/app/empty/{suffix}", f"{tree['empty']['ri']}/{suffix}"):
        r = await get(tree, to)
        assert r.rsc == 4004, (to, r.pc)
        dbg(r)


async def test_la_under_non_container(tree: dict[str, Any]) -> None:
    r = await get(tree, "cse-in/app/la")
    assert r.rsc == 4004
    dbg(r)


@pytest.mark.parametrize("suffix", ["la", "ol"])
async def test_create_update_on_virtual_not_allowed(tree: dict[str, Any], suffix: str) -> None:
    ip, aei = tree["ip"], tree["aei"]
    for to in (f"cse-in/app/cnt/{suffix}", f"{tree['cnt']['ri']}/{suffix}"):
        r = await ip.call(CREATE, to, aei, ty=4, pc={"m2m:cin": {"con": "x"}})
        assert r.rsc == 4005, (to, r.pc)
        assert suffix in dbg(r)
        r = await ip.call(UPDATE, to, aei, pc={"m2m:cin": {"lbl": ["a"]}})
        assert r.rsc == 4005, (to, r.pc)
        dbg(r)
    # also on an empty container (4005 wins: the operation never applies)
    r = await ip.call(CREATE, f"cse-in/app/empty/{suffix}", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 4005
    # nothing was created
    r = await get(tree, "cse-in/app/cnt")
    assert r.pc["m2m:cnt"]["cni"] == 2


async def test_delete_via_la_then_ol(tree: dict[str, Any]) -> None:
    ip, aei = tree["ip"], tree["aei"]
    r = await ip.call(DELETE, "cse-in/app/cnt/la", aei)
    assert r.rsc == 2002, r.pc
    assert (await get(tree, "cse-in/app/cnt/c2")).rsc == 4004
    r = await get(tree, "cse-in/app/cnt/la")
    assert r.pc["m2m:cin"]["rn"] == "c1"
    r = await ip.call(DELETE, f"{tree['cnt']['ri']}/ol", aei)
    assert r.rsc == 2002
    assert (await get(tree, "cse-in/app/cnt/la")).rsc == 4004
    r = await get(tree, "cse-in/app/cnt")
    assert r.pc["m2m:cnt"]["cni"] == 0
    assert r.pc["m2m:cnt"]["cbs"] == 0

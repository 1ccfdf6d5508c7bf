"""Container and contentInstance behaviour through the pipeline
(TS-0004 7.4.6, 7.4.7; docs/onem2m.md "container", "contentInstance")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts, parse_ts
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


async def mk_cnt(ip: Any, fr: str, rn: str, **attrs: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, "cse-in/app", fr, ty=3, pc={"m2m:cnt": {"rn": rn, **attrs}})
    assert r.rsc == 2001, r.pc
    return r.pc["m2m:cnt"]


async def add(ip: Any, fr: str, cnt: str, con: Any, rn: str | None = None, **attrs: Any) -> Any:
    body = {"con": con, **attrs}
    if rn is not None:
        body["rn"] = rn
    return await ip.call(CREATE, f"cse-in/app/{cnt}", fr, ty=4, pc={"m2m:cin": body})


async def add_ok(ip: Any, fr: str, cnt: str, con: Any, rn: str | None = None, **attrs: Any) -> dict[str, Any]:
    r = await add(ip, fr, cnt, con, rn, **attrs)
    assert r.rsc == 2001, r.pc
    return r.pc["m2m:cin"]


async def cnt_state(ip: Any, cnt: str) -> dict[str, Any]:
    r = await ip.call(RETRIEVE, f"cse-in/app/{cnt}", ADMIN)
    assert r.rsc == 2000, r.pc
    return r.pc["m2m:cnt"]


async def instance_names(ip: Any, cnt: str) -> list[str]:
    r = await ip.call(RETRIEVE, f"cse-in/app/{cnt}", ADMIN, rcn=4)
    assert r.rsc == 2000, r.pc
    return [c["rn"] for c in r.pc["m2m:cnt"].get("m2m:cin", [])]


async def test_counters_and_state_tags(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    c = await mk_cnt(ip, aei, "c")
    assert (c["cni"], c["cbs"], c["st"]) == (0, 0, 0)
    i1 = await add_ok(ip, aei, "c", "abc", "i1")
    assert i1["cs"] == 3 and i1["st"] == 1
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (1, 3, 1)
    i2 = await add_ok(ip, aei, "c", "hello", "i2")
    assert i2["cs"] == 5 and i2["st"] == 2
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (2, 8, 2)
    # an update of the container bumps st; the next instance copies it
    ip.clock.advance(1)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"lbl": ["x"]}})
    assert r.pc["m2m:cnt"]["st"] == 3
    i3 = await add_ok(ip, aei, "c", "", "i3")
    assert i3["cs"] == 0 and i3["st"] == 4
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (3, 8, 4)
    # the stored instance has the same st as the create response
    r = await ip.call(RETRIEVE, "cse-in/app/c/i2", aei)
    assert r.pc["m2m:cin"]["st"] == 2 and r.pc["m2m:cin"]["cs"] == 5


async def test_mni_evicts_oldest_first(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mni=2)
    for n in range(1, 5):
        await add_ok(ip, aei, "c", f"v{n}", f"i{n}")
        s = await cnt_state(ip, "c")
        assert s["cni"] == min(n, 2)
    assert await instance_names(ip, "c") == ["i3", "i4"]
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (2, 4, 4)
    assert (await ip.call(RETRIEVE, "cse-in/app/c/i1", aei)).rsc == 4004
    assert (await ip.call(RETRIEVE, "cse-in/app/c/ol", aei)).pc["m2m:cin"]["rn"] == "i3"
    assert (await ip.call(RETRIEVE, "cse-in/app/c/la", aei)).pc["m2m:cin"]["rn"] == "i4"
    # the names of evicted instances are free again
    await add_ok(ip, aei, "c", "again", "i1")
    assert await instance_names(ip, "c") == ["i4", "i1"]


async def test_mbs_evicts_oldest_first(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mbs=10)
    await add_ok(ip, aei, "c", "aaaa", "a")
    await add_ok(ip, aei, "c", "bbbb", "b")
    assert (await cnt_state(ip, "c"))["cbs"] == 8
    await add_ok(ip, aei, "c", "cccc", "c")
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (2, 8)
    assert await instance_names(ip, "c") == ["b", "c"]
    # a big one evicts several
    await add_ok(ip, aei, "c", "dddddddddd", "d")
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (1, 10)
    assert await instance_names(ip, "c") == ["d"]


async def test_instance_larger_than_mbs(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mbs=4)
    await add_ok(ip, aei, "c", "ok", "small")
    r = await add(ip, aei, "c", "toolong", "big")
    assert r.rsc == 5207, r.pc
    assert "mbs" in dbg(r) or "maxByteSize" in dbg(r)
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (1, 2, 1)
    assert await instance_names(ip, "c") == ["small"]


async def test_lowering_mni_evicts_at_once(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    for n in range(1, 6):
        await add_ok(ip, aei, "c", "xy", f"i{n}")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mni": 2}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:cnt"]["cni"] == 2
    assert r.pc["m2m:cnt"]["cbs"] == 4
    assert await instance_names(ip, "c") == ["i4", "i5"]
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["mni"]) == (2, 4, 2)
    for n in (1, 2, 3):
        assert (await ip.call(RETRIEVE, f"cse-in/app/c/i{n}", aei)).rsc == 4004


async def test_lowering_mbs_evicts_at_once(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    for n in range(1, 5):
        await add_ok(ip, aei, "c", "abc", f"i{n}")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mbs": 7}})
    assert r.rsc == 2004, r.pc
    assert (r.pc["m2m:cnt"]["cni"], r.pc["m2m:cnt"]["cbs"]) == (2, 6)
    assert await instance_names(ip, "c") == ["i3", "i4"]


async def test_mia_caps_instance_et_and_expiry_removes_it(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mia=60)
    i1 = await add_ok(ip, aei, "c", "abc", "i1")
    assert i1["et"] == format_ts(parse_ts(i1["ct"]) + 60)
    # a requested et later than ct + mia is capped, an earlier one kept
    later = format_ts(ip.clock.now() + 3600)
    i2 = await add_ok(ip, aei, "c", "de", "i2", et=later)
    assert i2["et"] == format_ts(parse_ts(i2["ct"]) + 60)
    sooner = format_ts(ip.clock.now() + 30)
    i3 = await add_ok(ip, aei, "c", "f", "i3", et=sooner)
    assert i3["et"] == sooner
    ip.clock.advance(31)
    await ip.cse._expire(ip.clock.now())
    assert await instance_names(ip, "c") == ["i1", "i2"]
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (2, 5)
    ip.clock.advance(30)
    await ip.cse._expire(ip.clock.now())
    assert await instance_names(ip, "c") == []
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (0, 0)
    assert (await ip.call(RETRIEVE, "cse-in/app/c/la", aei)).rsc == 4004
    # the container itself is still there
    assert s["rn"] == "c"


async def test_mia_set_later_applies_to_new_instances(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mia": 5}})
    assert r.rsc == 2004
    i = await add_ok(ip, aei, "c", "x", "i")
    assert i["et"] == format_ts(parse_ts(i["ct"]) + 5)


async def test_huge_mia_is_no_cap(app: dict[str, Any]) -> None:
    """A valid (non-negative integer) mia far beyond the representable time
    range must not break instance creation (no 5000)."""
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mia=10 ** 20)
    r = await add(ip, aei, "c", "x", "i")
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:cin"]["et"] <= (await cnt_state(ip, "c"))["et"]


async def test_instance_update_not_allowed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    i = await add_ok(ip, aei, "c", "x", "i", lbl=["a"])
    for to in ("cse-in/app/c/i", i["ri"], "cse-in/app/c/la"):
        for fr in (aei, ADMIN):
            r = await ip.call(UPDATE, to, fr, pc={"m2m:cin": {"lbl": ["b"]}})
            assert r.rsc == 4005, (to, r.pc)
            dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app/c/i", aei)
    assert got.pc["m2m:cin"]["lbl"] == ["a"]


@pytest.mark.parametrize("how", ["path", "ri", "la", "ol"])
async def test_delete_instance_updates_counters(app: dict[str, Any], how: str) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    first = await add_ok(ip, aei, "c", "aa", "first")
    await add_ok(ip, aei, "c", "bbb", "mid")
    last = await add_ok(ip, aei, "c", "cccc", "last")
    to, gone, size = {
        "path": ("cse-in/app/c/mid", "mid", 3),
        "ri": (first["ri"], "first", 2),
        "la": ("cse-in/app/c/la", "last", 4),
        "ol": ("cse-in/app/c/ol", "first", 2),
    }[how]
    r = await ip.call(DELETE, to, aei)
    assert r.rsc == 2002, r.pc
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (2, 9 - size)
    names = await instance_names(ip, "c")
    assert gone not in names and len(names) == 2
    assert last["rn"] in names or gone == "last"


async def test_delete_via_la_rcn1_returns_instance(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    await add_ok(ip, aei, "c", "one", "i1")
    await add_ok(ip, aei, "c", "two", "i2")
    r = await ip.call(DELETE, "cse-in/app/c/la", aei, rcn=1)
    assert r.rsc == 2002
    assert r.pc["m2m:cin"]["rn"] == "i2" and r.pc["m2m:cin"]["con"] == "two"


async def test_disr_blocks_instance_access(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", disr=True)
    i = await add_ok(ip, aei, "c", "secret", "i")  # adding is still possible
    for to in ("cse-in/app/c/la", "cse-in/app/c/ol", "cse-in/app/c/i", i["ri"],
               f"/id-in/{i['ri']}", "cse-in/app/c/la"):
        r = await ip.call(RETRIEVE, to, aei)
        assert r.rsc == 4005, (to, r.pc)
        assert "disr" in dbg(r)
    for to in ("cse-in/app/c/la", "cse-in/app/c/i"):
        r = await ip.call(DELETE, to, aei)
        assert r.rsc == 4005, (to, r.pc)
    # the container itself stays retrievable
    s = await cnt_state(ip, "c")
    assert s["disr"] is True and s["cni"] == 1
    # switching disr off opens the container again, for new instances only
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"disr": False}})
    assert r.rsc == 2004
    assert (await ip.call(RETRIEVE, "cse-in/app/c/la", aei)).rsc == 4004
    await add_ok(ip, aei, "c", "open", "j")
    r = await ip.call(RETRIEVE, "cse-in/app/c/la", aei)
    assert r.rsc == 2000 and r.pc["m2m:cin"]["con"] == "open"


@pytest.mark.parametrize("off", [False, None])
async def test_disr_true_to_false_deletes_every_instance(app: dict[str, Any], off: Any) -> None:
    """TS-0001 9.6.6 disableRetrieval: when it changes from TRUE to FALSE, all
    child contentInstances are deleted (``null`` removes it: FALSE as well)."""
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", disr=True)
    ris = [(await add_ok(ip, aei, "c", "x" * n, f"i{n}"))["ri"] for n in (1, 2, 3)]
    assert (await cnt_state(ip, "c"))["cni"] == 3
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"disr": off}})
    assert r.rsc == 2004, r.pc
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (0, 0)
    assert s.get("disr") in (False, None)
    for ri in ris:
        assert (await ip.call(RETRIEVE, ri, ADMIN)).rsc == 4004
    assert await instance_names(ip, "c") == []


async def test_disr_false_to_false_or_true_keeps_instances(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", disr=False)
    await add_ok(ip, aei, "c", "a", "i")
    for value in (False, True):
        r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"disr": value}})
        assert r.rsc == 2004, r.pc
        assert (await cnt_state(ip, "c"))["cni"] == 1


@pytest.mark.parametrize("con", [{"a": 1, "b": [1, 2]}, [1, "two", None], 12345, True, 1.5,
                                 {"nested": {"deep": {"x": "y"}}}])
async def test_json_content_counts_json_size(app: dict[str, Any], con: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    i = await add_ok(ip, aei, "c", con, "i")
    expected = len(json.dumps(con, separators=(",", ":")))
    assert i["cs"] == expected
    assert i["con"] == con
    assert (await cnt_state(ip, "c"))["cbs"] == expected
    got = await ip.call(RETRIEVE, "cse-in/app/c/i", aei)
    assert got.pc["m2m:cin"]["con"] == con


async def test_json_content_with_non_ascii_counts_utf8_bytes(app: dict[str, Any]) -> None:
    """A JSON-object content is sized as the UTF-8 JSON the CSE sends
    (the HTTP binding serialises with ensure_ascii=False), consistent with
    string contents being sized in UTF-8 bytes."""
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    con = {"t": "é", "温度": "21°C"}
    i = await add_ok(ip, aei, "c", con, "i")
    expected = len(json.dumps(con, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    assert i["cs"] == expected, (i["cs"], expected)


@pytest.mark.parametrize("con,size", [("héllo", 6), ("温度", 6), ("😀", 4), ("plain", 5), ("", 0)])
async def test_string_content_size_in_utf8_bytes(app: dict[str, Any], con: str, size: int) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    i = await add_ok(ip, aei, "c", con, "i")
    assert i["cs"] == size
    assert (await cnt_state(ip, "c"))["cbs"] == size


async def test_utf8_size_counts_against_mbs(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c", mbs=5)
    assert (await add(ip, aei, "c", "ab", "a")).rsc == 2001
    r = await add(ip, aei, "c", "ééé")  # 3 characters, 6 bytes
    assert r.rsc == 5207, r.pc
    r = await add(ip, aei, "c", "éé", "e")  # 4 bytes: fits, evicts "a"
    assert r.rsc == 2001, r.pc
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"]) == (1, 4)
    assert await instance_names(ip, "c") == ["e"]


@pytest.mark.parametrize("cnf", ["text/plain:0", "application/json:1",
                                 "text/plain:2:1", "application/vnd.onem2m-res+json:0"])
async def test_cnf_valid(app: dict[str, Any], cnf: str) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    i = await add_ok(ip, aei, "c", "x", "i", cnf=cnf)
    assert i["cnf"] == cnf


@pytest.mark.parametrize("cnf", ["text", "text/plain:3", "text /plain", "", "/plain", "text/",
                                 "text/plain:0:x", 5, ["text/plain"],
                                 # TS-0004 m2m:contentInfo is "type/subtype:encoding": both parts
                                 "text/plain", "application/json", "text/plain:"])
async def test_cnf_invalid(app: dict[str, Any], cnf: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    r = await add(ip, aei, "c", "x", "i", cnf=cnf)
    assert r.rsc == 4000, (cnf, r.pc)
    assert "cnf" in dbg(r)
    assert (await cnt_state(ip, "c"))["cni"] == 0


async def test_instance_without_con(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=4, pc={"m2m:cin": {"rn": "i"}})
    assert r.rsc == 4000
    assert "con" in dbg(r)
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["st"]) == (0, 0)


async def test_container_in_container_keeps_own_counters(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, aei, "c")
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=3, pc={"m2m:cnt": {"rn": "sub"}})
    assert r.rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/c/sub", aei, ty=4, pc={"m2m:cin": {"con": "abc"}})
    assert r.rsc == 2001
    s = await cnt_state(ip, "c")
    assert (s["cni"], s["cbs"], s["st"]) == (0, 0, 0)
    r = await ip.call(RETRIEVE, "cse-in/app/c/sub", aei)
    assert (r.pc["m2m:cnt"]["cni"], r.pc["m2m:cnt"]["cbs"]) == (1, 3)
    # la of the outer container does not see the inner one's instances
    assert (await ip.call(RETRIEVE, "cse-in/app/c/la", aei)).rsc == 4004

"""Generic CREATE / RETRIEVE / UPDATE / DELETE through the pipeline
(docs/onem2m.md "Content and media types", "Resource types", "Result content")."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"
TS = re.compile(r"^\d{8}T\d{6},\d{6}$")


async def mk_cnt(ip: Any, parent: str, fr: str, rn: str | None = None, **attrs: Any) -> dict[str, Any]:
    body = dict(attrs)
    if rn is not None:
        body["rn"] = rn
    r = await ip.call(CREATE, parent, fr, ty=3, pc={"m2m:cnt": body})
    assert r.rsc == 2001, r.pc
    return r.pc["m2m:cnt"]


async def mk_cin(ip: Any, parent: str, fr: str, rn: str, con: Any = "v", **attrs: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, parent, fr, ty=4, pc={"m2m:cin": {"rn": rn, "con": con, **attrs}})
    assert r.rsc == 2001, r.pc
    return r.pc["m2m:cin"]


# -- CREATE result content -------------------------------------------------------

async def test_create_rcn_default_is_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c", "mni": 5}})
    assert r.rsc == 2001
    body = r.pc["m2m:cnt"]
    assert body["rn"] == "c" and body["mni"] == 5 and body["ty"] == 3
    assert body["pi"] == aei
    assert body["cni"] == 0 and body["cbs"] == 0 and body["st"] == 0
    assert not any(k.startswith("_") for k in body)
    assert r.location == "cse-in/app/c"


async def test_create_rcn0_nothing(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c0"}}, rcn=0)
    assert r.rsc == 2001
    assert r.pc is None
    assert (await ip.call(RETRIEVE, "cse-in/app/c0", aei)).rsc == 2000


async def test_create_rcn1_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c1"}}, rcn=1)
    assert r.rsc == 2001
    assert set(r.pc) == {"m2m:cnt"}
    assert r.pc["m2m:cnt"]["rn"] == "c1"
    got = await ip.call(RETRIEVE, "cse-in/app/c1", aei)
    assert got.pc == r.pc


async def test_create_rcn2_hierarchical_address(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c2"}}, rcn=2)
    assert r.rsc == 2001
    assert r.pc == {"m2m:uri": "cse-in/app/c2"}
    assert r.location == "cse-in/app/c2"
    # also when the request addressed the parent by ri
    r = await ip.call(CREATE, aei, aei, ty=3, pc={"m2m:cnt": {"rn": "c2b"}}, rcn=2)
    assert r.pc == {"m2m:uri": "cse-in/app/c2b"}
    assert r.location == "cse-in/app/c2b"


async def test_create_rcn3_address_and_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c3", "mni": 2}}, rcn=3)
    assert r.rsc == 2001
    assert set(r.pc) == {"m2m:rce"}
    rce = r.pc["m2m:rce"]
    assert rce["uri"] == "cse-in/app/c3"
    assert rce["m2m:cnt"]["rn"] == "c3"
    assert rce["m2m:cnt"]["mni"] == 2
    assert r.location == "cse-in/app/c3"


async def test_create_rcn9_modified_attributes(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3,
                      pc={"m2m:cnt": {"rn": "c9", "mni": 4, "cr": None}}, rcn=9)
    assert r.rsc == 2001
    body = r.pc["m2m:cnt"]
    # what the CSE set
    for key in ("ri", "ct", "lt", "et", "st", "cni", "cbs", "pi", "ty"):
        assert key in body, key
    assert body["cr"] == aei  # set differently from the request (null)
    # what the request set unchanged is not repeated
    assert "mni" not in body
    assert "rn" not in body
    assert r.location == "cse-in/app/c9"


@pytest.mark.parametrize("rcn", [4, 5, 6, 7, 8, 10, 11, 12, 99, -1])
async def test_create_invalid_rcn(app: dict[str, Any], rcn: int) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "x"}}, rcn=rcn)
    assert r.rsc == 4000, r.pc
    assert "rcn" in dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app/x", aei)).rsc == 4004


# -- names -------------------------------------------------------------------------

async def test_rn_conflict(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    first = await mk_cnt(ip, "cse-in/app", aei, "dup")
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "dup", "mni": 1}})
    assert r.rsc == 4105, r.pc
    assert "dup" in dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app/dup", aei)
    assert got.pc["m2m:cnt"]["ri"] == first["ri"]
    assert "mni" not in got.pc["m2m:cnt"]
    # the same name under another parent is fine
    await mk_cnt(ip, "cse-in/app/dup", aei, "dup")


async def test_generated_rn(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    a = await mk_cnt(ip, "cse-in/app", aei)
    b = await mk_cnt(ip, "cse-in/app", aei)
    assert a["rn"] == a["ri"] and b["rn"] == b["ri"]
    assert a["ri"] != b["ri"]
    r = await ip.call(RETRIEVE, f"cse-in/app/{a['rn']}", aei)
    assert r.rsc == 2000
    assert r.pc["m2m:cnt"]["ri"] == a["ri"]
    r = await ip.call(CREATE, f"cse-in/app/{a['rn']}", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001, r.pc
    cin = r.pc["m2m:cin"]
    assert cin["rn"] == cin["ri"] and cin["ri"].startswith("cin")
    assert r.location == f"cse-in/app/{a['rn']}/{cin['rn']}"


async def test_rn_null_on_create_rejected(app: dict[str, Any]) -> None:
    r = await app["ip"].call(CREATE, "cse-in/app", app["aei"], ty=3, pc={"m2m:cnt": {"rn": None}})
    assert r.rsc == 4000
    assert "rn" in dbg(r)


# -- content validation ----------------------------------------------------------

@pytest.mark.parametrize("ty,pc,needle", [
    (4, {"m2m:cnt": {"rn": "x"}}, "m2m:cin"),
    (3, {"m2m:cin": {"con": "x"}}, "m2m:cnt"),
    (3, {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"]}}, "m2m:cnt"),
    (3, {"cnt": {"rn": "x"}}, "m2m:cnt"),
    (3, {"m2m:cnt": {"rn": "x"}, "m2m:cin": {}}, "m2m:cnt"),
])
async def test_wrong_content_root(app: dict[str, Any], ty: int, pc: Any, needle: str) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "cnt")
    r = await ip.call(CREATE, "cse-in/app/cnt" if ty == 4 else "cse-in/app", aei, ty=ty, pc=pc)
    assert r.rsc == 4000, r.pc
    assert needle in dbg(r)


async def test_unknown_attribute(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "x", "foo": 1}})
    assert r.rsc == 4000
    assert "'foo'" in dbg(r)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "x", "api": "Nx"}})
    assert r.rsc == 4000
    assert "'api'" in dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app/x", aei)).rsc == 4004


@pytest.mark.parametrize("attr,value", [("ri", "cntX"), ("ct", "20270101T000000"),
                                        ("lt", "20270101T000000"), ("cni", 0), ("cbs", 0),
                                        ("st", 0), ("ty", 3), ("pi", "id-in"), ("li", "x")])
async def test_np_attributes_on_create(app: dict[str, Any], attr: str, value: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "x", attr: value}})
    assert r.rsc == 4000, r.pc
    assert f"'{attr}'" in dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app/x", aei)).rsc == 4004


@pytest.mark.parametrize("attr,value", [("cs", 3), ("st", 1)])
async def test_np_attributes_on_instance(app: dict[str, Any], attr: str, value: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "cnt")
    r = await ip.call(CREATE, "cse-in/app/cnt", aei, ty=4, pc={"m2m:cin": {"con": "abc", attr: value}})
    assert r.rsc == 4000
    assert f"'{attr}'" in dbg(r)


@pytest.mark.parametrize("attr,value", [
    ("mni", "5"), ("mni", -1), ("mni", 1.5), ("mni", True), ("mbs", None), ("mia", [1]),
    ("lbl", "a"), ("lbl", [1]), ("lbl", [""]), ("disr", "yes"), ("rn", 5), ("rn", "a/b"),
    ("rn", "la"), ("rn", "ol"), ("rn", ".."), ("rn", ""), ("rn", "a b"), ("et", "tomorrow"),
    ("et", 5), ("acpi", "x"), ("acpi", [5]), ("or", 1),
])
async def test_wrong_types(app: dict[str, Any], attr: str, value: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    body = {"rn": "x", attr: value} if attr != "rn" else {attr: value}
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": body})
    assert r.rsc == 4000, (attr, value, r.pc)
    assert attr in dbg(r)


async def test_creator(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    with_cr = await mk_cnt(ip, "cse-in/app", aei, "withcr", cr=None)
    assert with_cr["cr"] == aei
    without = await mk_cnt(ip, "cse-in/app", aei, "nocr")
    assert "cr" not in without
    r = await ip.call(RETRIEVE, "cse-in/app/withcr", aei)
    assert r.pc["m2m:cnt"]["cr"] == aei
    # the admin creating on behalf: cr is the admin
    by_admin = await mk_cnt(ip, "cse-in/app", ADMIN, "admincr", cr=None)
    assert by_admin["cr"] == ADMIN
    # cin too
    c = await mk_cin(ip, "cse-in/app/withcr", aei, "i", cr=None)
    assert c["cr"] == aei


@pytest.mark.parametrize("value", ["x", "Cother", 5, True, ["a"]])
async def test_creator_non_null_rejected(app: dict[str, Any], value: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "x", "cr": value}})
    assert r.rsc == 4000, r.pc
    assert "cr" in dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app/x", aei)).rsc == 4004


async def test_creator_not_updatable(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c", cr=None)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"cr": None}})
    assert r.rsc == 4000
    assert "cr" in dbg(r)


async def test_child_type_not_allowed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "cnt")
    await mk_cin(ip, "cse-in/app/cnt", aei, "i")
    cases = [
        ("cse-in/app/cnt", 2, {"m2m:ae": {"rn": "a", "api": "Nx", "rr": True, "srv": ["3"]}}),
        ("cse-in/app", 4, {"m2m:cin": {"rn": "a", "con": "x"}}),
        ("cse-in", 4, {"m2m:cin": {"rn": "a", "con": "x"}}),
        ("cse-in/app/cnt", 1, {"m2m:acp": {"rn": "a", "pv": {"acr": []},
                                           "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}}),
        ("cse-in/app/cnt/i", 3, {"m2m:cnt": {"rn": "a"}}),
        ("cse-in/app/cnt/i", 4, {"m2m:cin": {"rn": "a", "con": "x"}}),
    ]
    for to, ty, pc in cases:
        r = await ip.call(CREATE, to, ADMIN, ty=ty, pc=pc)
        assert r.rsc == 4108, (to, ty, r.pc)
        dbg(r)
        assert (await ip.call(RETRIEVE, f"{to}/a", ADMIN)).rsc == 4004


async def test_cse_base_read_only(app: dict[str, Any]) -> None:
    ip = app["ip"]
    before = await ip.call(RETRIEVE, "cse-in", ADMIN)
    r = await ip.call(UPDATE, "cse-in", ADMIN, pc={"m2m:cb": {"lbl": ["x"]}})
    assert r.rsc == 4005, r.pc
    dbg(r)
    r = await ip.call(DELETE, "cse-in", ADMIN)
    assert r.rsc == 4005, r.pc
    dbg(r)
    r = await ip.call(DELETE, "/id-in", ADMIN)
    assert r.rsc == 4005
    r = await ip.call(CREATE, "cse-in", ADMIN, ty=5, pc={"m2m:cb": {}})
    assert r.rsc == 4005
    after = await ip.call(RETRIEVE, "cse-in", ADMIN)
    assert after.rsc == 2000
    assert after.pc == before.pc
    # the AE is still there
    assert (await ip.call(RETRIEVE, "cse-in/app", ADMIN)).rsc == 2000


# -- RETRIEVE result content --------------------------------------------------------

@pytest.fixture
async def filled(app: dict[str, Any]) -> dict[str, Any]:
    """cnt{c1, c2, sub{s1}}."""
    ip, aei = app["ip"], app["aei"]
    cnt = await mk_cnt(ip, "cse-in/app", aei, "cnt")
    c1 = await mk_cin(ip, "cse-in/app/cnt", aei, "c1", "one")
    c2 = await mk_cin(ip, "cse-in/app/cnt", aei, "c2", "two")
    sub = await mk_cnt(ip, "cse-in/app/cnt", aei, "sub")
    s1 = await mk_cin(ip, "cse-in/app/cnt/sub", aei, "s1", "deep")
    return {**app, "cnt": cnt, "c1": c1, "c2": c2, "sub": sub, "s1": s1}


async def test_retrieve_rcn1(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    for rcn in (None, 1):
        r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=rcn)
        assert r.rsc == 2000
        body = r.pc["m2m:cnt"]
        assert body["rn"] == "cnt" and body["cni"] == 2
        assert "m2m:cin" not in body and "ch" not in body
        assert not any(k.startswith("_") for k in body)


async def test_retrieve_rcn4_children_inline(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=4)
    assert r.rsc == 2000, r.pc
    body = r.pc["m2m:cnt"]
    assert body["rn"] == "cnt" and body["ri"] == filled["cnt"]["ri"]
    assert [c["rn"] for c in body["m2m:cin"]] == ["c1", "c2"]
    assert [c["con"] for c in body["m2m:cin"]] == ["one", "two"]
    assert [c["rn"] for c in body["m2m:cnt"]] == ["sub"]
    assert [c["rn"] for c in body["m2m:cnt"][0]["m2m:cin"]] == ["s1"]
    for c in body["m2m:cin"]:
        assert not any(k.startswith("_") for k in c)


async def test_retrieve_rcn5_child_refs(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=5)
    assert r.rsc == 2000, r.pc
    body = r.pc["m2m:cnt"]
    assert body["rn"] == "cnt"
    assert "m2m:cin" not in body
    assert body["ch"] == [
        {"nm": "c1", "typ": 4, "val": "cse-in/app/cnt/c1"},
        {"nm": "c2", "typ": 4, "val": "cse-in/app/cnt/c2"},
        {"nm": "sub", "typ": 3, "val": "cse-in/app/cnt/sub"},
    ]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=5, drt=2)
    assert [c["val"] for c in r.pc["m2m:cnt"]["ch"]] == [
        filled["c1"]["ri"], filled["c2"]["ri"], filled["sub"]["ri"]]


async def test_retrieve_rcn6_rrl(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=6)
    assert r.rsc == 2000, r.pc
    assert set(r.pc) == {"m2m:rrl"}
    refs = r.pc["m2m:rrl"]["rrf"]
    vals = {ref["val"]: ref for ref in refs}
    assert vals["cse-in/app/cnt/c1"] == {"nm": "c1", "typ": 4, "val": "cse-in/app/cnt/c1"}
    assert vals["cse-in/app/cnt/sub"]["typ"] == 3
    assert "cse-in/app/cnt/c2" in vals
    assert all(set(ref) == {"nm", "typ", "val"} for ref in refs)


async def test_retrieve_rcn8_children_only(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=8)
    assert r.rsc == 2000, r.pc
    body = r.pc["m2m:cnt"]
    assert "rn" not in body and "ri" not in body and "cni" not in body
    assert [c["rn"] for c in body["m2m:cin"]] == ["c1", "c2"]
    assert [c["rn"] for c in body["m2m:cnt"]] == ["sub"]


@pytest.mark.parametrize("rcn", [0, 2, 3, 7, 9, 10, 13])
async def test_retrieve_invalid_rcn(filled: dict[str, Any], rcn: int) -> None:
    r = await filled["ip"].call(RETRIEVE, "cse-in/app/cnt", filled["aei"], rcn=rcn)
    assert r.rsc == 4000, r.pc
    assert "rcn" in dbg(r)


async def test_partial_retrieve_atrl(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, atrl=("rn", "cni", "ri"))
    assert r.rsc == 2000, r.pc
    assert r.pc == {"m2m:cnt": {"rn": "cnt", "cni": 2, "ri": filled["cnt"]["ri"]}}
    # an attribute of the type that this resource does not have is simply absent
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, atrl=("mbs", "rn"))
    assert r.rsc == 2000
    assert r.pc == {"m2m:cnt": {"rn": "cnt"}}
    r = await ip.call(RETRIEVE, "cse-in/app/cnt/c1", aei, atrl=("con",))
    assert r.pc == {"m2m:cin": {"con": "one"}}


async def test_partial_retrieve_unknown_attribute(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, atrl=("rn", "foo"))
    assert r.rsc == 4000
    assert "foo" in dbg(r)
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, atrl=("_srn",))
    assert r.rsc == 4000
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, atrl=("api",))
    assert r.rsc == 4000
    assert "api" in dbg(r)


async def test_partial_retrieve_needs_rcn1(filled: dict[str, Any]) -> None:
    r = await filled["ip"].call(RETRIEVE, "cse-in/app/cnt", filled["aei"], atrl=("rn",), rcn=4)
    assert r.rsc == 4000
    dbg(r)


# -- UPDATE ----------------------------------------------------------------------

async def test_update_lt_and_st(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    c = await mk_cnt(ip, "cse-in/app", aei, "c")
    assert c["ct"] == c["lt"] and c["st"] == 0
    ip.clock.advance(5)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mni": 7}})
    assert r.rsc == 2004, r.pc
    body = r.pc["m2m:cnt"]
    assert body["mni"] == 7
    assert body["st"] == 1
    assert body["ct"] == c["ct"]
    assert body["lt"] == format_ts(ip.clock.now())
    assert body["lt"] > c["lt"]
    ip.clock.advance(1.25)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"lbl": ["a"]}})
    assert r.pc["m2m:cnt"]["st"] == 2
    assert r.pc["m2m:cnt"]["lt"] == format_ts(ip.clock.now())
    assert r.pc["m2m:cnt"]["lt"].endswith(",250000")
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert got.pc["m2m:cnt"]["st"] == 2 and got.pc["m2m:cnt"]["mni"] == 7
    assert got.pc["m2m:cnt"]["lbl"] == ["a"]


async def test_update_ae_has_no_state_tag(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    ip.clock.advance(3)
    r = await ip.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"lbl": ["x"], "rr": False}})
    assert r.rsc == 2004, r.pc
    assert "st" not in r.pc["m2m:ae"]
    assert r.pc["m2m:ae"]["rr"] is False
    assert r.pc["m2m:ae"]["lt"] == format_ts(ip.clock.now())


async def test_update_null_removes_attribute(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c", lbl=["a", "b"], mni=3)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"lbl": None, "mni": None}})
    assert r.rsc == 2004, r.pc
    assert "lbl" not in r.pc["m2m:cnt"] and "mni" not in r.pc["m2m:cnt"]
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert "lbl" not in got.pc["m2m:cnt"] and "mni" not in got.pc["m2m:cnt"]
    assert got.pc["m2m:cnt"]["rn"] == "c"


async def test_update_null_on_mandatory_rejected(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"rr": None}})
    assert r.rsc == 4000
    assert "rr" in dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app", aei)
    assert got.pc["m2m:ae"]["rr"] is True


async def test_update_rcn0(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mni": 1}}, rcn=0)
    assert r.rsc == 2004
    assert r.pc is None
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert got.pc["m2m:cnt"]["mni"] == 1


async def test_update_rcn9_modified_attributes_only(app: dict[str, Any]) -> None:
    """rcn=9 on UPDATE: only what the CSE changed beyond the request
    (here lt and st), not the whole resource (docs/onem2m.md "Result content")."""
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c")
    ip.clock.advance(2)
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mni": 1, "lbl": ["x"]}}, rcn=9)
    assert r.rsc == 2004, r.pc
    body = r.pc["m2m:cnt"]
    assert body["lt"] == format_ts(ip.clock.now())
    assert body["st"] == 1
    for untouched in ("ri", "rn", "pi", "ty", "ct", "et", "cni", "cbs", "mni", "lbl"):
        assert untouched not in body, (untouched, body)


@pytest.mark.parametrize("rcn", [2, 3, 4, 5, 6, 8])
async def test_update_invalid_rcn(app: dict[str, Any], rcn: int) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"mni": 1}}, rcn=rcn)
    assert r.rsc == 4000
    assert "rcn" in dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert "mni" not in got.pc["m2m:cnt"] and got.pc["m2m:cnt"]["st"] == 0


@pytest.mark.parametrize("pc,needle", [
    ({"m2m:cnt": {"rn": "other"}}, "rn"),
    ({"m2m:cnt": {"ct": "20270101T000000"}}, "ct"),
    ({"m2m:cnt": {"cni": 3}}, "cni"),
    ({"m2m:cnt": {"st": 3}}, "st"),
    ({"m2m:cnt": {}}, "m2m:cnt"),
    ({"m2m:cnt": {"mni": "x"}}, "mni"),
    ({"m2m:cnt": {"zzz": 1}}, "zzz"),
    ({"m2m:cin": {"con": "x"}}, "m2m:cnt"),
    (None, "m2m:cnt"),
])
async def test_update_bad_content(app: dict[str, Any], pc: Any, needle: str) -> None:
    ip, aei = app["ip"], app["aei"]
    await mk_cnt(ip, "cse-in/app", aei, "c")
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc=pc)
    assert r.rsc == 4000, r.pc
    assert needle in dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert got.pc["m2m:cnt"]["st"] == 0 and got.pc["m2m:cnt"]["rn"] == "c"


# -- DELETE ----------------------------------------------------------------------

async def test_delete_removes_subtree(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(DELETE, "cse-in/app/cnt", aei)
    assert r.rsc == 2002, r.pc
    assert r.pc is None
    for key in ("cnt", "c1", "c2", "sub", "s1"):
        assert (await ip.call(RETRIEVE, filled[key]["ri"], aei)).rsc == 4004, key
    for path in ("cse-in/app/cnt", "cse-in/app/cnt/c1", "cse-in/app/cnt/sub", "cse-in/app/cnt/sub/s1"):
        assert (await ip.call(RETRIEVE, path, aei)).rsc == 4004, path
    # the AE is still there, and the names are free again
    assert (await ip.call(RETRIEVE, "cse-in/app", aei)).rsc == 2000
    again = await mk_cnt(ip, "cse-in/app", aei, "cnt")
    assert again["ri"] != filled["cnt"]["ri"]
    assert again["cni"] == 0
    sub = await mk_cnt(ip, "cse-in/app/cnt", aei, "sub")
    assert sub["ri"] != filled["sub"]["ri"]
    r = await ip.call(RETRIEVE, "cse-in/app/cnt", aei, rcn=6)
    assert [x["nm"] for x in r.pc["m2m:rrl"]["rrf"]] == ["sub"]


async def test_delete_rcn1_returns_representation(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(DELETE, "cse-in/app/cnt/sub", aei, rcn=1)
    assert r.rsc == 2002, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "sub"
    assert r.pc["m2m:cnt"]["ri"] == filled["sub"]["ri"]
    assert (await ip.call(RETRIEVE, "cse-in/app/cnt/sub", aei)).rsc == 4004


async def test_delete_rcn4_returns_children(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(DELETE, "cse-in/app/cnt/sub", aei, rcn=4)
    assert r.rsc == 2002, r.pc
    assert [c["rn"] for c in r.pc["m2m:cnt"]["m2m:cin"]] == ["s1"]


@pytest.mark.parametrize("rcn", [2, 3, 7, 9])
async def test_delete_invalid_rcn(filled: dict[str, Any], rcn: int) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(DELETE, "cse-in/app/cnt/sub", aei, rcn=rcn)
    assert r.rsc == 4000
    dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app/cnt/sub", aei)).rsc == 2000


async def test_delete_ae_removes_everything(filled: dict[str, Any]) -> None:
    ip, aei = filled["ip"], filled["aei"]
    r = await ip.call(DELETE, "cse-in/app", aei)
    assert r.rsc == 2002
    for key in ("cnt", "c1", "sub", "s1"):
        assert (await ip.call(RETRIEVE, filled[key]["ri"], ADMIN)).rsc == 4004
    assert (await ip.call(RETRIEVE, aei, ADMIN)).rsc == 4004
    # delete again: gone
    assert (await ip.call(DELETE, "cse-in/app", ADMIN)).rsc == 4004


async def test_delete_missing(app: dict[str, Any]) -> None:
    r = await app["ip"].call(DELETE, "cse-in/app/nope", app["aei"])
    assert r.rsc == 4004
    dbg(r)


# -- labels and timestamps ---------------------------------------------------------

async def test_labels_stored_and_returned(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    c = await mk_cnt(ip, "cse-in/app", aei, "c", lbl=["room:kitchen", "plain", "ü:ö"])
    assert c["lbl"] == ["room:kitchen", "plain", "ü:ö"]
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert got.pc["m2m:cnt"]["lbl"] == ["room:kitchen", "plain", "ü:ö"]
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"lbl": []}})
    assert r.rsc == 2004
    assert r.pc["m2m:cnt"]["lbl"] == []
    i = await mk_cin(ip, "cse-in/app/c", aei, "i", lbl=["x"])
    assert i["lbl"] == ["x"]


async def test_timestamp_format(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    ip.clock.advance(0.5)
    c = await mk_cnt(ip, "cse-in/app", aei, "c")
    for key in ("ct", "lt", "et"):
        assert TS.match(c[key]), (key, c[key])
    assert c["ct"] == c["lt"] == format_ts(ip.clock.now())
    assert c["ct"] == "20270115T080000,500000"
    i = await mk_cin(ip, "cse-in/app/c", aei, "i")
    assert TS.match(i["ct"]) and i["ct"] == i["lt"]
    ae = (await ip.call(RETRIEVE, "cse-in/app", aei)).pc["m2m:ae"]
    assert TS.match(ae["ct"]) and TS.match(ae["lt"]) and TS.match(ae["et"])
    cb = (await ip.call(RETRIEVE, "cse-in", ADMIN)).pc["m2m:cb"]
    assert TS.match(cb["ct"])
    assert "et" not in cb

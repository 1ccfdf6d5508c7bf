"""Error handling through the pipeline (docs/onem2m.md "Errors", "Status codes").

Every error carries ``m2m:dbg``; malformed input is the originator's error
(4xxx), never 5000.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation, Request

CREATE, RETRIEVE, UPDATE, DELETE, NOTIFY = (Operation.CREATE, Operation.RETRIEVE,
                                            Operation.UPDATE, Operation.DELETE, Operation.NOTIFY)
ADMIN = "CAdmin"


def dbg(resp: Any) -> str:
    assert isinstance(resp.pc, dict), resp.pc
    assert set(resp.pc) == {"m2m:dbg"}, resp.pc
    text = resp.pc["m2m:dbg"]
    assert isinstance(text, str) and text.strip(), resp.pc
    return text


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})
    assert r.rsc == 2001
    return {"ip": inproc, "aei": aei}


# -- originator, ty, rqi -----------------------------------------------------------

@pytest.mark.parametrize("fr", [None, ""])
async def test_missing_originator(app: dict[str, Any], fr: str | None) -> None:
    ip = app["ip"]
    for op, kw in ((RETRIEVE, {}), (UPDATE, {"pc": {"m2m:cnt": {"mni": 1}}}), (DELETE, {}),
                   (CREATE, {"ty": 3, "pc": {"m2m:cnt": {"rn": "x"}}}),
                   (CREATE, {"ty": 4, "pc": {"m2m:cin": {"con": "x"}}}),
                   (NOTIFY, {"pc": {"m2m:sgn": {}}})):
        r = await ip.call(op, "cse-in/app/cnt", fr, **kw)
        assert r.rsc == 4000, (op, r.pc)
        assert "originator" in dbg(r).lower() or "X-M2M-Origin" in dbg(r)
    got = (await ip.call(RETRIEVE, "cse-in/app/cnt", ADMIN)).pc["m2m:cnt"]
    assert got["st"] == 0 and got["cni"] == 0 and "mni" not in got


async def test_missing_request_identifier(app: dict[str, Any]) -> None:
    ip = app["ip"]
    r = await ip.cse.handle(Request(op=RETRIEVE, to="cse-in/app", fr=app["aei"], rqi=""))
    assert r.rsc == 4000
    assert "X-M2M-RI" in dbg(r) or "request identifier" in dbg(r)


async def test_response_echoes_rqi_and_rvi(app: dict[str, Any]) -> None:
    ip = app["ip"]
    r = await ip.cse.handle(Request(op=RETRIEVE, to="cse-in/app", fr=app["aei"], rqi="abc-1", rvi="2a"))
    assert r.rsc == 2000 and r.rqi == "abc-1" and r.rvi == "2a"
    r = await ip.cse.handle(Request(op=RETRIEVE, to="cse-in/nope", fr=app["aei"], rqi="abc-2"))
    assert r.rsc == 4004 and r.rqi == "abc-2"
    dbg(r)


@pytest.mark.parametrize("ty", [99, 0, -1, 12345, 10002, 6])
async def test_unknown_ty(app: dict[str, Any], ty: int) -> None:
    r = await app["ip"].call(CREATE, "cse-in/app", app["aei"], ty=ty, pc={"m2m:cnt": {"rn": "x"}})
    assert r.rsc == 4000, r.pc
    assert str(ty) in dbg(r)


async def test_missing_ty_on_create(app: dict[str, Any]) -> None:
    r = await app["ip"].call(CREATE, "cse-in/app", app["aei"], pc={"m2m:cnt": {"rn": "x"}})
    assert r.rsc == 4000
    assert "ty" in dbg(r)


async def test_create_without_content(app: dict[str, Any]) -> None:
    r = await app["ip"].call(CREATE, "cse-in/app", app["aei"], ty=3)
    assert r.rsc == 4000
    assert "m2m:cnt" in dbg(r)


async def test_notify_to_resource_not_supported(app: dict[str, Any]) -> None:
    """Only AEs receive notifications (relayed to their poa); other targets are 4005."""
    r = await app["ip"].call(NOTIFY, "cse-in", app["aei"], pc={"m2m:sgn": {"vrq": True}})
    assert r.rsc == 4005
    dbg(r)


async def test_notify_to_ae_without_poa_is_unreachable(app: dict[str, Any]) -> None:
    r = await app["ip"].call(NOTIFY, "cse-in/app", app["aei"], pc={"m2m:sgn": {"vrq": True}})
    assert r.rsc == 5103
    assert "poa" in dbg(r)


# -- every error has a dbg -----------------------------------------------------------

async def test_every_error_has_dbg(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    other = await ip.register("other")
    cases: list[tuple[int, Any]] = [
        (4000, ip.call(RETRIEVE, "cse-in//app", aei)),
        (4000, ip.call(RETRIEVE, "cse-in/app", None)),
        (4000, ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"zz": 1}})),
        (4000, ip.call(RETRIEVE, "cse-in/app", aei, rcn=3)),
        (4000, ip.call(RETRIEVE, "cse-in/app", aei, query={"bogus": ("1",)})),
        (4004, ip.call(RETRIEVE, "cse-in/app/missing", aei)),
        (4004, ip.call(RETRIEVE, "/id-far/cse-far", aei)),
        (4005, ip.call(DELETE, "cse-in", ADMIN)),
        (4005, ip.call(CREATE, "cse-in/app/cnt/la", aei, ty=4, pc={"m2m:cin": {"con": "x"}})),
        (4008, ip.call(RETRIEVE, "cse-in/app", aei, rqet="-1")),
        (4103, ip.call(RETRIEVE, "cse-in/app", other)),
        (4105, ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})),
        (4108, ip.call(CREATE, "cse-in/app", aei, ty=4, pc={"m2m:cin": {"con": "x"}})),
        (4117, ip.call(CREATE, "cse-in", aei, ty=2, pc={"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"]}})),
    ]
    for expected, call in cases:
        r = await call
        assert r.rsc == expected, (expected, r.rsc, r.pc)
        dbg(r)
    r = await ip.call(UPDATE, "cse-in/app/cnt", aei, pc={"m2m:cnt": {"mbs": 1}})
    assert r.rsc == 2004
    r = await ip.call(CREATE, "cse-in/app/cnt", aei, ty=4, pc={"m2m:cin": {"con": "too big"}})
    assert r.rsc == 5207
    dbg(r)


# -- malformed content: never 5000 ---------------------------------------------------

def nested(depth: int, leaf: Any = 1) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


HUGE = "x" * 200_000

# (target under cse-in/app, ty, content, expected rsc)
MALFORMED: list[tuple[str, int, Any, int]] = [
    ("", 3, "a string", 4000),
    ("", 3, 42, 4000),
    ("", 3, [], 4000),
    ("", 3, [{"m2m:cnt": {"rn": "x"}}], 4000),
    ("", 3, True, 4000),
    ("", 3, {}, 4000),
    ("", 3, {"m2m:cnt": "x"}, 4000),
    ("", 3, {"m2m:cnt": []}, 4000),
    ("", 3, {"m2m:cnt": None}, 4000),
    ("", 3, {"m2m:cnt": 5}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "x"}, "m2m:cin": {"con": "y"}}, 4000),
    ("", 3, {HUGE: {}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": HUGE}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "温度"}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "😀"}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "a\x00b"}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "a/b"}}, 4000),
    ("", 3, {"m2m:cnt": {"é": 1}}, 4000),
    ("", 3, {"m2m:cnt": {"": 1}}, 4000),
    ("", 3, {"m2m:cnt": {"_srn": "cse-in/evil"}}, 4000),
    ("", 3, {"m2m:cnt": {"_own": "CAdmin"}}, 4000),
    ("", 3, {"m2m:cnt": {HUGE: 1}}, 4000),
    ("", 3, {"m2m:cnt": {"lbl": [["a"]]}}, 4000),
    ("", 3, {"m2m:cnt": {"lbl": [{"a": 1}]}}, 4000),
    ("", 3, {"m2m:cnt": {"lbl": [HUGE]}}, 4000),
    ("", 3, {"m2m:cnt": {"lbl": nested_list(500)}}, 4000),
    ("", 3, {"m2m:cnt": {"mni": {"a": 1}}}, 4000),
    ("", 3, {"m2m:cnt": {"mni": nested(500)}}, 4000),
    ("", 3, {"m2m:cnt": {"mni": float("nan")}}, 4000),
    ("", 3, {"m2m:cnt": {"mni": float("inf")}}, 4000),
    ("", 3, {"m2m:cnt": {"et": HUGE}}, 4000),
    ("", 3, {"m2m:cnt": {"et": "20271399T999999"}}, 4000),
    ("", 3, {"m2m:cnt": {"et": "00000101T000000"}}, 4000),
    ("", 3, {"m2m:cnt": {"et": "00010101T000000"}}, 4000),
    ("", 3, {"m2m:cnt": {"et": "2027-02-30T00:00:00"}}, 4000),
    ("", 3, {"m2m:cnt": {"acpi": "x"}}, 4000),
    ("", 3, {"m2m:cnt": {"acpi": [None]}}, 4000),
    ("", 3, {"m2m:cnt": {"acpi": [HUGE]}}, 4000),
    ("", 3, {"m2m:cnt": {"cr": "me"}}, 4000),
    ("", 3, {"m2m:cnt": {"disr": "true"}}, 4000),
    ("", 3, {"m2m:cnt": {"mia": -1}}, 4000),
    ("", 3, {"m2m:cnt": {"mbs": 1.5}}, 4000),
    ("", 3, {"m2m:cnt": {"rn": "x", "cni": 5, "cbs": 5}}, 4000),
    ("/cnt", 4, {"m2m:cin": {"con": "x", "cnf": 5}}, 4000),
    ("/cnt", 4, {"m2m:cin": {"con": "x", "cnf": HUGE}}, 4000),
    ("/cnt", 4, {"m2m:cin": {"con": "x", "conr": "not an object"}}, 4000),
    ("/cnt", 4, {"m2m:cin": {"cs": 1}}, 4000),
    ("/cnt", 4, {"m2m:cin": None}, 4000),
    ("", 1, {"m2m:acp": {"pv": {"acr": [{"acor": "all", "acop": 2}]},
                         "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
    ("", 1, {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2,
                                        "acco": [{"actw": [HUGE]}]}]},
                         "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
    ("", 1, {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2,
                                        "acco": [{"actw": ["99999999999999999999 * * * * * *"]}]}]},
                         "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
    ("", 1, {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2,
                                        "acco": [{"actw": ["*/0 * * * * * *"]}]}]},
                         "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
    ("", 1, {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2,
                                        "acco": [{"acip": {"ipv4": "0.0.0.0/0"}}]}]},
                         "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
    ("", 1, {"m2m:acp": {"pv": nested(300), "pvs": {"acr": [{"acor": ["all"], "acop": 63}]}}}, 4000),
]


@pytest.mark.parametrize("suffix,ty,pc,expected", MALFORMED,
                         ids=[f"case{i}" for i in range(len(MALFORMED))])
async def test_malformed_create_content(app: dict[str, Any], suffix: str, ty: int, pc: Any,
                                        expected: int) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, f"cse-in/app{suffix}", aei, ty=ty, pc=pc)
    assert r.rsc != 5000, r.pc
    assert r.rsc == expected, (r.rsc, str(r.pc)[:300])
    assert len(dbg(r)) < 2000  # messages are clipped, never echo a huge input whole
    # the tree is unchanged
    got = await ip.call(RETRIEVE, "cse-in/app", aei, rcn=6)
    assert [x["nm"] for x in got.pc["m2m:rrl"]["rrf"]] == ["cnt"]


MALFORMED_AE: list[Any] = [
    {"m2m:ae": {"api": 5, "rr": True, "srv": ["3"]}},
    {"m2m:ae": {"api": "", "rr": True, "srv": ["3"]}},
    {"m2m:ae": {"api": "é-app", "rr": True, "srv": ["3"]}},
    {"m2m:ae": {"api": "Nx", "rr": "true", "srv": ["3"]}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": "3"}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": [3]}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"], "poa": [""]}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"], "poa": [HUGE]}},
    {"m2m:ae": {"api": HUGE, "rr": True, "srv": ["3"]}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"], "regs": "2"}},
    {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"], "scp": [1]}},
    {"m2m:ae": nested(400)},
    {"m2m:cnt": {"rn": "x"}},
    "m2m:ae",
]


@pytest.mark.parametrize("pc", MALFORMED_AE, ids=[f"ae{i}" for i in range(len(MALFORMED_AE))])
async def test_malformed_registration(inproc: Any, pc: Any) -> None:
    r = await inproc.call(CREATE, "cse-in", "C", ty=2, pc=pc)
    assert r.rsc == 4000, (r.rsc, str(r.pc)[:300])
    dbg(r)
    got = await inproc.call(RETRIEVE, "cse-in", ADMIN, rcn=6)
    # nothing was created: only the CSEBase's own sessions collection is there
    assert [c["typ"] for c in got.pc["m2m:rrl"]["rrf"]] == [9001]


MALFORMED_UPDATE: list[Any] = [
    "x", [], {"m2m:cnt": []}, {"m2m:cnt": {"mni": "1"}}, {"m2m:cnt": {"lbl": [None]}},
    {"m2m:cnt": {"et": HUGE}}, {"m2m:cnt": {"et": "00010101T000000"}}, {"m2m:cnt": {"acpi": [1]}},
    {"m2m:cnt": {"ri": "x"}}, {"m2m:cnt": {"mni": nested(300)}}, {"m2m:cnt": {"_srn": "x"}},
    {"m2m:cnt": {"rn": "renamed"}},
]


@pytest.mark.parametrize("pc", MALFORMED_UPDATE, ids=[f"upd{i}" for i in range(len(MALFORMED_UPDATE))])
async def test_malformed_update(app: dict[str, Any], pc: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(UPDATE, "cse-in/app/cnt", aei, pc=pc)
    assert r.rsc == 4000, (r.rsc, str(r.pc)[:300])
    dbg(r)
    got = (await ip.call(RETRIEVE, "cse-in/app/cnt", aei)).pc["m2m:cnt"]
    assert got["st"] == 0 and got["rn"] == "cnt"


@pytest.mark.parametrize("con", [nested(600), nested_list(600), HUGE, {"k": HUGE},
                                 "温度😀" * 1000, None, {"": None}, [[], {}, ""]])
async def test_odd_but_valid_content_is_stored(app: dict[str, Any], con: Any) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app/cnt", aei, ty=4, pc={"m2m:cin": {"rn": "i", "con": con}})
    assert r.rsc == 2001, str(r.pc)[:300]
    got = await ip.call(RETRIEVE, "cse-in/app/cnt/i", aei)
    assert got.pc["m2m:cin"]["con"] == con
    assert got.pc["m2m:cin"]["cs"] > 0


@pytest.mark.parametrize("to", ["cse-in/温度", "/id-in/😀", "cse-in/app/%00", "a" * 100_000,
                                "cse-in/" + "/".join(["x"] * 2000), "cse-in/app/cnt/la/la",
                                "cse-in/app/cnt/la/x", "\x00", "cse-in\n", "//" + "s" * 5000 + "/id-in"])
async def test_odd_targets_never_5000(app: dict[str, Any], to: str) -> None:
    r = await app["ip"].call(RETRIEVE, to, app["aei"])
    assert r.rsc != 5000, r.pc
    assert r.rsc in (2000, 4000, 4004), (r.rsc, r.pc)
    if r.rsc >= 4000:
        assert len(dbg(r)) < 2000


@pytest.mark.parametrize("query", [
    {"fu": ("1",), "lim": ("9" * 5000,)},
    {"fu": ("1",), "sts": ("9" * 5000,)},
    {"fu": ("1",), "ofst": ("9" * 5000,)},
    {"fu": ("1",), "ty": ("9" * 5000,)},
])
async def test_huge_integer_query_values(app: dict[str, Any], query: dict[str, tuple[str, ...]]) -> None:
    """Integers beyond Python's int-from-string limit (4300 digits) are bad
    input: 4000 naming the key, not an unhandled ValueError."""
    r = await app["ip"].call(RETRIEVE, "cse-in/app", app["aei"], query=query)
    assert r.rsc == 4000, r.pc
    key = next(k for k in query if k != "fu")
    assert key in dbg(r)


@pytest.mark.parametrize("query", [
    {"fu": ("1",), "lim": ("9" * 400,)},
    {"fu": ("1",), "sza": ("9" * 400,)},
    {"fu": ("1",), "cra": ("9" * 400,)},
    {"fu": ("1",), "rn": ("*" * 5000,)},
    {"fu": ("1",), "rn": ("温度*",)},
    {"fu": ("1",), "lbl": ("\x00",)},
    {"fu": ("1",), "ty": ("",)},
    {"fu": ("",)},
    {"fu": ("1", "2")},
    {"fu": ("1",), "cty": ("+json",)},
    {"fu": ("1",), "arp": ("a//b",)},
    {"fu": ("1",), "arp": ("",)},
])
async def test_odd_query_values_never_5000(app: dict[str, Any], query: dict[str, tuple[str, ...]]) -> None:
    r = await app["ip"].call(RETRIEVE, "cse-in/app", app["aei"], query=query)
    assert r.rsc in (2000, 4000), (r.rsc, r.pc)
    if r.rsc == 4000:
        dbg(r)


@pytest.mark.parametrize("rqet", ["9" * 400, "-" + "9" * 400, "9" * 5000, "P" + "9" * 400 + "Y",
                                  "PT" + "9" * 400 + "S", "99999999T999999"],
                         ids=["ms400digits", "minus-ms400digits", "ms5000digits", "P-huge-years",
                              "PT-huge-seconds", "nines-timestamp"])
async def test_huge_rqet_values(app: dict[str, Any], rqet: str) -> None:
    """Out-of-range request expiration values are bad input (4000) or, when
    meaningful, far-future deadlines (2000) -- never 5000."""
    r = await app["ip"].call(RETRIEVE, "cse-in/app", app["aei"], rqet=rqet)
    assert r.rsc in (2000, 4000, 4008), (r.rsc, r.pc)
    if r.rsc != 2000:
        dbg(r)


async def test_huge_integer_attributes_never_5000(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "big", "mni": 10 ** 400,
                                                                      "mbs": 10 ** 400}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(CREATE, "cse-in/app/big", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(RETRIEVE, "cse-in/app", aei, query={"fu": ("1",), "mni": ("1" + "0" * 400,)})
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:uril"] == ["cse-in/app/big"]

"""Access control through the pipeline (TS-0004 7.3.3.15; docs/onem2m.md "Access control").

The FakeClock starts at 2027-01-15 08:00:00 UTC (a Friday), which the
``actw`` time-window tests rely on.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


@pytest.fixture
async def two(inproc: Any) -> dict[str, Any]:
    """AE app1 (a1) with container cnt holding one instance; AE app2 (a2)
    with container cnt2."""
    a1 = await inproc.register("app1")
    a2 = await inproc.register("app2")
    r = await inproc.call(CREATE, "cse-in/app1", a1, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})
    assert r.rsc == 2001, r.pc
    r = await inproc.call(CREATE, "cse-in/app1/cnt", a1, ty=4, pc={"m2m:cin": {"rn": "i", "con": "v"}})
    assert r.rsc == 2001, r.pc
    r = await inproc.call(CREATE, "cse-in/app2", a2, ty=3, pc={"m2m:cnt": {"rn": "cnt2"}})
    assert r.rsc == 2001, r.pc
    return {"ip": inproc, "a1": a1, "a2": a2}


async def make_acp(ip: Any, owner: str, rn: str, pv_rules: list[dict[str, Any]],
                   pvs_rules: list[dict[str, Any]] | None = None, parent: str = "cse-in/app1") -> str:
    pvs = pvs_rules if pvs_rules is not None else [{"acor": [owner], "acop": 63}]
    r = await ip.call(CREATE, parent, owner, ty=1,
                      pc={"m2m:acp": {"rn": rn, "pv": {"acr": pv_rules}, "pvs": {"acr": pvs}}})
    assert r.rsc == 2001, r.pc
    return str(r.pc["m2m:acp"]["ri"])


async def protect(ip: Any, fr: str, to: str, acp_ri: str) -> None:
    r = await ip.call(UPDATE, to, fr, pc={"m2m:cnt": {"acpi": [acp_ri]}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:cnt"]["acpi"] == [acp_ri]


async def four_ops(ip: Any, fr: str, to: str = "cse-in/app1/cnt") -> dict[str, int]:
    """rsc of RETRIEVE, UPDATE, CREATE (child) and DELETE by ``fr``."""
    out = {}
    out["R"] = (await ip.call(RETRIEVE, to, fr)).rsc
    out["U"] = (await ip.call(UPDATE, to, fr, pc={"m2m:cnt": {"lbl": [f"by-{fr}"]}})).rsc
    out["C"] = (await ip.call(CREATE, to, fr, ty=4, pc={"m2m:cin": {"con": "new"}})).rsc
    out["D"] = (await ip.call(DELETE, to, fr)).rsc
    return out


# -- default policy ----------------------------------------------------------------

async def test_admin_can_do_everything(two: dict[str, Any]) -> None:
    ip = two["ip"]
    assert await four_ops(ip, ADMIN) == {"R": 2000, "U": 2004, "C": 2001, "D": 2002}
    r = await ip.call(CREATE, "cse-in", ADMIN, ty=3, pc={"m2m:cnt": {"rn": "top"}})
    assert r.rsc == 2001
    r = await ip.call(DELETE, "cse-in/app2", ADMIN)
    assert r.rsc == 2002


async def test_owner_controls_its_subtree(two: dict[str, Any]) -> None:
    ip, a1 = two["ip"], two["a1"]
    assert (await ip.call(RETRIEVE, "cse-in/app1", a1)).rsc == 2000
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt/i", a1)).rsc == 2000
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt/la", a1)).rsc == 2000
    r = await ip.call(CREATE, "cse-in/app1/cnt", a1, ty=3, pc={"m2m:cnt": {"rn": "sub"}})
    assert r.rsc == 2001
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt/sub", a1)).rsc == 2000
    assert await four_ops(ip, a1) == {"R": 2000, "U": 2004, "C": 2001, "D": 2002}
    r = await ip.call(UPDATE, "cse-in/app1", a1, pc={"m2m:ae": {"lbl": ["mine"]}})
    assert r.rsc == 2004


async def test_other_ae_denied(two: dict[str, Any]) -> None:
    ip, a2 = two["ip"], two["a2"]
    ops = await four_ops(ip, a2)
    assert ops == {"R": 4103, "U": 4103, "C": 4103, "D": 4103}
    for to in ("cse-in/app1", "cse-in/app1/cnt/i", "cse-in/app1/cnt/la", "cse-in/app1/cnt/ol"):
        r = await ip.call(RETRIEVE, to, a2)
        assert r.rsc == 4103, (to, r.pc)
        assert a2 in dbg(r)
    r = await ip.call(CREATE, "cse-in/app1", a2, ty=3, pc={"m2m:cnt": {"rn": "intruder"}})
    assert r.rsc == 4103
    r = await ip.call(DELETE, "cse-in/app1", a2)
    assert r.rsc == 4103
    r = await ip.call(DELETE, "cse-in/app1/cnt/la", a2)
    assert r.rsc == 4103
    # nothing changed
    r = await ip.call(RETRIEVE, "cse-in/app1/cnt", ADMIN, rcn=4)
    body = r.pc["m2m:cnt"]
    assert "lbl" not in body and body["st"] == 1 and body["cni"] == 1
    assert [c["rn"] for c in body["m2m:cin"]] == ["i"]
    assert (await ip.call(RETRIEVE, "cse-in/app1/intruder", ADMIN)).rsc == 4004


async def test_unregistered_originator_denied(two: dict[str, Any]) -> None:
    ip = two["ip"]
    assert await four_ops(ip, "Cnobody") == {"R": 4103, "U": 4103, "C": 4103, "D": 4103}


async def test_cse_base_retrieve(two: dict[str, Any]) -> None:
    ip, a1 = two["ip"], two["a1"]
    r = await ip.call(RETRIEVE, "cse-in", a1)
    assert r.rsc == 2000
    assert r.pc["m2m:cb"]["csi"] == "/id-in"
    r = await ip.call(RETRIEVE, "cse-in", f"/id-in/{a1}")
    assert r.rsc == 2000
    for fr in ("Cnobody", "Snobody"):
        r = await ip.call(RETRIEVE, "cse-in", fr)
        assert r.rsc == 4103, r.pc
        assert fr in dbg(r)
    # a registered AE may read the CSEBase but not add children to it directly
    r = await ip.call(CREATE, "cse-in", a1, ty=3, pc={"m2m:cnt": {"rn": "top"}})
    assert r.rsc == 4103
    # after deregistration the CSEBase is no longer readable
    assert (await ip.call(DELETE, "cse-in/app1", a1)).rsc == 2002
    assert (await ip.call(RETRIEVE, "cse-in", a1)).rsc == 4103


# -- ACPs ------------------------------------------------------------------------

async def test_acp_grants_retrieve_only(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 2}, {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    r = await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "cnt"
    # instances follow their container's acpi
    r = await ip.call(RETRIEVE, "cse-in/app1/cnt/la", a2)
    assert r.rsc == 2000, r.pc
    assert r.pc["m2m:cin"]["con"] == "v"
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt/i", a2)).rsc == 2000
    r = await ip.call(UPDATE, "cse-in/app1/cnt", a2, pc={"m2m:cnt": {"lbl": ["x"]}})
    assert r.rsc == 4103
    assert "UPDATE" in dbg(r)
    r = await ip.call(CREATE, "cse-in/app1/cnt", a2, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 4103
    assert (await ip.call(DELETE, "cse-in/app1/cnt/la", a2)).rsc == 4103
    assert (await ip.call(DELETE, "cse-in/app1/cnt", a2)).rsc == 4103
    # the AE itself is still protected by the default policy
    assert (await ip.call(RETRIEVE, "cse-in/app1", a2)).rsc == 4103
    # the owner keeps full access through its own rule
    assert await four_ops(ip, a1) == {"R": 2000, "U": 2004, "C": 2001, "D": 2002}


async def register_peer(ip: Any, csi: str) -> None:
    """CSE ``csi`` registers here (a remoteCSE), so its originators are known."""
    r = await ip.call(CREATE, "cse-in", csi, ty=16, pc={"m2m:csr": {"cb": f"{csi}/cb", "rr": True}})
    assert r.rsc == 2001, r.pc


async def test_acp_all(two: dict[str, Any]) -> None:
    """``all`` is every originator this CSE knows: its AEs and those of
    registered CSEs -- an unregistered one is refused before any ACP."""
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": ["all"], "acop": 2}, {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    await ip.register("stranger", fr="Cstranger")
    await ip.register("other", fr="Sother")
    await register_peer(ip, "/id-mn")
    for fr in (a2, "Cstranger", "Sother", "/id-mn", "/id-mn/Cae"):
        assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", fr)).rsc == 2000, fr
        r = await ip.call(UPDATE, "cse-in/app1/cnt", fr, pc={"m2m:cnt": {"lbl": ["x"]}})
        assert r.rsc == 4103, fr
    for fr in ("Cghost", "/id-zz", "/id-zz/Cae"):
        r = await ip.call(RETRIEVE, "cse-in/app1/cnt", fr)
        assert r.rsc == 4103 and "not" in dbg(r) and fr in dbg(r), (fr, r.pc)


async def test_acp_wildcard(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": ["C*"], "acop": 2},
                                         {"acor": ["Sprefix*suffix"], "acop": 2},
                                         {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    for stem in ("Canything", "Sother", "SprefixMIDsuffix", "Sprefix-suffix-not"):
        await ip.register(stem.lower(), fr=stem)
    for fr, expect in ((a2, 2000), ("Canything", 2000), ("Sother", 4103), ("xC", 4103),
                       ("SprefixMIDsuffix", 2000), ("Sprefix-suffix-not", 4103), ("/id-in/x", 4103)):
        r = await ip.call(RETRIEVE, "cse-in/app1/cnt", fr)
        assert r.rsc == expect, (fr, r.rsc)


@pytest.mark.parametrize("acop,expect", [
    (1, {"R": 4103, "U": 4103, "C": 2001, "D": 4103}),
    (2, {"R": 2000, "U": 4103, "C": 4103, "D": 4103}),
    (4, {"R": 4103, "U": 2004, "C": 4103, "D": 4103}),
    (8, {"R": 4103, "U": 4103, "C": 4103, "D": 2002}),
    (6, {"R": 2000, "U": 2004, "C": 4103, "D": 4103}),
    (9, {"R": 4103, "U": 4103, "C": 2001, "D": 2002}),
    (16, {"R": 4103, "U": 4103, "C": 4103, "D": 4103}),
    (32, {"R": 4103, "U": 4103, "C": 4103, "D": 4103}),
    (0, {"R": 4103, "U": 4103, "C": 4103, "D": 4103}),
    (63, {"R": 2000, "U": 2004, "C": 2001, "D": 2002}),
])
async def test_acop_bitmask(two: dict[str, Any], acop: int, expect: dict[str, int]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": acop}, {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert await four_ops(ip, a2) == expect


async def test_several_acps_any_rule_grants(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    p1 = await make_acp(ip, a1, "p1", [{"acor": [a1], "acop": 63}])
    p2 = await make_acp(ip, a1, "p2", [{"acor": [a2], "acop": 2}])
    r = await ip.call(UPDATE, "cse-in/app1/cnt", a1, pc={"m2m:cnt": {"acpi": [p1, p2]}})
    assert r.rsc == 2004
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000
    # by structured address too
    r = await ip.call(UPDATE, "cse-in/app1/cnt", a1,
                      pc={"m2m:cnt": {"acpi": [p1, "cse-in/app1/p2"]}})
    assert r.rsc == 2004
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000


async def test_acpi_replaces_default_policy(two: dict[str, Any]) -> None:
    """Once acpi is set, only the ACP rules count (ACME: the creator is not
    privileged any more)."""
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a1)).rsc == 4103
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", ADMIN)).rsc == 2000


async def test_acp_self_privileges_govern_the_acp(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 63}],
                         pvs_rules=[{"acor": [a1], "acop": 63}])
    # a2 has everything in pv, nothing in pvs: it cannot touch the ACP
    r = await ip.call(RETRIEVE, "cse-in/app1/acp", a2)
    assert r.rsc == 4103
    r = await ip.call(UPDATE, "cse-in/app1/acp", a2,
                      pc={"m2m:acp": {"pvs": {"acr": [{"acor": [a2], "acop": 63}]}}})
    assert r.rsc == 4103
    assert (await ip.call(DELETE, "cse-in/app1/acp", a2)).rsc == 4103
    # a1 can, and grants a2 UPDATE on the ACP
    r = await ip.call(RETRIEVE, acp, a1)
    assert r.rsc == 2000
    assert r.pc["m2m:acp"]["pv"] == {"acr": [{"acor": [a2], "acop": 63}]}
    r = await ip.call(UPDATE, "cse-in/app1/acp", a1, pc={"m2m:acp": {"pvs": {"acr": [
        {"acor": [a1], "acop": 63}, {"acor": [a2], "acop": 4}]}}})
    assert r.rsc == 2004, r.pc
    r = await ip.call(UPDATE, "cse-in/app1/acp", a2, pc={"m2m:acp": {"pv": {"acr": []}}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:acp"]["pv"] == {"acr": []}
    assert (await ip.call(RETRIEVE, "cse-in/app1/acp", a2)).rsc == 4103
    assert (await ip.call(DELETE, "cse-in/app1/acp", a2)).rsc == 4103
    assert (await ip.call(DELETE, "cse-in/app1/acp", a1)).rsc == 2002


async def test_acp_creator_without_self_privilege(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    await make_acp(ip, a1, "acp", [{"acor": [a1], "acop": 63}], pvs_rules=[{"acor": [a2], "acop": 2}])
    assert (await ip.call(RETRIEVE, "cse-in/app1/acp", a2)).rsc == 2000
    assert (await ip.call(RETRIEVE, "cse-in/app1/acp", a1)).rsc == 4103
    r = await ip.call(UPDATE, "cse-in/app1/acp", a1, pc={"m2m:acp": {"pv": {"acr": []}}})
    assert r.rsc == 4103


async def test_pv_without_rules_is_an_empty_set(two: dict[str, Any]) -> None:
    """TS-0004 m2m:setOfAcrs holds 0..n rules: ``pv: {}`` is valid and grants
    nothing, as ``{"acr": []}`` does."""
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    r = await ip.call(CREATE, "cse-in/app1", a1, ty=1, pc={"m2m:acp": {
        "rn": "acp", "pv": {}, "pvs": {"acr": [{"acor": [a1], "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    acp_ri = r.pc["m2m:acp"]["ri"]
    r = await ip.call(UPDATE, "cse-in/app1/cnt", a1, pc={"m2m:cnt": {"acpi": [acp_ri]}})
    assert r.rsc == 2004, r.pc
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    r = await ip.call(UPDATE, "cse-in/app1/acp", a1, pc={"m2m:acp": {"pv": {}}})
    assert r.rsc == 2004, r.pc


@pytest.mark.parametrize("pvs", [{"acr": []}, {}, None, {"acr": None}, [], "x"])
async def test_pvs_without_rule_rejected_on_create(two: dict[str, Any], pvs: Any) -> None:
    ip, a1 = two["ip"], two["a1"]
    body: dict[str, Any] = {"rn": "acp", "pv": {"acr": []}}
    if pvs is not None:
        body["pvs"] = pvs
    r = await ip.call(CREATE, "cse-in/app1", a1, ty=1, pc={"m2m:acp": body})
    assert r.rsc == 4000, (pvs, r.pc)
    assert "pvs" in dbg(r)
    assert (await ip.call(RETRIEVE, "cse-in/app1/acp", ADMIN)).rsc == 4004


async def test_pvs_without_rule_rejected_on_update(two: dict[str, Any]) -> None:
    ip, a1 = two["ip"], two["a1"]
    await make_acp(ip, a1, "acp", [])
    for pvs in ({"acr": []}, None):
        r = await ip.call(UPDATE, "cse-in/app1/acp", a1, pc={"m2m:acp": {"pvs": pvs}})
        assert r.rsc == 4000, (pvs, r.pc)
        assert "pvs" in dbg(r)
    r = await ip.call(RETRIEVE, "cse-in/app1/acp", a1)
    assert r.pc["m2m:acp"]["pvs"] == {"acr": [{"acor": [a1], "acop": 63}]}


@pytest.mark.parametrize("rule", [
    {"acor": "all", "acop": 2},
    {"acor": ["all"], "acop": 64},
    {"acor": ["all"], "acop": -1},
    {"acor": ["all"]},
    {"acop": 2},
    {"acor": ["all"], "acop": 2, "extra": 1},
    {"acor": ["all"], "acop": 2, "acco": [{"actw": ["* * 25 * * * *"]}]},
    {"acor": ["all"], "acop": 2, "acco": [{"actw": ["not a schedule"]}]},
    {"acor": ["all"], "acop": 2, "acco": [{"actw": ["* * * * * 9 *"]}]},
    {"acor": ["all"], "acop": 2, "acco": [{"zzz": 1}]},
    {"acor": [""], "acop": 2},
])
async def test_bad_rules_rejected(two: dict[str, Any], rule: dict[str, Any]) -> None:
    ip, a1 = two["ip"], two["a1"]
    r = await ip.call(CREATE, "cse-in/app1", a1, ty=1, pc={"m2m:acp": {
        "rn": "acp", "pv": {"acr": [rule]}, "pvs": {"acr": [{"acor": [a1], "acop": 63}]}}})
    assert r.rsc == 4000, (rule, r.pc)
    dbg(r)


async def test_actw_time_windows(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [
        {"acor": [a2], "acop": 2, "acco": [{"actw": ["* * 8-9 * * * *"]}]},
        {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000  # 08:00
    ip.clock.advance(2 * 3600 - 1)  # 09:59:59
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000
    ip.clock.advance(1)  # 10:00:00
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    ip.clock.advance(22 * 3600)  # next day 08:00
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000
    # the owner's rule has no window
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a1)).rsc == 2000


async def test_actw_weekday_window(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [
        {"acor": [a2], "acop": 2, "acco": [{"actw": ["* * * * * 1-5 *"]}]},  # Mon-Fri
        {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000  # Friday
    ip.clock.advance(86400)  # Saturday
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    ip.clock.advance(2 * 86400)  # Monday
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000


async def test_actw_outside_window(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [
        {"acor": [a2], "acop": 2, "acco": [{"actw": ["* * 20-21 * * * *", "* * * * * * 2030"]}]},
        {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    ip.clock.advance(12 * 3600)  # 20:00
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 2000


@pytest.mark.parametrize("acco", [
    [{"acip": {"ipv4": ["0.0.0.0/0"]}}],
    [{"acip": {"ipv6": ["::/0"]}}],
    [{"acip": {"ipv4": ["0.0.0.0/0"]}, "actw": ["* * * * * * *"]}],
    [{"aclr": {"accc": ["DE"]}}],
])
async def test_acip_and_aclr_never_match(two: dict[str, Any], acco: list[dict[str, Any]]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 63, "acco": acco},
                                         {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert await four_ops(ip, a2) == {"R": 4103, "U": 4103, "C": 4103, "D": 4103}


async def test_acpi_on_ae(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 2}, {"acor": [a1], "acop": 63}])
    r = await ip.call(UPDATE, "cse-in/app1", a1, pc={"m2m:ae": {"acpi": [acp]}})
    assert r.rsc == 2004, r.pc
    r = await ip.call(RETRIEVE, "cse-in/app1", a2)
    assert r.rsc == 2000
    assert r.pc["m2m:ae"]["aei"] == a1
    r = await ip.call(UPDATE, "cse-in/app1", a2, pc={"m2m:ae": {"lbl": ["x"]}})
    assert r.rsc == 4103


async def test_missing_acp_grants_nothing(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 2}, {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    assert (await ip.call(DELETE, "cse-in/app1/acp", a1)).rsc == 2002
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a1)).rsc == 4103
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", ADMIN)).rsc == 2000


# -- discovery is filtered by privilege --------------------------------------------

async def discover(ip: Any, fr: str, to: str = "cse-in", **query: str) -> list[str]:
    q = {"fu": ("1",), **{k: (v,) for k, v in query.items()}}
    r = await ip.call(RETRIEVE, to, fr, query=q)
    assert r.rsc == 2000, r.pc
    return list(r.pc["m2m:uril"])


async def test_discovery_filtered_by_privilege(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    seen = await discover(ip, a1)
    assert "cse-in/app1" in seen
    assert "cse-in/app1/cnt" in seen
    assert "cse-in/app1/cnt/i" in seen
    assert "cse-in/app2" in seen  # other AEs are discoverable by registered AEs
    assert "cse-in/app2/cnt2" not in seen
    seen2 = await discover(ip, a2)
    assert "cse-in/app2/cnt2" in seen2 and "cse-in/app1" in seen2
    assert "cse-in/app1/cnt" not in seen2 and "cse-in/app1/cnt/i" not in seen2
    assert await discover(ip, a1, ty="3") == ["cse-in/app1/cnt"]
    assert await discover(ip, a2, ty="3") == ["cse-in/app2/cnt2"]
    everything = await discover(ip, ADMIN)
    assert set(everything) >= {"cse-in/app1", "cse-in/app1/cnt", "cse-in/app1/cnt/i",
                               "cse-in/app2", "cse-in/app2/cnt2"}
    # discovery below someone else's AE finds nothing
    assert await discover(ip, a2, to="cse-in/app1") == []
    # an unregistered originator sees no AE
    stranger = (await ip.call(RETRIEVE, "cse-in", "Cnobody", query={"fu": ("1",)}))
    assert stranger.rsc in (2000, 4103)
    if stranger.rsc == 2000:
        assert stranger.pc["m2m:uril"] == []


async def test_discovery_granted_by_acp(two: dict[str, Any]) -> None:
    ip, a1, a2 = two["ip"], two["a1"], two["a2"]
    acp = await make_acp(ip, a1, "acp", [{"acor": [a2], "acop": 32}, {"acor": [a1], "acop": 63}])
    await protect(ip, a1, "cse-in/app1/cnt", acp)
    seen = await discover(ip, a2)
    assert "cse-in/app1/cnt" in seen
    assert "cse-in/app1/cnt/i" in seen  # instances follow their container
    # DISCOVER is not RETRIEVE
    assert (await ip.call(RETRIEVE, "cse-in/app1/cnt", a2)).rsc == 4103
    # an ACP granting RETRIEVE only does not make it discoverable
    r = await ip.call(UPDATE, "cse-in/app1/acp", a1, pc={"m2m:acp": {"pv": {"acr": [
        {"acor": [a2], "acop": 2}, {"acor": [a1], "acop": 63}]}}})
    assert r.rsc == 2004
    assert "cse-in/app1/cnt" not in await discover(ip, a2)

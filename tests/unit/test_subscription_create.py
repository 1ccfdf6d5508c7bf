"""Creating a <subscription>: checks, defaults and the verification request
(TS-0004 7.4.8.2.1; docs/onem2m.md "subscription"), against an in-process CSE and a real
HTTP receiver on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.notify_receiver import Receiver, closed_url

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


def dbg(resp: Any) -> str:
    assert isinstance(resp.pc, dict) and isinstance(resp.pc.get("m2m:dbg"), str), resp.pc
    return str(resp.pc["m2m:dbg"])


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` with a container ``data``."""
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.pc
    return {"ip": inproc, "aei": aei, "cnt": r.pc["m2m:cnt"]}


async def subscribe(ip: Any, fr: str, to: str, **attrs: Any) -> Any:
    return await ip.call(CREATE, to, fr, ty=23, pc={"m2m:sub": attrs})


async def gone(ip: Any, path: str) -> bool:
    r = await ip.call(RETRIEVE, path, ADMIN)
    return r.rsc == 4004


# -- verification --------------------------------------------------------------------

async def test_verification_request_then_created(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    sub = r.pc["m2m:sub"]
    # the verification request was answered before the CREATE returned
    vrq = await receiver.next(timeout=1)
    assert vrq.method == "POST"
    assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{sub['ri']}", "cr": aei}
    assert vrq.header("X-M2M-Origin") == "/id-in"
    assert vrq.header("X-M2M-RI")
    assert sub["nu"] == [receiver.url]
    assert sub["cr"] == aei
    assert sub["ty"] == 23 and sub["pi"] == app["cnt"]["ri"]
    # it is stored
    got = await ip.call(RETRIEVE, "cse-in/app/data/sub1", aei)
    assert got.rsc == 2000 and got.pc["m2m:sub"]["ri"] == sub["ri"]


async def test_rejected_verification_is_5204_and_nothing_stored(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver(reject_verification=True) as rcv:
        r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[rcv.url], enc={"net": [3]})
        assert r.rsc == 5204, r.pc
        assert dbg(r)
        vrq = await rcv.next(timeout=1)
        assert vrq.sgn["vrq"] is True
    assert await gone(ip, "cse-in/app/data/sub1")
    # no leftover child either
    r = await ip.call(RETRIEVE, "cse-in/app/data", ADMIN, rcn=4)
    assert r.rsc == 2000
    assert "m2m:sub" not in r.pc["m2m:cnt"], r.pc


async def test_receiver_answering_error_fails_verification(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver(rsc=5000) as rcv:
        r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[rcv.url])
        assert r.rsc == 5204, r.pc
    assert await gone(ip, "cse-in/app/data/sub1")


async def test_unreachable_nu_is_5204(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[closed_url()])
    assert r.rsc == 5204, r.pc
    assert dbg(r)
    assert await gone(ip, "cse-in/app/data/sub1")


async def test_one_bad_nu_among_good_ones_fails(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url, closed_url()])
    assert r.rsc == 5204, r.pc
    assert await gone(ip, "cse-in/app/data/sub1")


async def test_nu_equal_to_originator_verifies_its_poa(inproc: Any, receiver: Receiver) -> None:
    """The originator's own AE-ID is a target like any other: its poa is asked
    first (docs/security.md "Outbound requests"), then gets the event."""
    aei = await inproc.register("app", poa=[receiver.url])
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001
    r = await subscribe(inproc, aei, "cse-in/app/data", rn="sub1", nu=[aei], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    vrq = await receiver.next(timeout=1)
    assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{r.pc['m2m:sub']['ri']}", "cr": aei}
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=4, pc={"m2m:cin": {"rn": "c1", "con": "x"}})
    assert r.rsc == 2001
    first = await receiver.next()
    assert first.sgn["nev"]["net"] == 3, first.body


async def test_nu_equal_to_originator_whose_poa_refuses_is_5204(inproc: Any) -> None:
    async with Receiver(reject_verification=True) as rcv:
        aei = await inproc.register("app", poa=[rcv.url])
        r = await subscribe(inproc, aei, "cse-in/app", rn="sub1", nu=[aei])
        assert r.rsc == 5204, r.pc
        assert (await rcv.next(timeout=1)).is_verification
    assert await gone(inproc, "cse-in/app/sub1")


async def test_nu_equal_to_originator_without_poa_is_asked_once_it_has_one(inproc: Any) -> None:
    """An AE without a poa can subscribe itself (there is nothing to ask
    yet, and nothing is sent to it); the poa it sets later is asked before
    its first notification."""
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001
    r = await subscribe(inproc, aei, "cse-in/app/data", rn="sub1", nu=[aei], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    sur = f"/id-in/{r.pc['m2m:sub']['ri']}"
    async with Receiver() as rcv:
        r = await inproc.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"poa": [rcv.url]}})
        assert r.rsc == 2004, r.pc
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
        assert r.rsc == 2001
        assert (await rcv.next()).sgn == {"vrq": True, "sur": sur, "cr": aei}
        assert (await rcv.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] == "x"


async def test_nu_ae_id_resolves_to_poa(inproc: Any, receiver: Receiver) -> None:
    target = await inproc.register("listener", poa=[receiver.url])
    owner = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", owner, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001
    r = await subscribe(inproc, owner, "cse-in/app/data", rn="sub1", nu=[target], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    sub = r.pc["m2m:sub"]
    vrq = await receiver.next(timeout=1)
    assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{sub['ri']}", "cr": owner}
    r = await inproc.call(CREATE, "cse-in/app/data", owner, ty=4, pc={"m2m:cin": {"rn": "c1", "con": "hello"}})
    assert r.rsc == 2001
    ntf = await receiver.next()
    assert ntf.sgn["nev"]["rep"]["m2m:cin"]["con"] == "hello"
    assert ntf.sgn["sur"] == f"/id-in/{sub['ri']}"


async def test_nu_ae_id_without_poa_is_5204(inproc: Any) -> None:
    target = await inproc.register("listener")
    owner = await inproc.register("app")
    r = await subscribe(inproc, owner, "cse-in/app", rn="sub1", nu=[target])
    assert r.rsc == 5204, r.pc
    assert await gone(inproc, "cse-in/app/sub1")


# -- where and who -------------------------------------------------------------------

async def test_subscription_under_content_instance_is_5203(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=4, pc={"m2m:cin": {"rn": "c1", "con": "x"}})
    assert r.rsc == 2001
    r = await subscribe(ip, aei, "cse-in/app/data/c1", rn="sub1", nu=[receiver.url])
    assert r.rsc == 5203, r.pc
    assert dbg(r)
    assert receiver.pending() == []  # refused before any verification


async def _acp_container(ip: Any, owner: str, other: str, other_ops: int) -> None:
    acp = {"rn": "acp1",
           "pv": {"acr": [{"acor": [owner], "acop": 63}, {"acor": [other], "acop": other_ops}]},
           "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}
    r = await ip.call(CREATE, "cse-in/app", owner, ty=1, pc={"m2m:acp": acp})
    assert r.rsc == 2001, r.pc
    r = await ip.call(CREATE, "cse-in/app", owner, ty=3,
                      pc={"m2m:cnt": {"rn": "shared", "acpi": [r.pc["m2m:acp"]["ri"]]}})
    assert r.rsc == 2001, r.pc


async def test_no_retrieve_privilege_on_parent_is_4103(inproc: Any, receiver: Receiver) -> None:
    owner = await inproc.register("app")
    other = await inproc.register("other")
    await _acp_container(inproc, owner, other, other_ops=1)  # CREATE only
    r = await subscribe(inproc, other, "cse-in/app/shared", rn="sub1", nu=[receiver.url])
    assert r.rsc == 4103, r.pc
    assert dbg(r)
    assert await gone(inproc, "cse-in/app/shared/sub1")
    assert receiver.pending() == []


async def test_create_and_retrieve_privilege_is_enough(inproc: Any, receiver: Receiver) -> None:
    owner = await inproc.register("app")
    other = await inproc.register("other")
    await _acp_container(inproc, owner, other, other_ops=1 | 2)
    r = await subscribe(inproc, other, "cse-in/app/shared", rn="sub1", nu=[receiver.url])
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["cr"] == other


async def test_no_privilege_at_all_is_4103(inproc: Any, receiver: Receiver) -> None:
    await inproc.register("app")
    other = await inproc.register("other")
    r = await subscribe(inproc, other, "cse-in/app", rn="sub1", nu=[receiver.url])
    assert r.rsc == 4103, r.pc
    assert receiver.pending() == []


# -- attributes -------------------------------------------------------------------

async def test_defaults_net_1_and_nct_1(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url])
    assert r.rsc == 2001, r.pc
    sub = r.pc["m2m:sub"]
    assert sub["enc"]["net"] == [1]
    assert sub["nct"] == 1
    got = await ip.call(RETRIEVE, "cse-in/app/data/sub1", aei)
    assert got.pc["m2m:sub"]["enc"]["net"] == [1] and got.pc["m2m:sub"]["nct"] == 1


async def test_enc_without_net_defaults_net(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], enc={"atr": ["lbl"]})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["enc"] == {"net": [1], "atr": ["lbl"]}


@pytest.mark.parametrize("net,nct", [([2], 2), ([3], 2), ([4], 2), ([1, 3], 2)])
async def test_invalid_nct_for_net_is_4000(app: dict[str, Any], receiver: Receiver,
                                           net: list[int], nct: int) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], enc={"net": net}, nct=nct)
    assert r.rsc == 4000, r.pc
    assert "nct" in dbg(r) or "notificationContentType" in dbg(r)
    assert await gone(ip, "cse-in/app/data/sub1")
    assert receiver.pending() == []  # checked before verification


@pytest.mark.parametrize("net,nct", [([1], 2), ([1], 3), ([2, 3, 4], 3), ([1, 2, 3, 4], 1)])
async def test_valid_nct_for_net(app: dict[str, Any], receiver: Receiver, net: list[int], nct: int) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], enc={"net": net}, nct=nct)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["nct"] == nct and r.pc["m2m:sub"]["enc"]["net"] == net


async def test_update_to_invalid_nct_is_4000(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], enc={"net": [3]})
    assert r.rsc == 2001
    r = await ip.call(UPDATE, "cse-in/app/data/sub1", aei, pc={"m2m:sub": {"nct": 2}})
    assert r.rsc == 4000, r.pc
    got = await ip.call(RETRIEVE, "cse-in/app/data/sub1", aei)
    assert got.pc["m2m:sub"]["nct"] == 1


async def test_chty_not_a_child_type_is_4000(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    # a CSEBase (5) or an AE (2) can never be a child of a container
    for chty in ([5], [4, 2]):
        r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url],
                            enc={"net": [3], "chty": chty})
        assert r.rsc == 4000, (chty, r.pc)
        assert "chty" in dbg(r)
    assert await gone(ip, "cse-in/app/data/sub1")


async def test_chty_valid_child_types(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url],
                        enc={"net": [3, 4], "chty": [3, 4]})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["enc"]["chty"] == [3, 4]


async def test_unknown_enc_member_is_4000(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url],
                        enc={"net": [3], "bogus": 1})
    assert r.rsc == 4000, r.pc
    assert "bogus" in dbg(r) or "enc" in dbg(r)
    assert await gone(ip, "cse-in/app/data/sub1")


@pytest.mark.parametrize("attrs", [
    {},                                   # nu missing
    {"nu": []},                           # empty nu
    {"nu": ["x"], "enc": {"net": [99]}},  # unknown net
    {"nu": ["x"], "enc": {"net": []}},    # empty net
    {"nu": ["x"], "nct": 9},              # unknown nct
    {"nu": ["x"], "exc": 0},              # exc must be >= 1
    {"nu": ["x"], "bn": {"num": 0}},      # bn num must be >= 1
])
async def test_malformed_subscription_is_4000(app: dict[str, Any], attrs: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", **attrs)
    assert r.rsc == 4000, (attrs, r.pc)
    assert dbg(r)


async def test_su_is_not_updatable(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url])
    assert r.rsc == 2001
    r = await ip.call(UPDATE, "cse-in/app/data/sub1", aei, pc={"m2m:sub": {"su": receiver.url}})
    assert r.rsc == 4000, r.pc


async def test_subscription_on_cse_base_and_ae(inproc: Any, receiver: Receiver) -> None:
    aei = await inproc.register("app")
    r = await subscribe(inproc, aei, "cse-in/app", rn="sub1", nu=[receiver.url], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    r = await subscribe(inproc, ADMIN, "cse-in", rn="sub0", nu=[receiver.url], enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["pi"] == "id-in"


async def test_nu_ct_hint_is_stripped_before_sending(app: dict[str, Any], receiver: Receiver) -> None:
    """``?ct=json`` in a nu picks the serialization; the CSE strips it (docs/onem2m.md "subscription")."""
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url + "?ct=json"],
                        enc={"net": [3]})
    assert r.rsc == 2001, r.pc
    vrq = await receiver.next(timeout=1)
    assert vrq.is_verification and vrq.path == "/notify"
    assert "ct" not in vrq.query, vrq.query
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001
    item = await receiver.next()
    assert item.sgn["nev"]["net"] == 3
    assert "ct" not in item.query, item.query
    assert (item.header("Content-Type") or "").startswith("application/json")


# -- batchNotify defaults (TS-0001 9.6.8: num and dur are each optional) ------------------

@pytest.mark.parametrize(("bn", "stored"), [
    ({"dur": "PT2S"}, {"num": 100, "dur": "PT2S"}),
    ({"num": 5}, {"num": 5, "dur": "PT60S"}),
    ({}, {"num": 100, "dur": "PT60S"}),
])
async def test_batch_notify_parts_are_optional_and_defaults_are_stored(
        app: dict[str, Any], receiver: Receiver, bn: dict[str, Any], stored: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await subscribe(ip, aei, "cse-in/app/data", rn="sub1", nu=[receiver.url], bn=bn)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["bn"] == stored
    got = await ip.call(RETRIEVE, "cse-in/app/data/sub1", aei)
    assert got.pc["m2m:sub"]["bn"] == stored

"""Events become notifications (docs/onem2m.md "Subscriptions and notifications"):
each ``net``, the ``rep`` per ``nct``, the ``atr``/``chty`` filters,
``exc`` and the deletion notification to ``su``, expiry. In-process CSE,
real HTTP receiver on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from tests.notify_receiver import Received, Receiver

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` with a container ``data``."""
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "lbl": ["a"]}})
    assert r.rsc == 2001, r.pc
    return {"ip": inproc, "aei": aei, "cnt": r.pc["m2m:cnt"]}


async def subscribe(ip: Any, fr: str, to: str, rcv: Receiver, **attrs: Any) -> dict[str, Any]:
    """Create a subscription notifying ``rcv`` and consume its verification request."""
    attrs.setdefault("nu", [rcv.url])
    r = await ip.call(CREATE, to, fr, ty=23, pc={"m2m:sub": attrs})
    assert r.rsc == 2001, r.pc
    vrq = await rcv.next(timeout=1)
    assert vrq.is_verification, vrq.body
    return dict(r.pc["m2m:sub"])


async def add_cin(ip: Any, fr: str, con: Any, rn: str | None = None, to: str = "cse-in/app/data") -> dict[str, Any]:
    body: dict[str, Any] = {"con": con}
    if rn is not None:
        body["rn"] = rn
    r = await ip.call(CREATE, to, fr, ty=4, pc={"m2m:cin": body})
    assert r.rsc == 2001, r.pc
    return dict(r.pc["m2m:cin"])


async def quiet_after(ip: Any, rcv: Receiver) -> None:
    """Everything the CSE queued has been sent: nothing more is on its way."""
    await ip.cse.notifier.drained(5)
    left = rcv.pending()
    assert left == [], [x.body for x in left]


def nev(item: Received, sub: dict[str, Any], net: int) -> dict[str, Any]:
    """Check the envelope and return ``rep``."""
    sgn = item.sgn
    assert sgn["sur"] == f"/id-in/{sub['ri']}", sgn
    assert sgn["nev"]["net"] == net, sgn
    assert item.header("X-M2M-Origin") == "/id-in"
    return dict(sgn["nev"]["rep"])


# -- net 1: update --------------------------------------------------------------------

async def test_update_nct1_full_resource(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver)
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"], "mni": 7}})
    assert r.rsc == 2004, r.pc
    item = await receiver.next()
    rep = nev(item, sub, 1)
    cnt = rep["m2m:cnt"]
    assert cnt["ri"] == app["cnt"]["ri"] and cnt["rn"] == "data" and cnt["ty"] == 3
    assert cnt["lbl"] == ["b"] and cnt["mni"] == 7
    assert cnt["pi"] == app["cnt"]["pi"] and "ct" in cnt and "cni" in cnt
    assert cnt == r.pc["m2m:cnt"]  # the same representation the updater got
    assert item.sgn["cr"] == aei
    assert not any(k.startswith("_") for k in cnt), cnt
    await quiet_after(ip, receiver)


async def test_update_nct2_modified_attributes_only(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, nct=2)
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"]}})
    assert r.rsc == 2004
    rep = nev(await receiver.next(), sub, 1)
    cnt = rep["m2m:cnt"]
    assert cnt["lbl"] == ["b"]
    # only what changed: never the unchanged ones
    assert set(cnt) <= {"lbl", "lt", "st", "et"}, cnt
    await quiet_after(ip, receiver)


async def test_update_nct3_resource_id(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, nct=3)
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"]}})
    assert r.rsc == 2004
    rep = nev(await receiver.next(), sub, 1)
    ri = app["cnt"]["ri"]
    assert list(rep) == ["m2m:uri"], rep
    assert rep["m2m:uri"] in ("cse-in/app/data", ri, f"/id-in/{ri}"), rep


async def test_update_of_subscription_itself_not_notified_to_parent_net1(
        app: dict[str, Any], receiver: Receiver) -> None:
    """A child's update is not an update of the subscribed resource."""
    ip, aei = app["ip"], app["aei"]
    await add_cin(ip, aei, "x", rn="c1")
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver)
    r = await ip.call(UPDATE, f"cse-in/app/data/{sub['rn']}", aei, pc={"m2m:sub": {"lbl": ["z"]}})
    assert r.rsc == 2004, r.pc
    await quiet_after(ip, receiver)


# -- net 2: delete of the subscribed resource ------------------------------------------

async def test_delete_of_subscribed_resource(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [2]})
    r = await ip.call(DELETE, "cse-in/app/data", aei)
    assert r.rsc == 2002, r.pc
    rep = nev(await receiver.next(), sub, 2)
    assert rep["m2m:cnt"]["ri"] == app["cnt"]["ri"]
    # the subscription went with its parent
    r = await ip.call(RETRIEVE, sub["ri"], ADMIN)
    assert r.rsc == 4004, r.pc
    await quiet_after(ip, receiver)


async def test_delete_of_subscribed_resource_nct3(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [2]}, nct=3)
    r = await ip.call(DELETE, "cse-in/app/data", aei)
    assert r.rsc == 2002
    rep = nev(await receiver.next(), sub, 2)
    ri = app["cnt"]["ri"]
    assert rep["m2m:uri"] in ("cse-in/app/data", ri, f"/id-in/{ri}"), rep


async def test_delete_of_ancestor_notifies_net2_subscriber(app: dict[str, Any], receiver: Receiver) -> None:
    """Deleting the AE removes the container too: its net-2 subscriber hears of it."""
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [2]})
    r = await ip.call(DELETE, "cse-in/app", aei)
    assert r.rsc == 2002, r.pc
    rep = nev(await receiver.next(), sub, 2)
    assert rep["m2m:cnt"]["ri"] == app["cnt"]["ri"]


# -- net 3 / 4: children ------------------------------------------------------------------

async def test_create_child(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]})
    cin = await add_cin(ip, aei, {"t": 21.5}, rn="c1")
    rep = nev(await receiver.next(), sub, 3)
    assert rep == {"m2m:cin": cin}
    assert rep["m2m:cin"]["con"] == {"t": 21.5} and rep["m2m:cin"]["pi"] == app["cnt"]["ri"]
    await quiet_after(ip, receiver)


async def test_create_child_nct3(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]}, nct=3)
    cin = await add_cin(ip, aei, "x", rn="c1")
    rep = nev(await receiver.next(), sub, 3)
    assert rep["m2m:uri"] in ("cse-in/app/data/c1", cin["ri"], f"/id-in/{cin['ri']}"), rep


async def test_delete_child(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    cin = await add_cin(ip, aei, "x", rn="c1")
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [4]})
    r = await ip.call(DELETE, "cse-in/app/data/c1", aei)
    assert r.rsc == 2002
    rep = nev(await receiver.next(), sub, 4)
    assert rep["m2m:cin"]["ri"] == cin["ri"] and rep["m2m:cin"]["con"] == "x"
    await quiet_after(ip, receiver)


async def test_delete_child_via_latest(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await add_cin(ip, aei, "old", rn="c1")
    newest = await add_cin(ip, aei, "new", rn="c2")
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [4]})
    r = await ip.call(DELETE, "cse-in/app/data/la", aei)
    assert r.rsc == 2002, r.pc
    rep = nev(await receiver.next(), sub, 4)
    assert rep["m2m:cin"]["ri"] == newest["ri"]


async def test_only_subscribed_event_types(app: dict[str, Any], receiver: Receiver) -> None:
    """net [4]: creating a child and updating the resource send nothing."""
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [4]})
    await add_cin(ip, aei, "x", rn="c1")
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"]}})
    assert r.rsc == 2004
    r = await ip.call(DELETE, "cse-in/app/data/c1", aei)
    assert r.rsc == 2002
    rep = nev(await receiver.next(), sub, 4)  # the first and only one is the delete
    assert rep["m2m:cin"]["rn"] == "c1"
    await quiet_after(ip, receiver)


async def test_all_nets_in_order(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [1, 2, 3, 4]})
    await add_cin(ip, aei, "x", rn="c1")
    assert (await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"]}})).rsc == 2004
    assert (await ip.call(DELETE, "cse-in/app/data/c1", aei)).rsc == 2002
    assert (await ip.call(DELETE, "cse-in/app/data", aei)).rsc == 2002
    got = [(await receiver.next()).sgn["nev"] for _ in range(4)]
    assert [n["net"] for n in got] == [3, 1, 4, 2]
    assert got[0]["rep"]["m2m:cin"]["rn"] == "c1"
    assert got[1]["rep"]["m2m:cnt"]["lbl"] == ["b"]
    assert got[2]["rep"]["m2m:cin"]["rn"] == "c1"
    assert got[3]["rep"]["m2m:cnt"]["rn"] == "data"
    await quiet_after(ip, receiver)
    assert (await ip.call(RETRIEVE, sub["ri"], ADMIN)).rsc == 4004


# -- filters -----------------------------------------------------------------------

async def test_atr_filter(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [1], "atr": ["lbl"]})
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"mni": 5}})  # not listed
    assert r.rsc == 2004
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["hit"]}})  # listed
    assert r.rsc == 2004
    rep = nev(await receiver.next(), sub, 1)
    assert rep["m2m:cnt"]["lbl"] == ["hit"] and rep["m2m:cnt"]["mni"] == 5
    await quiet_after(ip, receiver)


async def test_atr_filter_mixed_update_matches(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [1], "atr": ["lbl", "mbs"]})
    r = await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"mni": 5, "mbs": 100}})
    assert r.rsc == 2004
    rep = nev(await receiver.next(), sub, 1)
    assert rep["m2m:cnt"]["mbs"] == 100


async def test_chty_filter(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3, 4], "chty": [4]})
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=3, pc={"m2m:cnt": {"rn": "inner"}})  # not listed
    assert r.rsc == 2001, r.pc
    cin = await add_cin(ip, aei, "x", rn="c1")  # listed
    assert (await ip.call(DELETE, "cse-in/app/data/inner", aei)).rsc == 2002  # not listed
    assert (await ip.call(DELETE, "cse-in/app/data/c1", aei)).rsc == 2002  # listed
    first = nev(await receiver.next(), sub, 3)
    assert first["m2m:cin"]["ri"] == cin["ri"]
    second = nev(await receiver.next(), sub, 4)
    assert second["m2m:cin"]["ri"] == cin["ri"]
    await quiet_after(ip, receiver)


async def test_subscription_not_notified_of_its_own_creation(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]})
    cin = await add_cin(ip, aei, "x", rn="c1")
    rep = nev(await receiver.next(), sub, 3)  # the first event is the cin, not the sub itself
    assert rep["m2m:cin"]["ri"] == cin["ri"]
    await quiet_after(ip, receiver)


async def test_other_subscription_creation_is_a_child_event(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]})
    async with Receiver() as other:
        second = await subscribe(ip, aei, "cse-in/app/data", other, enc={"net": [3]})
        rep = nev(await receiver.next(), sub, 3)
        assert rep["m2m:sub"]["ri"] == second["ri"]
        await quiet_after(ip, other)  # the second one heard nothing about itself


async def test_eviction_by_mni_sends_no_delete_child(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "small", "mni": 1}})
    assert r.rsc == 2001
    sub = await subscribe(ip, aei, "cse-in/app/small", receiver, enc={"net": [3, 4]})
    c1 = await add_cin(ip, aei, "1", rn="c1", to="cse-in/app/small")
    c2 = await add_cin(ip, aei, "2", rn="c2", to="cse-in/app/small")  # evicts c1
    assert (await ip.call(RETRIEVE, "cse-in/app/small/c1", ADMIN)).rsc == 4004
    assert nev(await receiver.next(), sub, 3)["m2m:cin"]["ri"] == c1["ri"]
    assert nev(await receiver.next(), sub, 3)["m2m:cin"]["ri"] == c2["ri"]
    # lowering mni evicts too, silently
    r = await ip.call(UPDATE, "cse-in/app/small", aei, pc={"m2m:cnt": {"mni": 0}})
    assert r.rsc == 2004, r.pc
    assert (await ip.call(RETRIEVE, "cse-in/app/small/c2", ADMIN)).rsc == 4004
    await quiet_after(ip, receiver)


async def test_multiple_nu_each_notified(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as second:
        r = await ip.call(CREATE, "cse-in/app/data", aei, ty=23,
                          pc={"m2m:sub": {"nu": [receiver.url, second.url], "enc": {"net": [3]}}})
        assert r.rsc == 2001, r.pc
        sub = r.pc["m2m:sub"]
        assert (await receiver.next()).is_verification
        assert (await second.next()).is_verification
        cin = await add_cin(ip, aei, "x")
        assert nev(await receiver.next(), sub, 3)["m2m:cin"]["ri"] == cin["ri"]
        assert nev(await second.next(), sub, 3)["m2m:cin"]["ri"] == cin["ri"]


# -- exc, explicit delete, su ----------------------------------------------------------

async def until_gone(ip: Any, ri: str, timeout: float = 5.0) -> None:
    """``ri`` is gone once the notifier (which counts ``exc`` down) has drained."""
    await ip.cse.notifier.drained(timeout)
    assert (await ip.call(RETRIEVE, ri, ADMIN)).rsc == 4004, f"{ri} still exists"


async def test_exc_removes_subscription_and_notifies_su(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]}, exc=2, su=receiver.url)
    c1 = await add_cin(ip, aei, "1")
    assert nev(await receiver.next(), sub, 3)["m2m:cin"]["ri"] == c1["ri"]
    await ip.cse.notifier.drained(5)
    r = await ip.call(RETRIEVE, sub["ri"], aei)
    assert r.rsc == 2000 and r.pc["m2m:sub"]["exc"] == 1, r.pc
    c2 = await add_cin(ip, aei, "2")
    assert nev(await receiver.next(), sub, 3)["m2m:cin"]["ri"] == c2["ri"]
    sud = (await receiver.next()).sgn
    assert sud["sud"] is True and sud["sur"] == f"/id-in/{sub['ri']}", sud
    assert "nev" not in sud
    await until_gone(ip, sub["ri"])
    await add_cin(ip, aei, "3")  # the subscription is gone: no notification
    await quiet_after(ip, receiver)


async def test_exc_1(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, exc=1)
    assert (await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["b"]}})).rsc == 2004
    assert nev(await receiver.next(), sub, 1)["m2m:cnt"]["lbl"] == ["b"]
    await until_gone(ip, sub["ri"])
    assert (await ip.call(UPDATE, "cse-in/app/data", aei, pc={"m2m:cnt": {"lbl": ["c"]}})).rsc == 2004
    await quiet_after(ip, receiver)


async def test_exc_counts_only_successful_sends(app: dict[str, Any]) -> None:
    """``exc`` counts delivered notifications (docs/onem2m.md "subscription"): a notification
    the receiver refused does not use up the subscription."""
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as rcv:
        sub = await subscribe(ip, aei, "cse-in/app/data", rcv, enc={"net": [3]}, exc=1)
        rcv.rsc = 5000  # verified; now every notification fails
        await add_cin(ip, aei, "refused")
        assert (await rcv.next()).sgn["nev"]["net"] == 3
        await ip.cse.notifier.drained(15)
        r = await ip.call(RETRIEVE, sub["ri"], aei)
        assert r.rsc == 2000, r.pc
        assert r.pc["m2m:sub"]["exc"] == 1


async def test_deleted_subscription_discards_pending_notifications(app: dict[str, Any]) -> None:
    """When a subscription goes away, its pending notifications are discarded
    (docs/onem2m.md "Subscriptions and notifications"): a slow receiver must not keep getting notifications of a
    subscription deleted long ago."""
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as rcv:
        sub = await subscribe(ip, aei, "cse-in/app/data", rcv, enc={"net": [3]})
        rcv.gate()
        await add_cin(ip, aei, "in-flight")
        assert (await rcv.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] == "in-flight"
        for i in range(3):
            await add_cin(ip, aei, f"pending-{i}")
        assert (await ip.call(DELETE, sub["ri"], aei)).rsc == 2002
        rcv.release()
        await ip.cse.notifier.drained(5)
        late = [x.sgn["nev"]["rep"]["m2m:cin"]["con"] for x in rcv.pending()]
        assert late == [], late


async def test_explicit_delete_notifies_su(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as su:
        sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]}, su=su.url)
        assert (await su.next(timeout=1)).is_verification  # su is asked at creation too
        r = await ip.call(DELETE, f"cse-in/app/data/{sub['rn']}", aei)
        assert r.rsc == 2002, r.pc
        sud = (await su.next()).sgn
        assert sud["sud"] is True and sud["sur"] == f"/id-in/{sub['ri']}", sud
        await quiet_after(ip, su)
    await quiet_after(ip, receiver)  # nu hears nothing of it


async def test_delete_without_su_sends_nothing(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]})
    assert (await ip.call(DELETE, f"cse-in/app/data/{sub['rn']}", aei)).rsc == 2002
    await add_cin(ip, aei, "x")
    await quiet_after(ip, receiver)


async def test_parent_delete_notifies_su(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as su:
        sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]}, su=su.url)
        assert (await su.next(timeout=1)).is_verification  # su is asked at creation too
        assert (await ip.call(DELETE, "cse-in/app/data", aei)).rsc == 2002
        sud = (await su.next()).sgn
        assert sud["sud"] is True and sud["sur"] == f"/id-in/{sub['ri']}"
    await quiet_after(ip, receiver)  # net [3] only: no net 2


async def test_expiry_of_subscribed_container(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    clock = ip.clock
    et = format_ts(clock.now() + 60)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "tmp", "et": et}})
    assert r.rsc == 2001, r.pc
    cnt = r.pc["m2m:cnt"]
    async with Receiver() as su:
        sub = await subscribe(ip, aei, "cse-in/app/tmp", receiver, enc={"net": [2]}, su=su.url)
        assert (await su.next(timeout=1)).is_verification  # su is asked at creation too
        assert sub["et"] <= et
        clock.advance(30)
        await ip.cse._expire(clock.now())
        assert (await ip.call(RETRIEVE, "cse-in/app/tmp", ADMIN)).rsc == 2000
        clock.advance(31)
        await ip.cse._expire(clock.now())
        assert (await ip.call(RETRIEVE, "cse-in/app/tmp", ADMIN)).rsc == 4004
        assert (await ip.call(RETRIEVE, sub["ri"], ADMIN)).rsc == 4004
        rep = nev(await receiver.next(), sub, 2)
        assert rep["m2m:cnt"]["ri"] == cnt["ri"]
        sud = (await su.next()).sgn
        assert sud["sud"] is True and sud["sur"] == f"/id-in/{sub['ri']}"
        await quiet_after(ip, su)
    await quiet_after(ip, receiver)


async def test_expiry_of_subscription_itself_notifies_su(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    clock = ip.clock
    async with Receiver() as su:
        sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [3]}, su=su.url,
                              et=format_ts(clock.now() + 10))
        assert (await su.next(timeout=1)).is_verification  # su is asked at creation too
        clock.advance(11)
        await ip.cse._expire(clock.now())
        assert (await ip.call(RETRIEVE, sub["ri"], ADMIN)).rsc == 4004
        sud = (await su.next()).sgn
        assert sud["sud"] is True and sud["sur"] == f"/id-in/{sub['ri']}"
        assert (await ip.call(RETRIEVE, "cse-in/app/data", ADMIN)).rsc == 2000
        await add_cin(ip, aei, "x")
    await quiet_after(ip, receiver)


async def test_expiry_of_child_instance_is_net4(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    clock = ip.clock
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, enc={"net": [4]})
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=4,
                      pc={"m2m:cin": {"rn": "c1", "con": "x", "et": format_ts(clock.now() + 5)}})
    assert r.rsc == 2001
    clock.advance(6)
    await ip.cse._expire(clock.now())
    rep = nev(await receiver.next(), sub, 4)
    assert rep["m2m:cin"]["rn"] == "c1"

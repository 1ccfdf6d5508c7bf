"""Subscription features beyond net 1-4 (docs/onem2m.md "Subscriptions and
notifications"): net 5 (retrieve of a container with no child), net 6
(refused), net 7 (blockingUpdate: accepted, refused, timed out), the
operationMonitor ``enc.om`` and the statistics ``nse``/``nsi``.
In-process CSE, real HTTP receiver on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE
ADMIN = "CAdmin"
DATA = "cse-in/app/data"


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` with an empty container ``data``."""
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "lbl": ["a"]}})
    assert r.rsc == 2001, r.pc
    return {"ip": inproc, "aei": aei, "cnt": r.pc["m2m:cnt"]}


async def subscribe(ip: Any, fr: str, rcv: Receiver, to: str = DATA, **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("nu", [rcv.url])
    r = await ip.call(CREATE, to, fr, ty=23, pc={"m2m:sub": attrs})
    assert r.rsc == 2001, r.pc
    assert (await rcv.next(timeout=2)).is_verification
    return dict(r.pc["m2m:sub"])


def dbg(resp: Any) -> str:
    assert isinstance(resp.pc, dict) and isinstance(resp.pc.get("m2m:dbg"), str), resp.pc
    return str(resp.pc["m2m:dbg"])


async def quiet(ip: Any, rcv: Receiver) -> None:
    await ip.cse.notifier.drained(5)
    assert rcv.pending() == [], [x.body for x in rcv.pending()]


# -- net 5 ------------------------------------------------------------------------------

async def test_net5_retrieve_of_empty_container_notifies_and_net6_is_refused(app: dict[str, Any],
                                                                            receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, receiver, enc={"net": [5]})
    r = await ip.call(RETRIEVE, f"{DATA}/la", aei)
    assert r.rsc == 4004 and "no contentInstance" in dbg(r)
    sgn = (await receiver.next()).sgn
    assert sgn["nev"]["net"] == 5 and sgn["sur"] == f"/id-in/{sub['ri']}"
    assert sgn["nev"]["rep"]["m2m:cnt"]["ri"] == app["cnt"]["ri"]
    # with an instance there is nothing to report; an UPDATE is not net 5 either
    assert (await ip.call(CREATE, DATA, aei, ty=4, pc={"m2m:cin": {"con": "x"}})).rsc == 2001
    assert (await ip.call(RETRIEVE, f"{DATA}/ol", aei)).rsc == 2000
    assert (await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["b"]}})).rsc == 2004
    await quiet(ip, receiver)
    # an originator who may not retrieve the container: the same 4004, nobody hears of it
    assert (await ip.call(Operation.DELETE, f"{DATA}/ol", aei)).rsc == 2002
    other = await ip.register("other", fr="Cother")
    r = await ip.call(RETRIEVE, f"{DATA}/la", other)
    assert r.rsc == 4004
    await quiet(ip, receiver)
    # net 5 only under a container; net 6 refused; nct 2 does not fit net 5
    r = await ip.call(CREATE, "cse-in/app", aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [5]}}})
    assert r.rsc == 4000 and "net 5" in dbg(r)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [6]}}})
    assert r.rsc == 5001 and "net 6" in dbg(r) and "trigger" in dbg(r)
    r = await ip.call(CREATE, DATA, aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [5]}, "nct": 2}})
    assert r.rsc == 4000 and "nct" in dbg(r)
    await quiet(ip, receiver)


# -- net 7 ------------------------------------------------------------------------------

async def test_net7_accepted_update_is_performed_refused_is_4127(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, receiver, enc={"net": [7]})
    assert sub["nct"] == 2  # the default for a blockingUpdate subscription
    r = await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["b"]}})
    assert r.rsc == 2004, r.pc
    sgn = (await receiver.next()).sgn
    assert sgn["nev"] == {"net": 7, "rep": {"m2m:cnt": {"lbl": ["b"]}}} and sgn["sur"] == f"/id-in/{sub['ri']}"
    assert (await ip.call(RETRIEVE, DATA, aei)).pc["m2m:cnt"]["lbl"] == ["b"]
    await quiet(ip, receiver)  # sent once, before the UPDATE: no net 1 notification after it
    before = (await ip.call(RETRIEVE, DATA, aei)).pc["m2m:cnt"]
    receiver.rsc = 4103  # the subscriber now says no: 4127, nothing changes
    r = await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["c"]}})
    assert r.rsc == 4127 and "refused" in dbg(r)
    assert (await receiver.next()).sgn["nev"]["rep"] == {"m2m:cnt": {"lbl": ["c"]}}
    assert (await ip.call(RETRIEVE, DATA, aei)).pc["m2m:cnt"] == before


async def test_net7_unanswered_update_times_out_at_its_rqet_and_rules(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, receiver, enc={"net": [7]})
    receiver.gate()  # the subscriber never answers
    r = await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["b"]}}, rqet="300")  # 0.3 s on the CSE's clock
    assert r.rsc == 4008 and "did not answer" in dbg(r)
    receiver.release()
    assert (await ip.call(RETRIEVE, DATA, aei)).pc["m2m:cnt"]["lbl"] == ["a"]
    await receiver.next()
    # the rules: one target, no ln/bn, one net 7 subscription per resource
    r = await ip.call(CREATE, DATA, aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url, aei], "enc": {"net": [7]}}})
    assert r.rsc == 4000 and "exactly one" in dbg(r)
    r = await ip.call(CREATE, DATA, aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [7]}, "ln": True}})
    assert r.rsc == 4000 and "latestNotify" in dbg(r)
    r = await ip.call(CREATE, DATA, aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [7]}}})
    assert r.rsc == 4124 and "only one" in dbg(r)
    # a subscription without net 7 may become one only while there is none
    plain = await subscribe(ip, aei, receiver, enc={"net": [1]})
    r = await ip.call(UPDATE, f"{DATA}/{plain['rn']}", aei, pc={"m2m:sub": {"enc": {"net": [7]}}})
    assert r.rsc == 4124


# -- operationMonitor -------------------------------------------------------------------------

async def test_om_reports_monitored_operations_by_listed_originators(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, receiver, enc={"net": [3], "om": {"ops": [2], "org": [aei]}})
    assert (await ip.call(RETRIEVE, DATA, "CAdmin")).rsc == 2000  # not a listed originator
    assert (await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["b"]}})).rsc == 2004  # not a listed op
    assert (await ip.call(RETRIEVE, DATA, aei)).rsc == 2000
    sgn = (await receiver.next()).sgn
    assert sgn["nev"]["om"] == {"ops": 2, "org": aei} and "net" not in sgn["nev"]
    assert sgn["nev"]["rep"]["m2m:cnt"]["ri"] == app["cnt"]["ri"] and sgn["sur"] == f"/id-in/{sub['ri']}"
    await quiet(ip, receiver)
    # once the subscription is gone a RETRIEVE is no event any more
    assert (await ip.call(Operation.DELETE, f"{DATA}/{sub['rn']}", aei)).rsc == 2002
    assert (await ip.call(RETRIEVE, DATA, aei)).rsc == 2000
    await quiet(ip, receiver)
    # with net: one notification carrying both
    await subscribe(ip, aei, receiver, enc={"net": [1], "om": {"ops": [1, 3]}})
    assert (await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["b"]}})).rsc == 2004
    nev = (await receiver.next()).sgn["nev"]
    assert nev["net"] == 1 and nev["om"] == {"ops": 3, "org": aei}
    assert (await ip.call(CREATE, DATA, aei, ty=4, pc={"m2m:cin": {"con": "x"}})).rsc == 2001
    nev = (await receiver.next()).sgn["nev"]
    assert nev["om"] == {"ops": 1, "org": aei} and "net" not in nev  # a CREATE under it, net 3 not asked
    assert (await ip.call(RETRIEVE, DATA, aei)).rsc == 2000  # RETRIEVE is not in ops
    await quiet(ip, receiver)


# -- nse / nsi ----------------------------------------------------------------------------

async def test_nse_counts_per_target_and_restarts_when_enabled_again(app: dict[str, Any],
                                                                      receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, receiver, nse=True)
    assert sub["nsi"] == []
    path = f"{DATA}/{sub['rn']}"
    for lbl in ("b", "c"):
        assert (await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": [lbl]}})).rsc == 2004
        await receiver.next()
    await ip.cse.notifier.drained(5)
    await ip.cse.subscriptions.stats.flush()
    got = (await ip.call(RETRIEVE, path, aei)).pc["m2m:sub"]
    assert got["nsi"] == [{"tg": receiver.url, "rqs": 2, "rsr": 2}]
    r = await ip.call(UPDATE, path, aei, pc={"m2m:sub": {"nsi": []}})
    assert r.rsc == 4000  # read-only
    assert (await ip.call(UPDATE, path, aei, pc={"m2m:sub": {"nse": False}})).rsc == 2004
    assert (await ip.call(UPDATE, DATA, aei, pc={"m2m:cnt": {"lbl": ["d"]}})).rsc == 2004
    await receiver.next()
    await ip.cse.notifier.drained(5)
    await ip.cse.subscriptions.stats.flush()
    got = (await ip.call(RETRIEVE, path, aei)).pc["m2m:sub"]
    assert got["nsi"] == [{"tg": receiver.url, "rqs": 2, "rsr": 2}]  # kept, not counted while off
    r = await ip.call(UPDATE, path, aei, pc={"m2m:sub": {"nse": True}})
    assert r.rsc == 2004 and r.pc["m2m:sub"]["nsi"] == []  # false -> true starts afresh


# -- group subscriptions ---------------------------------------------------------------------

async def test_group_subscription_through_fopt_is_forwarded_and_aggregated(app: dict[str, Any],
                                                                           receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "more"}})).rsc == 2001
    r = await ip.call(CREATE, "cse-in/app", aei, ty=9,
                      pc={"m2m:grp": {"rn": "both", "mt": 3, "mid": [DATA, "cse-in/app/more"]}})
    assert r.rsc == 2001, r.pc
    grp = r.pc["m2m:grp"]
    r = await ip.call(CREATE, "cse-in/app/both/fopt", aei, ty=23,
                      pc={"m2m:sub": {"rn": "gs", "nu": [receiver.url], "enc": {"net": [3]},
                                      "bn": {"num": 2, "dur": "PT5S"}}})
    assert r.rsc == 2000, r.pc
    rsps = r.pc["m2m:agr"]["m2m:rsp"]
    assert [x["rsc"] for x in rsps] == [2001, 2001], rsps
    subs = [x["pc"]["m2m:sub"] for x in rsps]
    nfu = f"/id-in/{grp['ri']}/fopt"
    assert all(s["gpi"] == grp["ri"] and s["nfu"] == nfu for s in subs), subs
    for _ in subs:
        assert (await receiver.next()).is_verification
    for container in (DATA, "cse-in/app/more"):
        assert (await ip.call(CREATE, container, aei, ty=4, pc={"m2m:cin": {"con": "x"}})).rsc == 2001
    agn = (await receiver.next()).body["m2m:agn"]["m2m:sgn"]  # one batch at the group, from both members
    assert sorted(s["sur"] for s in agn) == sorted(f"/id-in/{s['ri']}" for s in subs)
    assert all(s["nev"]["net"] == 3 for s in agn)
    await quiet(ip, receiver)
    # gpi/nfu only as the group sets them
    body = {"nu": [receiver.url], "gpi": grp["ri"]}
    r = await ip.call(CREATE, DATA, aei, ty=23, pc={"m2m:sub": body})
    assert r.rsc == 4000 and "both" in dbg(r)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=23, pc={"m2m:sub": {**body, "nfu": nfu}})
    assert r.rsc == 4000 and "not a member" in dbg(r)
    r = await ip.call(CREATE, DATA, aei, ty=23, pc={"m2m:sub": {**body, "nfu": "/id-in/other/fopt"}})
    assert r.rsc == 4000 and "fanOutPoint" in dbg(r)
    r = await ip.call(CREATE, DATA, aei, ty=23, pc={"m2m:sub": {**body, "gpi": "/id-mn/grp1", "nfu": nfu}})
    assert r.rsc == 5001
    # the fanOutPoint takes notifications from this CSE only
    r = await ip.call(Operation.NOTIFY, "cse-in/app/both/fopt", aei, pc={"m2m:sgn": {"sur": "/id-in/x"}})
    assert r.rsc == 4005


async def test_member_subscriptions_go_with_the_group_or_their_member_leaving(app: dict[str, Any],
                                                                             receiver: Receiver) -> None:
    """TS-0001 10.2.7 (cse/csf/group.py "Member subscriptions"): a member's
    subscription made through the fanOutPoint is deleted, with its ``sud``, when
    its member leaves ``mid``, when the group is deleted, and when an ancestor
    of the group is; a subscription made directly on a member stays."""
    ip, aei = app["ip"], app["aei"]
    for rn in ("more", "third"):
        assert (await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": rn}})).rsc == 2001
    members = [DATA, "cse-in/app/more", "cse-in/app/third"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=9, pc={"m2m:grp": {"rn": "g", "mt": 3, "mid": members}})
    assert r.rsc == 2001, r.pc
    own = await subscribe(ip, aei, receiver, to="cse-in/app/more", rn="own")  # not through the group: stays

    async def through(group: str, fr: str) -> list[str]:
        r = await ip.call(CREATE, f"{group}/fopt", fr, ty=23,
                          pc={"m2m:sub": {"rn": "gs", "nu": [receiver.url], "su": receiver.url}})
        rsps = r.pc["m2m:agr"]["m2m:rsp"]
        assert r.rsc == 2000 and [x["rsc"] for x in rsps] == [2001] * len(rsps), r.pc
        for _ in rsps:
            assert (await receiver.next()).is_verification
        return [f"{m}/gs" for m in members]

    async def sud() -> set[str]:
        await ip.cse.notifier.drained(5)
        got = receiver.pending()
        assert all(x.sgn.get("sud") is True for x in got), [x.body for x in got]
        return {x.sgn["sur"] for x in got}

    async def alive(path: str) -> bool:
        return (await ip.call(RETRIEVE, path, ADMIN)).rsc == 2000

    subs = await through("cse-in/app/g", aei)
    ris = {p: (await ip.call(RETRIEVE, p, ADMIN)).pc["m2m:sub"]["ri"] for p in subs}
    # a member leaves mid: its member subscription goes (with sud), the others stay
    r = await ip.call(UPDATE, "cse-in/app/g", aei, pc={"m2m:grp": {"mid": [DATA, "cse-in/app/third"]}})
    assert r.rsc == 2004, r.pc
    assert [await alive(p) for p in subs] == [True, False, True]
    assert await sud() == {f"/id-in/{ris['cse-in/app/more/gs']}"}
    assert await alive(f"cse-in/app/more/{own['rn']}")
    # the group goes: every member subscription goes
    assert (await ip.call(Operation.DELETE, "cse-in/app/g", aei)).rsc == 2002
    assert [await alive(p) for p in subs] == [False, False, False]
    assert await sud() == {f"/id-in/{ris[p]}" for p in (subs[0], subs[2])}
    assert await alive(f"cse-in/app/more/{own['rn']}")
    # the group's ancestor goes (another AE): its member subscriptions on app's containers go
    other = await ip.register("other", fr="C2")
    r = await ip.call(CREATE, "cse-in/other", other, ty=9, pc={"m2m:grp": {"rn": "g2", "mt": 3, "mid": members}})
    assert r.rsc == 2001, r.pc
    subs = await through("cse-in/other/g2", ADMIN)
    assert (await ip.call(Operation.DELETE, "cse-in/other", other)).rsc == 2002
    assert [await alive(p) for p in subs] == [False, False, False]
    assert len(await sud()) == 3
    await quiet(ip, receiver)

"""Expiration (et) and request expiration (rqet) through the pipeline
(docs/onem2m.md "Universal and common attributes", "Timestamps"). Time only moves through the FakeClock;
expiry runs by calling the timer's job, ``inproc.cse._expire(now)``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.timestamps import format_ts, parse_ts
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


def at(ip: Any, seconds: float) -> str:
    return format_ts(ip.clock.now() + seconds)


async def mk_cnt(ip: Any, parent: str, fr: str, rn: str, **attrs: Any) -> Any:
    return await ip.call(CREATE, parent, fr, ty=3, pc={"m2m:cnt": {"rn": rn, **attrs}})


async def expire(ip: Any) -> float | None:
    return await ip.cse._expire(ip.clock.now())


async def exists(ip: Any, to: str) -> bool:
    r = await ip.call(RETRIEVE, to, ADMIN)
    assert r.rsc in (2000, 4004), r.pc
    return r.rsc == 2000


# -- et on CREATE --------------------------------------------------------------

@pytest.mark.parametrize("offset", [-1, -86400 * 365, 0])
async def test_et_in_the_past_rejected(app: dict[str, Any], offset: float) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await mk_cnt(ip, "cse-in/app", aei, "c", et=at(ip, offset))
    assert r.rsc == 4000, r.pc
    assert "et" in dbg(r)
    assert not await exists(ip, "cse-in/app/c")


async def test_et_past_rejected_for_ae_and_instance(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in", "C", ty=2, pc={"m2m:ae": {
        "rn": "old", "api": "Nx", "rr": True, "srv": ["3"], "et": "20200101T000000"}})
    assert r.rsc == 4000
    assert "et" in dbg(r)
    assert (await mk_cnt(ip, "cse-in/app", aei, "c")).rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=4, pc={"m2m:cin": {"con": "x", "et": at(ip, -5)}})
    assert r.rsc == 4000
    r = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert r.pc["m2m:cnt"]["cni"] == 0


async def test_default_et(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    default = ip.cse.config.cse.default_et_s
    r = await mk_cnt(ip, "cse-in/app", aei, "c")
    assert r.rsc == 2001
    assert r.pc["m2m:cnt"]["et"] == at(ip, default)
    ae = (await ip.call(RETRIEVE, "cse-in/app", aei)).pc["m2m:ae"]
    assert ae["et"] == at(ip, default)
    # later resources get a later default, still capped by the parent's
    ip.clock.advance(100)
    r = await mk_cnt(ip, "cse-in/app", aei, "d")
    assert r.pc["m2m:cnt"]["et"] == ae["et"]


@pytest.mark.parametrize("given,stored", [
    ("20270115T090000", "20270115T090000,000000"),
    ("20270115T090000,5", "20270115T090000,500000"),
    ("2027-01-15T09:00:00Z", "20270115T090000,000000"),
    ("20270115T090000.123456", "20270115T090000,123456"),
])
async def test_et_normalised(app: dict[str, Any], given: str, stored: str) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await mk_cnt(ip, "cse-in/app", aei, "c", et=given)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:cnt"]["et"] == stored


@pytest.mark.parametrize("bad", ["tomorrow", "20271315T000000", "20270230T000000", "20270115T250000",
                                 "2027011T000000", "20270115", "20270115T090000+0100", ""])
async def test_et_malformed(app: dict[str, Any], bad: str) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await mk_cnt(ip, "cse-in/app", aei, "c", et=bad)
    assert r.rsc == 4000, (bad, r.pc)
    assert "et" in dbg(r)


async def test_et_capped_by_parent(app: dict[str, Any]) -> None:
    ip = app["ip"]
    r = await ip.call(CREATE, "cse-in", "C", ty=2, pc={"m2m:ae": {
        "rn": "short", "api": "Nx", "rr": True, "srv": ["3"], "et": at(ip, 100)}})
    assert r.rsc == 2001, r.pc
    aei, ae_et = r.pc["m2m:ae"]["aei"], r.pc["m2m:ae"]["et"]
    assert ae_et == at(ip, 100)
    r = await mk_cnt(ip, "cse-in/short", aei, "c", et=at(ip, 1000))
    assert r.rsc == 2001
    assert r.pc["m2m:cnt"]["et"] == ae_et
    r = await mk_cnt(ip, "cse-in/short", aei, "d")
    assert r.pc["m2m:cnt"]["et"] == ae_et
    r = await mk_cnt(ip, "cse-in/short", aei, "e", et=at(ip, 50))
    assert r.pc["m2m:cnt"]["et"] == at(ip, 50)
    r = await ip.call(CREATE, "cse-in/short/e", aei, ty=4, pc={"m2m:cin": {"con": "x", "et": at(ip, 70)}})
    assert r.rsc == 2001
    assert r.pc["m2m:cin"]["et"] == at(ip, 50)
    r = await ip.call(CREATE, "cse-in/short/e", aei, ty=3, pc={"m2m:cnt": {"rn": "deep"}})
    assert r.pc["m2m:cnt"]["et"] == at(ip, 50)


# -- expiry ----------------------------------------------------------------------

async def test_expired_resource_and_subtree_removed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await mk_cnt(ip, "cse-in/app", aei, "c", et=at(ip, 100))
    assert r.rsc == 2001
    c_ri = r.pc["m2m:cnt"]["ri"]
    sub = (await mk_cnt(ip, "cse-in/app/c", aei, "sub")).pc["m2m:cnt"]
    i = (await ip.call(CREATE, "cse-in/app/c/sub", aei, ty=4, pc={"m2m:cin": {"rn": "i", "con": "x"}})).pc["m2m:cin"]
    keep = await mk_cnt(ip, "cse-in/app", aei, "keep")
    assert keep.rsc == 2001
    ip.clock.advance(99)
    await expire(ip)
    assert await exists(ip, "cse-in/app/c")
    assert await exists(ip, "cse-in/app/c/sub/i")
    ip.clock.advance(1)  # et <= now: due
    await expire(ip)
    for to in ("cse-in/app/c", "cse-in/app/c/sub", "cse-in/app/c/sub/i", c_ri, sub["ri"], i["ri"]):
        assert not await exists(ip, to), to
    assert await exists(ip, "cse-in/app/keep")
    assert await exists(ip, "cse-in/app")
    # the name is free again
    r = await mk_cnt(ip, "cse-in/app", aei, "c")
    assert r.rsc == 2001
    assert r.pc["m2m:cnt"]["ri"] != c_ri


async def test_expired_ae_is_deregistered(app: dict[str, Any]) -> None:
    ip = app["ip"]
    r = await ip.call(CREATE, "cse-in", "Cshort", ty=2, pc={"m2m:ae": {
        "api": "Nx", "rr": True, "srv": ["3"], "et": at(ip, 10)}})
    assert r.rsc == 2001
    assert (await mk_cnt(ip, "cse-in/Cshort", "Cshort", "data")).rsc == 2001
    ip.clock.advance(11)
    await expire(ip)
    assert not await exists(ip, "cse-in/Cshort")
    assert not await exists(ip, "cse-in/Cshort/data")
    # it can register again with the same stem
    r = await ip.call(CREATE, "cse-in", "Cshort", ty=2, pc={"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"]}})
    assert r.rsc == 2001, r.pc


async def test_next_deadline_returned(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    t0 = ip.clock.now()
    assert (await mk_cnt(ip, "cse-in/app", aei, "a", et=at(ip, 100))).rsc == 2001
    assert (await mk_cnt(ip, "cse-in/app", aei, "b", et=at(ip, 200.5))).rsc == 2001
    nxt = await expire(ip)
    assert nxt == pytest.approx(t0 + 100)
    ip.clock.advance(150)
    nxt = await expire(ip)
    assert nxt == pytest.approx(t0 + 200.5)
    assert not await exists(ip, "cse-in/app/a")
    assert await exists(ip, "cse-in/app/b")
    ip.clock.advance(51)
    nxt = await expire(ip)
    assert not await exists(ip, "cse-in/app/b")
    # what remains: the AE, with the default ten years; the timer still looks
    # at the clock every minute (docs/troubleshooting.md "Clock jumps")
    ae = (await ip.call(RETRIEVE, "cse-in/app", aei)).pc["m2m:ae"]
    assert parse_ts(ae["et"]) > ip.clock.now() + 60
    assert nxt == pytest.approx(ip.clock.now() + 60)


async def test_et_update_extends_life(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    t0 = ip.clock.now()
    assert (await mk_cnt(ip, "cse-in/app", aei, "c", et=at(ip, 100))).rsc == 2001
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"et": at(ip, 1000)}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:cnt"]["et"] == at(ip, 1000)
    assert await expire(ip) == pytest.approx(t0 + 1000)
    ip.clock.advance(500)
    await expire(ip)
    assert await exists(ip, "cse-in/app/c")
    ip.clock.advance(500)
    await expire(ip)
    assert not await exists(ip, "cse-in/app/c")


async def test_et_update_shortens_life(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await mk_cnt(ip, "cse-in/app", aei, "c")).rsc == 2001
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"et": at(ip, 10)}})
    assert r.rsc == 2004
    ip.clock.advance(10)
    await expire(ip)
    assert not await exists(ip, "cse-in/app/c")


async def test_et_update_past_rejected(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r0 = await mk_cnt(ip, "cse-in/app", aei, "c", et=at(ip, 100))
    r = await ip.call(UPDATE, "cse-in/app/c", aei, pc={"m2m:cnt": {"et": at(ip, -1)}})
    assert r.rsc == 4000
    assert "et" in dbg(r)
    got = await ip.call(RETRIEVE, "cse-in/app/c", aei)
    assert got.pc["m2m:cnt"]["et"] == r0.pc["m2m:cnt"]["et"]
    assert got.pc["m2m:cnt"]["st"] == 0


async def test_et_update_capped_by_parent(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await mk_cnt(ip, "cse-in/app", aei, "p", et=at(ip, 100))).rsc == 2001
    assert (await mk_cnt(ip, "cse-in/app/p", aei, "c", et=at(ip, 50))).rsc == 2001
    r = await ip.call(UPDATE, "cse-in/app/p/c", aei, pc={"m2m:cnt": {"et": at(ip, 5000)}})
    assert r.rsc == 2004
    assert r.pc["m2m:cnt"]["et"] == at(ip, 100)


async def test_expiry_of_instance_updates_container(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    assert (await mk_cnt(ip, "cse-in/app", aei, "c")).rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=4, pc={"m2m:cin": {"rn": "short", "con": "abc", "et": at(ip, 5)}})
    assert r.rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=4, pc={"m2m:cin": {"rn": "long", "con": "defgh"}})
    assert r.rsc == 2001
    ip.clock.advance(5)
    await expire(ip)
    got = (await ip.call(RETRIEVE, "cse-in/app/c", aei)).pc["m2m:cnt"]
    assert (got["cni"], got["cbs"]) == (1, 5)
    assert (await ip.call(RETRIEVE, "cse-in/app/c/ol", aei)).pc["m2m:cin"]["rn"] == "long"


async def test_timer_stop_after_poke_does_not_hang(app: dict[str, Any]) -> None:
    """Stopping the expiry timer right after a sooner ``et`` poked it must
    finish at once. On Python 3.11, ``asyncio.wait_for`` swallows a cancel
    that arrives when the awaited event has already fired, so
    ``DeadlineTimer.stop`` goes on waiting (up to 3600 s of real time)."""
    ip, aei = app["ip"], app["aei"]
    for _ in range(20):  # the timer has armed itself on the ten-year default
        await asyncio.sleep(0)
    assert (await mk_cnt(ip, "cse-in/app", aei, "c", et=at(ip, 60))).rsc == 2001  # pokes
    stopper = asyncio.ensure_future(ip.cse.expiry.stop())
    try:
        for _ in range(50):  # event-loop turns only: no real time passes
            if stopper.done():
                break
            await asyncio.sleep(0)
        assert stopper.done(), "DeadlineTimer.stop() is still waiting after the cancel"
    finally:
        if not stopper.done():
            stopper.cancel()  # cancels the timer task a second time, which now sticks
            try:
                await stopper
            except asyncio.CancelledError:
                pass


# -- rqet / rset -------------------------------------------------------------------

@pytest.mark.parametrize("rqet", ["-1000", "0", "-1", "20200101T000000", "20270115T075959",
                                  "20270115T080000"])
async def test_rqet_in_the_past(app: dict[str, Any], rqet: str) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rqet=rqet)
    assert r.rsc == 4008, (rqet, r.pc)
    assert "rqet" in dbg(r)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "late"}}, rqet=rqet)
    assert r.rsc == 4008
    assert not await exists(ip, "cse-in/app/late")
    r = await ip.call(DELETE, "cse-in/app", aei, rqet=rqet)
    assert r.rsc == 4008
    assert await exists(ip, "cse-in/app")


async def test_rqet_checked_before_the_target(app: dict[str, Any]) -> None:
    r = await app["ip"].call(RETRIEVE, "cse-in/missing", app["aei"], rqet="-1")
    assert r.rsc == 4008


@pytest.mark.parametrize("rqet", ["1000", "20270115T080001", "2027-01-15T08:00:01Z", "PT10S", "99991231T235959"])
async def test_rqet_in_the_future(app: dict[str, Any], rqet: str) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rqet=rqet)
    assert r.rsc == 2000, (rqet, r.pc)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "ontime"}}, rqet=rqet)
    assert r.rsc == 2001


@pytest.mark.parametrize("rqet", ["tomorrow", "2027-13-45", "12:00", "1e5", "10s", "", " ", "P", "PT",
                                  "20271315T000000", "+-5"])
async def test_rqet_bad_format(app: dict[str, Any], rqet: str) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rqet=rqet)
    assert r.rsc == 4000, (rqet, r.pc)
    assert "rqet" in dbg(r)


async def test_rset_in_the_past_and_malformed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rset="-5")
    assert r.rsc == 4008
    assert "rset" in dbg(r)
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rset="nonsense")
    assert r.rsc == 4000
    assert "rset" in dbg(r)
    r = await ip.call(RETRIEVE, "cse-in/app", aei, rset="60000")
    assert r.rsc == 2000


async def test_rqet_follows_the_clock(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    deadline = at(ip, 30)
    assert (await ip.call(RETRIEVE, "cse-in/app", aei, rqet=deadline)).rsc == 2000
    ip.clock.advance(30)
    assert (await ip.call(RETRIEVE, "cse-in/app", aei, rqet=deadline)).rsc == 4008

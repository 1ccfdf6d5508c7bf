"""timeSeries / timeSeriesInstance and missing-data detection (TS-0001
9.6.36, 9.6.37, 10.2.4.29; docs/onem2m.md "timeSeries"). In-process CSE on
a fake clock; the missing-data timer is stopped and its job called with
the clock's time, so nothing waits for real time; a real HTTP receiver on
loopback for notifications."""

from __future__ import annotations

from typing import Any

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from tests.conftest import InProc, started_inproc
from tests.notify_receiver import Receiver
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


async def mk_ts(ip: Any, fr: str, rn: str = "ts", **attrs: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, "cse-in/app", fr, ty=29, pc={"m2m:ts": {"rn": rn, **attrs}})
    assert r.rsc == 2001, r.pc
    return dict(r.pc["m2m:ts"])


async def add(ip: Any, fr: str, dgt: float | str, con: Any = "v", ts: str = "ts", **attrs: Any) -> Any:
    dgt_ts = dgt if isinstance(dgt, str) else format_ts(dgt)
    return await ip.call(CREATE, f"cse-in/app/{ts}", fr, ty=30, pc={"m2m:tsi": {"dgt": dgt_ts, "con": con, **attrs}})


async def ts_state(ip: Any, rn: str = "ts") -> dict[str, Any]:
    r = await ip.call(RETRIEVE, f"cse-in/app/{rn}", ADMIN)
    assert r.rsc == 2000, r.pc
    return dict(r.pc["m2m:ts"])


async def detect(ip: Any, after: float) -> None:
    ip.clock.advance(after)
    await ip.cse.timeseries.detect(ip.clock.now())


async def test_instances_counters_limits_and_refusals(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    ts = await mk_ts(ip, aei, mni=2, mbs=10, cnf="text/plain:0")
    assert (ts["cni"], ts["cbs"]) == (0, 0) and "mdlt" not in ts, ts
    t0 = ip.clock.now()
    for i in range(3):
        r = await add(ip, aei, t0 + i, con=f"v{i}", snr=i)
        assert r.rsc == 2001, r.pc
        assert r.pc["m2m:tsi"]["cs"] == 2 and r.pc["m2m:tsi"]["snr"] == i, r.pc
    s = await ts_state(ip)
    assert (s["cni"], s["cbs"]) == (2, 4), s
    assert (await ip.call(RETRIEVE, "cse-in/app/ts/ol", aei)).pc["m2m:tsi"]["con"] == "v1"
    assert (await ip.call(RETRIEVE, "cse-in/app/ts/la", aei)).pc["m2m:tsi"]["con"] == "v2"
    # the same dgt twice: 4105, whether it is the newest or an older one
    for dgt in (t0 + 2, t0 + 1):
        r = await add(ip, aei, dgt)
        assert r.rsc == 4105 and "dataGenerationTime" in dbg(r), r.pc
    assert (await add(ip, aei, t0 + 1.5)).rsc == 2001  # out of order but new: accepted
    r = await ip.call(CREATE, "cse-in/app/ts", aei, ty=30, pc={"m2m:tsi": {"con": "x"}})
    assert r.rsc == 4000 and "dgt" in dbg(r), r.pc
    r = await add(ip, aei, t0 + 9, con="x" * 11)
    assert r.rsc == 5207 and "timeSeriesInstance" in dbg(r), r.pc
    la = (await ip.call(RETRIEVE, "cse-in/app/ts/la", aei)).pc["m2m:tsi"]
    r = await ip.call(UPDATE, f"cse-in/app/ts/{la['rn']}", aei, pc={"m2m:tsi": {"con": "y"}})
    assert r.rsc == 4005, r.pc
    for bad_mdd in ({"mdd": True}, {"mdd": True, "pei": 99}):  # no expected time; a timer run every < 100 ms
        r = await ip.call(CREATE, "cse-in/app", aei, ty=29, pc={"m2m:ts": bad_mdd})
        assert r.rsc == 4000 and "pei" in dbg(r), r.pc
    for bad in ({"mdlt": []}, {"mdc": 0}, {"cni": 1}):
        r = await ip.call(CREATE, "cse-in/app", aei, ty=29, pc={"m2m:ts": bad})
        assert r.rsc == 4000, (bad, r.pc)
    other = await ip.register("other", fr="C2")
    assert (await ip.call(RETRIEVE, "cse-in/app/ts/la", other)).rsc == 4103  # the parent's ACP decides
    r = await ip.call(RETRIEVE, "cse-in/app", aei, query={"fu": ("1",), "ty": ("30",)})
    assert r.rsc == 2000 and len(r.pc["m2m:uril"]) == 2, r.pc


async def subscribe_md(ip: Any, aei: str, rcv: Receiver, **enc: Any) -> dict[str, Any]:
    r = await ip.call(CREATE, "cse-in/app/ts", aei, ty=23,
                      pc={"m2m:sub": {"nu": [rcv.url], "enc": {"net": [8], **enc}}})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:sub"]["nct"] == 5, r.pc  # timeSeriesNotification, the only content net 8 has
    assert (await rcv.next(timeout=1)).is_verification
    return dict(r.pc["m2m:sub"])


def tsn(item: Any, sub: dict[str, Any]) -> dict[str, Any]:
    sgn = item.sgn
    assert sgn["nev"]["net"] == 8 and sgn["sur"] == f"/id-in/{sub['ri']}", sgn
    return dict(sgn["nev"]["rep"]["m2m:tsn"])


async def test_missing_data_recorded_bounded_and_notified(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await ip.cse.md_timer.stop()  # the test runs the job itself (module docstring)
    await mk_ts(ip, aei, pei=1000, mdt=500, mdd=True, mdn=3)
    sub = await subscribe_md(ip, aei, receiver, md={"num": 2, "dur": "PT1H"})
    t0 = ip.clock.now()
    assert (await add(ip, aei, t0)).rsc == 2001
    assert ip.cse.md_timer.deadline == t0 + 1.5  # armed by the commit's outcome
    await detect(ip, 1.0)  # not due yet
    s = await ts_state(ip)
    assert (s["mdc"], s["mdlt"]) == (0, []), s
    await detect(ip, 0.5)  # t0 + 1.5: the point expected at t0 + 1 is missing
    s = await ts_state(ip)
    assert (s["mdc"], s["mdlt"]) == (1, [format_ts(t0 + 1)]), s
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []  # md.num 2: not yet
    await detect(ip, 1.0)  # t0 + 2.5: the point at t0 + 2
    got = tsn(await receiver.next(timeout=2), sub)
    assert got == {"mdlt": [format_ts(t0 + 1), format_ts(t0 + 2)], "mdc": 2}, got
    await detect(ip, 3.0)  # t0 + 5.5: three more; mdlt keeps the newest mdn (3)
    s = await ts_state(ip)
    assert s["mdlt"] == [format_ts(t0 + k) for k in (3, 4, 5)] and s["mdc"] == 3, s
    got = tsn(await receiver.next(timeout=2), sub)
    assert got["mdlt"] == [format_ts(t0 + 3), format_ts(t0 + 4)], got
    # an instance arriving restarts the wait; switching mdd off stops detection
    assert (await add(ip, aei, t0 + 6)).rsc == 2001
    await detect(ip, 1.0)
    assert (await ts_state(ip))["mdc"] == 3
    r = await ip.call(UPDATE, "cse-in/app/ts", aei, pc={"m2m:ts": {"mdd": False}})
    assert r.rsc == 2004, r.pc
    await detect(ip, 10.0)
    assert (await ts_state(ip))["mdlt"][-1] == format_ts(t0 + 5)
    assert ip.cse.timeseries._due == {}


async def test_without_md_each_point_is_sent_and_net8_only_on_timeseries(
        app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await ip.cse.md_timer.stop()
    await mk_ts(ip, aei, pei=2000, mdd=True)
    sub = await subscribe_md(ip, aei, receiver)
    t0 = ip.clock.now()
    assert (await add(ip, aei, format_ts(t0))).rsc == 2001
    await detect(ip, 2.0)
    assert tsn(await receiver.next(timeout=2), sub) == {"mdlt": [format_ts(t0 + 2)], "mdc": 1}
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c"}})
    assert r.rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [8]}}})
    assert r.rsc == 4000 and "timeSeries" in dbg(r), r.pc
    r = await ip.call(CREATE, "cse-in/app/ts", aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3], "md": {"num": 1}}}})
    assert r.rsc == 4000 and "net 8" in dbg(r), r.pc
    r = await ip.call(CREATE, "cse-in/app/ts", aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [8]}, "nct": 1}})
    assert r.rsc == 4000, r.pc


async def test_restart_rearms_detection_from_the_store() -> None:
    async with started_inproc() as ip:
        aei = await ip.register("app")
        await mk_ts(ip, aei, pei=1000, mdd=True)
        t0 = ip.clock.now()
        assert (await add(ip, aei, t0)).rsc == 2001
        store, clock = ip.cse.store, ip.clock
    clock.advance(3.2)  # down for three periods
    again = CSE(load_config(None, db=":memory:"), store=store, clock=clock, monotonic=clock.monotonic,
                wait_until=clock.wait_until)
    await again.start(serve_http=False)
    try:
        assert again.md_timer.deadline == t0 + 1.0  # armed at start from the stored timeSeries
        await again.md_timer.stop()
        await again.timeseries.detect(clock.now())
        s = (await InProc(again, clock).call(RETRIEVE, "cse-in/app/ts", ADMIN)).pc["m2m:ts"]
        assert s["mdlt"] == [format_ts(t0 + k) for k in (1, 2, 3)], s
        assert again.timeseries._due[s["ri"]] == t0 + 4.0
    finally:
        await again.stop()


async def test_peid_is_bounded_by_pei_and_mdt(app: dict[str, Any]) -> None:
    """TS-0001 9.6.36: peid <= pei/2, mdt > peid; 4000 naming them, at CREATE and UPDATE."""
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=29, pc={"m2m:ts": {"pei": 1000, "peid": 501}})
    assert r.rsc == 4000 and "peid" in dbg(r) and "half" in dbg(r), r.pc
    r = await ip.call(CREATE, "cse-in/app", aei, ty=29, pc={"m2m:ts": {"pei": 1000, "peid": 300, "mdt": 300}})
    assert r.rsc == 4000 and "mdt" in dbg(r) and "peid" in dbg(r), r.pc
    await mk_ts(ip, aei, pei=1000, peid=500, mdt=600, mdd=True)
    r = await ip.call(UPDATE, "cse-in/app/ts", aei, pc={"m2m:ts": {"pei": 900}})
    assert r.rsc == 4000 and "peid" in dbg(r), r.pc
    assert (await ts_state(ip))["pei"] == 1000


async def test_peid_window_keeps_the_grid_and_skipped_points_are_missing(app: dict[str, Any],
                                                                         receiver: Receiver) -> None:
    """TS-0001 10.2.4.29: a dgt within expected +/- peid is the expected point; the
    grid does not drift with it; a dgt past the window makes the points before it missing."""
    ip, aei = app["ip"], app["aei"]
    await ip.cse.md_timer.stop()
    ts = await mk_ts(ip, aei, pei=1000, peid=200, mdt=500, mdd=True)
    sub = await subscribe_md(ip, aei, receiver)

    async def expected() -> str:
        stored = await ip.cse.store.get(ts["ri"])
        return str(stored["_mdg"])

    t0 = ip.clock.now()
    assert (await add(ip, aei, t0)).rsc == 2001
    assert await expected() == format_ts(t0 + 1)
    ip.clock.advance(1.1)
    assert (await add(ip, aei, t0 + 1.15)).rsc == 2001  # 150 ms late: the point at t0 + 1
    assert await expected() == format_ts(t0 + 2)  # the grid, not t0 + 2.15
    ip.clock.advance(1.0)
    assert (await add(ip, aei, t0 + 1.9)).rsc == 2001  # 100 ms early: the point at t0 + 2
    assert await expected() == format_ts(t0 + 3)
    ip.clock.advance(1.0)
    assert (await add(ip, aei, t0 + 2.5)).rsc == 2001  # between two windows, before t0 + 3's: changes nothing
    assert await expected() == format_ts(t0 + 3)
    await detect(ip, 0.001)
    assert (await ts_state(ip))["mdc"] == 0
    ip.clock.advance(0.1)
    assert (await add(ip, aei, t0 + 3.5)).rsc == 2001  # past t0 + 3's window, on no grid point: t0 + 3 is missing
    assert await expected() == format_ts(t0 + 4.5)  # the grid restarts at it
    await detect(ip, 0.001)  # due at once (the arrival's ct, to the microsecond)
    assert tsn(await receiver.next(timeout=2), sub) == {"mdlt": [format_ts(t0 + 3)], "mdc": 1}
    ip.clock.advance(1.1)
    assert (await add(ip, aei, t0 + 6.45)).rsc == 2001  # within t0 + 6.5's window: t0 + 4.5 and 5.5 skipped
    assert await expected() == format_ts(t0 + 7.5)
    await detect(ip, 0.001)
    assert tsn(await receiver.next(timeout=2), sub) == {"mdlt": [format_ts(t0 + 4.5), format_ts(t0 + 5.5)],
                                                         "mdc": 2}
    await detect(ip, 1.5)  # t0 + 7.5 + its detection time: missing as ever
    s = await ts_state(ip)
    assert s["mdlt"] == [format_ts(t0 + k) for k in (3, 4.5, 5.5, 7.5)] and s["mdc"] == 4, s


async def test_mni_zero_keeps_no_instance_but_counts_the_arrival(app: dict[str, Any], receiver: Receiver) -> None:
    """mni 0 (TS-0004 7.4.7.2.1: the oldest instances go to make room; with
    mni 0 that is the new one): the CREATE is answered 2001, nothing is
    kept, subscribers hear of the creation (net 3), and a timeSeries counts
    the arrival for missing data. The same holds for a container, and a
    flexContainer with mni 0 keeps no history."""
    ip, aei = app["ip"], app["aei"]
    await ip.cse.md_timer.stop()
    await mk_ts(ip, aei, mni=0, pei=1000, mdd=True)
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c", "mni": 0}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=23, pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next(timeout=2)).is_verification
    t0 = ip.clock.now()
    r = await add(ip, aei, t0)
    assert r.rsc == 2001 and r.pc["m2m:tsi"]["dgt"] == format_ts(t0), r.pc
    r = await ip.call(CREATE, "cse-in/app/c", aei, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001, r.pc
    cin = r.pc["m2m:cin"]
    for path, root in (("cse-in/app/ts", "m2m:ts"), ("cse-in/app/c", "m2m:cnt")):
        got = (await ip.call(RETRIEVE, path, aei)).pc[root]
        assert (got["cni"], got["cbs"]) == (0, 0), got
        assert (await ip.call(RETRIEVE, f"{path}/la", aei)).rsc == 4004
    assert (await ip.call(RETRIEVE, f"cse-in/app/c/{cin['rn']}", aei)).rsc == 4004
    sgn = (await receiver.next(timeout=2)).sgn
    assert sgn["nev"]["net"] == 3 and sgn["nev"]["rep"]["m2m:cin"]["ri"] == cin["ri"], sgn
    assert ip.cse.md_timer.deadline == t0 + 1.0  # the arrival armed detection
    await detect(ip, 1.0)
    assert (await ts_state(ip))["mdlt"] == [format_ts(t0 + 1)]
    r = await ip.call(CREATE, "cse-in/app", aei, ty=28, pc={"m2m:fcnt": {"rn": "f", "cnd": "x.y", "mni": 0, "v": 1}})
    assert r.rsc == 2001 and r.pc["m2m:fcnt"]["cni"] == 0, r.pc
    r = await ip.call(UPDATE, "cse-in/app/f", aei, pc={"m2m:fcnt": {"v": 2}})
    assert r.rsc == 2004 and r.pc["m2m:fcnt"]["cni"] == 0, r.pc
    assert (await ip.call(RETRIEVE, "cse-in/app/f/la", aei)).rsc == 4004

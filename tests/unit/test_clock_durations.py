"""Durations and windows across wall-clock steps (docs/troubleshooting.md
"Clock jumps", docs/sessions.md "Store-and-forward"), on an injected wall
clock and an injected monotonic clock: a step re-runs a timer's job (its
windows are looked up again on the new time); a store-and-forward request's
``mbd`` and its retry back-off are measured on the monotonic clock, so a step
neither fails a request early nor holds it back; after a restart that found
the clock jumped, the time a request was buffered is counted up to the newest
trusted time, not to the jumped clock."""

from __future__ import annotations

import asyncio

from cse.binding.scheduler import DeadlineTimer
from cse.core.timestamps import format_ts
from cse.csf.smg.queue import QUEUE_NS
from tests.conftest import FakeClock
from tests.flow2_helpers import COMPLETED, FAILED, NEVER, PENDING, LocalSession
from tests.unit.test_flow2_queue import FakeForward, add_policy, queue, request_doc, store

YEAR = 365 * 86400.0


async def test_deadline_timer_reruns_its_job_after_a_backward_step() -> None:
    """A daily window looked up at 03:00 is tomorrow's; a step back to 01:00
    makes it today's: the job must run again to find that out."""
    clock = FakeClock()
    runs: list[float] = []
    first, again = asyncio.Event(), asyncio.Event()

    async def job(now: float) -> float | None:
        runs.append(now)
        (again if first.is_set() else first).set()
        return now + 23 * 3600  # the next window, a day away on the wall clock

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.02, monotonic=clock.monotonic)
    timer.start(first=clock.now())
    try:
        await asyncio.wait_for(first.wait(), 1.0)
        clock.step(-2 * 3600)  # the wall clock is set back two hours
        await asyncio.wait_for(again.wait(), 1.0)
        assert runs[1] == runs[0] - 2 * 3600
    finally:
        await timer.stop()


async def test_deadline_timer_does_not_rerun_when_both_clocks_advance() -> None:
    clock = FakeClock()
    runs: list[float] = []

    async def job(now: float) -> float | None:
        runs.append(now)
        return now + 3600

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.01, monotonic=clock.monotonic)
    timer.start(first=clock.now())
    try:
        for _ in range(20):  # 20 slices in which both clocks move 30 s together
            clock.advance(30)
            await asyncio.sleep(0.015)
        assert len(runs) == 1, runs
    finally:
        await timer.stop()


# -- store-and-forward durations (docs/sessions.md "Store-and-forward") -------------------------

HOUR = 3600.0


async def test_forward_step_does_not_shorten_mbd(ls: LocalSession) -> None:
    """The wall clock is set 2 h ahead while a request with mbd 1 h waits:
    it is still waiting (its <request>, due on the wall clock, is kept with
    its et moved on); only an hour of real time fails it."""
    policy = await add_policy(ls, "sf", spt=2, sch=NEVER, mbd=3600)
    fwd = FakeForward()
    queue(ls).forward = fwd
    rq, ri = await store(ls, policy, "wait")
    ls.ip.clock.step(2 * HOUR)
    now = ls.ip.clock.now()
    assert await queue(ls).flush(now) == now + 3600  # the mbd deadline, on the stepped clock
    await ls.ip.cse._expire(now)  # the <request>'s et (1 h lifetime) is past on the wall clock
    doc = await request_doc(ls, ri)
    assert doc["rs"] == PENDING, doc
    assert doc["et"] > format_ts(now + 3600), doc["et"]
    assert await queue(ls).count() == 1
    ls.ip.clock.advance(3601)  # an hour of real time
    await queue(ls).flush(ls.ip.clock.now())
    doc = await request_doc(ls, ri)
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008 and "mbd" in doc["ors"]["pc"]["m2m:dbg"], doc
    assert fwd.calls == []


async def test_backward_step_does_not_lengthen_mbd(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=NEVER, mbd=30)
    rq, ri = await store(ls, policy, "late")
    ls.ip.clock.step(-HOUR)
    ls.ip.clock.advance(31)
    await queue(ls).flush(ls.ip.clock.now())
    doc = await request_doc(ls, ri)
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008, doc


async def test_backward_step_does_not_hold_back_a_retry(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
    fwd = FakeForward(fail=1)
    queue(ls).forward = fwd
    rq, ri = await store(ls, policy, "again")
    t0 = ls.ip.clock.now()
    assert await queue(ls).flush(t0) == t0 + 1.0  # the first back-off: 1 s
    ls.ip.clock.step(-HOUR)
    ls.ip.clock.advance(1.0)
    now = ls.ip.clock.now()
    assert await queue(ls).flush(now) is None
    assert fwd.rqis == [rq, rq]
    assert (await request_doc(ls, ri))["rs"] == COMPLETED


async def test_restart_after_a_jump_counts_buffered_time_up_to_the_trusted_time(ls: LocalSession) -> None:
    """After a start that found the clock 11 years ahead, a request buffered
    for 100 s before the stop has been buffered 100 s, not 11 years (it is
    not failed for mbd); without a jump the wall clock counts."""
    policy = await add_policy(ls, "sf", spt=2, sch=NEVER, mbd=3600)
    rq, ri = await store(ls, policy, "kept")
    ls.ip.clock.advance(100)
    trusted = ls.ip.clock.now()
    ls.ip.clock.step(11 * YEAR)
    q = queue(ls)
    assert await q.load(trusted) == 1
    (key, item), = await ls.ip.cse.store.kv_items(QUEUE_NS)
    assert q.buffered(key, item) == 100
    await q.flush(ls.ip.clock.now())
    assert (await request_doc(ls, ri))["rs"] == PENDING
    assert await q.load(None) == 1  # no jump found (or accepted): the wall clock is right
    await q.flush(ls.ip.clock.now())
    doc = await request_doc(ls, ri)
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008, doc


async def test_idle_deadline_timer_reruns_its_job_after_a_step() -> None:
    """A job with nothing to wait for (every window passed for good) is
    asked again after a step back: the window may be ahead again."""
    clock = FakeClock()
    runs: list[float] = []
    first, again = asyncio.Event(), asyncio.Event()

    async def job(now: float) -> float | None:
        runs.append(now)
        (again if first.is_set() else first).set()
        return None

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.02, monotonic=clock.monotonic)
    timer.start(first=clock.now())
    try:
        await asyncio.wait_for(first.wait(), 1.0)
        clock.step(-HOUR)
        await asyncio.wait_for(again.wait(), 1.0)
        assert runs == [runs[0], runs[0] - HOUR]
    finally:
        await timer.stop()


async def test_an_outcome_recorded_late_is_not_expired_with_its_request(ls: LocalSession) -> None:
    """A restart long after the store (here 2 h, request lifetime 1 h, mbd
    1 h): the forwarding timer may find the request over its mbd before the
    expiry timer runs; the failure it records must not go with the
    <request>'s old et at the next expiry run."""
    policy = await add_policy(ls, "sf", spt=2, sch=NEVER, mbd=3600)
    rq, ri = await store(ls, policy, "late")
    ls.ip.clock.advance(2 * HOUR)
    await queue(ls).flush(ls.ip.clock.now())
    await ls.ip.cse._expire(ls.ip.clock.now())
    doc = await ls.ip.cse.store.get(ri)
    assert doc is not None, "the recorded failure was deleted with its <request>"
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008, doc
    assert doc["et"] >= format_ts(ls.ip.clock.now() + 3600), doc["et"]

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
from tests.conftest import FakeClock


class FakeMonotonic:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_deadline_timer_reruns_its_job_after_a_backward_step() -> None:
    """A daily window looked up at 03:00 is tomorrow's; a step back to 01:00
    makes it today's: the job must run again to find that out."""
    clock, mono = FakeClock(), FakeMonotonic()
    runs: list[float] = []
    first, again = asyncio.Event(), asyncio.Event()

    async def job(now: float) -> float | None:
        runs.append(now)
        (again if first.is_set() else first).set()
        return now + 23 * 3600  # the next window, a day away on the wall clock

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.02, monotonic=mono)
    timer.start(first=clock.now())
    try:
        await asyncio.wait_for(first.wait(), 1.0)
        clock.advance(-2 * 3600)  # stepped back two hours; no real time passed
        await asyncio.wait_for(again.wait(), 1.0)
        assert runs[1] == runs[0] - 2 * 3600
    finally:
        await timer.stop()


async def test_deadline_timer_does_not_rerun_when_both_clocks_advance() -> None:
    clock, mono = FakeClock(), FakeMonotonic()
    runs: list[float] = []

    async def job(now: float) -> float | None:
        runs.append(now)
        return now + 3600

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.01, monotonic=mono)
    timer.start(first=clock.now())
    try:
        for _ in range(20):  # 20 slices in which both clocks move 30 s together
            clock.advance(30)
            mono.t += 30
            await asyncio.sleep(0.015)
        assert len(runs) == 1, runs
    finally:
        await timer.stop()

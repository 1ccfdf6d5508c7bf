"""One timer per job, armed from the deadline the job reports (principle 2).

A job is an async function ``run(now) -> next deadline | None``. The timer
sleeps until the deadline (or until :meth:`DeadlineTimer.poke` brings it
forward), runs the job with the current time, and re-arms from its answer.
Pure logic never sleeps; only this edge does.

Deadlines are wall-clock times (a schedule window opens at 02:00 UTC), but
the event loop sleeps on the monotonic clock: a wall-clock step (NTP, an
operator) would go unnoticed for the rest of a long sleep. So the timer
sleeps in slices of at most ``slice_s`` and compares the wall clock with
the deadline after each one: a step is noticed within one slice
(docs/troubleshooting.md "Clock jumps"), at the cost of one cheap wake-up
per slice while a deadline is armed.

A step also moves deadlines *nearer*: a window that opens daily at 02:00,
looked up at 03:00, is tomorrow's; after a step back to 01:00 it is today's,
an hour away, and sleeping toward tomorrow's would miss it. So each slice
also compares how far the wall clock moved with how far the monotonic clock
moved; when they differ by more than ``step_s`` the wall clock was stepped
and the job runs at once, re-evaluating its deadlines (schedule windows,
expiry) on the new wall-clock time. A timer with no deadline looks too (a
step back can bring a window that had passed for good into the future
again), so each timer wakes once a slice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from cse.core.tasks import cancel_and_wait

__all__ = ["DeadlineTimer"]

log = logging.getLogger("cse.scheduler")

Job = Callable[[float], Awaitable[float | None]]


class DeadlineTimer:
    """Runs ``job`` at the deadlines it reports."""

    def __init__(self, name: str, job: Job, clock: Callable[[], float], *, slice_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic, step_s: float = 2.0) -> None:
        """``clock`` gives the wall-clock time the deadlines are in; ``slice_s``
        is the longest sleep between two looks at it; a wall-clock move that
        differs from the ``monotonic`` clock's by more than ``step_s`` over one
        slice is a step that re-runs the job (module docstring)."""
        if slice_s <= 0:
            raise ValueError(f"slice_s must be positive, got {slice_s}")
        if step_s <= 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        self.monotonic = monotonic
        self.step_s = step_s
        self.name = name
        self.job = job
        self.clock = clock
        self.slice_s = slice_s
        self._deadline: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def deadline(self) -> float | None:
        """When the job runs next (None: not armed)."""
        return self._deadline

    def start(self, first: float | None = 0.0) -> None:
        """Start the timer task; ``first`` is the first deadline (0: at once)."""
        self._deadline = first
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    def poke(self, deadline: float) -> None:
        """Bring the next run forward to ``deadline`` if that is sooner."""
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
            self._wake.set()

    async def stop(self) -> None:
        """Cancel the timer task and wait for it."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            wall0, mono0 = self.clock(), self.monotonic()
            # idle (no deadline) it still looks every slice: a step back can
            # bring a window that had passed for good into the future again
            delay = self.slice_s if self._deadline is None else self._deadline - wall0
            if delay > 0:
                # A timer that sets the wake event, not asyncio.wait_for: on
                # Python 3.11 wait_for can swallow a cancel (gh-86296), which
                # would make stop() hang.
                handle = asyncio.get_running_loop().call_later(min(delay, self.slice_s), self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    handle.cancel()
                wall, mono = self.clock(), self.monotonic()
                moved = (wall - wall0) - (mono - mono0)
                if abs(moved) > self.step_s:  # stepped: the job re-evaluates its deadlines now
                    log.info("%s: wall clock stepped %+.0f s; re-evaluating deadlines", self.name, moved)
                elif self._deadline is None or self._deadline > wall:
                    continue  # a slice ended, or poked: re-evaluate on the wall clock
            self._deadline = None
            try:
                nxt = await self.job(self.clock())
            except Exception:  # keep the timer alive; the job logs its own context
                log.exception("%s job failed; retrying in 5 s", self.name)
                nxt = self.clock() + 5.0
            if nxt is not None and (self._deadline is None or nxt < self._deadline):
                self._deadline = nxt

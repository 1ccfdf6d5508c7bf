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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cse.core.tasks import cancel_and_wait

__all__ = ["DeadlineTimer"]

log = logging.getLogger("cse.scheduler")

Job = Callable[[float], Awaitable[float | None]]


class DeadlineTimer:
    """Runs ``job`` at the deadlines it reports."""

    def __init__(self, name: str, job: Job, clock: Callable[[], float], *, slice_s: float = 5.0) -> None:
        """``clock`` gives the wall-clock time the deadlines are in; ``slice_s``
        is the longest sleep between two looks at it (module docstring)."""
        if slice_s <= 0:
            raise ValueError(f"slice_s must be positive, got {slice_s}")
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
            if self._deadline is None:
                await self._wake.wait()
                continue
            delay = self._deadline - self.clock()
            if delay > 0:
                # A timer that sets the wake event, not asyncio.wait_for: on
                # Python 3.11 wait_for can swallow a cancel (gh-86296), which
                # would make stop() hang.
                handle = asyncio.get_running_loop().call_later(min(delay, self.slice_s), self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    handle.cancel()
                if self._deadline is not None and self._deadline > self.clock():
                    continue  # a slice ended, or poked: re-evaluate on the wall clock
            self._deadline = None
            try:
                nxt = await self.job(self.clock())
            except Exception:  # keep the timer alive; the job logs its own context
                log.exception("%s job failed; retrying in 5 s", self.name)
                nxt = self.clock() + 5.0
            if nxt is not None and (self._deadline is None or nxt < self._deadline):
                self._deadline = nxt

"""Hold mass expiry when the wall clock jumps (docs/troubleshooting.md "Clock jumps").

Expiry (``et``, TS-0001 9.6.1.3) deletes for good whatever the wall clock
says is due: a clock set years ahead would delete every resource at the
next start. So the CSE records the newest time it has seen (a KV entry,
written through the executor at most every ``record_every`` seconds and on
a clean stop) and, before each expiry run, compares:

* at start-up, the clock with that record: ahead by more than ``jump_s``
  is a forward jump; behind it by more than ``jump_s`` a backward one;
* while running, the wall clock's advance with the monotonic clock's since
  the last look: a difference above ``jump_s`` is a jump either way.

A forward jump is logged (WARNING, naming both times) and expiry is *held*:
nothing expires and the record is not moved, until one of

* the operator confirms: ``[cse] accept_clock_jump`` (or
  ``--accept-clock-jump``) at start-up;
* the clock comes back: it is again within ``jump_s`` of the record (an
  NTP correction after boot);
* the clock stays consistent for ``settle_s`` seconds of monotonic time:
  every look during that time found the wall clock advancing with the
  monotonic one (within ``jump_s``); a further jump starts the count again.

A backward jump deletes nothing early, so it is only logged; the record
keeps the newest time, so a later step forward back to it is no jump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cse.core.context import Context
from cse.core.outcome import Outcome
from cse.core.ports import KvPut
from cse.core.timestamps import format_ts

__all__ = ["CLOCK_NS", "ClockGuard"]

log = logging.getLogger("cse.clock")

CLOCK_NS = "cse-clock"
_SEEN = "seen"


def _when(t: float) -> str:
    return format_ts(t)


class ClockGuard:
    """Decides whether expiry may run now (module docstring)."""

    def __init__(self, ctx: Context, monotonic: Callable[[], float], *, jump_s: float, settle_s: float,
                 accept: bool = False, record_every: float = 60.0) -> None:
        self.ctx = ctx
        self.monotonic = monotonic
        self.jump_s = jump_s
        self.settle_s = settle_s
        self.accept = accept
        self.record_every = record_every
        self._seen: float | None = None  # the newest wall-clock time recorded
        self._written: float | None = None  # monotonic time of the last record write
        self._recorded: float | None = None  # the value last written
        self._last: tuple[float, float] | None = None  # (wall, monotonic) at the last look
        self._held_since: float | None = None  # monotonic time the consistent stretch began

    @property
    def held(self) -> bool:
        """Whether expiry is held for a clock jump."""
        return self._held_since is not None

    async def startup(self, now: float) -> float | None:
        """The start-up look, before anything is measured against the clock:
        the newest time the previous run recorded when the clock is more than
        ``jump_s`` from it either way and the jump is not accepted (durations
        that ran across the restart are counted up to it: docs/sessions.md
        "Store-and-forward"), else None."""
        await self._first_look(now)
        self._last = (now, self.monotonic())
        seen = self._seen
        if seen is None or self.accept or abs(now - seen) <= self.jump_s:
            return None
        return seen

    async def check(self, now: float) -> bool:
        """Look at the clock at wall time ``now``; whether expiry may run."""
        mono = self.monotonic()
        if self._last is None:
            await self._first_look(now)
        else:
            wall0, mono0 = self._last
            drift = (now - wall0) - (mono - mono0)
            if abs(drift) > self.jump_s:
                self._jumped(now, wall0 + (mono - mono0), mono)
        self._last = (now, mono)
        if self._held_since is not None:
            if self._seen is not None and abs(now - self._seen) <= self.jump_s:
                log.warning("wall clock %s is back within %.0f s of the newest recorded time %s: "
                            "expiry resumes", _when(now), self.jump_s, _when(self._seen))
                self._held_since = None
            elif mono - self._held_since >= self.settle_s:
                log.warning("wall clock consistent for %.0f s since the jump: expiry resumes at %s",
                            self.settle_s, _when(now))
                self._held_since = None
            else:
                return False
        if self._seen is None or now > self._seen:
            self._seen = now
        if self._written is None or mono - self._written >= self.record_every:
            await self.record()
        return True

    async def record(self) -> None:
        """Write the newest time seen (not while held: the record is what a
        jump is measured against), and only when it moved: a second stop
        writes nothing to a closed store."""
        if self._held_since is not None or self._seen is None or self._seen == self._recorded:
            return
        self._written = self.monotonic()
        self._recorded = self._seen
        await self.ctx.apply(Outcome(ops=[KvPut(CLOCK_NS, _SEEN, {"t": self._seen})]))

    async def _first_look(self, now: float) -> None:
        stored: Any = await self.ctx.store.kv_get(CLOCK_NS, _SEEN)
        seen = float(stored["t"]) if isinstance(stored, dict) and "t" in stored else None
        self._seen = self._recorded = seen
        if seen is None:
            return
        if now - seen > self.jump_s:
            if self.accept:
                log.warning("wall clock %s is %.0f s ahead of the newest time this CSE recorded (%s); "
                            "accepted by [cse] accept_clock_jump: expiry runs now", _when(now), now - seen,
                            _when(seen))
                return
            self._held_since = self.monotonic()
            log.warning("wall clock %s is %.0f s ahead of the newest time this CSE recorded (%s): "
                        "expiry is held (no resource is deleted for expiry) until the clock is back, "
                        "stays consistent for %.0f s, or the jump is accepted with --accept-clock-jump "
                        "(docs/troubleshooting.md \"Clock jumps\")", _when(now), now - seen, _when(seen),
                        self.settle_s)
        elif seen - now > self.jump_s:
            log.warning("wall clock %s is %.0f s behind the newest time this CSE recorded (%s): "
                        "resources expire late, not early (docs/troubleshooting.md \"Clock jumps\")",
                        _when(now), seen - now, _when(seen))

    def _jumped(self, now: float, expected: float, mono: float) -> None:
        if now > expected:
            if self.accept:
                log.warning("wall clock jumped forward by %.0f s (to %s, expected %s); accepted by "
                            "[cse] accept_clock_jump", now - expected, _when(now), _when(expected))
                return
            self._held_since = mono
            log.warning("wall clock jumped forward by %.0f s (to %s, expected %s): expiry is held until "
                        "the clock is back or stays consistent for %.0f s (docs/troubleshooting.md "
                        "\"Clock jumps\")", now - expected, _when(now), _when(expected), self.settle_s)
        else:
            if self._held_since is not None:
                self._held_since = mono  # a further jump: the consistent stretch starts again
            log.warning("wall clock jumped backward by %.0f s (to %s, expected %s): resources expire late, "
                        "not early (docs/troubleshooting.md \"Clock jumps\")", expected - now, _when(now),
                        _when(expected))

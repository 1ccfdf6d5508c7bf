"""The one executor: commits an outcome, emits its events, hands out its
sends, arms timers from its deadlines.

Every change to the store goes through :meth:`Executor.run`, whatever CSF
decided it, so the order that correctness depends on holds everywhere:

1. the outcome's operations are committed atomically (one store commit:
   one transaction for a backend that has them) and are durable;
2. its events (plus DELETE/DELETE_CHILD for whatever a removal took away)
   go to the listeners, in registration order; a listener answers with an
   outcome of its own (notifications, deadlines), run the same way;
3. its notifications go to the delivery queue;
4. timers are armed: every stored document with an ``et`` brings the expiry
   timer forward when it is sooner (TS-0001 9.6.1.3: a resource is deleted
   at its expirationTime), and every explicit :class:`Deadline` pokes the
   timer it names.

Nothing here reads the clock or knows a CSF; the composition root passes
the store, the listeners, the delivery queue and the timers in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from .events import Event, EventKind
from .outcome import EXPIRY, Deadline, Notification, Outcome
from .ports import CommitResult, Op, Put, Store, Timer
from .timestamps import format_ts, parse_ts

__all__ = ["Executor", "Listener", "Deliver"]

Listener = Callable[[Sequence[Event]], Awaitable[Outcome | None]]
Deliver = Callable[[Notification], None]

_NOTHING = CommitResult()


class Executor:
    """Applies outcomes (module docstring)."""

    def __init__(self, store: Store, *, listeners: Sequence[Listener] = (), deliver: Deliver | None = None,
                 timers: Mapping[str, Timer] | None = None) -> None:
        self._store = store
        self._listeners = tuple(listeners)
        self._deliver = deliver
        self._timers = dict(timers or {})
        self._expiry = self._timers.get(EXPIRY)
        self._armed: tuple[float | None, str] = (None, "")

    async def run(self, outcome: Outcome) -> CommitResult:
        """Commit, emit, send, arm (module docstring); the commit's result.
        Every request with an effect passes here: parts an outcome does not
        have cost a test each, nothing more."""
        ops = outcome.ops
        result = await self._store.commit(ops) if ops else _NOTHING
        events: Sequence[Event] = outcome.events
        removal = outcome.removal
        if removal is not None:
            gone = [*events, *(Event(EventKind.DELETE, d, originator=removal.originator) for d in result.removed)]
            if removal.parent is not None:
                gone.append(Event(EventKind.DELETE_CHILD, removal.doc, removal.parent, originator=removal.originator))
            events = gone
        follow: list[Outcome] | None = None
        if events:
            for listener in self._listeners:
                more = await listener(events)
                if more is not None:
                    if follow is None:
                        follow = []
                    follow.append(more)
        if outcome.sends and self._deliver is not None:
            for notification in outcome.sends:
                self._deliver(notification)
        if ops and self._expiry is not None:
            self._arm_expiry(self._expiry, ops)
        if outcome.deadlines:
            self._arm_deadlines(outcome.deadlines)
        if follow is not None:
            for more in follow:
                await self.run(more)
        return result

    def _arm_expiry(self, expiry: Timer, ops: Sequence[Op]) -> None:
        """Bring the expiry timer forward to the soonest ``et`` stored."""
        armed = self._armed_ts(expiry)
        for op in ops:
            if type(op) is Put:
                et = op.doc.get("et")
                if et is not None and et < armed:
                    expiry.poke(parse_ts(et))
                    armed = self._armed_ts(expiry)

    def _arm_deadlines(self, deadlines: Sequence[Deadline]) -> None:
        for deadline in deadlines:
            timer = self._timers.get(deadline.timer)
            if timer is not None:
                timer.poke(deadline.at)

    def _armed_ts(self, timer: Timer) -> str:
        """The expiry timer's deadline as a timestamp, formatted once per
        deadline (compared with ``et`` strings on every stored document)."""
        deadline = timer.deadline
        if deadline is None:
            return "\U0010ffff"  # not armed: any et is sooner
        if self._armed[0] != deadline:
            self._armed = (deadline, format_ts(deadline))
        return self._armed[1]

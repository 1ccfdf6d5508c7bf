"""The one executor: emits an outcome's events, commits it with its
notifications, hands those out, arms timers from its deadlines.

Every change to the store goes through :meth:`Executor.run`, whatever CSF
decided it, so the order that correctness depends on holds everywhere:

1. its events (plus DELETE/DELETE_CHILD for whatever a removal takes
   away, read from the store just before the commit) go to the listeners,
   in registration order; a listener answers with an outcome of its own
   (notifications, outbox deletions, deadlines) that joins this one. It may
   answer with events too -- the changes it adds (its ``Delete`` of a
   resource this change leaves pointless, e.g. a group's member
   subscriptions when the group goes, cse/csf/group.py) -- and every
   listener hears those in a further round, at most ``_MAX_ROUNDS`` deep;
   they join this change's commit like the rest;
2. the outcome's operations and an outbox entry for every notification
   (its own and its listeners', cse/core/outbox.py) are committed
   atomically (one store commit: one transaction for a backend that has
   them) and are durable: a change is never acknowledged without its
   notifications (docs/architecture.md "The outbox");
3. its notifications go to the delivery queue, which deletes their
   entries once they are settled;
4. timers are armed: every stored document with an ``et`` brings the expiry
   timer forward when it is sooner (TS-0001 9.6.1.3: a resource is deleted
   at its expirationTime), and every explicit :class:`Deadline` pokes the
   timer it names.

Listeners therefore see the store as it is *before* the change (the events
carry the changed documents); they must not change anything themselves,
only answer. Nothing is sent before the commit is durable (TS-0001
10.2.10: notifications follow the change they report). Staging and the
listeners do not suspend with the in-memory indexed stores, so the subtree
read and the commit see the same tree; should a backend suspend and a
commit remove more than was read, the listeners hear of the rest after the
commit and its notifications get a commit of their own.

An outcome that asks a question first (:class:`~cse.core.outcome.Ask`) is
settled before anything else (:meth:`Executor.settle`): the executor sends
the question through its ``ask`` port, waits at most the question's
timeout, and the asking step's continuation decides the final outcome. A
CSF that needs an answer thus never sends or waits itself.

Nothing here reads the clock or knows a CSF; the composition root passes
the store, the listeners, the delivery queue, the outbox, the timers and
the ``ask`` port in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from .errors import M2MError, NotImplementedOp, RequestTimeout
from .events import Event, EventKind
from .messages import Response
from .outbox import Outbox
from .outcome import EXPIRY, Ask, Notification, Outcome
from .ports import CommitResult, Doc, Put, Store, Timer
from .timestamps import format_ts, parse_ts

__all__ = ["Executor", "Listener", "Deliver", "AskPort"]

Listener = Callable[[Sequence[Event]], Awaitable[Outcome | None]]
Deliver = Callable[[Notification], None]
AskPort = Callable[[Ask], Awaitable[Response]]
_MAX_ASKS = 4  # questions one request may chain before it is answered
# Rounds of listener-answered events one change may cause (module docstring):
# a change, the deletions it implies, the deletions those imply.
_MAX_ROUNDS = 3

_NOTHING = CommitResult()


class Executor:
    """Applies outcomes (module docstring)."""

    def __init__(self, store: Store, *, listeners: Sequence[Listener] = (), deliver: Deliver | None = None,
                 timers: Mapping[str, Timer] | None = None, outbox: Outbox | None = None,
                 observe_commit: Callable[[float], None] | None = None,
                 perf: Callable[[], float] = time.perf_counter, ask: AskPort | None = None) -> None:
        """Without an ``outbox`` notifications are handed out unstored (tests
        of other steps). ``observe_commit(seconds)`` hears how long each
        store commit took, on ``perf``'s clock (cse.observe.metrics).
        ``ask`` sends an outcome's question and returns the answer
        (the notifier's immediate send)."""
        self._ask = ask
        self._observe_commit = observe_commit
        self._perf = perf
        self._store = store
        self._listeners = tuple(listeners)
        self._deliver = deliver
        self._timers = dict(timers or {})
        self._outbox = outbox
        self._expiry = self._timers.get(EXPIRY)
        self._armed: tuple[float | None, str] = (None, "")

    async def settle(self, outcome: Outcome) -> Outcome:
        """``outcome`` with its questions asked and answered (module
        docstring); raises what a continuation raises to refuse."""
        for _ in range(_MAX_ASKS):
            ask = outcome.ask
            if ask is None:
                return outcome
            answer: Response | M2MError
            if self._ask is None:
                answer = NotImplementedOp("this CSE cannot ask questions before answering")
            else:
                try:
                    answer = await asyncio.wait_for(self._ask(ask), ask.timeout)
                except TimeoutError:
                    answer = RequestTimeout(f"no answer from {ask.target[:100]} within {ask.timeout:g} s")
                except M2MError as exc:
                    answer = exc
            outcome = await ask.then(answer)
        raise NotImplementedOp(f"a request asked more than {_MAX_ASKS} questions before it could be answered")

    async def run(self, outcome: Outcome) -> CommitResult:
        """Emit, commit, send, arm (module docstring); the commit's result.
        An outcome that still asks a question is settled first."""
        if outcome.ask is not None:
            outcome = await self.settle(outcome)
        events = list(outcome.events)
        removal = outcome.removal
        read: set[str] | None = None
        if removal is not None and self._listeners:
            removed = await self._subtree(removal.doc["ri"])
            read = {d["ri"] for d in removed}
            events.extend(Event(EventKind.DELETE, d, originator=removal.originator) for d in removed)
            if removal.parent is not None:
                events.append(Event(EventKind.DELETE_CHILD, removal.doc, removal.parent,
                                    originator=removal.originator))
        if events:
            outcome = await self._heard(outcome, events)
            if read is not None:  # what listeners deleted was heard: not "late" below
                read.update(ev.doc["ri"] for ev in outcome.events if ev.kind == EventKind.DELETE)
        sends: Sequence[Notification] = outcome.sends
        ops = outcome.ops
        if sends and self._outbox is not None:
            sends, staged = self._outbox.stage(sends)
            ops = (*ops, *staged)
        if not ops:
            result = _NOTHING
        elif self._observe_commit is None:
            result = await self._store.commit(ops)
        else:
            started = self._perf()
            result = await self._store.commit(ops)
            self._observe_commit(self._perf() - started)
        if sends and self._deliver is not None:
            for notification in sends:
                self._deliver(notification)
        self._arm(outcome)
        if read is not None and removal is not None:
            late = [d for d in result.removed if d["ri"] not in read]
            if late:  # removed by the commit but not there when read (module docstring)
                after = await self._heard(Outcome(), [Event(EventKind.DELETE, d, originator=removal.originator)
                                                     for d in late])
                await self.run(Outcome(ops=after.ops, sends=after.sends, deadlines=after.deadlines))
        return result

    async def _heard(self, outcome: Outcome, events: Sequence[Event]) -> Outcome:
        """``outcome`` with what the listeners answer to ``events``, the
        events they answer with heard in turn (module docstring); when there
        were any, its ``events`` are every event heard."""
        heard: list[Event] | None = None  # built only when a listener answers with events (rare)
        for _ in range(_MAX_ROUNDS):
            answered: list[Event] = []
            for listener in self._listeners:
                more = await listener(events)
                if more is not None:
                    outcome = outcome.adding(ops=more.ops, sends=more.sends, deadlines=more.deadlines)
                    answered.extend(more.events)
            if not answered:
                return outcome if heard is None else replace(outcome, events=heard)
            heard = [*(heard or events), *answered]
            events = answered
        raise RuntimeError(f"listeners kept answering with events after {_MAX_ROUNDS} rounds: "
                           f"{[(ev.kind, ev.doc.get('ri')) for ev in events][:10]}")

    async def _subtree(self, ri: str) -> list[Doc]:
        """The document ``ri`` and its descendants, as a Delete of it removes them."""
        top = await self._store.get(ri)
        if top is None:
            return []
        out = [top]
        i = 0
        while i < len(out):
            out.extend(await self._store.children(out[i]["ri"]))
            i += 1
        return out

    def _arm(self, outcome: Outcome) -> None:
        expiry = self._expiry
        if expiry is not None:
            for op in outcome.ops:
                if type(op) is Put:
                    et = op.doc.get("et")
                    if et is not None and et < self._armed_ts(expiry):
                        expiry.poke(parse_ts(et))
        for deadline in outcome.deadlines:
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

"""Notification delivery, off the request path (TS-0004 7.5.1.2.2, docs/onem2m.md,
docs/security.md "Outbound requests").

Requests only *enqueue*. Ordering is kept per key (a subscription and one
of its targets, or a non-blocking request's result target): a key is sent
by at most one task at a time, in FIFO order. How many sends are in
flight is bounded in all, per target (address and port) and per
originator (cse/csf/send_slots.py), so a slow or dead target delays its
own queue and at most a few slots of its originator, never everybody
else's notifications. Each send has a timeout; a refused connection is
retried a bounded number of times with backoff, a timeout is not (a slow
peer stays slow), and a target that just failed gets no retries for a
while, so a dead receiver costs one failure per notification, not minutes
of send time. ``ln`` (latest only) and ``bn`` (batches of ``num``, sent at
the latest after ``dur``) are handled here too.

Queues are bounded, and no loss is silent (docs/onem2m.md "Subscriptions
and notifications"): past the per-key limit the oldest pending
notification is dropped. Every notification that is not delivered (dropped
from a full queue, failed, discarded with its subscription or unsent at
stop) is counted in :attr:`Notifier.dropped_by_key` / ``failed_by_key``; a
WARNING with the counts is logged at most once per ``warn_interval``
seconds; and the next ``m2m:sgn`` that does reach that target for that
subscription carries ``"dropped": N``, the number of notifications lost
since the previous delivered one (docs/onem2m.md "Choices"). An ``ln``
replacement is what the subscriber asked for: counted in ``coalesced``,
not reported as a loss.

Nothing goes to a target before two checks (docs/security.md "Outbound
requests"): its URL passes the outbound policy (cse/csf/outbound.py),
checked at every send because a name may resolve differently over time;
and it has answered a verification request
(``{"m2m:sgn": {"vrq": true, "sur": ..., "cr": ...}}``, TS-0004 7.4.8.2.1)
with 2000 for the notification's originator -- when it has not yet (a
``su``, an ``X-M2M-RTU`` target, an AE's ``poa``, or any target after a
restart), one is sent first, and a target that does not accept it gets
nothing else. Which targets accepted is remembered in memory
(:class:`cse.csf.outbound.VerifiedTargets`).

Targets are URLs (used as given, without the ``ct`` hint) or AEs, named
by AE-ID or resource ID (structured or not), resolved to that AE's first
http(s) ``poa``; the content is JSON or CBOR as the target prefers
(cse/csf/content_serialization.py); entities on other CSEs are reached
through the CSEs. An
AE with ``rr`` false is not reachable (TS-0001 9.6.5): nothing is sent to
its ``poa``; with a ``<pollingChannel>`` the notification waits in its
mailbox until the AE fetches and answers it through ``pcu``
(cse/csf/polling.py; settled in the outbox only then, failed after the
timeout like any target), without one it counts as failed. An AE that
connected over a WebSocket (docs/bindings.md "WebSocket") is served from
that same mailbox by its connection, whatever its ``rr`` and ``poa``. An AE whose
``srv`` is known is spoken to in the newest release both support, a
release 2 one without ``X-M2M-RVI``; each NOTIFY carries its
subscription's event category (``ec``, ``X-M2M-EC``).

Pending notifications are durable (docs/architecture.md "The outbox"): each
arrives with the outbox entry the executor committed with its change, and
the entry is deleted (batched, through the executor) once the notification
is settled -- delivered, failed, dropped, replaced under ``ln`` or
discarded with its subscription. A stop or a crash leaves the rest in the
outbox; :meth:`Notifier.load` queues them again at start-up, oldest first,
so they are delivered at least once (one in flight at a crash is sent
again). The ``exc`` countdown is committed with the deletion of the entry
that counted, and the event's other entries lose their ``exc`` in the same
commit, so an event counts once across restarts too.

Besides the per-key limit, the queues are bounded per target
(``max_per_target``, over all subscriptions) and in all (``max_total``):
past either the oldest queued notification of that target (or of all) is
dropped and counted like any loss. A dead target does not fill the outbox:
each of its notifications is tried (once while the target is quarantined),
counted as failed and its entry deleted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    M2MError,
    RequestTimeout,
    SubscriptionVerificationInitiationFailed,
    TargetNotReachable,
)
from cse.core.ids import new_ri, normalize_originator, parse_to
from cse.core.messages import Operation, Request, Response, rvi_for
from cse.core.outbox import Outbox
from cse.core.outcome import Batching, Notification, OnSent, Outcome
from cse.core.ports import Doc, Op, Outbound
from cse.core.tasks import cancel_and_wait

from .content_serialization import mqtt_receiver, target_media
from .outbound import Destination, OutboundPolicy, VerifiedTargets, is_url, strip_ct
from .polling import POLLING_CHANNEL_TY, Mailboxes
from .send_slots import SendSlots

__all__ = ["Notifier", "CountDown", "NotRequestReachable", "verification_request"]

log = logging.getLogger("cse.notify")


AE_TY = 2


class NotRequestReachable(TargetNotReachable):
    """5103: the target AE has ``rr`` false. It is not reachable by
    definition (TS-0001 9.6.5): a notification for it goes through its
    pollingChannel, and without one it is not sent at all, not to its
    ``poa`` either (docs/onem2m.md "pollingChannel")."""


@dataclass
class _Job:
    payload: dict[str, Any]
    on_sent: OnSent | None = None
    note: Notification | None = None  # as staged in the outbox (entry, exc, event)
    seq: int = 0                      # queueing order (the per-target and total bounds drop the oldest)


@dataclass
class _Queue:
    key: str
    target: str
    owner: str | None = None  # whose notifications these are (verification, per-originator slots)
    sur: str | None = None    # what they are about (the verification request names it)
    ec: int | None = None     # the event category of the NOTIFY (the subscription's nec)
    jobs: deque[_Job] = field(default_factory=deque)
    batching: Batching | None = None
    timer: asyncio.TimerHandle | None = None
    latest: bool = False      # ``ln``: only the newest job is kept
    events: int = 0           # under ``ln`` and ``bn``: events of the batch being gathered
    sealed: int = 0           # under ``ln`` and ``bn``: head jobs that each close a batch (never replaced)


Attempted = Callable[[str, str, bool], None]
"""(queue key, target, answered): one notification request was sent."""

CountDown = Callable[[str], Awaitable[Outcome | None]]
"""The outcome counting a subscription's ``exc`` down by one (None: nothing to count)."""


def is_fan_out_point(target: str) -> bool:
    """``target`` names a group's fanOutPoint (``.../<group>/fopt``), not a URL."""
    return not is_url(target) and target.rstrip("/").rsplit("/", 1)[-1] == "fopt"


def verification_request(sur: str | None, cr: str | None) -> dict[str, Any]:
    """``{"m2m:sgn": {"vrq": true, "sur": ..., "cr": ...}}`` (TS-0004 7.4.8.2.1); absent parts left out."""
    sgn: dict[str, Any] = {"vrq": True}
    if sur:
        sgn["sur"] = sur
    if cr:
        sgn["cr"] = cr
    return {"m2m:sgn": sgn}


class Notifier:
    """Queues and sends notifications (see module docstring)."""

    def __init__(self, ctx: Context, outbound: Outbound, forward: Callable[[Request], Awaitable[Response]], *,
                 policy: OutboundPolicy, slots: SendSlots | None = None, verified: VerifiedTargets | None = None,
                 timeout: float = 5.0, retries: int = 2, backoff: float = 0.5,
                 max_per_key: int = 1000, quarantine: float = 10.0, warn_interval: float = 60.0,
                 max_unreported: int = 10_000, max_per_target: int = 10_000, max_total: int = 100_000,
                 outbox: Outbox | None = None, count_down: CountDown | None = None,
                 settle_after: float = 0.05, channels: Mailboxes | None = None,
                 attempted: Attempted | None = None,
                 serialize: Callable[[], AbstractAsyncContextManager[None]] | None = None) -> None:
        """``forward`` sends a NOTIFY through the CSEs (the dispatcher) to a
        target on another CSE; ``policy`` says which URLs may be sent to,
        ``slots`` how many sends may be in flight (in all, per target, per
        originator), ``verified`` remembers which targets accepted.
        ``max_per_key`` bounds each queue, ``warn_interval`` how often the
        loss WARNING may be logged, ``max_unreported`` how many (key, target)
        pairs remember a loss not yet reported to their target.
        ``max_per_target`` and ``max_total`` bound what is queued for one
        target and in all. ``outbox`` reads back and settles outbox entries
        (none: notifications are not stored); ``count_down`` gives the
        outcome of a delivered notification's ``exc``; settled entries are
        deleted ``settle_after`` seconds after the first of a batch (one
        commit for all settled meanwhile: a crash in between sends them
        again, as at-least-once allows). ``channels`` reaches AEs with
        ``rr`` false that have a pollingChannel (none: they are not
        reached at all). ``attempted(key, target, answered)`` hears of each
        notification request sent from a queue (notification statistics,
        cse/csf/sub_monitor.py). ``serialize``: the write gate of several
        workers (docs/scaling.md), held from reading a subscription for its
        ``exc`` countdown to committing it."""
        self.attempted = attempted
        self._serialize = serialize or nullcontext
        self.ctx = ctx
        self.channels = channels
        self.outbound = outbound
        self.forward = forward
        self.policy = policy
        self.slots = slots or SendSlots()
        self.verified = verified or VerifiedTargets()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_per_key = max_per_key
        self.quarantine = quarantine
        self.warn_interval = warn_interval
        self._queues: dict[str, _Queue] = {}
        self._by_key: dict[str, set[str]] = {}
        self._scheduled: set[str] = set()
        self._waiting: list[str] = []  # ready before start()
        self._running = False
        self._down_until: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.max_unreported = max_unreported
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # not delivered without being tried: queue full, discarded, unsent at stop
        self.coalesced = 0  # replaced by a newer one under ``ln`` (latest only), as the subscriber asked
        self.dropped_by_key: Counter[str] = Counter()  # subscription/request key -> dropped
        self.failed_by_key: Counter[str] = Counter()   # subscription/request key -> tried and not delivered
        self._unreported: dict[str, int] = {}  # qkey -> lost since the last delivered m2m:sgn
        self._unlogged: Counter[str] = Counter()  # target -> losses not in a WARNING yet
        self._next_warn = float("-inf")
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        self.max_per_target = max_per_target
        self.max_total = max_total
        self.outbox = outbox
        self.count_down = count_down
        self._seq = itertools.count(1)
        self._oldest: OrderedDict[int, str] = OrderedDict()  # queued job seq -> qkey, oldest first
        self._oldest_by_target: dict[str, OrderedDict[int, str]] = {}
        self._exc_open: dict[str, dict[int, _Job]] = {}  # event -> job seq -> job whose exc may still count
        self._counting: set[str] = set()  # events whose countdown is being committed
        self._settled: list[str] = []  # outbox entries to delete
        self._settling: asyncio.Task[None] | None = None
        self.settle_after = settle_after

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Start sending (what was queued before is sent now)."""
        self._running = True
        waiting, self._waiting = self._waiting, []
        for qkey in waiting:
            self._spawn(qkey)
        if self._settled and self._settling is None:
            self._settling = asyncio.get_running_loop().create_task(self._settle(), name="notify-settle")

    async def stop(self) -> None:
        """Stop sending; unsent notifications are dropped, counted and logged."""
        self._running = False
        for q in self._queues.values():
            if q.timer is not None:
                q.timer.cancel()
        await cancel_and_wait(*list(self._tasks))
        self._tasks = set()
        kept = 0
        for q in self._queues.values():
            stored = sum(1 for j in q.jobs if j.note is not None and j.note.entry is not None)
            kept += stored
            if len(q.jobs) > stored:  # not in the outbox: lost with this process
                self._lose(q, len(q.jobs) - stored, report=False)
            q.jobs.clear()
        self._queues.clear()
        self._by_key.clear()
        self._oldest.clear()
        self._oldest_by_target.clear()
        self._exc_open.clear()
        if self._settling is not None:
            self._settling.cancel()  # (only its wait: a commit in progress finishes)
            await asyncio.gather(self._settling, return_exceptions=True)
        await self._settle(wait=False)  # what is settled leaves the outbox before the store closes
        self._warn(force=True)
        if self.sent or self.failed or self.dropped or self.coalesced or kept:  # a failed start says one line only
            log.info("notifier stopped: %d sent, %d failed, %d dropped, %d coalesced (ln), "
                     "%d kept in the outbox for the next start",
                     self.sent, self.failed, self.dropped, self.coalesced, kept)

    @property
    def pending(self) -> int:
        """Notifications queued and not yet delivered (GET /health, /metrics)."""
        return len(self._oldest)

    def stats(self) -> dict[str, Any]:
        """The counters, for operators: totals and the keys that lost notifications."""
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped, "coalesced": self.coalesced,
                "droppedByKey": dict(self.dropped_by_key), "failedByKey": dict(self.failed_by_key)}

    async def drained(self, timeout: float) -> None:
        """Wait until nothing is queued or in flight (tests, shutdown)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # -- enqueueing ------------------------------------------------------------
    def deliver(self, n: Notification) -> None:
        """Queue a notification an outcome carries (the executor's hand-off)."""
        self.enqueue(n.key, n.target, n.payload, latest=n.latest, batching=n.batching, on_sent=n.on_sent,
                     owner=n.owner, sur=n.sur, note=n, ec=n.ec)

    async def load(self) -> int:
        """Queue every outbox entry a previous run left, oldest first (at
        start-up, before anything is committed); how many."""
        if self.outbox is None:
            return 0
        pending = await self.outbox.open()
        for n in pending:
            self.deliver(n)
        return len(pending)

    def enqueue(self, key: str, target: str, payload: dict[str, Any], *, latest: bool = False,
                batching: Batching | None = None, on_sent: OnSent | None = None,
                owner: str | None = None, sur: str | None = None, note: Notification | None = None,
                ec: int | None = None) -> None:
        """Queue ``payload`` for ``target`` in the FIFO named ``key``.

        ``on_sent`` runs after the receiver accepted it (2xxx). ``owner``
        (the originator the notification is sent for) and ``sur`` (what it
        is about) go into the verification request when ``target`` has not
        accepted one from ``owner`` yet. ``ec`` is the event category the
        NOTIFY carries.
        """
        qkey = f"{key}\x00{target}"
        q = self._queues.get(qkey)
        if q is None:
            q = self._queues[qkey] = _Queue(key, target, owner, sur)
            self._by_key.setdefault(key, set()).add(qkey)
        q.batching = batching
        q.latest = latest
        q.ec = ec
        if not latest or batching is None:  # (ln or bn changed by an UPDATE) nothing is sealed
            q.sealed = q.events = 0
        if latest:
            replaced = list(q.jobs)[q.sealed:]  # a closed batch keeps its latest
            self.coalesced += len(replaced)
            self._forget(q, replaced)
            for _ in replaced:
                q.jobs.pop()
        elif len(q.jobs) >= self.max_per_key:
            self._drop_head(q)
        job = _Job(payload, on_sent, note, next(self._seq))
        q.jobs.append(job)
        if latest and batching is not None:
            q.events += 1
            if q.events >= batching.num:  # this batch is complete: its latest goes out as it is
                q.sealed, q.events = len(q.jobs), 0
        self._oldest[job.seq] = qkey
        self._oldest_by_target.setdefault(target, OrderedDict())[job.seq] = qkey
        if note is not None and note.exc is not None and note.event is not None:
            self._exc_open.setdefault(note.event, {})[job.seq] = job
        self._bound(target)
        self._idle.clear()
        if not self._batch_full(q):
            if q.timer is None and batching is not None:
                q.timer = asyncio.get_running_loop().call_later(batching.dur, self._mark_ready, qkey)
            return
        self._mark_ready(qkey)

    def discard(self, key: str) -> int:
        """Drop everything still pending for ``key`` (a deleted subscription);
        their outbox entries are deleted with the next batch. How many."""
        return self._discard(key, later=True)[0]

    def discarding(self, key: str) -> list[Op]:
        """:meth:`discard`, the deletion of the outbox entries left to the
        caller: the ops, for the commit deleting the subscription."""
        entries = self._discard(key, later=False)[1]
        return self.outbox.done(entries) if self.outbox is not None and entries else []

    def _discard(self, key: str, *, later: bool) -> tuple[int, list[str]]:
        n = 0
        entries: list[str] = []
        for qkey in self._by_key.pop(key, set()):
            self._unreported.pop(qkey, None)  # nobody left to tell
            q = self._queues.get(qkey)
            if q is None:
                continue
            n += len(q.jobs)
            entries.extend(self._forget(q, q.jobs, later=later))
            q.jobs.clear()
            q.events = q.sealed = 0
            if q.timer is not None:
                q.timer.cancel()
                q.timer = None
            if qkey not in self._scheduled:
                del self._queues[qkey]
        self.dropped += n
        if n:
            self.dropped_by_key[key] += n
        self._maybe_idle()
        return n, entries

    # -- bounds and the outbox (module docstring) ---------------------------------------
    def _bound(self, target: str) -> None:
        """Drop the oldest queued notification of ``target`` past
        ``max_per_target``, the oldest of all past ``max_total``."""
        mine = self._oldest_by_target.get(target)
        while mine and len(mine) > self.max_per_target:
            self._drop_head(self._queues[next(iter(mine.values()))])
        while len(self._oldest) > self.max_total:
            self._drop_head(self._queues[next(iter(self._oldest.values()))])

    def _drop_head(self, q: _Queue) -> None:
        """Drop the oldest queued notification of ``q``, counted and reported."""
        q.sealed = max(0, q.sealed - 1)
        self._forget(q, [q.jobs.popleft()])
        self._lose(q, 1)
        self._warn()

    def _unqueue(self, job: _Job, target: str) -> None:
        """``job`` left its queue (sent now, or settled)."""
        self._oldest.pop(job.seq, None)
        mine = self._oldest_by_target.get(target)
        if mine is not None:
            mine.pop(job.seq, None)
            if not mine:
                del self._oldest_by_target[target]

    def _forget(self, q: _Queue, jobs: Iterable[_Job], *, later: bool = True) -> list[str]:
        """``jobs`` of ``q`` will not be sent: out of the bounds' books; their
        outbox entries, deleted with the next batch (``later``) or by the caller."""
        entries = []
        for job in jobs:
            self._unqueue(job, q.target)
            entry = self._settle_later(job, later=later)
            if entry is not None:
                entries.append(entry)
        return entries

    def _settle_later(self, job: _Job, *, later: bool = True) -> str | None:
        """Delete ``job``'s outbox entry with the next batch (``later``); the entry."""
        note = job.note
        if note is None:
            return None
        if note.event is not None:
            open_ = self._exc_open.get(note.event)
            if open_ is not None:
                open_.pop(job.seq, None)
                if not open_:
                    del self._exc_open[note.event]
        if note.entry is None:
            return None
        if later:
            self._settled.append(note.entry)
            if self._settling is None and self._running:
                self._settling = asyncio.get_running_loop().create_task(self._settle(), name="notify-settle")
        return note.entry

    def _maybe_idle(self) -> None:
        if not self._queues and self._busy == 0 and not self._settled and self._settling is None:
            self._idle.set()

    async def _settle(self, wait: bool = True) -> None:
        """Delete the settled entries, as many per commit as have gathered
        meanwhile (one commit per batch, not per notification)."""
        try:
            if wait and self.settle_after > 0:
                await asyncio.sleep(self.settle_after)  # let a batch gather
            while self._settled and self.outbox is not None:
                batch, self._settled = self._settled, []
                try:
                    await self.ctx.apply(Outcome(ops=self.outbox.done(batch)))
                except Exception:  # the store cannot write: the entries go with a later batch
                    log.exception("%d settled outbox entries not deleted yet", len(batch))
                    self._settled[:0] = batch
                    return
            self._settled.clear()
        finally:
            self._settling = None
            self._maybe_idle()

    async def _counted(self, job: _Job) -> bool:
        """Count down the ``exc`` of a delivered ``job`` when it is the first
        of its event to be accepted: one commit with the countdown, the
        deletion of its entry and its siblings' entries without ``exc``.
        Whether its entry was settled here."""
        note = job.note
        if note is None or note.exc is None or note.event is None or self.count_down is None:
            return False
        if note.event in self._counting or job.seq not in self._exc_open.get(note.event, {}):
            return False  # another target's delivery counts (or counted) this event
        self._counting.add(note.event)
        try:
            async with self._serialize():
                await self._count_down(job, note)
        finally:
            self._counting.discard(note.event)
        return note.entry is not None

    async def _count_down(self, job: _Job, note: Notification) -> None:
        """Commit ``exc`` minus one with the settled entries (:meth:`_counted`)."""
        assert self.count_down is not None and note.exc is not None and note.event is not None
        outcome = await self.count_down(note.exc) or Outcome()
        # read after the await: siblings settled meanwhile are gone (never written back)
        siblings = self._exc_open.pop(note.event, {})
        ops: list[Op] = []
        if self.outbox is not None:
            if note.entry is not None:
                ops.extend(self.outbox.done([note.entry]))
            for other in siblings.values():  # in memory they no longer count: the event left _exc_open
                if other is not job and other.note is not None and other.note.entry is not None:
                    ops.append(self.outbox.rewrite(replace(other.note, exc=None)))
        await self.ctx.apply(outcome.adding(ops=ops))

    # -- losses (docs/onem2m.md "Subscriptions and notifications") ---------------------
    def _lose(self, q: _Queue, n: int, *, failed: bool = False, report: bool = True) -> None:
        """Count ``n`` notifications of ``q`` that will not be delivered, and
        remember them for the next ``m2m:sgn`` that reaches its target."""
        if failed:
            self.failed_by_key[q.key] += n
        else:
            self.dropped += n
            self.dropped_by_key[q.key] += n
        self._unlogged[q.target] += n
        if report:
            qkey = f"{q.key}\x00{q.target}"
            self._unreported[qkey] = self._unreported.pop(qkey, 0) + n  # newest last
            while len(self._unreported) > self.max_unreported:
                del self._unreported[next(iter(self._unreported))]  # the oldest loss stays only counted

    def _warn(self, *, force: bool = False) -> None:
        """Log the losses not logged yet, at most once per ``warn_interval``."""
        if not self._unlogged:
            return
        now = self.ctx.clock.now()
        if not force and now < self._next_warn:
            return
        self._next_warn = now + self.warn_interval
        worst = ", ".join(f"{t[:100]} ({n})" for t, n in self._unlogged.most_common(5))
        log.warning("%d notification(s) not delivered to %d target(s) (queues full or sends failed; "
                    "totals: %d dropped, %d failed): %s",
                    sum(self._unlogged.values()), len(self._unlogged), self.dropped, self.failed, worst)
        self._unlogged.clear()

    def _with_loss(self, qkey: str, payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``payload`` with ``"dropped": N`` in its (first) ``m2m:sgn`` when
        notifications to this target were lost since the last delivered one
        (docs/onem2m.md "Choices"); a copy, since payloads are shared."""
        n = self._unreported.get(qkey, 0)
        if not n:
            return payload, 0
        sgn = payload.get("m2m:sgn")
        if isinstance(sgn, dict):
            return {**payload, "m2m:sgn": {**sgn, "dropped": n}}, n
        agn = payload.get("m2m:agn")
        if isinstance(agn, dict) and isinstance(agn.get("m2m:sgn"), list) and agn["m2m:sgn"]:
            first, *rest = agn["m2m:sgn"]
            return {**payload, "m2m:agn": {**agn, "m2m:sgn": [{**first, "dropped": n}, *rest]}}, n
        return payload, 0

    @staticmethod
    def _batch_full(q: _Queue) -> bool:
        """Whether ``q`` may send now: no ``bn``, or ``num`` notifications
        are waiting -- under ``ln``, a batch of ``num`` events has closed:
        only the newest of each batch is kept, yet every event counts
        (TS-0001 9.6.8: with both, each batch of ``num`` events sends only
        its latest). The ``dur`` timer sends a batch that did not fill."""
        if q.batching is None:
            return True
        return q.sealed > 0 if q.latest else len(q.jobs) >= q.batching.num

    def _mark_ready(self, qkey: str) -> None:
        q = self._queues.get(qkey)
        if q is not None and q.timer is not None:
            q.timer.cancel()
            q.timer = None
        if qkey not in self._scheduled:
            self._scheduled.add(qkey)
            if self._running:
                self._spawn(qkey)
            else:
                self._waiting.append(qkey)

    def _spawn(self, qkey: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send_next(qkey), name="notify")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- where to -----------------------------------------------------------------
    async def target_ae(self, target: str) -> Doc | None:
        """The local AE a target that is not a URL names: by AE-ID
        (``Cabc``, ``/id-in/Cabc``) or by resource ID, unstructured or
        structured, CSE- or SP-relative or absolute (``cse-in/myAE``,
        ``/id-in/cse-in/myAE``; TS-0001 9.6.8 ``notificationURI``: an AE
        resource's ID is a target). None for anything else."""
        if is_url(target):
            return None
        ident = self.ctx.identity
        store = self.ctx.store
        doc = await store.get(normalize_originator(target, ident.csi) or "")
        if doc is None:
            try:
                to = parse_to(target, ident.csi, ident.cb_name, ident.sp_id)
            except BadRequest:
                return None
            if not to.local:
                return None
            if to.structured:
                doc = await store.get_by_path(to.srn)
            elif len(to.segments) == 1:
                doc = await store.get(to.segments[0])
        return doc if doc is not None and doc.get("ty") == AE_TY else None

    @staticmethod
    def poa_url(ae: Doc) -> str | None:
        """The AE's first http(s) ``poa``, without its ``ct`` hint."""
        for poa in ae.get("poa") or ():
            if is_url(str(poa)):
                return strip_ct(str(poa))
        return None

    async def resolve(self, target: str) -> str | None:
        """A URL for ``target``: itself, or the named AE's first http(s) poa."""
        if is_url(target):
            return strip_ct(target)
        ae = await self.target_ae(target)
        return self.poa_url(ae) if ae is not None else None

    def is_remote(self, target: str) -> bool:
        """An entity on another CSE (``/id-cse2/Cae2``, ``//sp/id-cse2/Cae2``): sent through the CSEs."""
        ident = self.ctx.identity
        if target.startswith("//"):
            try:
                return not parse_to(target, ident.csi, ident.cb_name, ident.sp_id).local
            except BadRequest:
                return False  # not an ID at all: destination() says it has no address
        return target.startswith("/") and not target.startswith(ident.csi + "/") and target != ident.csi

    async def destination(self, target: str) -> Destination:
        """Where a notification for ``target`` goes, if the outbound policy allows it.

        An AE target is reached at its ``poa``, in the newest release its
        ``srv`` shares with ours (the destination's ``rvi``).

        Raises 4000 when the policy refuses the URL, 5103 when there is no
        URL (an AE without an http(s) ``poa``) or its name does not resolve,
        :class:`NotRequestReachable` (5103) for an AE with ``rr`` false.
        """
        if self.is_remote(target) or is_fan_out_point(target):
            # another CSE, or a group's fanOutPoint here (a group subscription's
            # nfu, cse/csf/group_subscription.py): through the dispatcher
            return Destination(target, target, remote=True)
        if is_url(target):
            named = mqtt_receiver(target)  # an mqtt URL names its receiver: a local AE's csz counts
            ae = await self.target_ae(named) if named else None
            return replace(await self.policy.check(strip_ct(target)), media=target_media(target, ae))
        ae = await self.target_ae(target)
        if ae is not None and self.over_websocket(ae):  # docs/bindings.md "WebSocket"
            return Destination(f"pcu:{ae['ri']}", f"pcu:{ae['ri']}", rvi=rvi_for(ae.get("srv")), channel=ae["ri"])
        if ae is not None and ae.get("rr") is False:
            if await self.has_channel(ae):
                return Destination(f"pcu:{ae['ri']}", f"pcu:{ae['ri']}", rvi=rvi_for(ae.get("srv")),
                                   channel=ae["ri"])
            raise NotRequestReachable(
                f"notification target AE '{target[:100]}' is not request reachable (rr is false) and this CSE "
                "has no pollingChannel: nothing is sent to it (docs/onem2m.md \"pollingChannel\")")
        url = self.poa_url(ae) if ae is not None else None
        if ae is None or url is None:
            raise TargetNotReachable(f"notification target '{target[:100]}' has no reachable http(s) address")
        return replace(await self.policy.check(url), rvi=rvi_for(ae.get("srv")), media=target_media(target, ae))

    def over_websocket(self, ae: Doc) -> bool:
        """The AE is reached over its WebSocket (TS-0020; docs/bindings.md
        "WebSocket"): its requests wait in its mailbox for the connection."""
        return self.channels is not None and self.channels.attached(ae["ri"])

    async def has_channel(self, ae: Doc) -> bool:
        """The AE has a pollingChannel this CSE serves (docs/onem2m.md "pollingChannel")."""
        return self.channels is not None and bool(await self.ctx.store.children(ae["ri"], POLLING_CHANNEL_TY))

    # -- sending ---------------------------------------------------------------
    async def verify(self, target: str, *, owner: str | None, sur: str | None, timeout: float | None = None) -> None:
        """Send ``target`` a verification request for ``owner`` now, and
        remember it when it answers 2000 (subscription CREATE/UPDATE: the
        request is sent even when the target accepted before, so that the
        receiver hears of each new subscription).

        Raises 4000 (policy), 5204 (any answer but 2000) or the error of the
        send (5103 unreachable, 4008 no answer).
        """
        dest = await self.destination(target)
        await self._verify_at(dest, target, owner or "", verification_request(sur, owner), timeout or self.timeout)

    async def send_now(self, target: str, payload: dict[str, Any], timeout: float | None = None, *,
                       owner: str | None = None, sur: str | None = None) -> Response:
        """Send one notification now and return the answer (session
        establishment questions), verified first like any notification.

        Raises :class:`M2MError` (4000, 5103, 5204, 4008, ...) when it cannot be delivered.
        """
        limit = timeout or self.timeout
        dest = await self.destination(target)
        await self._ensure_verified(dest, target, owner or "", verification_request(sur, owner), limit)
        return await self._post(dest, target, payload, limit)

    async def relay(self, req: Request, ae: Doc) -> Response:
        """Deliver a NOTIFY addressed to our AE ``ae`` to its ``poa``; its
        answer is the answer (TS-0004 7.4.1.2.4: the Hosting CSE relays).

        The ``poa`` passes the outbound policy and must have accepted a
        verification request for the AE: a relayed verification request
        is that request (its 2000 is remembered); anything else is preceded
        by one when the ``poa`` has not accepted one yet. It goes in the
        newest release the AE's ``srv`` shares with ours; an AE with ``rr``
        false gets nothing (:class:`NotRequestReachable`).
        """
        if ae.get("rr") is False or self.over_websocket(ae):
            if self.channels is not None and (self.over_websocket(ae) or await self.has_channel(ae)):
                rvi = rvi_for(ae.get("srv"))
                return await self.channels.exchange(ae["ri"], req if rvi is None else replace(req, rvi=rvi),
                                                    self.timeout)
            raise NotRequestReachable(f"AE {ae['ri']} is not request reachable (rr is false) and has "
                                      "no pollingChannel: the notification cannot be delivered")
        rvi = rvi_for(ae.get("srv"))
        if rvi is not None:
            req = replace(req, rvi=rvi)
        for poa in ae.get("poa") or ():
            if is_url(str(poa)):
                dest = replace(await self.policy.check(strip_ct(str(poa))), rvi=rvi, media=target_media(ae["ri"], ae))
                sgn = req.pc.get("m2m:sgn") if isinstance(req.pc, dict) else None
                sgn = sgn if isinstance(sgn, dict) else {}
                key = (ae["ri"], dest.url)
                if sgn.get("vrq") is True:
                    resp = await self.outbound.send(dest.url, req, timeout=self.timeout, exact=True)
                    if resp.rsc == 2000:
                        self.verified.add(key)
                    return resp
                await self._ensure_verified(dest, ae["ri"], ae["ri"],
                                            verification_request(sgn.get("sur"), sgn.get("cr")), self.timeout)
                return await self.outbound.send(dest.url, req, timeout=self.timeout, exact=True)
        raise TargetNotReachable(f"AE {ae['ri']} has no http(s) point of access (poa) to notify")

    async def _ensure_verified(self, dest: Destination, target: str, owner: str, vrq: dict[str, Any],
                               timeout: float) -> None:
        if (owner, dest.url) not in self.verified:
            await self._verify_at(dest, target, owner, vrq, timeout)

    async def _verify_at(self, dest: Destination, target: str, owner: str, vrq: dict[str, Any],
                         timeout: float) -> None:
        resp = await self._post(dest, target, vrq, timeout)
        if resp.rsc != 2000:
            self.verified.forget((owner, dest.url))
            raise SubscriptionVerificationInitiationFailed(
                f"notification target '{target[:100]}' answered the verification request with {resp.rsc}")
        self.verified.add((owner, dest.url))

    async def _post(self, dest: Destination, target: str, payload: dict[str, Any], timeout: float,
                    ec: int | None = None) -> Response:
        direct = not dest.remote and (dest.channel is None or self.channels is None)
        extra: dict[str, Any] = {}  # set at construction: dataclasses.replace costs as much again, per send
        if dest.rvi is not None:
            extra["rvi"] = dest.rvi
        if direct:  # JSON or CBOR as the target prefers (its csz, a URL's ct=); the binding encodes it
            extra["media"] = dest.media
        req = Request(op=Operation.NOTIFY, to=target, fr=self.ctx.identity.csi, rqi=new_ri("ntf", 12),
                      pc=payload, ot=self.ctx.now_ts(), ec=ec, **extra)
        if dest.remote:
            resp = await self.forward(req)
            if resp.rsc in (5103, 4008, 4004):
                dbg = resp.pc.get("m2m:dbg", "") if isinstance(resp.pc, dict) else ""
                raise TargetNotReachable(f"notification to {target[:100]} not delivered: {resp.rsc} {dbg}")
            return resp
        if not direct:  # docs/onem2m.md "pollingChannel"
            assert dest.channel is not None and self.channels is not None
            return await self.channels.exchange(dest.channel, req, timeout)
        return await self.outbound.send(dest.url, req, timeout=timeout, exact=True)

    async def _send_next(self, qkey: str) -> None:
        """Send the next notification (or batch) of one queue."""
        self._busy += 1
        items: list[_Job] = []
        delivered = False
        try:
            q = self._queues.get(qkey)
            if q is None or not q.jobs:
                return
            if q.batching is not None and not q.latest:
                n = min(len(q.jobs), q.batching.num)
                items = [q.jobs.popleft() for _ in range(n)]
            else:
                items = [q.jobs.popleft()]
                if q.sealed:
                    q.sealed -= 1
                else:  # the open batch, sent by its timer
                    q.events = 0
            for job in items:
                self._unqueue(job, q.target)
            if len(items) == 1:
                payload = items[0].payload
            else:
                payload = {"m2m:agn": {"m2m:sgn": [j.payload["m2m:sgn"] for j in items
                                                  if "m2m:sgn" in j.payload]}}
            payload, reported = self._with_loss(qkey, payload)
            delivered = await self._deliver(q, payload)
            if delivered:
                if reported:
                    left = self._unreported.pop(qkey, 0) - reported  # lost while this one was in flight
                    if left > 0:
                        self._unreported[qkey] = left
                for job in items:
                    if not await self._counted(job):
                        self._settle_later(job)
                    if job.on_sent is not None:
                        await job.on_sent()
            else:
                self._lose(q, len(items), failed=True, report=any("m2m:sgn" in j.payload for j in items))
                for job in items:
                    self._settle_later(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification sender error")
            q = self._queues.get(qkey)
            if q is not None and items and not delivered:  # on_sent's errors are not the receiver's loss
                self._lose(q, len(items), failed=True, report=any("m2m:sgn" in j.payload for j in items))
                for job in items:
                    self._settle_later(job)
        finally:
            self._warn()
            self._busy -= 1
            self._scheduled.discard(qkey)
            q = self._queues.get(qkey)
            if q is not None:
                if q.jobs and self._batch_full(q):
                    self._mark_ready(qkey)
                elif q.jobs and q.timer is None and q.batching is not None:
                    q.timer = asyncio.get_running_loop().call_later(q.batching.dur, self._mark_ready, qkey)
                elif not q.jobs and q.timer is None:
                    del self._queues[qkey]
                    keyset = self._by_key.get(q.key)
                    if keyset is not None:
                        keyset.discard(qkey)
                        if not keyset:
                            del self._by_key[q.key]
            self._maybe_idle()

    async def _deliver(self, q: _Queue, payload: dict[str, Any]) -> bool:
        target = q.target
        now = self.ctx.clock.now
        attempts = 1 if self._down_until.get(target, 0.0) > now() else 1 + self.retries
        delay = self.backoff
        vrq = verification_request(q.sur, q.owner)
        for attempt in range(attempts):
            try:
                dest = await self.destination(target)
                async with self.slots.hold(dest.lane, q.owner):
                    await self._ensure_verified(dest, target, q.owner or "", vrq, self.timeout)
                    try:
                        resp = await self._post(dest, target, payload, self.timeout, q.ec)
                    except M2MError:
                        if self.attempted is not None:
                            self.attempted(q.key, target, False)
                        raise
                    if self.attempted is not None:
                        self.attempted(q.key, target, True)
                if resp.rsc < 4000:
                    self.sent += 1
                    self._down_until.pop(target, None)
                    return True
                log.info("notification to %s answered %d", target[:100], resp.rsc)
                self.failed += 1
                return False  # the receiver answered: retrying will not help
            except (BadRequest, SubscriptionVerificationInitiationFailed, NotRequestReachable) as exc:
                log.info("notification to %s not sent: %s", target[:100], exc.message)
                self.failed += 1
                return False  # refused by the policy or by the target, or rr false: retrying will not help
            except RequestTimeout as exc:
                log.info("notification to %s timed out: %s", target[:100], exc.message)
                break
            except M2MError as exc:
                if attempt + 1 < attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                log.info("notification to %s failed: %s", target[:100], exc.message)
        self.failed += 1
        self._down_until[target] = now() + self.quarantine
        return False

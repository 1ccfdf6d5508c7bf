"""Notification delivery, off the request path (TS-0004 7.5.1.2.2, docs/onem2m.md).

Requests only *enqueue*; a bounded pool of worker coroutines sends (64 by
default: they cost memory, not threads, so slow receivers cannot starve
the rest unless there are that many of them at once). Ordering is kept per
key (a subscription and one of its targets, or a non-blocking request's
result target): a key is handled by at most one worker at a time, in FIFO
order, so a slow or dead target delays only its own queue. Each send has a
timeout; a refused connection is retried a bounded number of times with
backoff, a timeout is not (a slow peer stays slow), and a target that just
failed gets no retries for a while, so a dead receiver costs one failure
per notification, not minutes of worker time. Queues are bounded:
past the per-key limit the oldest pending notification is dropped (and
logged). ``ln`` (latest only) and ``bn`` (batches of ``num``, sent at the
latest after ``dur``) are handled here too.

Targets are URLs (used as given) or AE-IDs, resolved to that AE's first
http(s) ``poa``. Pending notifications live in memory: a crash loses the
ones not yet sent (subscriptions themselves are durable).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cse.core.context import Context
from cse.core.errors import M2MError, RequestTimeout, TargetNotReachable
from cse.core.ids import new_ri, normalize_originator
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Batching, Notification, OnSent
from cse.core.ports import Doc, Outbound
from cse.core.tasks import cancel_and_wait

__all__ = ["Notifier"]

log = logging.getLogger("cse.notify")


@dataclass
class _Job:
    payload: dict[str, Any]
    on_sent: OnSent | None = None


@dataclass
class _Queue:
    key: str
    target: str
    jobs: deque[_Job] = field(default_factory=deque)
    batching: Batching | None = None
    timer: asyncio.TimerHandle | None = None


class Notifier:
    """Queues and sends notifications (see module docstring)."""

    def __init__(self, ctx: Context, outbound: Outbound, forward: Callable[[Request], Awaitable[Response]], *,
                 workers: int = 64, timeout: float = 5.0, retries: int = 2, backoff: float = 0.5,
                 max_per_key: int = 1000, quarantine: float = 10.0) -> None:
        """``forward`` sends a NOTIFY through the CSEs (the dispatcher) to a
        target on another CSE."""
        self.ctx = ctx
        self.outbound = outbound
        self.forward = forward
        self.n_workers = workers
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_per_key = max_per_key
        self.quarantine = quarantine
        self._queues: dict[str, _Queue] = {}
        self._by_key: dict[str, set[str]] = {}
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._scheduled: set[str] = set()
        self._down_until: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Start the worker pool."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker(), name=f"notify-{i}") for i in range(self.n_workers)]

    async def stop(self) -> None:
        """Stop the workers; unsent notifications are dropped."""
        for q in self._queues.values():
            if q.timer is not None:
                q.timer.cancel()
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def drained(self, timeout: float) -> None:
        """Wait until nothing is queued or in flight (tests, shutdown)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # -- enqueueing ------------------------------------------------------------
    def deliver(self, n: Notification) -> None:
        """Queue a notification an outcome carries (the executor's hand-off)."""
        self.enqueue(n.key, n.target, n.payload, latest=n.latest, batching=n.batching, on_sent=n.on_sent)

    def enqueue(self, key: str, target: str, payload: dict[str, Any], *, latest: bool = False,
                batching: Batching | None = None, on_sent: OnSent | None = None) -> None:
        """Queue ``payload`` for ``target`` in the FIFO named ``key``.

        ``on_sent`` runs after the receiver accepted it (2xxx).
        """
        qkey = f"{key}\x00{target}"
        q = self._queues.get(qkey)
        if q is None:
            q = self._queues[qkey] = _Queue(key, target)
            self._by_key.setdefault(key, set()).add(qkey)
        q.batching = batching
        if latest:
            self.dropped += len(q.jobs)
            q.jobs.clear()
        elif len(q.jobs) >= self.max_per_key:
            q.jobs.popleft()
            self.dropped += 1
            log.warning("notification queue for %s is full: dropped the oldest", target[:100])
        q.jobs.append(_Job(payload, on_sent))
        self._idle.clear()
        if batching is not None and len(q.jobs) < batching.num:
            if q.timer is None:
                q.timer = asyncio.get_running_loop().call_later(batching.dur, self._mark_ready, qkey)
            return
        self._mark_ready(qkey)

    def discard(self, key: str) -> int:
        """Drop everything still pending for ``key`` (a deleted subscription)."""
        n = 0
        for qkey in self._by_key.pop(key, set()):
            q = self._queues.get(qkey)
            if q is None:
                continue
            n += len(q.jobs)
            q.jobs.clear()
            if q.timer is not None:
                q.timer.cancel()
                q.timer = None
            if qkey not in self._scheduled:
                del self._queues[qkey]
        self.dropped += n
        if not self._queues and self._busy == 0:
            self._idle.set()
        return n

    def _mark_ready(self, qkey: str) -> None:
        q = self._queues.get(qkey)
        if q is not None and q.timer is not None:
            q.timer.cancel()
            q.timer = None
        if qkey not in self._scheduled:
            self._scheduled.add(qkey)
            self._ready.put_nowait(qkey)

    # -- sending ---------------------------------------------------------------
    async def resolve(self, target: str) -> str | None:
        """A URL for ``target``: itself, or the AE's first http(s) poa."""
        if target.startswith(("http://", "https://")):
            return _strip_ct(target)
        ae = await self.ctx.store.get(normalize_originator(target, self.ctx.identity.csi) or "")
        if ae is not None and ae["ty"] == 2:
            for poa in ae.get("poa") or ():
                if poa.startswith(("http://", "https://")):
                    return _strip_ct(str(poa))
        return None

    def is_remote(self, target: str) -> bool:
        """An entity on another CSE (``/id-cse2/Cae2``): sent through the CSEs."""
        csi = self.ctx.identity.csi
        return target.startswith("/") and not target.startswith(csi + "/") and target != csi

    async def send_now(self, target: str, payload: dict[str, Any], timeout: float | None = None) -> Response:
        """Send one notification and return the answer (verification requests).

        Raises :class:`M2MError` (5103, 4008, ...) when it cannot be delivered.
        """
        if self.is_remote(target):
            req = Request(op=Operation.NOTIFY, to=target, fr=self.ctx.identity.csi, rqi=new_ri("ntf", 12),
                          pc=payload, ot=self.ctx.now_ts())
            resp = await self.forward(req)
            if resp.rsc in (5103, 4008, 4004):
                dbg = resp.pc.get("m2m:dbg", "") if isinstance(resp.pc, dict) else ""
                raise TargetNotReachable(f"notification to {target[:100]} not delivered: {resp.rsc} {dbg}")
            return resp
        url = await self.resolve(target)
        if url is None:
            raise TargetNotReachable(f"notification target '{target[:100]}' has no reachable http(s) address")
        req = Request(op=Operation.NOTIFY, to=target, fr=self.ctx.identity.csi, rqi=new_ri("ntf", 12),
                      pc=payload, ot=self.ctx.now_ts())
        return await self.outbound.send(url, req, timeout=timeout or self.timeout, exact=True)

    async def relay(self, req: Request, ae: Doc) -> Response:
        """Deliver a NOTIFY addressed to our AE ``ae`` to its ``poa``; its
        answer is the answer (TS-0004 7.4.1.2.4: the Hosting CSE relays)."""
        for poa in ae.get("poa") or ():
            if poa.startswith(("http://", "https://")):
                return await self.outbound.send(_strip_ct(str(poa)), req, timeout=self.timeout, exact=True)
        raise TargetNotReachable(f"AE {ae['ri']} has no http(s) point of access (poa) to notify")

    async def _worker(self) -> None:
        while True:
            qkey = await self._ready.get()
            self._busy += 1
            try:
                q = self._queues.get(qkey)
                if q is None or not q.jobs:
                    continue
                if q.batching is not None:
                    n = min(len(q.jobs), q.batching.num)
                    items = [q.jobs.popleft() for _ in range(n)]
                else:
                    items = [q.jobs.popleft()]
                if len(items) == 1:
                    payload = items[0].payload
                else:
                    payload = {"m2m:agn": {"m2m:sgn": [j.payload["m2m:sgn"] for j in items
                                                      if "m2m:sgn" in j.payload]}}
                if await self._deliver(q.target, payload):
                    for job in items:
                        if job.on_sent is not None:
                            await job.on_sent()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification worker error")
            finally:
                self._busy -= 1
                self._scheduled.discard(qkey)
                q = self._queues.get(qkey)
                if q is not None:
                    if q.jobs and (q.batching is None or len(q.jobs) >= q.batching.num):
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
                if not self._queues and self._busy == 0:
                    self._idle.set()

    async def _deliver(self, target: str, payload: dict[str, Any]) -> bool:
        now = self.ctx.clock.now
        attempts = 1 if self._down_until.get(target, 0.0) > now() else 1 + self.retries
        delay = self.backoff
        for attempt in range(attempts):
            try:
                resp = await self.send_now(target, payload)
                if resp.rsc < 4000:
                    self.sent += 1
                    self._down_until.pop(target, None)
                    return True
                log.info("notification to %s answered %d", target[:100], resp.rsc)
                self.failed += 1
                return False  # the receiver answered: retrying will not help
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



def _strip_ct(url: str) -> str:
    """Remove the ``ct=`` serialization hint a ``nu`` URL may carry (docs/onem2m.md "subscription")."""
    if "ct=" not in url:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ct"]
    return urlunsplit(parts._replace(query=urlencode(query)))

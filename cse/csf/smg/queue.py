"""Store-and-forward of session-based requests (docs/sessions.md "Store-and-forward"; flow 2 steps 6-7, 14-16).

A request whose policy at this hop is store-and-forward (``spt`` 2) is kept
durably in the store's KV area (its exact bytes: the MAC covers them) with a
PENDING ``<request>`` resource the originator can poll, and answered 1001
(1002 for ``rt`` 2). One timer forwards stored requests while their
policy's window (``sch``) is open, oldest first, several at once (a window
of 32) but never one before an earlier request of its session it may
depend on (:func:`may_overlap`);
the outcome goes into the ``<request>`` (and to ``rtu`` for rt 2) and the
session context. A next hop that is down is retried with backoff (its
nextHop shows ``nst`` 2 meanwhile); a request stored longer than ``mbd``
fails (4008 in its ``<request>``); more than ``mbr`` stored requests for a
session at this CSE refuses new ones with 5207.

Durations are measured on the monotonic clock (docs/troubleshooting.md
"Clock jumps"): how long a request has been buffered (against ``mbd``) and
the retry back-off, so a wall-clock step neither fails a request early nor
holds it back; only the windows (``sch``) are wall-clock times. Across a
restart only the stored wall time is left: the buffered time is the wall
clock's ``now - stored``, except after a start-up that found the clock
jumped (and not accepted), where it is counted up to the newest time the
previous run recorded (the downtime is unknown and is not counted). While
``mbd`` has not elapsed, a ``<request>`` due to expire is kept (its ``et``
moved on) rather than failed: ``mbd`` decides, not a wall-clock ``et`` that
a step brought forward.

Exactly once: a stored request is removed in the same commit that records
its answer; if the CSE dies after sending it but before that commit, the
redelivery carries the same request ID and the next hop answers it from its
memory of the session (:mod:`.gate`) without executing it again.

Answers are recorded in batches: the answers that arrive while one commit
is being written go together into the next (at most ``_BATCH_MAX``), each
with its ``<request>`` outcome and its removal from the queue, and the
session context gains all their entries in one change. A delivery counts
as done only once its batch is committed; a crash before that leaves the
whole batch stored, to be redelivered and answered from the next hop's
memory. Commits per delivered request fall from one to one per batch,
which is what lets a full buffer drain at the next hop's speed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from cse.core.context import Context
from cse.core.errors import M2MError, NotAcceptable, RequestTimeout, TargetNotReachable
from cse.core.ids import Target
from cse.core.messages import Operation, Request, Response, ResponseType
from cse.core.outcome import STORE_AND_FORWARD, Deadline, Outcome
from cse.core.ports import Doc, KvDelete, KvPut, Op, Put
from cse.core.schedule import Schedule
from cse.core.timestamps import format_ts

from ..nonblocking import NonBlockingCSF
from .flight import Flying, may_overlap, window_open
from .history import record_many_ops
from .model import NEXT_HOP_TY, session_ri

__all__ = ["StoreAndForward", "QUEUE_NS", "may_overlap"]

Forward = Callable[[Request, Target], Awaitable[Response]]

log = logging.getLogger("cse.smg")

QUEUE_NS = "smg-queue"
_MAX_BACKOFF = 60.0
_BATCH_MAX = 256  # delivered requests recorded per commit at most (module docstring)


@dataclass(slots=True)
class _Answered:
    """A delivered stored request waiting for the commit that records its
    answer; ``done`` resolves once that commit is durable."""

    key: str
    item: dict[str, Any]
    req: Request
    resp: Response
    session_ri: str
    done: asyncio.Future[None]


def _serialize(req: Request) -> dict[str, Any]:
    return {"op": int(req.op), "to": req.to, "fr": req.fr, "rqi": req.rqi, "rvi": req.rvi, "ty": req.ty,
            "rcn": req.rcn, "rt": req.rt, "rtu": list(req.rtu) if req.rtu is not None else None,
            "drt": req.drt, "ot": req.ot, "sid": req.sid, "smac": req.smac, "vsi": req.vsi,
            "query": {k: list(v) for k, v in req.query.items()},
            "body": base64.b64encode(req.body).decode("ascii"), "pc": req.pc if not req.body else None,
            "media": req.media}  # the body's serialization (JSON or CBOR): forwarded as it came


def _deserialize(d: dict[str, Any]) -> Request:
    return Request(op=Operation(d["op"]), to=d["to"], fr=d["fr"], rqi=d["rqi"], rvi=d["rvi"], ty=d["ty"],
                   rcn=d["rcn"], rt=d["rt"], rtu=tuple(d["rtu"]) if d["rtu"] is not None else None,
                   drt=d["drt"], ot=d["ot"], sid=d["sid"], smac=d["smac"], vsi=d["vsi"],
                   query={k: tuple(v) for k, v in d["query"].items()},
                   body=base64.b64decode(d["body"]), pc=d["pc"],
                   media=d.get("media", "application/json"))  # stored before CBOR: JSON


@lru_cache(maxsize=256)
def _schedule(sch: tuple[str, ...]) -> Schedule:
    """The parsed window of a policy (a pure function of its ``sch``: parsed
    once, not per stored request or per flush pass)."""
    return Schedule(sch)


def policy_window(policy: Doc | None) -> Schedule | None:
    """The ``sch`` window of ``policy``; None: no window (always open)."""
    sch = policy.get("sch") if policy else None
    return _schedule(tuple(sch)) if sch else None


class StoreAndForward:
    """The durable queue of one CSE's stored session requests."""

    def __init__(self, ctx: Context, nonblocking: NonBlockingCSF, forward: Forward, *,
                 monotonic: Callable[[], float], history: int = 50, window: int = 32, tag: str = "",
                 serialize: Callable[[], AbstractAsyncContextManager[None]] | None = None,
                 shared: bool = False) -> None:
        """``forward`` sends a stored request on; ``monotonic`` is the clock
        durations are measured on; ``history`` is how many exchanges a
        session's context keeps; ``tag`` ends every key this instance gives
        (several workers on one store never give the same one, docs/scaling.md);
        ``serialize`` is their write gate, held from reading what an
        answer changes (the session context, a next hop's state) to its commit;
        ``shared``: other processes store and remove requests in the same
        store (several workers), so no count kept here can be trusted."""
        self._serialize = serialize or nullcontext
        self._shared = shared
        # sid -> keys of its stored requests, as far as this process knows: the
        # keys it stored or loaded whose commit is done, less those whose removal
        # is committed; never fewer than are stored when not shared (mbr, :meth:`store`)
        self._held: dict[str, set[str]] = {}
        self._tag = tag
        self.ctx = ctx
        self.monotonic = monotonic
        # key -> (monotonic time, seconds buffered at that time) (module docstring)
        self._age: dict[str, tuple[float, float]] = {}
        self.window = window
        self.nonblocking = nonblocking
        self.forward = forward
        self.history = history
        self._seq = 0
        self._retry_at: dict[str, float] = {}  # sid -> monotonic time of the next try
        self._backoff: dict[str, float] = {}
        self._answered: list[_Answered] = []  # waiting for the next batch commit
        self._recording = False  # a batch commit is being written

    async def load(self, trusted: float | None = None) -> int:
        """Continue the key sequence after a restart; how many are stored.

        ``trusted``: the newest wall time the previous run recorded, when this
        start found the clock jumped: each request's buffered time counts up
        to it instead of up to the jumped clock (module docstring)."""
        items = await self.ctx.store.kv_items(QUEUE_NS)
        if items:
            self._seq = max(int(k[:16]) for k, _ in items) + 1
        end = self.ctx.clock.now() if trusted is None else trusted
        mono = self.monotonic()
        self._held = {}
        for key, item in items:
            self._age[key] = (mono, max(0.0, end - float(item["stored"])))
            self._held.setdefault(item["sid"], set()).add(key)
        return len(items)

    def buffered(self, key: str, item: dict[str, Any]) -> float:
        """How long the stored request ``key`` has been buffered, in seconds
        of monotonic time (module docstring)."""
        ref = self._age.get(key)
        if ref is None:  # not seen by load or store (another instance wrote it): the wall clock
            ref = self._age[key] = (self.monotonic(), max(0.0, self.ctx.clock.now() - float(item["stored"])))
        return ref[1] + self.monotonic() - ref[0]

    async def request_ris(self) -> frozenset[str]:
        """The ``<request>`` resources of everything stored (still PENDING)."""
        return frozenset(v["request"] for _, v in await self.ctx.store.kv_items(QUEUE_NS))

    async def count(self, sid: str | None = None) -> int:
        items = await self.ctx.store.kv_items(QUEUE_NS)
        return len(items) if sid is None else sum(1 for _, v in items if v["sid"] == sid)

    async def store(self, req: Request, session: Doc, hop: str, policy: Doc, target: Target) -> Response:
        """Keep ``req`` for the next window; answer 1001/1002."""
        mbr = policy.get("mbr")
        if mbr is not None and await self._at_least(session["sid"], mbr):
            raise NotAcceptable(
                f"store-and-forward buffer of session {session['sid'][:16]} is full at "
                f"{self.ctx.identity.csi} ({mbr} requests, policy mbr)")
        doc, resp = await self.nonblocking.open_request(req)
        key = f"{self._seq:016d}{self._tag}"
        self._seq += 1
        self._age[key] = (self.monotonic(), 0.0)
        now = self.ctx.clock.now()
        item = {"sid": session["sid"], "hop": hop, "policy": policy["ri"], "stored": now,
                "req": _serialize(req), "request": doc["ri"], "csi": target.csi,
                "rset": req.rset is not None}  # the originator chose the <request>'s et: never moved
        due = self._due(session["sid"], policy, now)
        await self.ctx.apply(Outcome(ops=[KvPut(QUEUE_NS, key, item)],
                                     deadlines=[Deadline(STORE_AND_FORWARD, due)] if due is not None else []))
        self._held.setdefault(session["sid"], set()).add(key)
        log.info("session %s: request %s stored for the next window (policy %s)", session["sid"][:8],
                 req.rqi, policy.get("rn"))
        return resp

    def _due(self, sid: str, policy: Doc, now: float) -> float | None:
        """When a flush pass first has something to do with a request of
        ``sid`` just stored under ``policy``: what :meth:`flush` would
        answer for it alone (None: nothing within the schedule's horizon).

        The store-and-forward timer is brought forward to this, not to now:
        stored while its window is closed, a request costs no flush pass
        (each pass reads the whole queue, so a pass per request made
        buffering N requests cost N^2). The timer already runs by the time
        any other stored request is due (the last pass armed it so), so
        nothing else needs the pass either.
        """
        sched = policy_window(policy)
        due = sched.next_open(now) if sched is not None else now
        if due is not None and due <= now:  # open now: unless its next hop is being retried
            wait = self._retry_at.get(sid, float("-inf")) - self.monotonic()
            if wait > 0:
                due = now + wait
        mbd = policy.get("mbd")
        if mbd is not None and (due is None or now + mbd < due):
            due = now + mbd  # it fails then (4008)
        return due

    async def _at_least(self, sid: str, n: int) -> bool:
        """Whether ``n`` or more requests of ``sid`` are stored.

        In one process the keys held here are never fewer than those stored
        (added once their commit is done, dropped once their removal's is),
        so fewer than ``n`` of them answers at once; otherwise, and always
        with several workers, the queue is counted (docs/scaling.md)."""
        if not self._shared and len(self._held.get(sid, ())) < n:
            return False
        return await self.count(sid) >= n

    def _released(self, removed: list[tuple[str, str]]) -> None:
        """Stored requests (key, sid) whose removal is committed: no longer held."""
        for key, sid in removed:
            keys = self._held.get(sid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._held[sid]

    async def dropping(self, sid: str) -> Outcome:
        """The outcome failing and forgetting every request stored for ``sid``
        (termination): each ``<request>`` ends FAILED with 4004, told to rt 2
        originators."""
        outcome = Outcome()
        for key, item in [(k, v) for k, v in await self.ctx.store.kv_items(QUEUE_NS) if v["sid"] == sid]:
            done = await self._finishing(key, item, _deserialize(item["req"]), Response.error(
                4004, f"session {sid[:16]} was terminated before this stored request was delivered"))
            outcome = outcome.adding(ops=done.ops, sends=done.sends)
        self._retry_at.pop(sid, None)
        self._backoff.pop(sid, None)
        return outcome

    async def fail_expired(self, now: float) -> int:
        """End every stored request whose ``<request>`` is due to expire at
        ``now`` with a recorded failure (4008) instead of letting it vanish
        with its ``<request>``; how many (docs/troubleshooting.md "Clock jumps").

        Run before expiry: an accepted request ends only with its delivery or
        a failure its originator can see, so the ``<request>`` records the
        failure (and notifies it for rt 2) and is kept for another request
        lifetime for the originator to read, and the stored copy goes in the
        same commit.
        """
        now_ts = format_ts(now)
        outcome = Outcome()
        failed: list[tuple[str, str]] = []
        mbds: dict[str, Any] = {}
        for key, item in await self.ctx.store.kv_items(QUEUE_NS):
            doc = await self.ctx.store.get(item["request"])
            if doc is not None and (doc.get("et") is None or doc["et"] > now_ts):
                continue
            req = _deserialize(item["req"])
            if item["policy"] not in mbds:
                policy = await self.ctx.store.get(item["policy"])
                mbds[item["policy"]] = policy.get("mbd") if policy else None
            mbd = mbds[item["policy"]]
            left = None if mbd is None or item.get("rset") else mbd - self.buffered(key, item)
            if doc is not None and left is not None and left > 0:
                # mbd (monotonic) has not elapsed: the wall-clock et was brought
                # forward by a step; the request keeps waiting, its et moved on
                outcome = outcome.adding(ops=[Put({**doc, "et": format_ts(now + left + self.nonblocking.lifetime)})])
                log.warning("session %s: stored request %s: its <request> was due to expire but %.0f s of its "
                            "mbd are left (the wall clock moved): kept", item["sid"][:8], req.rqi, left)
                continue
            done = await self._finishing(key, item, req, Response.error(
                4008, f"expired before delivery: request {req.rqi} was stored at {format_ts(item['stored'])} "
                      f"and its <request> expired before a window delivered it"),
                keep_until=format_ts(now + self.nonblocking.lifetime))
            outcome = outcome.adding(ops=done.ops, sends=done.sends)
            failed.append((key, item["sid"]))
            log.warning("session %s: stored request %s expired before delivery: recorded as failed (4008)",
                        item["sid"][:8], req.rqi)
        if outcome.ops:
            await self.ctx.apply(outcome)
            self._released(failed)
        return len(failed)

    async def flush(self, now: float) -> float | None:
        """Forward what may go now, up to ``window`` at once; return when to
        look again.

        Stored order is kept where it matters: a request is sent only after
        every earlier in-flight request of its session that it may depend on
        has been answered (:func:`may_overlap`); unrelated ones overlap, so
        a full buffer drains at the next hop's speed, not one round trip at
        a time. A session's first request in a pass goes alone, so a next hop
        that is down costs one attempt and the order of retries holds.
        """
        nxt: float | None = None

        def later(t: float | None) -> None:
            nonlocal nxt
            if t is not None and (nxt is None or t < nxt):
                nxt = t

        blocked: set[str] = set()
        sessions: dict[str, Doc | None] = {}
        policies: dict[str, tuple[Doc | None, Schedule | None]] = {}
        flying: dict[str, Flying] = {}
        opened: dict[tuple[str, int], bool] = {}  # (policy, second) -> window open
        sessions_sent: set[str] = set()
        running: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        held = [(key, sid) for sid, keys in self._held.items() for key in keys]  # committed before the read
        items = await self.ctx.store.kv_items(QUEUE_NS)
        present = {key for key, _ in items}
        # removed by a commit this queue did not make (a termination's, another worker's)
        self._released([(key, sid) for key, sid in held if key not in present])
        try:
            for key, item in items:
                sid = item["sid"]
                if sid in blocked:
                    continue
                now = self.ctx.clock.now()
                if sid not in sessions:
                    sessions[sid] = await self.ctx.store.get(session_ri(sid))
                session = sessions[sid]
                req = _deserialize(item["req"])
                if session is None:
                    await self._finish(key, item, req, Response.error(4004, f"session {sid[:16]} was terminated"))
                    continue
                if item["policy"] not in policies:
                    doc = await self.ctx.store.get(item["policy"])
                    policies[item["policy"]] = (doc, policy_window(doc))
                policy, sched = policies[item["policy"]]
                mbd = policy.get("mbd") if policy else None
                if mbd is not None:
                    left = mbd - self.buffered(key, item)
                    if left < 0:
                        await self._finish(key, item, req, Response.error(
                            4008, f"stored longer than the policy's maximum buffer duration (mbd {mbd} s)"))
                        continue
                    later(now + left)
                if sched is not None and not window_open(opened, item["policy"], sched, now):
                    blocked.add(sid)
                    later(sched.next_open(now))
                    continue
                wait = self._retry_at.get(sid, float("-inf")) - self.monotonic()
                if wait > 0:
                    blocked.add(sid)
                    later(now + wait)
                    continue
                before = flying.get(sid)
                if before is None:
                    before = flying[sid] = Flying()
                waits = before.conflicting(req)
                if waits:
                    await asyncio.wait(waits)
                while len(running) >= self.window:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                if sid in blocked:  # an earlier one found the next hop down meanwhile
                    continue
                task = asyncio.get_running_loop().create_task(
                    self._deliver(key, item, req, session, blocked, later))
                running.add(task)
                task.add_done_callback(done)
                if sid not in sessions_sent:  # the first goes alone: a hop that is
                    sessions_sent.add(sid)    # down costs one attempt, not a window
                    await asyncio.wait([task])
                before.add(req, task)
        except BaseException:
            for task in running:  # shutdown: what was sent is answered from
                task.cancel()     # the next hop's memory when sent again
            raise
        finally:
            if running:
                await asyncio.wait(set(running))
        if failures:
            raise failures[0]
        return nxt

    async def _deliver(self, key: str, item: dict[str, Any], req: Request, session: Doc, blocked: set[str],
                       later: Any) -> None:
        """Forward one stored request, then record its answer and forget it."""
        sid = item["sid"]
        # sent on blocking (the answer comes back here); most were stored so already
        out = req if req.rt == ResponseType.BLOCKING and req.rtu is None else replace(
            req, rt=ResponseType.BLOCKING, rtu=None)
        try:
            resp = await self.forward(out, Target(False, item["csi"], (), True))
        except (TargetNotReachable, RequestTimeout) as exc:
            now = self.ctx.clock.now()
            if sid not in blocked:
                delay = min(self._backoff.get(sid, 0.5) * 2, _MAX_BACKOFF)
                self._backoff[sid] = delay
                self._retry_at[sid] = self.monotonic() + delay
                blocked.add(sid)
                await self._hop_state(session, item["hop"], 2)
                log.info("stored request %s: next hop %s unreachable (%s); retry in %.1f s",
                         req.rqi, item["hop"], exc.message, delay)
            later(now + max(0.0, self._retry_at.get(sid, 0.0) - self.monotonic()))
            return
        except M2MError as exc:
            resp = Response.error(int(exc.rsc), exc.message)
        except Exception:  # never lose the flush to one odd request; it stays stored
            log.exception("stored request %s: delivery failed unexpectedly; kept for the next window", req.rqi)
            later(self.ctx.clock.now() + 1.0)
            return
        if self._backoff.pop(sid, None) is not None:
            self._retry_at.pop(sid, None)
            await self._hop_state(session, item["hop"], 1)
        # The answer goes into the session context in the same commit.
        await self._record(_Answered(key, item, req, resp, session["ri"],
                                     asyncio.get_running_loop().create_future()))

    async def _record(self, answered: _Answered) -> None:
        """Return once ``answered`` is recorded, in a batch with the answers
        that arrived meanwhile (module docstring). Whoever finds no batch
        being written writes the batches until none is left; a failed
        commit fails its batch (those requests stay stored)."""
        self._answered.append(answered)
        if not self._recording:
            self._recording = True
            batch: list[_Answered] = []
            try:
                while self._answered:
                    batch, self._answered = self._answered[:_BATCH_MAX], self._answered[_BATCH_MAX:]
                    try:
                        async with self._serialize():  # several workers: from the reads to the commit
                            await self.ctx.apply(await self._batch_outcome(batch))
                    except Exception as exc:
                        for a in batch:
                            if not a.done.done():
                                a.done.set_exception(exc)
                    else:
                        self._released([(a.key, a.item["sid"]) for a in batch])
                        for a in batch:
                            if not a.done.done():
                                a.done.set_result(None)
                    batch = []
            finally:
                self._recording = False
                for a in [*batch, *self._answered]:  # cancelled meanwhile (shutdown): they stay stored
                    a.done.cancel()
                self._answered = []
        await answered.done

    async def _batch_outcome(self, batch: list[_Answered]) -> Outcome:
        """One outcome recording every answer of ``batch``: each ``<request>``
        completed and its stored copy removed, each session's context
        extended by its exchanges in delivery order."""
        ops: list[Op] = []
        sends: list[Any] = []
        exchanges: dict[str, list[tuple[Request, Response, str]]] = {}
        for a in batch:
            done = await self._finishing(a.key, a.item, a.req, a.resp)
            ops.extend(done.ops)
            sends.extend(done.sends)
            exchanges.setdefault(a.session_ri, []).append((a.req, a.resp, a.item["hop"]))
        for ri, entries in exchanges.items():
            ops.extend(await record_many_ops(self.ctx, ri, entries, self.history))
        return Outcome(ops=ops, sends=sends)

    async def _finish(self, key: str, item: dict[str, Any], req: Request, resp: Response) -> None:
        """Record an outcome that was not a delivery (a failure) in the
        ``<request>`` and forget the stored request in one commit: a crash
        leaves both or neither. Delivered answers go through :meth:`_record`."""
        async with self._serialize():
            await self.ctx.apply(await self._finishing(key, item, req, resp))
        self._released([(key, item["sid"])])

    async def _finishing(self, key: str, item: dict[str, Any], req: Request, resp: Response,
                         keep_until: str | None = None) -> Outcome:
        """The ``<request>`` outcome and the removal of the stored request
        (the caller adds the session context entry of a delivery).
        ``keep_until``: the ``<request>``'s new ``et``, for a failure
        recorded as it expires (:meth:`fail_expired`). Otherwise the outcome
        stays readable for at least a request lifetime: a ``<request>`` whose
        ``et`` is sooner (say, past after a restart long after it was stored)
        has it moved on, unless the originator chose it (``X-M2M-RST``), so
        the next expiry run cannot delete the outcome as it is recorded."""
        self._age.pop(key, None)
        doc = await self.ctx.store.get(item["request"])
        if doc is None:
            log.warning("stored request %s: its <request> %s is gone; the outcome %d is not recorded there",
                        req.rqi, item["request"], resp.rsc)
        elif keep_until is not None:
            doc = {**doc, "et": keep_until}
        elif not item.get("rset"):
            least = format_ts(self.ctx.clock.now() + self.nonblocking.lifetime)
            if doc.get("et") is not None and doc["et"] < least:
                doc = {**doc, "et": least}
        ops: list[Op] = [*self.nonblocking.completion_ops(doc, req, resp), KvDelete(QUEUE_NS, key)]
        sends = self.nonblocking.outcome_notices(doc, req, resp) if doc is not None else []
        return Outcome(ops=ops, sends=sends)

    async def _hop_state(self, session: Doc, hop_csi: str, nst: int) -> None:
        async with self._serialize():
            await self._set_hop_state(session, hop_csi, nst)

    async def _set_hop_state(self, session: Doc, hop_csi: str, nst: int) -> None:
        for hop in await self.ctx.store.children(session["ri"], NEXT_HOP_TY):
            if hop["csi"] == hop_csi and hop.get("nst") != nst:
                await self.ctx.apply(Outcome(ops=[Put({**hop, "nst": nst})]))

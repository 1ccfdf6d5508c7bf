"""Non-blocking requests: ``rt`` 1 (synch) and 2 (asynch), and the two
response types that may end up non-blocking or unanswered: ``rt`` 4
(flexBlocking) and 5 (noResponse) (docs/onem2m.md "Non-blocking requests",
TS-0001 and TS-0004, Response Type).

The CSE stores a ``<request>`` resource (ty 17, under the CSEBase, owned by
the originator) in state PENDING, answers at once (1001 or 1002 with
``{"m2m:uri": <request ri>}``), runs the operation in the background
through the normal pipeline as a blocking request, then records the outcome
(``rs`` COMPLETED or FAILED, ``ors`` = the response) in the ``<request>``.
With rt 2 the result is also notified as ``{"m2m:rsp": {...}}`` to every
``X-M2M-RTU`` target (or the originator when RTU is absent; nobody when it
is present but empty). ``X-M2M-RTU`` has at most ``[outbound]
max_targets`` entries and every URL in it must pass the outbound policy
(else 4000, before anything is stored); each target gets a verification
request before its first result notification (docs/security.md
"Outbound requests"). The ``<request>`` expires at ``rset`` if given,
else after ``request_lifetime_s``. At start-up, requests left PENDING by a
previous run are marked FAILED: the CSE cannot know whether they ran.
Store-and-forward of session requests reuses it (docs/sessions.md).

``rt`` 4 (flexBlocking): the CSE chooses. It runs the operation and waits
up to ``flex_wait_s``; an operation done by then is answered as a blocking
one (its own 2xxx/4xxx code says so). A slower one becomes non-blocking:
the ``<request>`` is stored then and the answer is 1001 (or 1002 when the
request named ``X-M2M-RTU`` targets, which then get the result as for rt 2).
Everything that could refuse the non-blocking form (RTU targets, RST) is
checked before the operation starts; a type that is created by a blocking
request only is simply served blocking.

``rt`` 5 (noResponse): the CSE performs the request and sends no result:
the answer is an empty 1001 (HTTP 202) at once, the operation runs in the
background, its outcome is only logged. At most ``max_unanswered``
such requests wait or run at once (5207 beyond: an originator cannot pile
up unbounded background work, docs/security.md "Limits").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest, NotAcceptable, TargetNotReachable
from cse.core.ids import new_ri
from cse.core.messages import Operation, Request, Response, ResponseType
from cse.core.outcome import Notification, Outcome
from cse.core.ports import Doc, Op, Put
from cse.core.timestamps import format_ts, parse_abs_rel

from .outbound import OutboundPolicy, is_url

__all__ = ["NonBlockingCSF", "REQUEST_TY", "RequestStatus"]

log = logging.getLogger("cse.nonblocking")

REQUEST_TY = 17


class RequestStatus:
    """``rs`` values."""

    COMPLETED = 1
    FAILED = 2
    PENDING = 3
    FORWARDED = 4


Execute = Callable[[Request], Awaitable[Response]]


class NonBlockingCSF:
    """Accepts non-blocking requests and completes them in the background."""

    def __init__(self, ctx: Context, execute: Execute, *, policy: OutboundPolicy, request_lifetime_s: float = 3600.0,
                 max_parallel: int = 64, blocking_only: frozenset[int] = frozenset(),
                 flex_wait_s: float = 1.0, max_unanswered: int = 256) -> None:
        """``execute`` runs a request as a blocking one (the dispatcher);
        ``policy`` checks the ``X-M2M-RTU`` targets; ``blocking_only`` are
        the resource types whose creation may not be non-blocking (their
        answer holds a secret that a ``<request>`` resource would keep in
        the store: a session's key)."""
        self.ctx = ctx
        self.execute = execute
        self.policy = policy
        self.blocking_only = blocking_only
        self.lifetime = request_lifetime_s
        self.flex_wait_s = flex_wait_s
        self.max_unanswered = max_unanswered
        self._sem = asyncio.Semaphore(max_parallel)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unanswered = 0

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def accept(self, req: Request, execute: Execute | None = None) -> Response:
        """Store the ``<request>``, start the work, answer 1001/1002.

        ``execute`` runs the operation (default: the dispatcher, blocking).
        ``rt`` 4 and 5 are served by :meth:`flex` and :meth:`unanswered`.
        """
        run = execute or self.execute
        if req.rt == ResponseType.FLEX_BLOCKING:
            return await self.flex(req, run)
        if req.rt == ResponseType.NO_RESPONSE:
            return self.unanswered(req, run)
        doc, resp = await self.open_request(req)
        self._track(self._run(doc, req, run))
        return resp

    async def flex(self, req: Request, execute: Execute) -> Response:
        """``rt`` 4: blocking when the operation is done within
        ``flex_wait_s``, else non-blocking (module docstring)."""
        inner = replace(req, rt=ResponseType.BLOCKING)
        if req.ty in self.blocking_only and req.op == Operation.CREATE:
            return await execute(inner)
        nb = replace(req, rt=ResponseType.NON_BLOCKING_ASYNCH if req.rtu else ResponseType.NON_BLOCKING_SYNCH)
        doc = await self.request_doc(nb)  # refuses now what the non-blocking form could not take
        task: asyncio.Future[Response] = asyncio.ensure_future(execute(inner))
        done, _ = await asyncio.wait({task}, timeout=self.flex_wait_s)
        if done:
            return task.result()
        await self.ctx.apply(Outcome(ops=[Put(doc)]))
        self._track(self._finish(doc, nb, task))
        rsc = 1002 if nb.rt == ResponseType.NON_BLOCKING_ASYNCH else 1001
        return Response(rsc=rsc, rqi=req.rqi, pc={"m2m:uri": doc["ri"]}, rvi=req.rvi)

    async def _finish(self, doc: Doc, req: Request, task: asyncio.Future[Response]) -> None:
        try:
            resp = await task
        except Exception:  # the dispatcher never raises; be safe anyway
            log.exception("flexBlocking request %s failed", req.rqi)
            resp = Response(rsc=5000, rqi=req.rqi, pc={"m2m:dbg": "internal error"})
        await self.complete(doc, req, resp)

    def unanswered(self, req: Request, execute: Execute) -> Response:
        """``rt`` 5: start the operation, answer an empty 1001 now
        (module docstring); 5207 past ``max_unanswered``."""
        if self._unanswered >= self.max_unanswered:
            raise NotAcceptable(f"{self.max_unanswered} noResponse (rt 5) requests are already running "
                                "(docs/security.md \"Limits\"); send it blocking or later")
        self._unanswered += 1
        self._track(self._quiet(replace(req, rt=ResponseType.BLOCKING), execute))
        return Response(rsc=1001, rqi=req.rqi, rvi=req.rvi)

    async def _quiet(self, req: Request, execute: Execute) -> None:
        try:
            async with self._sem:
                resp = await execute(req)
            if not resp.ok:
                log.info("noResponse request %s %s (rqi %s) ended %s", req.op.name, req.to[:100], req.rqi, resp.rsc)
        except Exception:  # the dispatcher never raises; be safe anyway
            log.exception("noResponse request %s failed", req.rqi)
        finally:
            self._unanswered -= 1

    async def open_request(self, req: Request) -> tuple[Doc, Response]:
        """Store a PENDING ``<request>`` for ``req`` and build the 1001/1002
        answer; the caller completes it later with :meth:`complete`."""
        doc = await self.request_doc(req)
        await self.ctx.apply(Outcome(ops=[Put(doc)]))
        rsc = 1002 if req.rt == ResponseType.NON_BLOCKING_ASYNCH else 1001
        return doc, Response(rsc=rsc, rqi=req.rqi, pc={"m2m:uri": doc["ri"]}, rvi=req.rvi)

    async def request_doc(self, req: Request) -> Doc:
        """The PENDING ``<request>`` for ``req``, not stored yet; 4000 for
        what a non-blocking request cannot take (module docstring)."""
        if req.ty in self.blocking_only and req.op == Operation.CREATE:
            raise BadRequest(f"a resource of type {req.ty} is created by a blocking request only (rt 0): "
                             "its answer carries a key that a <request> resource would keep in the store")
        ctx = self.ctx
        if req.rt == ResponseType.NON_BLOCKING_ASYNCH and req.rtu:
            await self._check_targets(req.rtu)
        now = ctx.clock.now()
        now_ts = format_ts(now)
        et = now + self.lifetime
        if req.rset is not None:
            try:
                et = parse_abs_rel(req.rset, now)
            except ValueError as exc:
                raise BadRequest(f"X-M2M-RST (rset): {exc}") from None
        ri = new_ri("req")
        cb = ctx.identity
        doc: Doc = {
            "ty": REQUEST_TY, "ri": ri, "rn": ri, "pi": cb.cb_ri, "ct": now_ts, "lt": now_ts,
            "et": format_ts(et), "st": 0, "lbl": [req.fr or ""],
            "op": int(req.op), "tg": req.to, "org": req.fr or "", "rid": req.rqi,
            "mi": self._meta(req), "rs": RequestStatus.PENDING,
            "ors": {"rsc": 1000, "rqi": req.rqi},
            "_srn": f"{cb.cb_name}/{ri}", "_own": req.fr,
        }
        if req.pc is not None:
            doc["pc"] = req.pc
        return doc

    async def _check_targets(self, rtu: tuple[str, ...]) -> None:
        """4000 for too many targets or a URL the outbound policy refuses. A
        name that does not resolve now is left to the notification (which
        fails then, logged)."""
        self.policy.check_count(rtu, "X-M2M-RTU")
        for target in self.policy.fan_out(rtu, self.ctx.identity.csi):
            if is_url(target):
                try:
                    await self.policy.check(target)
                except TargetNotReachable:
                    pass

    @staticmethod
    def _meta(req: Request) -> dict[str, Any]:
        mi: dict[str, Any] = {"rt": {"rtv": req.rt}}
        if req.rtu is not None:
            mi["rt"]["nu"] = list(req.rtu)
        if req.ty is not None:
            mi["ty"] = req.ty
        if req.rcn is not None:
            mi["rcn"] = req.rcn
        return mi

    async def _run(self, doc: Doc, req: Request, execute: Execute) -> None:
        async with self._sem:
            inner = replace(req, rt=ResponseType.BLOCKING)
            try:
                resp = await execute(inner)
            except Exception:  # the dispatcher never raises; be safe anyway
                log.exception("non-blocking request %s failed", req.rqi)
                resp = Response(rsc=5000, rqi=req.rqi, pc={"m2m:dbg": "internal error"})
        await self.complete(doc, req, resp)

    async def complete(self, doc: Doc, req: Request, resp: Response) -> None:
        """Record the outcome in the ``<request>`` and notify it for rt=2."""
        ops = self.completion_ops(await self.ctx.store.get(doc["ri"]), req, resp)
        await self.ctx.apply(Outcome(ops=ops, sends=self.outcome_notices(doc, req, resp)))

    def completion_ops(self, current: Doc | None, req: Request, resp: Response) -> list[Op]:
        """The change recording ``resp`` in the ``<request>`` ``current``
        (nothing when it is gone)."""
        if current is None:
            return []
        ors: dict[str, Any] = {"rsc": resp.rsc, "rqi": req.rqi, "to": req.to, "fr": req.fr or "",
                               "ot": self.ctx.now_ts()}
        if resp.pc is not None:
            ors["pc"] = resp.pc
        return [Put({**current, "rs": RequestStatus.COMPLETED if resp.rsc < 4000 else RequestStatus.FAILED,
                     "ors": ors, "lt": self.ctx.now_ts(), "st": current.get("st", 0) + 1})]

    def outcome_notices(self, doc: Doc, req: Request, resp: Response) -> list[Notification]:
        """The outcome's notifications to the rt=2 originator's targets."""
        if req.rt != ResponseType.NON_BLOCKING_ASYNCH:
            return []
        targets = list(req.rtu) if req.rtu is not None else ([req.fr] if req.fr else [])
        csi = self.ctx.identity.csi
        rsp = {"m2m:rsp": {"rsc": resp.rsc, "rqi": req.rqi, "to": req.to, "fr": csi,
                           "rvi": req.rvi, **({"pc": resp.pc} if resp.pc is not None else {})}}
        return [Notification(doc["ri"], target, rsp, owner=req.fr, sur=f"{csi}/{doc['ri']}")
                for target in self.policy.fan_out(targets, csi)]

    async def fail_leftovers(self, keep: frozenset[str] = frozenset()) -> int:
        """Mark requests a previous run left PENDING as FAILED; return how many.

        ``keep`` lists ``<request>`` ris that are still on their way (stored
        session requests waiting for a window): they stay PENDING.
        """
        cb = self.ctx.identity.cb_ri
        ops: list[Op] = []
        for doc in await self.ctx.store.children(cb, REQUEST_TY):
            if doc.get("rs") == RequestStatus.PENDING and doc["ri"] not in keep:
                ors = {"rsc": 5000, "rqi": doc.get("rid", ""),
                       "pc": {"m2m:dbg": "the CSE restarted before this request completed"}}
                ops.append(Put({**doc, "rs": RequestStatus.FAILED, "ors": ors}))
        if ops:
            await self.ctx.apply(Outcome(ops=ops))
        return len(ops)

    async def stop(self) -> None:
        """Let running background requests finish (bounded by their own timeouts)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

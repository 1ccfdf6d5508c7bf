"""Polling channels: requests for AEs that cannot receive any (TS-0001
and TS-0004, resource pollingChannel and its pollingChannelURI; docs/onem2m.md
"pollingChannel").

An AE with ``rr`` false (behind NAT, no open port) creates a
``<pollingChannel>`` (ty 15) under itself and RETRIEVEs its virtual child
``<pollingChannel>/pcu``: the answer waits (long poll, bounded) for the next
request the CSE has for the AE and carries it as a request primitive
``{"m2m:rqp": {...}}``. The AE sends its answer as a NOTIFY to the same
``pcu`` with ``{"m2m:rsp": {"rsc", "rqi", ...}}``; that answer is the
answer of the request, as if the AE had been reached at a ``poa``.

:class:`Mailboxes` is the in-memory meeting point. The notifier puts a
request in with :meth:`Mailboxes.exchange` and waits up to its own timeout
for the answer: a poller that never comes makes the notification fail
after that timeout like any unreachable target. Nothing here needs to
survive a restart: a notification is settled in the outbox only once the
AE answered, so after a crash it is sent (and queued here) again.

Bounds (docs/security.md "Limits"): at most ``max_pending`` requests wait
for one AE (one more fails at once, 5103), at most ``max_pollers``
RETRIEVEs of one AE's ``pcu`` wait at once (5207), and a RETRIEVE waits
at most ``max_wait_s`` (less when its ``X-M2M-RET`` comes earlier); with
nothing to hand out it is answered 4008. Only the AE the channel belongs
to may RETRIEVE or NOTIFY its ``pcu`` (4103 for anyone else, the admin
included: the requests are the AE's own).

An AE connected over a WebSocket (TS-0020; docs/bindings.md "WebSocket")
is served from the same mailbox: its connection is the poller
(:meth:`Mailboxes.attach` marks the AE, the binding polls and answers for
it), so a request for it waits here while the connection is gone and is
handed out when the AE connects again. At most :data:`MAX_ATTACHED` AEs
are remembered as attached (the least recently attached is forgotten).
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    NotAcceptable,
    NotFound,
    OperationNotAllowed,
    OriginatorHasNoPrivilege,
    RequestTimeout,
    TargetNotReachable,
)
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome
from cse.core.ports import Doc
from cse.core.timestamps import parse_abs_rel

__all__ = ["Mailboxes", "PollingCSF", "POLLING_CHANNEL_TY", "primitive"]

POLLING_CHANNEL_TY = 15
AE_TY = 2
MAX_ATTACHED = 100_000


@dataclass
class _Box:
    """One AE's requests not yet handed out, and those handed out and not yet answered."""

    pending: deque[Request] = field(default_factory=deque)
    answers: dict[str, asyncio.Future[Response]] = field(default_factory=dict)
    ready: asyncio.Condition = field(default_factory=asyncio.Condition)


def primitive(req: Request) -> dict[str, Any]:
    """``req`` as a request primitive (TS-0004 7.2.1.1 short names)."""
    rqp: dict[str, Any] = {"op": int(req.op), "to": req.to, "fr": req.fr or "", "rqi": req.rqi}
    if req.rvi:
        rqp["rvi"] = req.rvi
    if req.ot is not None:
        rqp["ot"] = req.ot
    if req.ec is not None:
        rqp["ec"] = req.ec
    if req.pc is not None:
        rqp["pc"] = req.pc
    return rqp


class Mailboxes:
    """Per-AE queues of requests waiting for the AE's poll (module docstring)."""

    def __init__(self, *, max_pending: int = 64, max_pollers: int = 4) -> None:
        self.max_pending = max_pending
        self.max_pollers = max_pollers
        self._boxes: dict[str, _Box] = {}
        self._pollers: Counter[str] = Counter()  # AE ri -> RETRIEVEs of its pcu waiting now
        self._attached: OrderedDict[str, None] = OrderedDict()  # AEs reached over a WebSocket

    def attach(self, ae: str) -> None:
        """``ae`` (its ri) is reached over a WebSocket: requests for it wait
        here for its connection, connected or not (module docstring)."""
        self._attached[ae] = None
        self._attached.move_to_end(ae)
        while len(self._attached) > MAX_ATTACHED:
            self._attached.popitem(last=False)

    def attached(self, ae: str) -> bool:
        """Whether ``ae`` was attached (:meth:`attach`)."""
        return ae in self._attached

    async def give_back(self, ae: str, req: Request) -> None:
        """Put a request handed out by :meth:`poll` back at the head of the
        queue (its WebSocket closed before it could be sent), if it still waits."""
        box = self._boxes.get(ae)
        fut = box.answers.get(req.rqi) if box is not None else None
        if box is not None and fut is not None and not fut.done() and req not in box.pending:
            async with box.ready:
                box.pending.appendleft(req)
                box.ready.notify()

    def _drop_if_idle(self, ae: str) -> None:
        box = self._boxes.get(ae)
        if box is not None and not box.pending and not box.answers and not self._pollers[ae]:
            del self._boxes[ae]

    async def exchange(self, ae: str, req: Request, timeout: float) -> Response:
        """Queue ``req`` for the AE ``ae`` (its ri) and return its answer.

        Raises 5103 when the AE's queue is full, 4008 when no answer came
        within ``timeout`` (the request is withdrawn if still unread)."""
        box = self._boxes.setdefault(ae, _Box())
        if len(box.pending) + len(box.answers) >= self.max_pending:
            raise TargetNotReachable(f"{self.max_pending} requests already wait for AE '{ae[:100]}' to poll "
                                     "its pollingChannel")
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        box.answers[req.rqi] = answer
        async with box.ready:
            box.pending.append(req)
            box.ready.notify()
        try:
            return await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            raise RequestTimeout(f"AE '{ae[:100]}' did not fetch and answer the request through its "
                                 f"pollingChannel within {timeout:g} s") from None
        finally:
            if req in box.pending:
                box.pending.remove(req)
            box.answers.pop(req.rqi, None)
            self._drop_if_idle(ae)

    async def poll(self, ae: str, wait_s: float) -> Request | None:
        """The next request for ``ae``, waiting up to ``wait_s``; None when
        none came. 5207 when ``max_pollers`` already wait."""
        box = self._boxes.setdefault(ae, _Box())
        if self._pollers[ae] >= self.max_pollers:
            raise NotAcceptable(f"{self.max_pollers} RETRIEVEs of this pollingChannel's pcu already wait")
        self._pollers[ae] += 1
        try:
            async with box.ready:
                if not box.pending:
                    try:
                        await asyncio.wait_for(box.ready.wait_for(lambda: bool(box.pending)), wait_s)
                    except TimeoutError:
                        return None
                return box.pending.popleft()
        finally:
            self._pollers[ae] -= 1
            if not self._pollers[ae]:
                del self._pollers[ae]
            self._drop_if_idle(ae)

    def answer(self, ae: str, rsp: Response) -> bool:
        """Hand the AE's answer to the waiting request; False when no
        request of ``ae`` with that ``rqi`` waits (late, or never sent)."""
        box = self._boxes.get(ae)
        fut = box.answers.get(rsp.rqi) if box is not None else None
        if fut is None or fut.done():
            return False
        fut.set_result(rsp)
        return True

    def pending(self, ae: str) -> int:
        """Requests queued or handed out for ``ae`` and not answered yet."""
        box = self._boxes.get(ae)
        return len(box.answers) if box is not None else 0


class PollingCSF:
    """RETRIEVE and NOTIFY of ``<pollingChannel>/pcu`` (module docstring)."""

    def __init__(self, ctx: Context, boxes: Mailboxes, *, max_wait_s: float = 30.0) -> None:
        self.ctx = ctx
        self.boxes = boxes
        self.max_wait_s = max_wait_s

    async def owner(self, pch: Doc) -> Doc:
        """The AE the channel belongs to."""
        ae = await self.ctx.store.get(pch["pi"])
        if ae is None or ae.get("ty") != AE_TY:
            raise NotFound(f"pollingChannel '{pch.get('_srn', '')[:100]}' has no AE")
        return ae

    async def handle(self, req: Request, pch: Doc) -> Outcome:
        """Serve a request to ``pch``'s ``pcu``."""
        ae = await self.owner(pch)
        if req.fr != ae.get("aei", ae["ri"]) and req.fr != ae["ri"]:
            raise OriginatorHasNoPrivilege("only the AE a pollingChannel belongs to may use its pcu "
                                           "(docs/security.md \"Polling channels\")")
        if req.op == Operation.RETRIEVE:
            return Outcome(await self._retrieve(req, ae))
        if req.op == Operation.NOTIFY:
            return Outcome(self._answer(req, ae))
        raise OperationNotAllowed("'pcu' is a virtual resource: only RETRIEVE (poll) and NOTIFY (answer) apply")

    async def _retrieve(self, req: Request, ae: Doc) -> Response:
        wait = self.max_wait_s
        if req.rqet is not None:
            try:
                wait = min(wait, parse_abs_rel(req.rqet, self.ctx.clock.now()) - self.ctx.clock.now())
            except ValueError as exc:
                raise BadRequest(f"X-M2M-RET (rqet): {exc}") from None
        got = await self.boxes.poll(ae["ri"], max(wait, 0.0))
        if got is None:
            raise RequestTimeout(f"no request for this AE within {max(wait, 0.0):g} s; poll again")
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:rqp": primitive(got)}, rvi=req.rvi)

    def _answer(self, req: Request, ae: Doc) -> Response:
        rsp = req.pc.get("m2m:rsp") if isinstance(req.pc, dict) else None
        if not isinstance(rsp, dict) or not isinstance(rsp.get("rsc"), int) or not isinstance(rsp.get("rqi"), str):
            raise BadRequest("a NOTIFY to pcu carries {\"m2m:rsp\": {\"rsc\": <int>, \"rqi\": <string>, ...}}: "
                             "the answer to a request received by polling")
        answer = Response(rsc=rsp["rsc"], rqi=rsp["rqi"], pc=rsp.get("pc"), rvi=str(rsp.get("rvi", req.rvi)))
        if not self.boxes.answer(ae["ri"], answer):
            raise NotFound(f"no request '{rsp['rqi'][:100]}' waits for this AE's answer (too late, or unknown)")
        return Response(rsc=2000, rqi=req.rqi, rvi=req.rvi)

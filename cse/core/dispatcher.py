"""The request pipeline's entry: one Request in, one Response out.

Order (docs/architecture.md "One request, end to end"): request-level checks
(originator present, expiration, originator known here: ``check_originator``,
docs/security.md "Originators and remote CSEs") -> target classification (local or another CSE,
``cse.core.ids``) -> resolution of the local target, virtual ``la``/``ol``
included -> the operation's CSF. Every :class:`M2MError` raised anywhere below
becomes its RSC plus ``m2m:dbg`` here, once; anything else is a bug, logged
with its stack and answered 5000 without details.

The local handler and the session gate answer with an
:class:`~cse.core.outcome.Outcome`; the dispatcher hands it to the executor
(``execute``) and answers with its response once it is applied, so every
request's effect is one commit.

The dispatcher knows no aiohttp and no store backend; it is built by the
composition root with the CSFs it routes to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from .context import Context
from .errors import (
    BadRequest,
    M2MError,
    NonBlockingSynchNotSupported,
    NotFound,
    OperationNotAllowed,
    RequestTimeout,
)
from .ids import Target, normalize_originator, parse_to
from .messages import Operation, Request, Response
from .outcome import Outcome
from .ports import CommitResult, Doc
from .timestamps import parse_abs_rel

__all__ = ["Dispatcher", "Resolved", "Local"]

log = logging.getLogger("cse.dispatcher")

CONTAINER_TY = 3
INSTANCE_TY = 4
REQUEST_TY = 17


class Resolved:
    """A resolved local target: the resource, and the virtual name used to
    reach it (``la``/``ol``) if any, with the container behind it."""

    __slots__ = ("doc", "virtual", "container")

    def __init__(self, doc: Doc | None, virtual: str | None = None, container: Doc | None = None) -> None:
        self.doc = doc
        self.virtual = virtual
        self.container = container


Local = Callable[[Request, Resolved], Awaitable[Outcome]]
Check = Callable[[Request], Awaitable[None]]
Forward = Callable[[Request, Target], Awaitable[Response]]
Gate = Callable[[Request, Target], Awaitable[Outcome]]
Accept = Callable[[Request], Awaitable[Response]]
Execute = Callable[[Outcome], Awaitable[CommitResult]]


class Dispatcher:
    """Turns requests into responses; the one place errors are translated."""

    def __init__(self, ctx: Context, local: Local, execute: Execute, *, forward: Forward | None = None,
                 nonblocking: Accept | None = None, session_gate: Gate | None = None,
                 check_originator: Check | None = None) -> None:
        self.ctx = ctx
        self.check_originator = check_originator  # raises unless the originator is known here
        self.local = local
        self.execute = execute
        self.forward = forward
        self.nonblocking = nonblocking
        self.session_gate = session_gate

    async def handle(self, req: Request) -> Response:
        """Process ``req``; never raises. (One coroutine: every request passes here.)"""
        try:
            ident = self.ctx.identity
            if not req.rqi:
                raise BadRequest("request identifier (X-M2M-RI) is missing")
            if not req.fr and not (req.op == Operation.CREATE and req.ty == 2):
                raise BadRequest("originator (X-M2M-Origin) is missing")
            fr = normalize_originator(req.fr, ident.csi)
            if fr != req.fr:
                req = replace(req, fr=fr)
            self._check_expiration(req)
            if self.check_originator is not None:  # before anything serves, remembers or forwards it
                await self.check_originator(req)
            target = parse_to(req.to, ident.csi, ident.cb_name, ident.sp_id)
            if req.sid is not None and self.session_gate is not None:  # the SMG runs first (docs/sessions.md)
                return await self._applied(await self.session_gate(req, target))
            if req.rt in (1, 2) and req.op != Operation.NOTIFY:
                if self.nonblocking is None:
                    raise NonBlockingSynchNotSupported("non-blocking requests (rt=1, rt=2) are not supported")
                if target.local:
                    resolved = await self.resolve(target, req.op)  # unknown target: 4004 now, not later
                    if resolved.doc is not None and resolved.doc["ty"] == REQUEST_TY:
                        raise BadRequest("a <request> resource cannot be the target of a non-blocking request")
                return await self.nonblocking(req)
            if not target.local:
                if self.forward is None:
                    raise NotFound(f"CSE '{target.csi}' is not known to this CSE")
                return await self.forward(req, target)
            outcome = await self.local(req, await self.resolve(target, req.op))
            if outcome.ops or outcome.events or outcome.sends or outcome.deadlines or outcome.removal is not None:
                await self.execute(outcome)  # _applied, inlined: every local request passes here
            assert outcome.response is not None, "a request's outcome always carries its response"
            return outcome.response
        except M2MError as exc:
            return Response(rsc=int(exc.rsc), rqi=req.rqi, pc={"m2m:dbg": exc.message}, rvi=req.rvi)
        except Exception:  # a bug: log it, never leak it
            log.exception("internal error processing %s %s (rqi %s)", req.op.name, req.to, req.rqi)
            return Response(rsc=5000, rqi=req.rqi,
                            pc={"m2m:dbg": "internal server error (logged by the CSE)"}, rvi=req.rvi)

    async def _applied(self, outcome: Outcome) -> Response:
        """Apply ``outcome`` (commit, emit, send, arm), then answer. A read
        changes nothing: its outcome skips the executor (applying it would
        do nothing either)."""
        if outcome.ops or outcome.events or outcome.sends or outcome.deadlines or outcome.removal is not None:
            await self.execute(outcome)
        assert outcome.response is not None, "a request's outcome always carries its response"
        return outcome.response

    def _check_expiration(self, req: Request) -> None:
        if req.rqet is None and req.rset is None:
            return  # most requests set neither: no need for the clock
        now = self.ctx.clock.now()
        for name, value in (("X-M2M-RET (rqet)", req.rqet), ("X-M2M-RST (rset)", req.rset)):
            if value is None:
                continue
            try:
                deadline = parse_abs_rel(value, now)
            except ValueError as exc:
                raise BadRequest(f"{name}: {exc}") from None
            if deadline <= now:
                raise RequestTimeout(f"{name} {value} has already passed")

    async def resolve(self, target: Target, op: Operation) -> Resolved:
        """Find the local resource ``target`` names (4004 when none)."""
        store = self.ctx.store
        segs = target.segments
        if target.structured:
            doc = await store.get_by_path(target.srn)
            if doc is not None:
                return Resolved(doc)
            if len(segs) > 1 and segs[-1] in ("la", "ol"):
                parent = await store.get_by_path("/".join(segs[:-1]))
                if parent is not None and parent["ty"] == CONTAINER_TY:
                    return await self._virtual(parent, segs[-1], op)
            raise NotFound(f"resource '{_clip(target.srn)}' does not exist")
        doc = await store.get(segs[0])
        if doc is None:
            raise NotFound(f"resource with ri '{_clip(segs[0])}' does not exist")
        for i, seg in enumerate(segs[1:], start=1):
            if seg in ("la", "ol") and doc["ty"] == CONTAINER_TY and i == len(segs) - 1:
                return await self._virtual(doc, seg, op)
            child = await store.child_by_name(doc["ri"], seg)
            if child is None:
                raise NotFound(f"resource '{_clip('/'.join(segs[: i + 1]))}' does not exist")
            doc = child
        return Resolved(doc)

    async def _virtual(self, container: Doc, name: str, op: Operation) -> Resolved:
        if op not in (Operation.RETRIEVE, Operation.DELETE):
            raise OperationNotAllowed(f"'{name}' is a virtual resource: only RETRIEVE and DELETE apply")
        if container.get("disr"):
            raise OperationNotAllowed(
                f"retrieval is disabled (disr) on container '{container['_srn']}'")
        doc = await self.ctx.store.edge_child(container["ri"], INSTANCE_TY, newest=(name == "la"))
        if doc is None:
            raise NotFound(f"container '{container['_srn']}' has no contentInstance")
        return Resolved(doc, name, container)


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n] + "..."


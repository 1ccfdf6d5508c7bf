"""The request pipeline's entry: one Request in, one Response out.

Order (docs/architecture.md "One request, end to end"): request-level checks
(originator present, the time parameters and their order, originator known here: ``check_originator``,
docs/security.md "Originators and remote CSEs") -> target classification (local or another CSE,
``cse.core.ids``) -> resolution of the local target, virtual ``la``/``ol``
included -> the operation's CSF. Every :class:`M2MError` raised anywhere below
becomes its RSC plus ``m2m:dbg`` here, once; anything else is a bug, logged
with its stack and answered 5000 without details.

The local handler and the session gate answer with an
:class:`~cse.core.outcome.Outcome`; the dispatcher hands it to the executor
(``execute``) and answers with its response once it is applied, so every
request's effect is one commit.

Time parameters (TS-0001 8.1.2; docs/onem2m.md "Time parameters"): a
request whose Request Expiration (RET) or Result Expiration (RST) has passed
is 4008; RST before RET, or an Operation Execution Time (OET) after RET or
RST, is 4000 (the operation could never run, or its result never be given,
in time). A local operation with a future OET waits for it (``wait_until``,
injected: time is a parameter) at most ``max_oet_delay_s`` ahead; further
is 5207, this CSE's code for a configured capacity (docs/security.md
"Limits"). A request for another CSE keeps its OET: the hosting CSE waits.

Several workers on one store (docs/scaling.md): ``serialize`` is the write
gate (cse.store.pg_coord); every request that may change the store (any
operation but RETRIEVE and NOTIFY, and every session-based request) runs
from the resolution of its target to its commit inside it, so what it read
is still true when it commits. ``refresh`` runs first for every request:
each worker reads from its own memory, and a request must see every write
another worker acknowledged before it arrived (cse.store.pg_shared). A
group's fanOutPoint is resolved inside but served outside: each member
request takes the gate itself.

The dispatcher knows no aiohttp and no store backend; it is built by the
composition root with the CSFs it routes to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from .context import Context
from .errors import (
    BadRequest,
    M2MError,
    NonBlockingSynchNotSupported,
    NotAcceptable,
    NotFound,
    NotImplementedOp,
    OperationNotAllowed,
    RequestTimeout,
)
from .ids import Target, normalize_originator, parse_to
from .messages import Operation, Request, Response
from .outcome import Outcome
from .ports import CommitResult, Doc
from .timestamps import parse_abs_rel

__all__ = ["Dispatcher", "Resolved", "Local", "NoInstance"]

log = logging.getLogger("cse.dispatcher")

AE_TY = 2
_SESSIONS_RN = "sessions"  # an AE's session collection (docs/sessions.md), present with scp ["smg"]
GROUP_TY = 9
FOPT = "fopt"
REQUEST_TY = 17
POLLING_CHANNEL_TY = 15


class Resolved:
    """A resolved local target: the resource, and the virtual name used to
    reach it (``la``/``ol``) if any, with the container behind it. For a
    group's ``fopt`` (fanOutPoint, TS-0001 9.6.14) ``doc`` is the group and
    ``rest`` the path after ``fopt`` that each member's request appends."""

    __slots__ = ("doc", "virtual", "container", "rest")

    def __init__(self, doc: Doc | None, virtual: str | None = None, container: Doc | None = None,
                 rest: str = "") -> None:
        self.doc = doc
        self.virtual = virtual
        self.container = container
        self.rest = rest


Local = Callable[[Request, Resolved], Awaitable[Outcome]]
Check = Callable[[Request], Awaitable[None]]
Forward = Callable[[Request, Target], Awaitable[Response]]
Gate = Callable[[Request, Target], Awaitable[Outcome]]
Accept = Callable[[Request], Awaitable[Response]]
Execute = Callable[[Outcome], Awaitable[CommitResult]]
Settle = Callable[[Outcome], Awaitable[Outcome]]
WaitUntil = Callable[[float], Awaitable[None]]
Serialize = Callable[[], AbstractAsyncContextManager[None]]
Refresh = Callable[[], Awaitable[None]]
_UNGATED = (Operation.RETRIEVE, Operation.NOTIFY)


class NoInstance(NotFound):
    """4004: ``la``/``ol`` of a container without contentInstance. A
    RETRIEVE of it is still handed to the local handler (with a
    :class:`Resolved` without ``doc``): the attempt is an event that a
    subscription may watch (net 5, TS-0001 9.6.8)."""

    def __init__(self, message: str, container: Doc, virtual: str) -> None:
        super().__init__(message)
        self.container = container
        self.virtual = virtual


class Dispatcher:
    """Turns requests into responses; the one place errors are translated."""

    def __init__(self, ctx: Context, local: Local, execute: Execute, *, forward: Forward | None = None,
                 nonblocking: Accept | None = None, session_gate: Gate | None = None,
                 check_originator: Check | None = None, wait_until: WaitUntil | None = None,
                 max_oet_delay_s: float = 0.0, settle: Settle | None = None,
                 serialize: Serialize | None = None, refresh: Refresh | None = None) -> None:
        """``wait_until(t)`` returns once the clock reads ``t`` (epoch
        seconds); without it, or with ``max_oet_delay_s`` 0, a future OET is 5207.
        ``serialize``: the write gate of several workers, ``refresh`` what
        brings this worker up to the others' commits (module docstring)."""
        self.serialize = serialize
        self.refresh = refresh
        self.ctx = ctx
        self.settle = settle  # asks an outcome's question (cse.core.executor.Executor.settle)
        self.wait_until = wait_until
        self.max_oet_delay_s = max_oet_delay_s
        self.check_originator = check_originator  # raises unless the originator is known here
        self.local = local
        self.execute = execute
        self.forward = forward
        self.nonblocking = nonblocking
        self.session_gate = session_gate

    async def handle(self, req: Request) -> Response:
        """Process ``req``; never raises."""
        try:
            return await self._handle(req)
        except M2MError as exc:
            return Response(rsc=int(exc.rsc), rqi=req.rqi, pc={"m2m:dbg": exc.message}, rvi=req.rvi)
        except Exception:  # a bug: log it, never leak it
            log.exception("internal error processing %s %s (rqi %s)", req.op.name, req.to, req.rqi)
            return Response(rsc=5000, rqi=req.rqi,
                            pc={"m2m:dbg": "internal server error (logged by the CSE)"}, rvi=req.rvi)

    async def _handle(self, req: Request) -> Response:
        ident = self.ctx.identity
        if not req.rqi:
            raise BadRequest("request identifier (X-M2M-RI) is missing")
        if not req.fr and not (req.op == Operation.CREATE and req.ty == 2):
            raise BadRequest("originator (X-M2M-Origin) is missing")
        fr = normalize_originator(req.fr, ident.csi)
        if fr != req.fr:
            req = replace(req, fr=fr)
        oet = self._check_times(req)
        if self.refresh is not None:  # several workers: what another one acknowledged is seen here
            await self.refresh()
        if self.check_originator is not None:  # before anything serves, remembers or forwards it
            await self.check_originator(req)
        target = parse_to(req.to, ident.csi, ident.cb_name, ident.sp_id)
        if oet is not None and target.local:
            self._holdable(oet, req.oet or "")  # refused now, not after a non-blocking request was accepted
        if req.sid is not None and self.session_gate is not None:
            if self.serialize is not None:
                async with self.serialize():
                    return await self._applied(await self.session_gate(req, target))
            return await self._applied(await self.session_gate(req, target))  # the SMG runs first (docs/sessions.md)
        if req.rt in (4, 5) and self.nonblocking is None:
            req = replace(req, rt=3)  # flexBlocking may be blocking; noResponse is then served blocking too
        if req.rt in (1, 2, 4, 5) and req.op != Operation.NOTIFY:
            if self.nonblocking is None:
                raise NonBlockingSynchNotSupported("non-blocking requests (rt=1, rt=2) are not supported")
            if target.local:
                resolved = await self.resolve(target, req.op)  # unknown target: 4004 now, not later
                if resolved.doc is not None and resolved.doc["ty"] == REQUEST_TY:
                    if req.rt in (1, 2):
                        raise BadRequest("a <request> resource cannot be the target of a non-blocking request")
                    if req.rt == 4:  # the CSE chooses: blocking
                        return await self._applied(await self.local(replace(req, rt=3), resolved))
            return await self.nonblocking(req)
        if not target.local:
            if self.forward is None:
                raise NotFound(f"CSE '{target.csi}' is not known to this CSE")
            return await self.forward(req, target)
        if oet is not None:
            await self._until(oet, req.oet or "")
        if self.serialize is None or req.op in _UNGATED:
            resolved = await self._resolve_local(target, req.op)
            return await self._applied(await self.local(req, resolved))
        async with self.serialize():
            resolved = await self._resolve_local(target, req.op)
            if resolved.virtual != FOPT:
                return await self._applied(await self.local(req, resolved))
        return await self._applied(await self.local(req, resolved))  # fan-out: members take the gate themselves

    async def _resolve_local(self, target: Target, op: Operation) -> Resolved:
        """:meth:`resolve`, where ``la``/``ol`` of a parent without instances
        is still handed to the handler on a RETRIEVE (it answers 4004 and
        raises the net 5 event, :class:`NoInstance`)."""
        try:
            return await self.resolve(target, op)
        except NoInstance as exc:
            if op != Operation.RETRIEVE:
                raise
            return Resolved(None, exc.virtual, exc.container)

    async def _applied(self, outcome: Outcome) -> Response:
        """Apply ``outcome`` (commit, emit, send, arm), then answer. A read
        changes nothing: its outcome skips the executor (applying it would
        do nothing either). An outcome that asks a question is settled
        first: its answer decides the outcome (cse/core/outcome.py ``Ask``)."""
        if outcome.ask is not None:
            if self.settle is None:
                raise NotImplementedOp("this CSE cannot ask questions before answering")
            outcome = await self.settle(outcome)
        if outcome.ops or outcome.events or outcome.sends or outcome.deadlines or outcome.removal is not None:
            await self.execute(outcome)
        assert outcome.response is not None, "a request's outcome always carries its response"
        return outcome.response

    def _check_times(self, req: Request) -> float | None:
        """Check RET, RST and OET and their order (module docstring); return
        the OET still ahead, if any."""
        if req.rqet is None and req.rset is None and req.oet is None:
            return None  # most requests set none: no need for the clock
        now = self.ctx.clock.now()
        at: dict[str, float] = {}
        for name, value in (("X-M2M-RET (rqet)", req.rqet), ("X-M2M-RST (rset)", req.rset),
                            ("X-M2M-OET (oet)", req.oet)):
            if value is None:
                continue
            try:
                at[name] = parse_abs_rel(value, now)
            except ValueError as exc:
                raise BadRequest(f"{name}: {exc}") from None
            if name != "X-M2M-OET (oet)" and at[name] <= now:
                raise RequestTimeout(f"{name} {value} has already passed")
        ret, rst, oet = at.get("X-M2M-RET (rqet)"), at.get("X-M2M-RST (rset)"), at.get("X-M2M-OET (oet)")
        if ret is not None and rst is not None and rst < ret:
            raise BadRequest(f"X-M2M-RST (rset) {_clip(req.rset or '', 40)} is earlier than "
                             f"X-M2M-RET (rqet) {_clip(req.rqet or '', 40)}: "
                             "the result would expire before the request does (TS-0001 8.1.2)")
        for name, limit in (("X-M2M-RET (rqet)", ret), ("X-M2M-RST (rset)", rst)):
            if oet is not None and limit is not None and oet > limit:
                raise BadRequest(f"X-M2M-OET (oet) {_clip(req.oet or '', 40)} is later than {name}: the operation "
                                 "could not be executed before it expires (TS-0001 8.1.2)")
        return oet if oet is not None and oet > now else None

    def _holdable(self, oet: float, raw: str) -> None:
        """5207 unless this CSE may hold an operation until ``oet`` (module docstring)."""
        ahead = oet - self.ctx.clock.now()
        if ahead > 0 and (self.wait_until is None or ahead > self.max_oet_delay_s):
            raise NotAcceptable(
                f"X-M2M-OET (oet) {_clip(raw, 40)} is {ahead:.1f} s ahead: this CSE holds an operation "
                f"at most {self.max_oet_delay_s:g} s (limits.max_oet_delay_s)")

    async def _until(self, oet: float, raw: str) -> None:
        """Hold a local operation until its OET (module docstring)."""
        self._holdable(oet, raw)
        if oet > self.ctx.clock.now():
            assert self.wait_until is not None  # _holdable refuses otherwise
            await self.wait_until(oet)

    async def resolve(self, target: Target, op: Operation) -> Resolved:
        """Find the local resource ``target`` names (4004 when none)."""
        store = self.ctx.store
        segs = target.segments
        if target.structured:
            doc = await store.get_by_path(target.srn)
            if doc is not None:
                return Resolved(doc)
            if FOPT in segs[1:]:
                i = segs.index(FOPT, 1)
                group = await store.get_by_path("/".join(segs[:i]))
                if group is not None and group["ty"] == GROUP_TY:
                    return Resolved(group, FOPT, rest="/".join(segs[i + 1:]))
            if len(segs) > 1 and segs[-1] in ("la", "ol", "pcu"):
                parent = await store.get_by_path("/".join(segs[:-1]))
                if parent is not None and segs[-1] != "pcu" and self._keeps_instances(parent):
                    return await self._virtual(parent, segs[-1], op)
                if parent is not None and parent["ty"] == POLLING_CHANNEL_TY and segs[-1] == "pcu":
                    return Resolved(parent, "pcu")  # docs/onem2m.md "pollingChannel"
            raise NotFound(f"resource '{_clip(target.srn)}' does not exist{await self._hint(segs)}")
        doc = await store.get(segs[0])
        if doc is None:
            raise NotFound(f"resource with ri '{_clip(segs[0])}' does not exist")
        for i, seg in enumerate(segs[1:], start=1):
            if seg == FOPT and doc["ty"] == GROUP_TY:
                return Resolved(doc, FOPT, rest="/".join(segs[i + 1:]))
            if seg in ("la", "ol") and i == len(segs) - 1 and self._keeps_instances(doc):
                return await self._virtual(doc, seg, op)
            if seg == "pcu" and doc["ty"] == POLLING_CHANNEL_TY and i == len(segs) - 1:
                return Resolved(doc, "pcu")
            child = await store.child_by_name(doc["ri"], seg)
            if child is None:
                raise NotFound(f"resource '{_clip('/'.join(segs[: i + 1]))}' does not exist")
            doc = child
        return Resolved(doc)

    async def _hint(self, segs: tuple[str, ...]) -> str:
        """Why a missing ``<AE>/sessions`` is missing: only an AE registered with
        session capability has the collection (docs/sessions.md)."""
        if len(segs) < 2 or segs[-1] != _SESSIONS_RN:
            return ""
        parent = await self.ctx.store.get_by_path("/".join(segs[:-1]))
        if parent is None or parent["ty"] != AE_TY or "smg" in (parent.get("scp") or ()):
            return ""
        return (": the AE was registered without session capability; register it with scp [\"smg\"] "
                "to have a sessions collection")

    def _keeps_instances(self, doc: Doc) -> bool:
        """Whether ``doc`` has ``la``/``ol`` (its type declares ``instances``)."""
        rtype = self.ctx.registry.by_ty.get(doc["ty"])
        return rtype is not None and rtype.instance_ty is not None

    async def _virtual(self, container: Doc, name: str, op: Operation) -> Resolved:
        if op not in (Operation.RETRIEVE, Operation.DELETE):
            raise OperationNotAllowed(f"'{name}' is a virtual resource: only RETRIEVE and DELETE apply")
        if container.get("disr"):
            raise OperationNotAllowed(
                f"retrieval is disabled (disr) on container '{container['_srn']}'")
        rtype = self.ctx.registry.get(container["ty"])
        instance_ty = rtype.instance_ty
        assert instance_ty is not None  # _keeps_instances
        doc = await self.ctx.store.edge_child(container["ri"], instance_ty, newest=(name == "la"))
        if doc is None:
            raise NoInstance(f"{rtype.name} '{container['_srn']}' has no "
                             f"{self.ctx.registry.get(instance_ty).name}", container, name)
        return Resolved(doc, name, container)


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n] + "..."


"""<group> (ty 9): member validation and the fanOutPoint (TS-0001 9.6.13,
9.6.14; TS-0004 7.4.13; docs/onem2m.md "group").

Member validation, at CREATE and whenever ``mid``, ``mt`` or ``mnm``
changes (the ``verify``/``verify_update`` hooks: a remote member needs a
round trip; each member request has its own request ID, ``<rqi>-v<n>``):

* ``mid`` loses its duplicates; more members than ``mnm`` is 6010.
* A member hosted here must exist (4004). A member on another CSE is
  RETRIEVEd through the normal pipeline (forwarding) as the group's
  originator: 4004 from its CSE is 4004 here; no answer (5103, a timeout,
  4103...) keeps it unvalidated and ``mtv`` false.
* A member whose type is not ``mt`` (unless ``mt`` is 24, mixed) is dealt
  with by ``csy``: 1 (default) drops it, 2 refuses the request (4110),
  3 makes ``mt`` 24 (mixed).
* No member ID names a fanOutPoint: a fan-out never reaches another one
  (4000), so one request fans out once (docs/security.md "Groups").

The fanOutPoint (``<group>/fopt[/path]``) sends the request to every member
(``member/path``) through the dispatcher as an ordinary request of the
ORIGINAL originator, so each member's CSE applies its own access control;
at most ``max_parallel`` at once, at most ``mnm`` members. Before that, the
originator needs the operation's privilege on the group by ``macp`` when it
is set, else by the group's ``acpi`` (TS-0001 9.6.13, membersAccessControlPolicyIDs). A session-based
request through fopt is refused (4103) unless every member is hosted here
at or below the session's endpoint AE (docs/security.md "Sessions"). Member
request ``n`` has the request ID ``<rqi>-m<n>`` (one request ID per request:
two members on one CSE at once are not a forwarding loop). The answer is one
``m2m:agr`` of ``m2m:rsp`` (rsc, rqi, to, fr, pc). The CSF
writes nothing: each member request is committed by its own pipeline run.

Member subscriptions made through the fanOutPoint (``gpi`` = the group,
cse/csf/group_subscription.py) live only as long as their reason: when the
group is deleted (by a request, at its ``et``, or with an ancestor) every
one of them goes, and when a member leaves ``mid`` (an UPDATE of ``mid``,
``mt`` or ``csy`` dropping it) that member's do (TS-0001 10.2.7: they exist
to send the member's notifications to the group; without it they would
only fail at its fanOutPoint). :meth:`GroupCSF.on_events` hears the group's
DELETE or UPDATE before its commit and answers with their deletions, each
with its DELETE and DELETE_CHILD events, so they are committed with it and
every listener hears of them (a subscriber is sent ``sud``; their pending
notifications go). Unsubscribing one member subscription, or all of them by
a DELETE of ``<group>/fopt/<name>``, is an ordinary DELETE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from cse.core.context import Context
from cse.core.dispatcher import FOPT, Resolved
from cse.core.errors import (
    BadRequest,
    GroupMemberTypeInconsistent,
    M2MError,
    MaxNumberOfMemberExceeded,
    NotFound,
    OperationNotAllowed,
    OriginatorHasNoPrivilege,
)
from cse.core.events import Event, EventKind
from cse.core.ids import Target, parse_to
from cse.core.messages import Operation, Request, Response, ResponseType
from cse.core.outcome import Outcome
from cse.core.ports import Delete, Doc, Op

from . import access
from .access import Grant, Permission
from .group_subscription import with_group
from .hooks import TypeHooks

__all__ = ["GroupCSF", "GROUP_TY", "MIXED"]

log = logging.getLogger("cse.group")

GROUP_TY = 9
SUBSCRIPTION_TY = 23
MIXED = 24  # memberType "mixed" (TS-0004 7.4.13)
ABANDON_MEMBER, ABANDON_GROUP, SET_MIXED = 1, 2, 3

Dispatch = Callable[[Request], Awaitable[Response]]
Resolve = Callable[[Target, Operation], Awaitable[Resolved]]
Notify = Callable[[Request, Doc], Awaitable[Outcome]]

_PERM = {Operation.CREATE: Permission.CREATE, Operation.RETRIEVE: Permission.RETRIEVE,
         Operation.UPDATE: Permission.UPDATE, Operation.DELETE: Permission.DELETE}


class GroupCSF:
    """Group member validation and fan-out (module docstring)."""

    def __init__(self, ctx: Context, dispatch: Dispatch, resolve: Resolve, *, max_parallel: int = 8,
                 notify: Notify | None = None) -> None:
        """``dispatch`` runs one request through the whole pipeline (the
        dispatcher, late-bound); ``resolve`` finds a local target;
        ``max_parallel`` bounds the member requests in flight per fan-out;
        ``notify`` takes a NOTIFY at the fanOutPoint (a member
        subscription's notification, cse/csf/group_subscription.py)."""
        self.notify = notify
        self.ctx = ctx
        self.dispatch = dispatch
        self.resolve = resolve
        self.max_parallel = max(1, max_parallel)

    def hooks(self) -> TypeHooks:
        """The group type's hooks: validation at CREATE and UPDATE."""
        return TypeHooks(verify=self._verify_create, verify_update=self._verify_update)

    # -- validation ---------------------------------------------------------------------
    async def _verify_create(self, ctx: Context, req: Request, doc: Doc) -> list[Op] | None:
        await self._validate(req, doc)
        return None

    async def _verify_update(self, ctx: Context, req: Request, old: Doc, new: Doc) -> list[Op] | None:
        if any(old.get(k) != new.get(k) for k in ("mid", "mt", "mnm")):
            await self._validate(req, new)
        return None

    async def _validate(self, req: Request, doc: Doc) -> None:
        """Check and normalise ``doc``'s members in place (module docstring)."""
        mid = list(dict.fromkeys(doc.get("mid") or []))
        mnm = doc.get("mnm")
        if mnm is not None and len(mid) > mnm:
            raise MaxNumberOfMemberExceeded(f"{len(mid)} members exceed maxNrOfMembers (mnm) {mnm}")
        csy = doc.get("csy", ABANDON_MEMBER)
        targets = [self._member_target(m, doc) for m in mid]
        found = await self._bounded([self._member_type(replace(req, rqi=f"{req.rqi}-v{i}"), m, t)
                                     for i, (m, t) in enumerate(zip(mid, targets, strict=True))])
        kept: list[str] = []
        validated = True
        mt = doc["mt"]
        for member, ty in zip(mid, found, strict=True):
            if ty is None:  # a remote member whose CSE did not answer: kept, unvalidated
                validated = False
                kept.append(member)
                continue
            if mt != MIXED and ty != mt:
                if csy == ABANDON_GROUP:
                    raise GroupMemberTypeInconsistent(
                        f"member '{_clip(member)}' is of type {ty}, not the memberType (mt) {mt}; "
                        "consistencyStrategy (csy) 2 abandons the group")
                if csy == ABANDON_MEMBER:
                    continue
                mt = MIXED
            kept.append(member)
        doc["mid"] = kept
        doc["mt"] = mt
        doc["cnm"] = len(kept)
        doc["mtv"] = validated

    def _member_target(self, member: str, group: Doc) -> Target:
        ident = self.ctx.identity
        target = parse_to(member, ident.csi, ident.cb_name, ident.sp_id)
        if FOPT in target.segments:
            raise BadRequest(f"member '{_clip(member)}' names a fanOutPoint: a fan-out never reaches another one")
        return target

    async def _member_type(self, req: Request, member: str, target: Target) -> int | None:
        """The member's ty (local: from the store; remote: by a RETRIEVE),
        None when its CSE gave no usable answer."""
        if target.local:
            try:
                resolved = await self.resolve(target, Operation.RETRIEVE)
            except NotFound:
                raise NotFound(f"member '{_clip(member)}' does not exist") from None
            assert resolved.doc is not None
            return int(resolved.doc["ty"])
        resp = await self.dispatch(Request(op=Operation.RETRIEVE, to=member, fr=req.fr, rqi=req.rqi, rvi=req.rvi))
        if resp.rsc == 4004:
            raise NotFound(f"member '{_clip(member)}' does not exist (its CSE answered 4004)")
        if resp.rsc == 2000 and isinstance(resp.pc, dict) and len(resp.pc) == 1:
            (body,) = resp.pc.values()
            if isinstance(body, dict) and isinstance(body.get("ty"), int):
                return int(body["ty"])
        log.info("group member %s not validated: its CSE answered %s", _clip(member), resp.rsc)
        return None

    # -- member subscriptions -----------------------------------------------------------
    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """The deletion of the member subscriptions a group's DELETE, or a
        member leaving its ``mid``, leaves without a reason (module
        docstring). Heard before the commit: the store still holds the group
        as it was."""
        groups = [ev for ev in events if ev.doc.get("ty") == GROUP_TY]  # every commit comes here: cheap when none
        if not groups:
            return None
        gone = {ev.doc["ri"] for ev in events if ev.kind == EventKind.DELETE}
        ops: list[Op] = []
        answered: list[Event] = []
        for ev in groups:
            group = ev.doc
            if ev.kind == EventKind.DELETE:
                left, staying = list(group.get("mid") or ()), []
            elif ev.kind == EventKind.UPDATE:
                old = await self.ctx.store.get(group["ri"])
                if old is None or old.get("mid") == group.get("mid"):
                    continue
                staying = list(group.get("mid") or ())
                left = [m for m in old.get("mid") or () if m not in staying]
            else:
                continue
            kept = {d["ri"] for d in [await self._local_member(m) for m in staying] if d is not None}
            for member in left:
                doc = await self._local_member(member)
                if doc is None or doc["ri"] in kept or doc["ri"] in gone:
                    continue
                for sub in await self.ctx.store.children(doc["ri"], SUBSCRIPTION_TY):
                    if sub.get("gpi") == group["ri"] and sub["ri"] not in gone:
                        gone.add(sub["ri"])
                        ops.append(Delete(sub["ri"]))
                        answered.append(Event(EventKind.DELETE, sub, originator=ev.originator))
                        answered.append(Event(EventKind.DELETE_CHILD, sub, doc, originator=ev.originator))
        return Outcome(ops=ops, events=answered) if ops else None

    async def _local_member(self, member: str) -> Doc | None:
        """The document of ``member`` when it is hosted here (else None:
        a member subscription exists only on a member hosted with its
        group, cse/csf/group_subscription.py)."""
        ident = self.ctx.identity
        try:
            target = parse_to(member, ident.csi, ident.cb_name, ident.sp_id)
            if not target.local:
                return None
            return (await self.resolve(target, Operation.RETRIEVE)).doc
        except M2MError:
            return None

    # -- fanOutPoint --------------------------------------------------------------------
    async def fan_out(self, req: Request, target: Resolved, grant: Grant = None) -> Outcome:
        """The aggregated answer of ``req`` sent to every member (module docstring)."""
        group = target.doc
        assert group is not None
        if req.op == Operation.NOTIFY and self.notify is not None and not target.rest:
            return await self.notify(req, group)  # a group subscription's notification (TS-0001 10.2.7)
        perm = _PERM.get(req.op)
        if perm is None:
            raise OperationNotAllowed(f"{req.op.name} is not supported on a fanOutPoint")
        if FOPT in target.rest.split("/"):
            raise BadRequest("the path after a fanOutPoint names another fanOutPoint: a fan-out is never nested")
        macp = group.get("macp")
        # macp, when set, stands for the group's acpi here (TS-0001 9.6.13)
        await access.check(self.ctx, req.fr, perm, {**group, "acpi": macp} if macp else group, grant)
        members: list[str] = list(group.get("mid") or [])[: group.get("mnm") or None]
        if grant is not None:
            await self._all_inside(members, group, grant)
        if req.op == Operation.CREATE and req.ty == SUBSCRIPTION_TY and not target.rest:
            # a group subscription: each member's carries gpi and nfu (cse/csf/group_subscription.py)
            req = replace(req, pc=with_group(req.pc, group["ri"], self.ctx.identity.csi))
        # each member request has its own ID: two to one CSE at once are not a forwarding loop
        subs = [replace(req, to=f"{m}/{target.rest}" if target.rest else m, rqi=f"{req.rqi}-m{i}", sid=None,
                        smac=None, rt=ResponseType.BLOCKING, rtu=None) for i, m in enumerate(members)]
        answers = await self._bounded([self._one(sub) for sub in subs])
        rsps = [self._rsp(sub, resp) for sub, resp in zip(subs, answers, strict=True)]
        return Outcome(Response(rsc=2000, rqi=req.rqi, pc={"m2m:agr": {"m2m:rsp": rsps}}, rvi=req.rvi))

    async def _all_inside(self, members: Sequence[str], group: Doc, grant: frozenset[str]) -> None:
        """4103 unless every member is hosted here at or below a granted endpoint AE."""
        for m in members:
            t = self._member_target(m, group)
            inside = False
            if t.local:
                try:
                    doc = (await self.resolve(t, Operation.RETRIEVE)).doc
                except NotFound:
                    doc = None
                inside = doc is not None and await access.within(self.ctx, doc, grant)
            if not inside:
                raise OriginatorHasNoPrivilege(
                    f"member '{_clip(m)}' is not at or below the session's endpoint AE: a session-based request "
                    "through a fanOutPoint reaches only members inside it")

    async def _one(self, sub: Request) -> Response:
        try:
            return await self.dispatch(sub)
        except M2MError as exc:  # the dispatcher answers rather than raises; kept for safety
            return Response(rsc=int(exc.rsc), rqi=sub.rqi, pc={"m2m:dbg": exc.message}, rvi=sub.rvi)

    def _rsp(self, sub: Request, resp: Response) -> dict[str, Any]:
        ident = self.ctx.identity
        try:
            t = parse_to(sub.to, ident.csi, ident.cb_name, ident.sp_id)
            fr = ident.csi if t.local else t.csi
        except M2MError:
            fr = ident.csi
        rsp: dict[str, Any] = {"rsc": resp.rsc, "rqi": resp.rqi, "to": sub.to, "fr": fr}
        if resp.pc is not None:
            rsp["pc"] = resp.pc
        if resp.rvi:
            rsp["rvi"] = resp.rvi
        return rsp

    async def _bounded(self, jobs: Sequence[Awaitable[Any]]) -> list[Any]:
        """Run ``jobs`` at most ``max_parallel`` at once, answers in order."""
        gate = asyncio.Semaphore(self.max_parallel)

        async def one(job: Awaitable[Any]) -> Any:
            async with gate:
                return await job

        done = await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)
        for result in done:  # every job has finished: nothing is left running behind an error
            if isinstance(result, BaseException):
                raise result
        return list(done)


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n] + "..."

"""The generic CREATE / RETRIEVE / UPDATE / DELETE of local resources.

TS-0004 7.4.1 (common resource procedures). Everything every type shares
happens here, once: content validation, names and conflicts (4105), parent
types (4108), timestamps, expiration (``et`` defaulted and capped by the
parent's), state tags, creator, access checks, the store operations and
events of the change, and the result content (``rcn``). Per-type behaviour comes only from
:class:`cse.csf.hooks.TypeHooks`.

CREATE, UPDATE and DELETE return an :class:`~cse.core.outcome.Outcome`
(operations, events, response) and never commit: the caller may add to the
same commit (the session gate adds the session context and its memory of
the answer) before the executor applies it. ``grant`` is the session grant
of the request (:mod:`.access`), passed explicitly wherever access is decided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    Conflict,
    InvalidChildResourceType,
    NotAcceptable,
    NotFound,
    OperationNotAllowed,
    TargetNotSubscribable,
)
from cse.core.events import Event, EventKind
from cse.core.ids import new_ri
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome, Removal
from cse.core.ports import Delete, Doc, Op, Put
from cse.core.registry import ResourceType
from cse.core.timestamps import FOREVER, format_ts, normalize_ts, parse_ts
from cse.core.validate import extract_attributes, validate_create, validate_update

from . import access
from .access import Grant, Permission
from .filters import FilterCriteria
from .hooks import NO_HOOKS, TypeHooks
from .result import address, check_rcn, wrap
from .tree import Content, representation

__all__ = ["DataCSF"]

SUBSCRIPTION_TY = 23
REGISTRATION_TYPES = frozenset({2, 16})  # AE, remoteCSE


# (req, old_doc, new_doc, changed_attrs, proceed) -> None (go on), or an
# outcome that asks a question first and calls proceed() once it may; raising refuses.
BeforeUpdate = Callable[[Request, Doc, Doc, dict[str, Any], Callable[[], Awaitable[Outcome]]],
                        Awaitable[Outcome | None]]


class DataCSF:
    """CRUD on resources hosted by this CSE."""

    def __init__(self, ctx: Context, hooks: Mapping[int, TypeHooks], *,
                 before_update: BeforeUpdate | None = None) -> None:
        """``before_update`` may hold an UPDATE of any resource, after its
        type's hooks accepted it, until a question is answered: a
        blockingUpdate subscriber's (cse/csf/blocking_update.py)."""
        self.ctx = ctx
        self.hooks = hooks
        self.before_update = before_update

    # -- CREATE -------------------------------------------------------------
    async def create(self, req: Request, parent: Doc, grant: Grant = None) -> Outcome:
        ctx = self.ctx
        if req.ty is None:
            raise BadRequest("CREATE needs the resource type: Content-Type: application/json;ty=<n>")
        rtype = ctx.registry.for_create(req.ty, req.pc)
        rcn = check_rcn(Operation.CREATE, req.rcn)
        if not rtype.can_create:
            raise OperationNotAllowed(f"{rtype.name} resources cannot be created through the API")
        if parent["ty"] not in rtype.parents:
            ptype = ctx.registry.get(parent["ty"]).name
            if rtype.ty == SUBSCRIPTION_TY:
                raise TargetNotSubscribable(f"a {ptype} cannot be subscribed to")
            raise InvalidChildResourceType(f"a {rtype.name} cannot be created under a {ptype}")
        if req.pc is None:
            raise BadRequest(f"CREATE of {rtype.name} needs content {{\"{rtype.root}\": {{...}}}}")
        depth = parent["_srn"].count("/") + 1  # levels below the CSEBase
        if depth > ctx.identity.max_depth:
            raise BadRequest(f"a {rtype.name} under '{parent['_srn']}' would be {depth} levels below the CSEBase; "
                             f"this CSE allows {ctx.identity.max_depth} (limits.max_depth)")
        attrs = extract_attributes(rtype, req.pc)
        validate_create(rtype, attrs)
        hooks = self.hooks.get(rtype.ty, NO_HOOKS)
        if rtype.ty not in REGISTRATION_TYPES:  # registrations bypass ACPs (TS-0004 7.4.5.2.1, 7.4.4.2.1)
            await access.check(ctx, req.fr, Permission.CREATE, parent, grant)
        if hooks.identify is not None:
            ri, owner = await hooks.identify(ctx, req, attrs)
        else:
            ri, owner = new_ri(rtype.sn), req.fr
        if ctx.identity.max_resources_per_originator:
            await self._check_quota(owner)
        rn = attrs.get("rn", ri)
        if await ctx.store.child_by_name(parent["ri"], rn) is not None:
            raise Conflict(f"a resource named '{rn}' already exists under '{parent['_srn']}'")
        now_s = ctx.clock.now()
        now = format_ts(now_s)
        doc: Doc = {"ty": rtype.ty, "ri": ri, "rn": rn, "pi": parent["ri"], "ct": now, "lt": now}
        for key, value in attrs.items():
            if key != "rn":
                doc[key] = _own_copy(value) if isinstance(value, (dict, list)) else value
        if rtype.expires:
            doc["et"] = self._expiration(attrs.get("et"), parent, now, now_s)
        if rtype.creator and "cr" in attrs:
            doc["cr"] = req.fr
        if rtype.keys and rtype.key_attr not in doc:  # mgd: the CSE sets it (TS-0004 7.4.15)
            doc[str(rtype.key_attr)] = rtype.keys[0]
        if rtype.custom_attributes and rtype.json_root:  # a generic flexContainer under its own root
            doc["_root"] = rtype.json_root
        if rtype.state_tag:
            doc["st"] = 0
        doc["_srn"] = f"{parent['_srn']}/{rn}"
        if owner is not None:
            doc["_own"] = owner
        if rtype.ty == SUBSCRIPTION_TY:  # TS-0004 7.4.8.2.1: RETRIEVE on what it watches, too
            await access.check(ctx, req.fr, Permission.RETRIEVE, parent, grant)
        extra = await hooks.on_create(ctx, req, parent, doc) if hooks.on_create else []
        if hooks.verify is not None:
            extra = [*extra, *(await hooks.verify(ctx, req, doc) or [])]
            # The verification round trip let other requests run: re-check.
            if await ctx.store.get(parent["ri"]) is None:
                raise NotFound(f"'{parent['_srn']}' was deleted while the request was processed")
            if await ctx.store.child_by_name(parent["ri"], rn) is not None:
                raise Conflict(f"a resource named '{rn}' already exists under '{parent['_srn']}'")
        view = hooks.view_created(doc, extra) if hooks.view_created else None
        resp = self._created(req, rtype, doc, attrs, rcn, view)
        events = [Event(EventKind.CREATE_CHILD, doc, parent, originator=req.fr), *_announced(hooks, extra, doc)]
        for op in extra:
            if type(op) is Delete and op.ri == ri:
                # evicted at once (mni 0, TS-0004 7.4.7.2.1): answered and heard of as created (net 3; a
                # timeSeries counts its arrival for missing data), then gone as silently as any eviction
                return Outcome(resp, [op for op in extra if not (type(op) is Delete and op.ri == ri)], events)
        return Outcome(resp, [Put(doc), *extra], events)

    async def _check_quota(self, owner: str | None) -> None:
        """5207 when ``owner`` already holds ``limits.max_resources_per_originator``
        resources (docs/security.md "Limits"). Counted from the store's index of
        owners, so the count is what the store holds, restarts included; the
        admin and the CSE itself have no quota."""
        ctx = self.ctx
        quota = ctx.identity.max_resources_per_originator
        if not quota or owner is None or access.is_privileged(ctx, owner):
            return
        held = await ctx.store.count_by("_own", owner)
        if held >= quota:
            raise NotAcceptable(f"originator '{owner}' already holds {held} resources, the most this CSE allows "
                                f"(limits.max_resources_per_originator = {quota}); delete some first")

    def _created(self, req: Request, rtype: ResourceType, doc: Doc, attrs: dict[str, Any], rcn: int,
                 view: dict[str, Any] | None = None) -> Response:
        loc = address(doc, 1)
        if rcn == 0:
            pc: Any = None
        elif rcn == 1:
            pc = wrap(self.ctx.registry, doc, view)
        elif rcn == 2:
            pc = {"m2m:uri": loc}
        elif rcn == 3:
            pc = {"m2m:rce": {**wrap(self.ctx.registry, doc, view), "uri": loc}}
        else:  # 9: what the CSE set or changed
            pc = self._modified(doc, attrs)
        return Response(rsc=2001, rqi=req.rqi, pc=pc, location=loc, rvi=req.rvi)

    def _modified(self, doc: Doc, attrs: dict[str, Any], old: Doc | None = None) -> Any:
        """rcn 9: what the CSE set or changed beyond the request (on UPDATE,
        only attributes whose value differs from before)."""
        changed = {k: v for k, v in doc.items()
                   if k[0] != "_" and (k not in attrs or attrs[k] != v)
                   and (old is None or old.get(k) != v)}
        return {self.ctx.registry.of(doc).root: changed} if changed else None

    def _expiration(self, requested: str | None, parent: Doc, now: str, now_s: float | None = None) -> str:
        """``et`` normalised; past -> 4000; default/capped by the parent's.
        ``now_s`` is ``now`` in epoch seconds, when the caller has it."""
        limit = parent.get("et") or FOREVER
        if requested is None:
            base = now_s if now_s is not None else parse_ts(now)
            default = format_ts(base + self.ctx.identity.default_et_s)
            return min(default, limit)
        try:
            et = normalize_ts(requested)
        except ValueError as exc:
            raise BadRequest(f"attribute 'et': {exc}") from None
        if et <= now:
            raise BadRequest(f"expirationTime (et) {requested} is in the past")
        return min(et, limit)

    # -- RETRIEVE -------------------------------------------------------------
    async def retrieve(self, req: Request, doc: Doc, fc: FilterCriteria | None, grant: Grant = None) -> Response:
        ctx = self.ctx
        rcn = check_rcn(Operation.RETRIEVE, req.rcn)
        await access.check(ctx, req.fr, Permission.RETRIEVE, doc, grant)
        if req.atrl:
            if rcn != 1:
                raise BadRequest("a partial RETRIEVE (atrl) needs rcn=1")
            rtype = ctx.registry.of(doc)
            unknown = [a for a in req.atrl if a not in rtype.attributes and not (rtype.custom_attributes and a in doc)]
            if unknown:
                raise BadRequest(f"attribute '{unknown[0]}' is not an attribute of {rtype.name}")
            picked = {a: doc[a] for a in req.atrl if a in doc}
            return Response(rsc=2000, rqi=req.rqi, pc={rtype.root: picked}, rvi=req.rvi)
        if rcn == 1:  # the resource itself (representation's first case, without its Content)
            return Response(rsc=2000, rqi=req.rqi, pc=wrap(ctx.registry, doc), rvi=req.rvi)
        content = await representation(ctx, req, doc, rcn, fc, grant)
        return Response(rsc=2000, rqi=req.rqi, pc=content.pc, rvi=req.rvi, cnst=content.cnst, cnot=content.cnot)

    # -- UPDATE ---------------------------------------------------------------
    async def update(self, req: Request, old: Doc, grant: Grant = None) -> Outcome:
        ctx = self.ctx
        rtype = ctx.registry.of(old)
        rcn = check_rcn(Operation.UPDATE, req.rcn)
        if not rtype.can_update:
            raise OperationNotAllowed(f"{rtype.name} resources cannot be updated")
        if req.pc is None:
            raise BadRequest(f"UPDATE needs content {{\"{rtype.root}\": {{...}}}}")
        attrs = extract_attributes(rtype, req.pc)
        validate_update(rtype, attrs)
        if "acpi" in attrs:  # TS-0001 9.6.1.3.2: governed by the ACPs' pvs, alone (docs/security.md)
            if len(attrs) > 1:
                others = ", ".join(sorted(k for k in attrs if k != "acpi"))
                raise BadRequest(f"acpi must be the only attribute of an UPDATE that changes it "
                                 f"(also given: {others[:200]}): send them in a separate UPDATE")
            await access.check_acpi_update(ctx, req.fr, old)
        else:
            await access.check(ctx, req.fr, Permission.UPDATE, old, grant)
        now = ctx.now_ts()
        new = dict(old)
        for key, value in attrs.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = _own_copy(value)
        if "et" in attrs:
            parent = await ctx.store.get(old["pi"]) if old.get("pi") else None
            new["et"] = self._expiration(attrs["et"], parent or {}, now)
        new["lt"] = now
        if rtype.state_tag:
            new["st"] = old.get("st", 0) + 1
        hooks = self.hooks.get(rtype.ty, NO_HOOKS)
        extra = await hooks.on_update(ctx, req, old, new, attrs) if hooks.on_update else []

        async def proceed() -> Outcome:
            more = extra
            if hooks.verify_update is not None:
                more = [*more, *(await hooks.verify_update(ctx, req, old, new) or [])]
                if await ctx.store.get(old["ri"]) is None:
                    raise NotFound(f"'{old['_srn']}' was deleted while the request was processed")
            event = Event(EventKind.UPDATE, new, modified=tuple(attrs), originator=req.fr)
            if rcn == 0:
                pc: Any = None
            elif rcn == 1:
                pc = wrap(ctx.registry, new)
            else:
                pc = self._modified(new, attrs, old)
            return Outcome(Response(rsc=2004, rqi=req.rqi, pc=pc, rvi=req.rvi), [Put(new), *more],
                           [event, *_announced(hooks, more, new)])

        if self.before_update is not None:
            gated = await self.before_update(req, old, new, attrs, proceed)
            if gated is not None:
                return gated  # a question first (an Ask the executor settles), then proceed
        return await proceed()

    # -- DELETE ---------------------------------------------------------------
    async def delete(self, req: Request, doc: Doc, fc: FilterCriteria | None, grant: Grant = None) -> Outcome:
        ctx = self.ctx
        rtype = ctx.registry.get(doc["ty"])
        rcn = check_rcn(Operation.DELETE, req.rcn)
        if not rtype.can_delete:
            raise OperationNotAllowed(f"{rtype.name} resources cannot be deleted")
        await access.check(ctx, req.fr, Permission.DELETE, doc, grant)
        content = await representation(ctx, req, doc, rcn, fc, grant) if rcn else Content(None)
        removal, note = await self.removal(doc, req.fr)
        pc = content.pc if content.pc is not None or note is None else {"m2m:dbg": note}
        return removal.answering(Response(rsc=2002, rqi=req.rqi, pc=pc, rvi=req.rvi, cnst=content.cnst,
                                          cnot=content.cnot))

    async def remove(self, doc: Doc, originator: str | None) -> None:
        """Delete ``doc`` and its subtree now, outside a request (expiry, an
        exhausted subscription, deregistration)."""
        outcome, _ = await self.removal(doc, originator)
        await self.ctx.apply(outcome)

    async def removal(self, doc: Doc, originator: str | None) -> tuple[Outcome, str | None]:
        """The outcome deleting ``doc`` and its subtree, and the note of its
        ``pre_delete`` hook (what could not be done, for the answer's dbg)."""
        ctx = self.ctx
        hooks = self.hooks.get(doc["ty"], NO_HOOKS)
        note = None
        also = Outcome()
        if hooks.pre_delete is not None:
            note, also = await hooks.pre_delete(ctx, doc, originator)
            current = await ctx.store.get(doc["ri"])
            if current is None:  # gone meanwhile (the round trip let others run)
                return also, note
            doc = current
        extra = await hooks.on_delete(ctx, doc) if hooks.on_delete else []
        parent = await ctx.store.get(doc["pi"]) if doc.get("pi") else None
        return also.adding(ops=[Delete(doc["ri"]), *extra]).with_removal(Removal(doc, parent, originator)), note


def _announced(hooks: TypeHooks, extra: list[Op], doc: Doc) -> list[Event]:
    """CREATE_CHILD events for the new children of ``doc`` its hooks put
    (:attr:`TypeHooks.announces`): made by the CSE, so no originator."""
    if not hooks.announces:
        return []
    return [Event(EventKind.CREATE_CHILD, op.doc, doc) for op in extra
            if type(op) is Put and op.doc.get("ty") in hooks.announces and op.doc.get("pi") == doc["ri"]]


def _own_copy(value: Any) -> Any:
    """A copy of a JSON value that shares no dict or list with the request:
    hooks may adjust the stored document, and the request's content is kept
    elsewhere too (a ``<request>`` resource stores it). Iterative: content
    may nest deeper than the interpreter's recursion limit."""
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, item in items:
            if isinstance(item, (dict, list)):
                copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, copy))
                item = copy
            if isinstance(dst, dict):
                dst[key] = item
            else:
                dst.append(item)
    return root

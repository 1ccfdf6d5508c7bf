"""Walking the resource tree: discovery and child-bearing result content.

Discovery (``fu=1``, TS-0004 7.4.1.2.2 / docs/onem2m.md) and RETRIEVE
or DELETE with ``rcn`` 4/5/6/8 both visit descendants in creation order,
depth-first, honouring ``lvl`` (depth), ``ofst`` (skip the first n-1 direct
children with their subtrees), ``lim`` (at most that many results) and the
matching conditions, and include only resources the originator may see
(DISCOVER for discovery, RETRIEVE otherwise). INACTIVE AEs (``regs`` 2) and
their subtrees are skipped in discovery; a ``sessions`` collection or
session the originator may not see is skipped with its subtree in every
walk (docs/sessions.md "Who sees sessions").

Privileges are decided top-down so that each resource costs one check:
a resource without an ``acpi`` attribute (contentInstance) inherits its
parent's decision, and ownership found at an ancestor flows down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest
from cse.core.messages import Request
from cse.core.ports import Doc

from . import access, discovery
from .access import Grant, Permission
from .filters import FilterCriteria, matches
from .granter import SESSION_ROOTS, Granter
from .result import addresses, child_ref, public, wrap

__all__ = ["Content", "PARTIAL_CONTENT", "WALK_SLICE", "Walk", "discover", "representation"]

#: Resources a walk visits between two yields to the event loop.
WALK_SLICE = 128

#: Content Status PARTIAL_CONTENT (TS-0004 6.3.4.2.44).
PARTIAL_CONTENT = 1


@dataclass(frozen=True, slots=True)
class Content:
    """Result content with its Content Status and Content Offset (TS-0004
    6.3.4.2.44; ``X-M2M-CTS``/``X-M2M-CTO``, TS-0009 6.4.20-21): both None
    when the content is complete."""

    pc: Any
    cnst: int | None = None
    cnot: int | None = None


class Walk:
    """One walk: ``async for doc, depth in Walk(...)`` yields matching,
    visible descendants of ``root``; once it has ended, :attr:`partial` says
    whether the result was cut and :attr:`offset` where to go on.

    Bounded three ways (docs/security.md "Limits"): at most ``lim`` results,
    and never more than ``limits.max_result`` (a walk that has more is cut:
    ``partial``, and ``offset`` is the ``ofst`` of the direct child whose
    subtree holds the first result left out); never deeper than
    ``limits.max_depth`` levels below the root; and every
    :data:`WALK_SLICE` resources it yields the event loop, so one long walk
    does not hold up every other request. Subtrees the originator cannot see
    are not entered (:meth:`Granter.worth_visiting`). ``cached`` False
    decides every resource's privileges afresh (the reference the ACP cache
    is tested against).
    """

    def __init__(self, ctx: Context, root: Doc, originator: str | None, perm: int,
                 fc: FilterCriteria | None, discovery: bool, grant: Grant = None, cached: bool = True) -> None:
        self.ctx = ctx
        self.root = root
        self.originator = originator
        self.perm = perm
        self.fc = fc
        self.discovery = discovery
        self.grant = grant
        self.cached = cached
        self.partial = False
        self.offset: int | None = None

    def __aiter__(self) -> AsyncIterator[tuple[Doc, int]]:
        return self._walk()

    def content(self, pc: Any) -> Content:
        """``pc`` with this walk's content status."""
        if not self.partial:
            return Content(pc)
        return Content(pc, PARTIAL_CONTENT, self.offset)

    async def _walk(self) -> AsyncIterator[tuple[Doc, int]]:
        ctx, fc, root = self.ctx, self.fc, self.root
        granter = Granter(ctx, self.originator, self.perm, self.grant, self.cached)
        # A session grant covers the endpoint AE's subtree as ownership does
        # (access rule 5); what it must not reach is decided per resource below.
        root_owned = (granter.privileged or await access.owns(ctx, self.originator, root)
                      or (self.grant is not None and await access.within(ctx, root, self.grant)))
        _, root_owned, root_passed = await granter.decide(root, True, root_owned)
        cap = ctx.identity.max_result
        lim = min(fc.lim, cap) if fc is not None and fc.lim is not None else cap
        asked_depth = fc.lvl if fc is not None and fc.lvl else None
        max_depth = min(asked_depth or ctx.identity.max_depth, ctx.identity.max_depth)
        first = fc.ofst if fc is not None and fc.ofst else 1
        if lim <= 0:
            return
        kids = list(enumerate(await ctx.store.children(root["ri"]), start=1))[first - 1:]
        # (doc, depth, parent's decision passed down, owned above, ofst of its top-level subtree)
        stack: list[tuple[Doc, int, bool, bool, int]] = [
            (k, 1, root_passed, root_owned, i) for i, k in reversed(kids) if granter.worth_visiting(k, root_passed)]
        produced = visited = 0
        while stack:
            doc, depth, parent_granted, owned_above, top = stack.pop()
            visited += 1
            if visited % WALK_SLICE == 0:
                await asyncio.sleep(0)  # let the other requests in (docs/security.md "Limits")
            if self.discovery and doc["ty"] == 2 and doc.get("regs") == 2:
                continue
            decided = granter.known(doc, parent_granted, owned_above)  # most resources: no await
            granted, owned, passed = decided if decided is not None else \
                await granter.decide(doc, parent_granted, owned_above)
            if not granted and doc["ty"] in SESSION_ROOTS:
                continue  # nothing below a hidden sessions collection or session is visible either
            if granted and (fc is None or matches(fc, doc)):
                if produced >= lim:  # one more than fits: the result is partial
                    self.partial, self.offset = True, top
                    return
                yield doc, depth
                produced += 1
            if depth < max_depth:
                children = await granter.children(doc, passed) if doc["ty"] not in granter.leaves else None
                if children:
                    stack.extend((k, depth + 1, passed, owned, top) for k in reversed(children))
            elif asked_depth is None or depth < asked_depth:
                # the CSE's depth bound, not the request's lvl, stops here
                if await ctx.store.count_children(doc["ri"]):
                    self.partial = True


async def discover(ctx: Context, req: Request, root: Doc, fc: FilterCriteria, rcn: int,
                   grant: Grant = None) -> Content:
    """The discovery result: ``m2m:uril`` (rcn 11) or ``m2m:rrl`` (rcn 6)."""
    picked = await discovery.select(ctx, root, req.fr, fc, grant)  # the few that can match, if indexed
    if picked is not None:
        found, partial, offset = picked.found, picked.partial, picked.offset
    else:
        w = Walk(ctx, root, req.fr, Permission.DISCOVER, fc, True, grant)
        found = [doc async for doc, _ in w]
        partial, offset = w.partial, w.offset
    if fc.arp:
        found = await _at_relative_path(ctx, req.fr, Permission.DISCOVER, found, fc.arp, grant)
    if rcn == 6:
        pc: Any = {"m2m:rrl": {"rrf": [child_ref(d, req.drt) for d in found]}}
    else:
        pc = {"m2m:uril": addresses(found, req.drt)}
    return Content(pc, PARTIAL_CONTENT, offset) if partial else Content(pc)


async def _at_relative_path(ctx: Context, originator: str | None, perm: int, found: list[Doc], path: str,
                            grant: Grant) -> list[Doc]:
    """applyRelativePath (``arp``, TS-0004 7.3.3.17.17 filterCriteria): applied
    after matching, each match is replaced by the resource at ``<match>/<path>``;
    a match with nothing there drops out, and so does a resource the originator
    holds no ``perm`` on itself (the path may lead into a subtree the match's
    privileges do not cover). Each resource is returned once."""
    out: list[Doc] = []
    seen: set[str] = set()
    for doc in found:
        target = await _apply_relative(ctx, doc, path)
        if target is None or target["ri"] in seen:
            continue
        if await access.allowed(ctx, originator, perm, target, grant):
            seen.add(target["ri"])
            out.append(target)
    return out


async def _apply_relative(ctx: Context, doc: Doc, path: str) -> Doc | None:
    cur: Doc | None = doc
    for seg in path.strip("/").split("/"):
        if cur is None:
            return None
        if seg in ("la", "ol") and ctx.registry.get(cur["ty"]).instance_ty is not None:
            cur = await ctx.store.edge_child(cur["ri"], ctx.registry.get(cur["ty"]).instance_ty or 0,
                                            newest=(seg == "la"))
        elif seg == "..":
            cur = await ctx.store.get(cur["pi"]) if cur.get("pi") else None
        elif seg in ("", "."):
            continue
        else:
            cur = await ctx.store.child_by_name(cur["ri"], seg)
    return cur


async def representation(ctx: Context, req: Request, doc: Doc, rcn: int,
                         fc: FilterCriteria | None, grant: Grant = None) -> Content:
    """Result content of a RETRIEVE/DELETE for ``rcn`` 1, 4, 5, 6 or 8."""
    reg = ctx.registry
    if rcn == 1:
        return Content(wrap(reg, doc))
    if fc is not None and fc.fu == 1:
        raise BadRequest("filterUsage fu=1 (discovery) is only valid on RETRIEVE")
    if rcn == 5:
        direct = replace(fc, lvl=1) if fc is not None else FilterCriteria(lvl=1)
        w = Walk(ctx, doc, req.fr, Permission.RETRIEVE, direct, False, grant)
        kids = [k async for k, _ in w]
        attrs = public(doc)
        attrs["ch"] = [child_ref(k, req.drt) for k in kids]
        return w.content({reg.of(doc).root: attrs})
    w = Walk(ctx, doc, req.fr, Permission.RETRIEVE, fc, False, grant)
    found = [k async for k, _ in w]
    if fc is not None and fc.arp:
        found = await _at_relative_path(ctx, req.fr, Permission.RETRIEVE, found, fc.arp, grant)
    if rcn == 6:
        return w.content({"m2m:rrl": {"rrf": [child_ref(k, req.drt) for k in found]}})
    nested = _nest(ctx, doc, found)
    if rcn == 8:
        return w.content({reg.of(doc).root: nested})
    attrs = public(doc)
    attrs.update(nested)
    return w.content({reg.of(doc).root: attrs})


def _nest(ctx: Context, root: Doc, found: list[Doc]) -> dict[str, Any]:
    """Group found descendants under their parents as ``m2m:<sn>`` arrays.

    A found resource whose parent was filtered out hangs under the root
    (so does one ``arp`` led outside the root's subtree).
    """
    reg = ctx.registry
    top: dict[str, Any] = {}
    views: dict[str, dict[str, Any]] = {d["ri"]: public(d) for d in found}
    for d in found:
        parent_view = views.get(d["pi"], top) if d["pi"] != d["ri"] else top
        parent_view.setdefault(reg.of(d).root, []).append(views[d["ri"]])
    return top

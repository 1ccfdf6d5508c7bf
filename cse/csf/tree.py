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

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest
from cse.core.messages import Request
from cse.core.ports import Doc

from . import access
from .access import Grant, Permission
from .filters import FilterCriteria, matches
from .result import address, child_ref, public, wrap

__all__ = ["walk", "discover", "representation"]

SMG_TYPES = frozenset(range(9001, 9007))
# docs/sessions.md "Who sees sessions": a sessions collection or session the
# originator may not see is skipped with its whole subtree, decided once
# before descending (its children are governed by the same rule).
_SESSION_ROOTS = frozenset({9001, 9002})


class _Granter:
    """Top-down privilege decisions for one walk, caching ACP lookups."""

    def __init__(self, ctx: Context, originator: str | None, perm: int, grant: Grant) -> None:
        self.ctx = ctx
        self.originator = originator
        self.perm = perm
        self.grant = grant
        self.privileged = access.is_privileged(ctx, originator)

    async def decide(self, doc: Doc, parent_granted: bool, owned_above: bool) -> tuple[bool, bool, bool]:
        """(granted, owned, inherited by children) for ``doc`` given its
        parent's decision. Being allowed to discover an AE (any registered
        originator is) says nothing about what is below it."""
        if self.privileged:
            return True, True, True
        owned = owned_above or (self.originator is not None and doc.get("_own") == self.originator)
        rtype = self.ctx.registry.get(doc["ty"])
        if doc["ty"] == 1 or (rtype.has_acpi and doc.get("acpi")) or doc["ty"] in SMG_TYPES:
            granted = await access.allowed(self.ctx, self.originator, self.perm, doc, self.grant)
            return granted, owned, granted
        if not rtype.has_acpi:
            return parent_granted, owned, parent_granted
        if owned:
            return True, True, True
        if doc["ty"] == 2 and self.perm == Permission.DISCOVER:
            return await access.allowed(self.ctx, self.originator, self.perm, doc, self.grant), owned, False
        return False, owned, False


async def walk(ctx: Context, root: Doc, originator: str | None, perm: int,
               fc: FilterCriteria | None, discovery: bool, grant: Grant = None) -> AsyncIterator[tuple[Doc, int]]:
    """Yield ``(doc, depth)`` for matching, visible descendants of ``root``."""
    granter = _Granter(ctx, originator, perm, grant)
    # A session grant covers the endpoint AE's subtree as ownership does
    # (access rule 5); what it must not reach is decided per resource below.
    root_owned = (granter.privileged or await access.owns(ctx, originator, root)
                  or (grant is not None and await access.within(ctx, root, grant)))
    _, root_owned, root_granted = await granter.decide(root, True, root_owned)
    max_depth = fc.lvl if fc and fc.lvl else None
    lim = fc.lim if fc and fc.lim is not None else ctx.identity.max_result
    skip = (fc.ofst - 1) if fc and fc.ofst else 0
    if lim <= 0:
        return
    produced = 0
    kids = await ctx.store.children(root["ri"])
    stack: list[tuple[Doc, int, bool, bool]] = [
        (k, 1, root_granted, root_owned) for k in reversed(kids[skip:])]
    while stack:
        doc, depth, parent_granted, owned_above = stack.pop()
        if discovery and doc["ty"] == 2 and doc.get("regs") == 2:
            continue
        granted, owned, passed = await granter.decide(doc, parent_granted, owned_above)
        if not granted and doc["ty"] in _SESSION_ROOTS:
            continue  # nothing below a hidden sessions collection or session is visible either
        if granted and (fc is None or matches(fc, doc)):
            yield doc, depth
            produced += 1
            if produced >= lim:
                return
        if max_depth is None or depth < max_depth:
            children = await ctx.store.children(doc["ri"])
            if children:
                stack.extend((k, depth + 1, passed, owned) for k in reversed(children))


async def discover(ctx: Context, req: Request, root: Doc, fc: FilterCriteria, rcn: int, grant: Grant = None) -> Any:
    """The discovery result: ``m2m:uril`` (rcn 11) or ``m2m:rrl`` (rcn 6)."""
    found = [doc async for doc, _ in walk(ctx, root, req.fr, Permission.DISCOVER, fc, True, grant)]
    if fc.arp:
        found = [d for d in [await _apply_relative(ctx, d, fc.arp) for d in found] if d is not None]
    if rcn == 6:
        return {"m2m:rrl": {"rrf": [child_ref(d, req.drt) for d in found]}}
    return {"m2m:uril": [address(d, req.drt) for d in found]}


async def _apply_relative(ctx: Context, doc: Doc, path: str) -> Doc | None:
    cur: Doc | None = doc
    for seg in path.strip("/").split("/"):
        if cur is None:
            return None
        if seg in ("la", "ol") and cur["ty"] == 3:
            cur = await ctx.store.edge_child(cur["ri"], 4, newest=(seg == "la"))
        else:
            cur = await ctx.store.child_by_name(cur["ri"], seg)
    return cur


async def representation(ctx: Context, req: Request, doc: Doc, rcn: int,
                         fc: FilterCriteria | None, grant: Grant = None) -> Any:
    """Result content of a RETRIEVE/DELETE for ``rcn`` 1, 4, 5, 6 or 8."""
    reg = ctx.registry
    if rcn == 1:
        return wrap(reg, doc)
    if fc is not None and fc.fu == 1:
        raise BadRequest("filterUsage fu=1 (discovery) is only valid on RETRIEVE")
    if rcn == 5:
        direct = replace(fc, lvl=1) if fc is not None else FilterCriteria(lvl=1)
        kids = [k async for k, _ in walk(ctx, doc, req.fr, Permission.RETRIEVE, direct, False, grant)]
        attrs = public(doc)
        attrs["ch"] = [child_ref(k, req.drt) for k in kids]
        return {reg.get(doc["ty"]).root: attrs}
    found = [(k, d) async for k, d in walk(ctx, doc, req.fr, Permission.RETRIEVE, fc, False, grant)]
    if rcn == 6:
        return {"m2m:rrl": {"rrf": [child_ref(k, req.drt) for k, _ in found]}}
    nested = _nest(ctx, doc, [k for k, _ in found])
    if rcn == 8:
        return {reg.get(doc["ty"]).root: nested}
    attrs = public(doc)
    attrs.update(nested)
    return {reg.get(doc["ty"]).root: attrs}


def _nest(ctx: Context, root: Doc, found: list[Doc]) -> dict[str, Any]:
    """Group found descendants under their parents as ``m2m:<sn>`` arrays.

    A found resource whose parent was filtered out hangs under the root.
    """
    reg = ctx.registry
    views: dict[str, dict[str, Any]] = {root["ri"]: {}}
    for d in found:
        views[d["ri"]] = public(d)
    for d in found:
        parent_view = views.get(d["pi"], views[root["ri"]])
        parent_view.setdefault(reg.get(d["ty"]).root, []).append(views[d["ri"]])
    return views[root["ri"]]

"""Top-down privilege decisions for one walk or discovery (docs/onem2m.md
"Access control", TS-0001 9.6.2 / TS-0004 7.3.3.15).

A walk over a subtree decides each resource from its parent's decision
(a contentInstance inherits it; ownership found at an ancestor flows
down) and, for a resource that lists ACPs, from those ACPs.  What the ACPs
grant depends only on the list, the originator, the operation and the time,
none of which changes within one request: so the decision is taken once per
distinct ``acpi`` list and reused for every other resource naming the same
ACPs, instead of once per resource.  Requests under a session grant, ACPs,
SMG resources and subscriptions (which may sit in a ``sessions`` collection)
are decided one by one: their outcome depends on where they are.
"""

from __future__ import annotations

from functools import lru_cache

from cse.core.context import Context
from cse.core.ports import Doc, Store
from cse.core.registry import Registry

from . import access
from .access import Grant, Permission

__all__ = ["Granter", "SMG_TYPES", "SESSION_ROOTS"]

SMG_TYPES = frozenset(range(9001, 9007))
# docs/sessions.md "Who sees sessions": a sessions collection or session the
# originator may not see is skipped with its whole subtree, decided once
# before descending (its children are governed by the same rule).
SESSION_ROOTS = frozenset({9001, 9002})

# Decided per resource whatever its acpi says: an ACP (its own pvs), the
# SMG types and subscriptions (rule 6 may apply, access module docstring).
_UNCACHED = SMG_TYPES | {1, access.SUBSCRIPTION_TY}


@lru_cache(maxsize=4)
def _type_sets(reg: Registry) -> tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]:
    """The types with an ``acpi`` attribute; the inheritors: types whose
    decision is always their parent's (no ``acpi``; not the CSEBase, an AE
    or a session type); the dead ends: inheritors that have no children of
    their own (contentInstance), so under a parent whose decision denies
    there is nothing in them to see; and the leaves: types that cannot have
    children (a walk does not ask the store for theirs).  Once per
    registry, not per request."""
    acpi_types = frozenset(t.ty for t in reg.by_ty.values() if t.has_acpi)
    leaves = frozenset(t.ty for t in reg.by_ty.values() if not reg.child_types(t.ty))
    inheritors = frozenset(t for t in reg.by_ty if t not in acpi_types and t not in (1, 2) and t not in SMG_TYPES)
    return acpi_types, inheritors, inheritors & leaves, leaves


class Granter:
    """Top-down privilege decisions for one request, caching ACP decisions
    (module docstring); ``cached`` False decides every resource afresh."""

    def __init__(self, ctx: Context, originator: str | None, perm: int, grant: Grant, cached: bool = True) -> None:
        self.ctx = ctx
        self.originator = originator
        self.perm = perm
        self.grant = grant
        self.privileged = access.is_privileged(ctx, originator)
        self.cached = cached and grant is None
        self._by_acpi: dict[tuple[str, ...], bool] = {}
        self._ae_default: bool | None = None
        self._acpi_types, self.inheritors, self.dead_ends, self.leaves = _type_sets(ctx.registry)

    def worth_visiting(self, doc: Doc, parent_passed: bool) -> bool:
        """False for a child that cannot be granted whatever it holds (see
        :meth:`children`)."""
        return parent_passed or doc["ty"] not in self.dead_ends

    async def children(self, doc: Doc, passed: bool) -> list[Doc]:
        """The children of ``doc`` worth a visit: when ``doc``'s decision
        denies and is passed down (``passed`` False), children that would only
        inherit it and cannot have children are not looked at -- by their
        counts, so a denied container of 20,000 instances costs nothing."""
        store: Store = self.ctx.store
        if passed or not self.dead_ends:
            return await store.children(doc["ri"])
        total = await store.count_children(doc["ri"])
        if not total:
            return []
        dead = 0
        for ty in self.dead_ends:
            dead += await store.count_children(doc["ri"], ty)
        if dead == total:
            return []
        return [k for k in await store.children(doc["ri"]) if k["ty"] not in self.dead_ends]

    async def decide(self, doc: Doc, parent_granted: bool, owned_above: bool) -> tuple[bool, bool, bool]:
        """(granted, owned, inherited by children) for ``doc`` given its
        parent's decision. Being allowed to discover an AE (any registered
        originator is) says nothing about what is below it."""
        known = self.known(doc, parent_granted, owned_above)
        if known is not None:
            return known
        owned = owned_above or (self.originator is not None and doc.get("_own") == self.originator)
        if doc["ty"] == 2 and self.perm == Permission.DISCOVER and not doc.get("acpi"):
            # not owned, no acpi: the default policy's "registered originators
            # may discover an AE", the same answer for every such AE
            granted = await self._allowed(doc)
            if self.cached:
                self._ae_default = granted
            return granted, owned, False
        granted = await self._allowed(doc)
        acpi = doc.get("acpi")
        if self.cached and doc["ty"] not in _UNCACHED and isinstance(acpi, list) \
                and all(type(a) is str for a in acpi):
            self._by_acpi[tuple(acpi)] = granted
        return granted, owned, granted

    def known(self, doc: Doc, parent_granted: bool, owned_above: bool) -> tuple[bool, bool, bool] | None:
        """:meth:`decide` when it needs no store read (inherited, owned, or an
        ACP list already decided in this request); None otherwise."""
        if self.privileged:
            return True, True, True
        owned = owned_above or (self.originator is not None and doc.get("_own") == self.originator)
        ty = doc["ty"]
        has_acpi = ty in self._acpi_types
        if ty == 1 or (has_acpi and doc.get("acpi")) or ty in SMG_TYPES:
            acpi = doc["acpi"] if self.cached and ty not in _UNCACHED else None
            try:
                hit = self._by_acpi.get(tuple(acpi)) if type(acpi) is list else None
            except TypeError:  # an unhashable entry: never cached (see decide)
                hit = None
            return None if hit is None else (hit, owned, hit)
        if not has_acpi:
            return parent_granted, owned, parent_granted
        if owned:
            return True, True, True
        if ty == 2 and self.perm == Permission.DISCOVER:
            return None if self._ae_default is None else (self._ae_default, owned, False)
        return False, owned, False

    async def _allowed(self, doc: Doc) -> bool:
        return await access.allowed(self.ctx, self.originator, self.perm, doc, self.grant)

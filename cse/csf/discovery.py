"""Discovery from the store's candidate indexes (TS-0001 10.2.6, TS-0004
7.3.3.17.17 filterCriteria; docs/onem2m.md "Discovery and filter criteria").

Why: a walk visits every resource of the subtree, so a query that finds 100
of 100,000 costs 100,000 visits.  When the filter criteria name a resource
type, labels, the creator or a creation/modification/expiration time range,
the store knows which resources hold them
(:class:`cse.core.ports.SelectIndex`): only those are looked at -- the
ones below the discovery root, in the walk's order (depth-first, creation
order) -- and each is decided as the walk would: its ancestors' decisions
down from the root (memoised, so siblings share them), INACTIVE AEs and
hidden ``sessions`` subtrees skipped, ``ofst``/``lvl``/``lim`` and the
result bound applied the same way.  The results are the walk's, in the
same order (tests/unit/test_discovery_indexed.py compares them).  With
``fo=1`` the store returns only resources of the asked types and labels,
so those two conditions are not checked again; and a resource whose type
takes its parent's decision (an instance) is decided inline, without the
calls a type with ``acpi`` needs: most candidates are such leaves.

The walk stays in charge when the indexes cannot answer cheaply: no
indexable condition, ``fo=2`` with a condition that has no index, more
candidates than :data:`CANDIDATE_FACTOR` times the result bound (an
unrestricted discovery stops after the bound anyway), a store without
indexes, or a tree deeper than the depth bound (the walk's partial marks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from cse.core.context import Context
from cse.core.ports import Doc, SelectIndex

from . import access
from .access import Grant
from .filters import FilterCriteria, matches
from .granter import SESSION_ROOTS, Granter

__all__ = ["CANDIDATE_FACTOR", "Selected", "select"]

#: Candidates looked at, at most, per result the request may return
#: (``limits.max_result``); beyond that the walk, which stops at the bound, is cheaper.
CANDIDATE_FACTOR = 10

#: Candidates decided between two yields to the event loop (as the walk's WALK_SLICE).
_SLICE = 128

#: Attribute filters with an index (string values the CSE sets itself).
_INDEXED_ATTRS = frozenset({"cr", "aei", "csi"})


@dataclass(frozen=True, slots=True)
class Selected:
    """Discovery results and whether (and where) they were cut, as a walk's."""

    found: list[Doc]
    partial: bool
    offset: int | None


# What the walk carries down to a resource's children: whether the walk
# enters it (not skipped with an ancestor), the decision its ACP-less children
# inherit, whether the originator owns it or an ancestor, the ri of its
# ancestor among the root's children (itself, there), and whether the
# originator may discover it.  A plain tuple: one is made per resource decided.
_State = tuple[bool, bool, bool, str, bool]
_HIDDEN: _State = (False, False, False, "", False)


def _keys(fc: FilterCriteria) -> list[tuple[str, Sequence[Any]]] | None:
    """The indexable conditions of ``fc``; None if ``fo=2`` (OR) has one without index."""
    keys: list[tuple[str, Sequence[Any]]] = []
    if fc.ty:
        keys.append(("ty", fc.ty))
    if fc.lbl:
        keys.append(("lbl", fc.lbl))
    for attr, lo, hi in (("ct", fc.cra, fc.crb), ("lt", fc.ms, fc.us), ("et", fc.exa, fc.exb)):
        if lo is None and hi is None:
            continue
        if fc.fo == 2:  # OR: each bound is a condition of its own
            if lo is not None:
                keys.append((attr, ((lo, None),)))
            if hi is not None:
                keys.append((attr, ((None, hi),)))
        else:
            keys.append((attr, ((lo, hi),)))
    unindexed = bool(fc.cty) or any(v is not None for v in (fc.sts, fc.stb, fc.sza, fc.szb))
    for name, values in fc.attrs:
        if name in _INDEXED_ATTRS and not any("*" in v for v in values):
            keys.append((name, values))
        else:
            unindexed = True
    if not keys or (fc.fo == 2 and unindexed):
        return None
    return keys


async def select(ctx: Context, root: Doc, originator: str | None, fc: FilterCriteria,
                 grant: Grant) -> Selected | None:
    """The discovery result from the indexes, or None when the walk must answer."""
    store = ctx.store
    keys = _keys(fc)
    # not isinstance(store, SelectIndex): a runtime Protocol check costs 0.1 ms
    if keys is None or getattr(store, "select_under", None) is None:
        return None
    index = cast(SelectIndex, store)
    cap = ctx.identity.max_result
    lim = min(fc.lim, cap) if fc.lim is not None else cap
    asked_depth = fc.lvl or None
    bound = ctx.identity.max_depth
    max_depth = min(asked_depth or bound, bound)
    if (asked_depth is None or asked_depth > bound) and \
            await index.deepest() > root["_srn"].count("/") + max_depth:
        return None  # the walk marks a partial result where the depth bound cuts a subtree
    if lim <= 0:
        return Selected([], False, None)
    candidates = await index.select_under(root["ri"], keys, fc.fo == 2, CANDIDATE_FACTOR * cap, max_depth)
    if candidates is None:
        return None
    return await _decide(ctx, root, originator, fc, grant, candidates, lim)


async def _decide(ctx: Context, root: Doc, originator: str | None, fc: FilterCriteria, grant: Grant,
                  candidates: list[tuple[Doc, int]], lim: int) -> Selected:
    """The walk's decisions for ``candidates`` (already in its order)."""
    granter = Granter(ctx, originator, access.Permission.DISCOVER, grant)
    root_owned = (granter.privileged or await access.owns(ctx, originator, root)
                  or (grant is not None and await access.within(ctx, root, grant)))
    _, root_owned, root_passed = await granter.decide(root, True, root_owned)
    root_ri = root["ri"]
    states: dict[str, _State] = {root_ri: (True, root_passed, root_owned, "", False)}
    positions: dict[str, int] | None = None
    first = fc.ofst or 1
    found: list[Doc] = []
    store = ctx.store

    async def position(top: str) -> int:
        """1-based position of ``top`` among the root's children (its ``ofst``)."""
        nonlocal positions
        if positions is None:
            positions = {k["ri"]: i for i, k in enumerate(await store.children(root_ri), start=1)}
        return positions[top]

    known = granter.known

    def step_now(above: _State, doc: Doc) -> _State | None:
        """``doc``'s state from its parent's, as the walk decides it; None
        when that needs a store read (:meth:`step`)."""
        top = doc["ri"] if doc["pi"] == root_ri else above[3]
        if not above[0] or (doc["ty"] == 2 and doc.get("regs") == 2):
            return False, False, False, top, False
        decided = known(doc, above[1], above[2])
        if decided is None:
            return None
        granted, owned, passed = decided
        if not granted and doc["ty"] in SESSION_ROOTS:
            return False, False, owned, top, False
        return True, passed, owned, top, granted

    async def step(above: _State, doc: Doc) -> _State:
        """:func:`step_now`, reading what it needs."""
        top = doc["ri"] if doc["pi"] == root_ri else above[3]
        granted, owned, passed = await granter.decide(doc, above[1], above[2])
        if not granted and doc["ty"] in SESSION_ROOTS:
            return False, False, owned, top, False
        return True, passed, owned, top, granted

    async def state(doc: Doc) -> _State:
        """``doc``'s state, deciding its ancestors first (each once)."""
        chain = [doc]
        while chain[-1]["pi"] not in states:
            parent = await store.get(chain[-1]["pi"])
            if parent is None:  # gone meanwhile: nothing below it is found
                return _HIDDEN
            chain.append(parent)
        above = states[chain[-1]["pi"]]
        for node in reversed(chain):
            st = step_now(above, node)
            above = states[node["ri"]] = st if st is not None else await step(above, node)
        return above

    # fo=1: the candidates hold the asked type and label already (SelectIndex.select_under)
    rest = fc.checks_beyond_ty_lbl if fc.fo != 2 else None
    inheritors, privileged = granter.inheritors, granter.privileged
    for n, (doc, _depth) in enumerate(candidates, start=1):
        if n % _SLICE == 0:
            await asyncio.sleep(0)  # let other requests in (docs/security.md "Limits")
        ri, pi = doc["ri"], doc["pi"]
        st = states.get(ri)
        if st is None:
            above = states.get(pi)
            if above is not None and doc["ty"] in inheritors:
                # step_now for a type whose decision is its parent's (most
                # candidates: instances), without the calls
                top = ri if pi == root_ri else above[3]
                if above[0]:
                    owned = privileged or above[2] or (originator is not None and doc.get("_own") == originator)
                    st = states[ri] = (True, above[1], owned, top, above[1])
                else:
                    st = states[ri] = (False, False, False, top, False)
            else:
                st = step_now(above, doc) if above is not None else None
                st = states[ri] = st if st is not None else await state(doc)
        if not st[0] or not st[4]:
            continue
        if rest is None:
            if not matches(fc, doc):
                continue
        elif rest and not all(check(doc) for check in rest):
            continue
        if first > 1 and await position(st[3]) < first:
            continue
        if len(found) >= lim:
            return Selected(found, True, await position(st[3]))
        found.append(doc)
    return Selected(found, False, None)

"""Discovery from the store's candidate indexes (TS-0001 10.2.6, TS-0004
7.3.3.17.17 filterCriteria; docs/onem2m.md "Discovery and filter criteria").

Why: a walk visits every resource of the subtree, so a query that finds 100
of 100,000 costs 100,000 visits.  When the filter criteria name a resource
type, labels or the creator, the store knows which resources hold them
(:class:`cse.core.ports.SelectIndex`): only those are looked at -- the
ones below the discovery root, in the walk's order (depth-first, creation
order) -- and each is decided as the walk would: its ancestors' decisions
down from the root (memoised, so siblings share them), INACTIVE AEs and
hidden ``sessions`` subtrees skipped, ``ofst``/``lvl``/``lim`` and the
result bound applied the same way.  The results are the walk's, in the
same order (tests/unit/test_discovery_indexed.py compares them).

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
from typing import Any

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


@dataclass(frozen=True, slots=True)
class _State:
    """What the walk carries down to a resource's children."""

    visible: bool  # the walk enters it (not skipped with an ancestor)
    passed: bool   # decision its ACP-less children inherit
    owned: bool    # the originator owns it or an ancestor
    top: str       # ri of its ancestor among the root's children (itself, there)
    granted: bool = False  # the originator may discover it


def _keys(fc: FilterCriteria) -> list[tuple[str, Sequence[Any]]] | None:
    """The indexable conditions of ``fc``; None if ``fo=2`` (OR) has one without index."""
    keys: list[tuple[str, Sequence[Any]]] = []
    if fc.ty:
        keys.append(("ty", fc.ty))
    if fc.lbl:
        keys.append(("lbl", fc.lbl))
    unindexed = bool(fc.cty) or any(v is not None for v in (
        fc.cra, fc.crb, fc.ms, fc.us, fc.exa, fc.exb, fc.sts, fc.stb, fc.sza, fc.szb))
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
    if keys is None or not isinstance(store, SelectIndex):
        return None
    cap = ctx.identity.max_result
    lim = min(fc.lim, cap) if fc.lim is not None else cap
    asked_depth = fc.lvl or None
    bound = ctx.identity.max_depth
    max_depth = min(asked_depth or bound, bound)
    if (asked_depth is None or asked_depth > bound) and \
            await store.deepest() > root["_srn"].count("/") + max_depth:
        return None  # the walk marks a partial result where the depth bound cuts a subtree
    if lim <= 0:
        return Selected([], False, None)
    candidates = await store.select_under(root["ri"], keys, fc.fo == 2, CANDIDATE_FACTOR * cap, max_depth)
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
    states: dict[str, _State] = {root["ri"]: _State(True, root_passed, root_owned, "")}
    positions: dict[str, int] | None = None
    first = fc.ofst or 1
    found: list[Doc] = []

    async def position(top: str) -> int:
        """1-based position of ``top`` among the root's children (its ``ofst``)."""
        nonlocal positions
        if positions is None:
            positions = {k["ri"]: i for i, k in enumerate(await ctx.store.children(root["ri"]), start=1)}
        return positions[top]

    async def state(doc: Doc) -> _State:
        """``doc``'s state, deciding its ancestors first (each once)."""
        known = states.get(doc["ri"])
        if known is not None:
            return known
        chain = [doc]
        while chain[-1]["pi"] not in states:
            parent = await ctx.store.get(chain[-1]["pi"])
            if parent is None:  # gone meanwhile: nothing below it is found
                return _State(False, False, False, "")
            chain.append(parent)
        above = states[chain[-1]["pi"]]
        for node in reversed(chain):
            above = states[node["ri"]] = await _step(granter, above, node, root["ri"])
        return above

    for n, (doc, _depth) in enumerate(candidates, start=1):
        if n % _SLICE == 0:
            await asyncio.sleep(0)  # let other requests in (docs/security.md "Limits")
        st = await state(doc)
        if not st.visible or not st.granted or not matches(fc, doc):
            continue
        if first > 1 and await position(st.top) < first:
            continue
        if len(found) >= lim:
            return Selected(found, True, await position(st.top))
        found.append(doc)
    return Selected(found, False, None)


async def _step(granter: Granter, above: _State, doc: Doc, root_ri: str) -> _State:
    """``doc``'s state from its parent's, as the walk decides it."""
    top = doc["ri"] if doc["pi"] == root_ri else above.top
    if not above.visible or (doc["ty"] == 2 and doc.get("regs") == 2):
        return _State(False, False, False, top)
    granted, owned, passed = await granter.decide(doc, above.passed, above.owned)
    if not granted and doc["ty"] in SESSION_ROOTS:
        return _State(False, False, owned, top)
    return _State(True, passed, owned, top, granted)

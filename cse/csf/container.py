"""Instance history: container/contentInstance and every type that keeps one
(TS-0004 7.4.6/7.4.7, docs/onem2m.md "container").

A history-keeping parent declares its instance type (``instances`` in
``resources/types``: container -> contentInstance, flexContainer ->
flexContainerInstance, timeSeries -> timeSeriesInstance); the rules below
are the same for all of them and live here once.

Adding an instance: ``cs`` is the byte size of its content; larger than the
parent's ``mbs`` is 5207; then the oldest instances are evicted (no
notifications) while ``cni`` > ``mni`` or ``cbs`` > ``mbs``; the parent's
``st`` is incremented and copied into the instance; ``mia`` caps the
instance's ``et`` at ``ct + mia``, so the expiry scheduler removes old
instances without any scan. Deleting an instance (explicitly, through
``la``/``ol``, or at expiry) updates the parent's ``cni``/``cbs``. Lowering
``mni``/``mbs`` by UPDATE evicts at once. Switching ``disr`` from true to
false (or removing it) deletes every instance (TS-0001 9.6.6
disableRetrieval; TS-0004 7.4.6.2.3): what was stored while retrieval was
disabled never becomes readable.
"""

from __future__ import annotations

import json
from typing import Any

from cse.core.context import Context
from cse.core.errors import NotAcceptable
from cse.core.messages import Request
from cse.core.ports import Delete, Doc, Op, Put
from cse.core.timestamps import format_ts, parse_ts

from .hooks import TypeHooks

__all__ = ["CONTAINER_HOOKS", "INSTANCE_HOOKS", "HISTORY_HOOKS", "add_instance", "content_size", "evict_on_update",
           "instance_removed"]

_compact_utf8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # built once



def content_size(con: Any) -> int:
    """Bytes of ``con``: UTF-8 length of a string, else of its JSON form."""
    if isinstance(con, str):
        return len(con) if con.isascii() else len(con.encode("utf-8"))
    return len(_compact_utf8(con).encode("utf-8"))


def _over(cnt: dict[str, Any]) -> bool:
    mni, mbs = cnt.get("mni"), cnt.get("mbs")
    return (mni is not None and cnt["cni"] > mni) or (mbs is not None and cnt["cbs"] > mbs)


async def _evict(ctx: Context, cnt: dict[str, Any], new_cs: int | None = None) -> tuple[list[Op], bool]:
    """Delete-ops for the oldest instances until ``cnt``'s limits hold.

    ``cnt`` (a private copy) has its ``cni``/``cbs`` updated in place. When
    an instance of ``new_cs`` bytes is being added (already counted in
    ``cnt``), it is the newest and goes last: it is evicted itself only when
    every older one is gone and the limits still fail (``mni`` 0). Returns
    the ops and whether the newcomer survives.
    """
    if not _over(cnt):
        return [], True
    existing = cnt["cni"] - (1 if new_cs is not None else 0)
    ops: list[Op] = []
    instance_ty = _instance_ty(ctx, cnt)
    oldest = await ctx.store.edge_child(cnt["ri"], instance_ty, newest=False)
    # The common case evicts one instance per create: O(1) via edge_child.
    victims = [oldest] if oldest is not None and existing > 0 else []
    if victims:
        cnt["cni"] -= 1
        cnt["cbs"] -= oldest.get("cs", 0)  # type: ignore[union-attr]
        if _over(cnt) and existing > 1:
            for old in (await ctx.store.children(cnt["ri"], instance_ty))[1:existing]:
                if not _over(cnt):
                    break
                victims.append(old)
                cnt["cni"] -= 1
                cnt["cbs"] -= old.get("cs", 0)
    ops.extend(Delete(v["ri"]) for v in victims)
    if new_cs is not None and _over(cnt):
        cnt["cni"] -= 1
        cnt["cbs"] -= new_cs
        return ops, False
    return ops, True


def _instance_ty(ctx: Context, parent: Doc) -> int:
    """The instance type ``parent``'s type declares (``instances``)."""
    ty = ctx.registry.get(parent["ty"]).instance_ty
    assert ty is not None, parent["ty"]  # only history-keeping types come here
    return ty


async def _container_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    doc["cni"] = 0
    doc["cbs"] = 0
    return []


async def _container_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    if "disr" in changed and old.get("disr") is True and not new.get("disr"):
        # disableRetrieval TRUE -> FALSE: all child instances go (module docstring), without
        # notifications, as eviction; bounded by what the container holds.
        new["cni"] = 0
        new["cbs"] = 0
        return [Delete(c["ri"]) for c in await ctx.store.children(old["ri"], _instance_ty(ctx, old))]
    return await evict_on_update(ctx, req, old, new, changed)


async def evict_on_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    """UPDATE hook of a history-keeping parent: a lowered ``mni``/``mbs``
    evicts at once; ``new`` gets its counters adjusted in place."""
    if "mni" in changed or "mbs" in changed:
        new.setdefault("cni", 0)
        new.setdefault("cbs", 0)
        ops, _ = await _evict(ctx, new)
        return ops
    return []


async def add_instance(ctx: Context, parent: Doc, doc: Doc, cs: int, *, what: str) -> list[Op]:
    """The rules of adding instance ``doc`` of ``cs`` content bytes to
    ``parent`` (module docstring): ``parent`` is the caller's own copy and
    gets its ``cni``/``cbs``/``st`` updated in place (the caller stores it);
    ``doc`` gets ``cs``, ``st`` (when its type has one) and its ``et``
    capped by ``mia``. ``what`` names the instance type in a 5207. The
    returned ops evict; a Delete of ``doc`` itself among them means it is
    evicted at once (``mni`` 0)."""
    mbs = parent.get("mbs")
    if mbs is not None and cs > mbs:
        raise NotAcceptable(
            f"{what} of {cs} bytes exceeds the {ctx.registry.get(parent['ty']).name}'s maxByteSize (mbs) of {mbs}")
    doc["cs"] = cs
    parent["cni"] = parent.get("cni", 0) + 1
    parent["cbs"] = parent.get("cbs", 0) + cs
    if ctx.registry.get(doc["ty"]).state_tag:
        doc["st"] = parent.get("st", 0)
    mia = parent.get("mia")
    if mia is not None:
        cap = format_ts(parse_ts(doc["ct"]) + mia)
        if "et" not in doc or doc["et"] > cap:
            doc["et"] = cap
    ops, survives = await _evict(ctx, parent, new_cs=cs)
    if not survives:  # evicted at once (mni 0): answered, never stored
        ops.append(Delete(doc["ri"]))
    return ops


async def _instance_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    cnt = dict(parent)
    cnt["st"] = cnt.get("st", 0) + 1  # a new instance is a change of its container (TS-0001 9.6.6)
    ops = await add_instance(ctx, cnt, doc, content_size(doc["con"]), what="contentInstance")
    ops.append(Put(cnt))
    return ops


async def instance_removed(ctx: Context, doc: Doc) -> list[Op]:
    """DELETE hook of every instance type: its parent's ``cni``/``cbs`` go down."""
    parent = await ctx.store.get(doc["pi"])
    if parent is None or ctx.registry.get(parent["ty"]).instance_ty != doc["ty"]:
        return []
    cnt = dict(parent)
    cnt["cni"] = max(0, cnt.get("cni", 0) - 1)
    cnt["cbs"] = max(0, cnt.get("cbs", 0) - doc.get("cs", 0))
    return [Put(cnt)]


CONTAINER_HOOKS = TypeHooks(on_create=_container_create, on_update=_container_update)
INSTANCE_HOOKS = TypeHooks(on_create=_instance_create, on_delete=instance_removed)
#: A history-keeping parent's counters start at 0 on CREATE; lowered limits evict on UPDATE.
HISTORY_HOOKS = TypeHooks(on_create=_container_create, on_update=evict_on_update)

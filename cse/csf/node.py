"""The CSEBase's ``nl`` (nodeLink) follows the <node> that hosts this CSE
(TS-0001 9.6.3, 9.6.18; docs/onem2m.md "node and mgmtObj").

A <node> under the CSEBase whose ``hcl`` (hostedCSELink) names this CSE --
its CSE-ID, its CSEBase's ri or name, or those SP-relative -- becomes the
CSEBase's ``nl``; when that node is deleted (or expires) or its ``hcl`` stops
naming this CSE, ``nl`` goes. Nothing else is derived: the node holds what
AEs and CSEs write. The hooks return the CSEBase change as an op committed
with the node's own (docs/architecture.md "Module map").
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.messages import Request
from cse.core.ports import Doc, Op, Put

from .hooks import TypeHooks

__all__ = ["NODE_HOOKS"]

CSE_BASE_TY = 5


def _names_us(ctx: Context, hcl: Any) -> bool:
    ident = ctx.identity
    ours = {ident.csi, ident.cb_ri, ident.cb_name, f"{ident.csi}/{ident.cb_ri}", f"{ident.csi}/{ident.cb_name}"}
    return isinstance(hcl, str) and hcl in ours


def _linked(cb: Doc, node: Doc, link: bool) -> list[Op]:
    """The CSEBase with ``nl`` set to ``node`` (``link``) or cleared if it was ``node``."""
    if link and cb.get("nl") != node["ri"]:
        return [Put({**cb, "nl": node["ri"]})]
    if not link and cb.get("nl") == node["ri"]:
        return [Put({k: v for k, v in cb.items() if k != "nl"})]
    return []


async def _node_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    if parent["ty"] != CSE_BASE_TY or not _names_us(ctx, doc.get("hcl")):
        return []
    return _linked(parent, doc, True)


async def _node_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    if "hcl" not in changed or new.get("pi") != ctx.identity.cb_ri:
        return []
    cb = await ctx.store.get(ctx.identity.cb_ri)
    return [] if cb is None else _linked(cb, new, _names_us(ctx, new.get("hcl")))


async def _node_delete(ctx: Context, doc: Doc) -> list[Op]:
    if doc.get("pi") != ctx.identity.cb_ri:
        return []
    cb = await ctx.store.get(ctx.identity.cb_ri)
    return [] if cb is None else _linked(cb, doc, False)


NODE_HOOKS = TypeHooks(on_create=_node_create, on_update=_node_update, on_delete=_node_delete)

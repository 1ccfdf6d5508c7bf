"""flexContainer history: flexContainerInstances (TS-0001 9.6.35, 9.6.67;
TS-0004 7.4.37, 7.4.63; docs/onem2m.md "flexContainerInstance").

A flexContainer with ``mni``, ``mbs`` or ``mia`` set keeps a history: each
CREATE and each UPDATE of it is followed, in the same commit, by a new
``<flexContainerInstance>`` child holding a snapshot of its custom
attributes (those its base type does not declare: a specialization's own
attributes, or a generic flexContainer's free ones), with ``cnd``, ``or``,
``cs`` (bytes of the snapshot as JSON) and the flexContainer's ``st``.
Without any of the three nothing is kept: an unbounded history nobody
asked for would only grow. The instances follow the container rules
(:mod:`.container`: eviction by ``mni``/``mbs``, ``et`` capped by ``mia``,
``cni``/``cbs``, ``la``/``ol``); they are made by the CSE only, so a
client's CREATE or UPDATE of one is 4005 (declared in
``resources/types/flexContainerInstance.json``), and announced to the
flexContainer's subscriptions as a child creation (net 3).
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.ids import new_ri
from cse.core.messages import Request
from cse.core.ports import Delete, Doc, Op, Put

from .container import add_instance, content_size, instance_removed
from .hooks import TypeHooks

__all__ = ["FLEX_HOOKS", "FLEX_INSTANCE_HOOKS", "FLEX_INSTANCE_TY"]

FLEX_TY = 28
FLEX_INSTANCE_TY = 58
_HISTORY = ("mni", "mbs", "mia")
_COPIED = ("cnd", "or")  # flexContainerInstance attributes copied as they are


def _keeps_history(doc: Doc) -> bool:
    return any(doc.get(a) is not None for a in _HISTORY)


async def _snapshot(ctx: Context, fcnt: Doc) -> list[Op]:
    """Ops adding the instance of ``fcnt`` as it is now (``fcnt`` is the data
    CSF's own copy, stored by it: its counters are updated in place)."""
    base = ctx.registry.get(FLEX_TY).attributes
    custom = {k: v for k, v in fcnt.items() if k[0] != "_" and k not in base}
    ri = new_ri("fcin")
    doc: Doc = {"ty": FLEX_INSTANCE_TY, "ri": ri, "rn": ri, "pi": fcnt["ri"], "ct": fcnt["lt"], "lt": fcnt["lt"],
                "et": fcnt["et"], **{k: fcnt[k] for k in _COPIED if k in fcnt}, **custom,
                "_srn": f"{fcnt['_srn']}/{ri}"}
    if "_own" in fcnt:  # counts towards the owner's quota like anything they made (docs/security.md "Limits")
        doc["_own"] = fcnt["_own"]
    fcnt.setdefault("cni", 0)
    fcnt.setdefault("cbs", 0)
    ops = await add_instance(ctx, fcnt, doc, content_size(custom), what="flexContainerInstance")
    if any(type(op) is Delete and op.ri == ri for op in ops):  # mni 0: nothing is kept
        return [op for op in ops if not (type(op) is Delete and op.ri == ri)]
    return [*ops, Put(doc)]


async def _on_create(ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
    if not _keeps_history(doc):
        return []
    doc["cni"] = 0
    doc["cbs"] = 0
    return await _snapshot(ctx, doc)


async def _on_update(ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
    # Adding the snapshot evicts down to the (possibly lowered) limits too.
    return await _snapshot(ctx, new) if _keeps_history(new) else []


FLEX_HOOKS = TypeHooks(on_create=_on_create, on_update=_on_update, announces=frozenset({FLEX_INSTANCE_TY}))
FLEX_INSTANCE_HOOKS = TypeHooks(on_delete=instance_removed)

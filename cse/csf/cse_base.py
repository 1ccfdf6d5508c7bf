"""The CSEBase: created at first start, refreshed at every start.

The CSEBase is never created through the API (docs/onem2m.md "CSEBase"). Its ri is the
CSE-ID without the slash (``id-in``), its rn the configured name; ``srt``
lists the types the registry knows, ``poa`` the configured points of access.
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Op, Put

from .smg.model import SESSIONS_RN, sessions_doc

__all__ = ["ensure_cse_base"]

SUPPORTED_RELEASES = ["2a", "3", "4", "5"]


async def ensure_cse_base(ctx: Context) -> Doc:
    """Create or refresh the CSEBase document; return it."""
    ident = ctx.identity
    existing = await ctx.store.get(ident.cb_ri)
    wanted: dict[str, Any] = {
        "ty": 5, "ri": ident.cb_ri, "rn": ident.cb_name, "pi": "",
        "cst": ident.cse_type, "csi": ident.csi,
        "srt": sorted(ctx.registry.by_ty),
        "poa": list(ident.poa),
        "csz": ["application/json", "application/cbor"],  # TS-0004 m2m:serializations (docs/onem2m.md "Serializations")
        "srv": SUPPORTED_RELEASES,
        "acpi": [],
        "scp": ["smg"],
        "_srn": ident.cb_name,
    }
    if existing is not None:
        doc = {**existing, **wanted}
        if doc == existing and await ctx.store.child_by_name(doc["ri"], SESSIONS_RN) is not None:
            return existing
        doc["lt"] = ctx.now_ts()
    else:
        now = ctx.now_ts()
        doc = {**wanted, "ct": now, "lt": now}
    ops: list[Op] = [Put(doc)]
    if await ctx.store.child_by_name(doc["ri"], SESSIONS_RN) is None:
        ops.append(Put(sessions_doc(doc, doc["lt"])))  # transit sessions live here
    await ctx.apply(Outcome(ops=ops))
    return doc


"""Resource expiration (``et``): expired resources disappear on their own.

The store keeps an expiry index, so finding what is due is cheap (never a
scan). :func:`expire_due` removes what is due at ``now`` through the normal
delete path (events, parent bookkeeping) and returns the next deadline, for
the scheduler to arm one timer. Time is a parameter: tests pass their own
``now``.
"""

from __future__ import annotations

import logging

from cse.core.context import Context
from cse.core.timestamps import format_ts, parse_ts

from .data import DataCSF

__all__ = ["expire_due"]

log = logging.getLogger("cse.expiry")


async def expire_due(ctx: Context, data: DataCSF, now: float, batch: int = 500) -> float | None:
    """Delete every resource whose ``et`` <= ``now``; return the next ``et``."""
    now_ts = format_ts(now)
    while True:
        due = await ctx.store.expired(now_ts, batch)
        if not due:
            break
        for ri in due:
            doc = await ctx.store.get(ri)
            if doc is None:  # gone with an expired ancestor
                continue
            # Remove the topmost expired ancestor instead: its children go
            # with it, and its own hooks still see them (a session that
            # expires must tell its next hops and endpoints).
            parent = await ctx.store.get(doc["pi"]) if doc.get("pi") else None
            while parent is not None and parent.get("et") is not None and parent["et"] <= now_ts:
                doc = parent
                parent = await ctx.store.get(doc["pi"]) if doc.get("pi") else None
            await data.remove(doc, None)
            log.debug("expired %s (%s)", doc.get("_srn"), ri)
        if len(due) < batch:
            break
    nxt = await ctx.store.next_expiry()
    return parse_ts(nxt) if nxt is not None else None

"""A session's context and its memory of answers, as store operations.

Every hop records each session-based exchange in the session (``hst``, the
last ``history`` entries, and the count ``rqn``; docs/sessions.md "Session
context") and remembers the answer to each request ID, so that a redelivered
request (a store-and-forward retry after a crash or a timeout) is answered
again instead of executed again. Both are returned as operations, committed
by the caller's outcome together with the exchange's own effect.
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.messages import Request, Response
from cse.core.ports import KvDelete, KvPut, Op, Put

__all__ = ["REPLAY_KEEP", "record_ops", "remember_ops", "replay_ns"]

REPLAY_KEEP = 4096
_PRUNE_EVERY = 512


def replay_ns(sid: str) -> str:
    """KV namespace of a session's remembered answers."""
    return f"smg-rsp:{sid}"


async def record_ops(ctx: Context, ri: str, req: Request, resp: Response, hop: str, history: int) -> list[Op]:
    """The change adding the exchange to the context of the session ``ri``
    (nothing when it is gone)."""
    session = await ctx.store.get(ri)
    if session is None:
        return []
    entry = {"rqi": req.rqi, "op": int(req.op), "to": req.to, "rsc": resp.rsc, "ts": ctx.now_ts(), "hop": hop}
    hst = [*session.get("hst", []), entry][-history:]
    return [Put({**session, "hst": hst, "rqn": session.get("rqn", 0) + 1})]


async def remember_ops(ctx: Context, sid: str, rqi: str, resp: Response, rqn: int) -> list[Op]:
    """The ops that remember ``resp`` as the answer to ``rqi``; ``rqn`` is the
    session's exchange count with this one, which spaces out the pruning
    that keeps the memory bounded (oldest first)."""
    value: dict[str, Any] = {"rsc": resp.rsc}
    if resp.pc is not None:
        value["pc"] = resp.pc
    if resp.location:
        value["loc"] = resp.location
    ops: list[Op] = [KvPut(replay_ns(sid), rqi, value)]
    if rqn % _PRUNE_EVERY == 0:
        items = await ctx.store.kv_items(replay_ns(sid))
        ops.extend(KvDelete(replay_ns(sid), k) for k, _ in items[: max(0, len(items) - REPLAY_KEEP)])
    return ops

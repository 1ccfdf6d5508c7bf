"""A session's context and its memory of answers, as store operations.

Every hop records each session-based exchange in the session (``hst``, the
last ``history`` entries, and the count ``rqn``; docs/sessions.md "Session
context") and remembers the answer to each request ID, so that a redelivered
request (a store-and-forward retry after a crash or a timeout) is answered
again instead of executed again. Both are returned as operations, committed
by the caller's outcome together with the exchange's own effect.

The memory is bounded (``keep`` answers per session). So that a replay does
not become new again once its answer is forgotten, the memory forgets the
requests with the *oldest* ``X-M2M-OT`` first and keeps, per direction (the
endpoint the requests target: the To is covered by the MAC, the originator
is not), a durable low-water mark: the newest OT it has forgotten. A request
the memory does not hold must be newer than that mark (docs/security.md
"Replay protection"). The marks are written in the same commit as the pruning that
moves them, so no crash separates the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cse.core.context import Context
from cse.core.messages import Request, Response
from cse.core.ports import KvDelete, KvPut, Op, Put

__all__ = ["REPLAY_KEEP", "MARKS_NS", "record_ops", "record_many_ops", "remember_ops", "replay_ns", "low_water_mark",
           "forget_ops"]

REPLAY_KEEP = 4096
MARKS_NS = "smg-lwm"  # sid -> {endpoint: newest OT (epoch s) the memory forgot}


def replay_ns(sid: str) -> str:
    """KV namespace of a session's remembered answers."""
    return f"smg-rsp:{sid}"


def prune_every(keep: int) -> int:
    """How many exchanges apart the memory is pruned: it holds at most
    ``keep + keep // 8`` answers (512 apart for the default 4096)."""
    return max(1, keep // 8)


async def record_ops(ctx: Context, ri: str, req: Request, resp: Response, hop: str, history: int) -> list[Op]:
    """The change adding the exchange to the context of the session ``ri``
    (nothing when it is gone)."""
    return await record_many_ops(ctx, ri, [(req, resp, hop)], history)


async def record_many_ops(ctx: Context, ri: str, exchanges: Sequence[tuple[Request, Response, str]],
                          history: int) -> list[Op]:
    """The change adding ``exchanges`` (request, answer, hop), in order, to
    the context of the session ``ri``: one ``Put`` for all of them (a batch of delivered stored
    requests is recorded in one commit; nothing when the session is gone)."""
    session = await ctx.store.get(ri)
    if session is None or not exchanges:
        return []
    ts = ctx.now_ts()
    entries = [{"rqi": req.rqi, "op": int(req.op), "to": req.to, "rsc": resp.rsc, "ts": ts, "hop": hop}
               for req, resp, hop in exchanges]
    hst = [*session.get("hst", []), *entries][-history:]
    return [Put({**session, "hst": hst, "rqn": session.get("rqn", 0) + len(entries)})]


async def low_water_mark(ctx: Context, sid: str, toward: str) -> float | None:
    """The newest OT of a request toward ``toward`` that the session's memory
    has forgotten here (None: it has forgotten none)."""
    marks = await ctx.store.kv_get(MARKS_NS, sid)
    value = marks.get(toward) if isinstance(marks, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


async def remember_ops(ctx: Context, sid: str, rqi: str, resp: Response, rqn: int, *,
                       ot: float | None = None, toward: str = "", keep: int = REPLAY_KEEP) -> list[Op]:
    """The ops that remember ``resp`` as the answer to ``rqi``; ``rqn`` is the
    session's exchange count with this one, which spaces out the pruning
    that keeps the memory bounded. ``ot`` is the request's verified
    ``X-M2M-OT`` (sessions with ``sec`` 1) and ``toward`` the endpoint it
    targets: what the low-water marks are made of."""
    value: dict[str, Any] = {"rsc": resp.rsc}
    if resp.pc is not None:
        value["pc"] = resp.pc
    if resp.location:
        value["loc"] = resp.location
    if ot is not None:
        value["ot"] = ot
        value["ep"] = toward
    ops: list[Op] = [KvPut(replay_ns(sid), rqi, value)]
    if rqn % prune_every(keep) == 0:
        items = await ctx.store.kv_items(replay_ns(sid))
        gone, marks = _evicted(items, keep)
        ops.extend(KvDelete(replay_ns(sid), k) for k in gone)
        if marks:
            old = await ctx.store.kv_get(MARKS_NS, sid)
            merged = dict(old) if isinstance(old, dict) else {}
            for ep, mark in marks.items():
                merged[ep] = max(mark, merged.get(ep, -math.inf))
            ops.append(KvPut(MARKS_NS, sid, merged))
    return ops


def _evicted(items: list[tuple[str, Any]], keep: int) -> tuple[list[str], dict[str, float]]:
    """Which remembered answers go so that at most ``keep`` stay, and the
    low-water marks they leave (per direction, the newest OT forgotten).

    Answers without an OT (``sec`` 0, or remembered before OTs were kept) go
    first, oldest first. Then the oldest OTs go, ties included: every answer
    kept is strictly newer than every mark, so a request not in the memory
    is new exactly when its OT is above the mark of its direction.
    """
    excess = len(items) - keep
    if excess <= 0:
        return [], {}
    untimed = [k for k, v in items if not isinstance(v.get("ot"), (int, float))]
    if len(untimed) >= excess:
        return untimed[:excess], {}
    timed = sorted((float(v["ot"]), k, str(v.get("ep", ""))) for k, v in items
                   if isinstance(v.get("ot"), (int, float)))
    cutoff = timed[excess - len(untimed) - 1][0]
    gone = list(untimed)
    marks: dict[str, float] = {}
    for ot, key, ep in timed:
        if ot > cutoff:
            break
        gone.append(key)
        marks[ep] = max(ot, marks.get(ep, -math.inf))
    return gone, marks


async def forget_ops(ctx: Context, sid: str) -> list[Op]:
    """Drop the session's memory and its marks (termination)."""
    items = await ctx.store.kv_items(replay_ns(sid))
    ops: list[Op] = [KvDelete(replay_ns(sid), k) for k, _ in items]
    if await ctx.store.kv_get(MARKS_NS, sid) is not None:
        ops.append(KvDelete(MARKS_NS, sid))
    return ops

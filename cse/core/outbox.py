"""The notification outbox: pending notifications in the same commit as the
change that caused them (docs/architecture.md "The outbox").

A crash between committing a change and sending its notifications must not
lose them, so :class:`cse.core.executor.Executor` writes every notification
an outcome (or a listener hearing of its events) produces as one KV entry of
namespace :data:`OUTBOX_NS` in that outcome's commit, and only then hands it
to the delivery queue. The queue deletes the entry once the notification is
settled: accepted by its receiver, or given up and counted as lost
(docs/onem2m.md "Subscriptions and notifications"). At start-up every entry
left is queued again, in the order the entries were written, so a
notification of an acknowledged change is delivered at least once.

Entries are named by a zero-padded counter, followed by the worker's tag
when several workers share the store (docs/scaling.md: names never collide;
there the one worker delivering reads them in commit order from the store,
cse.store.pg_coord). In one process the name order is the commit
order (listeners and staging run without suspending before the commit is
called), which is the FIFO order per subscription and target. The entries
are store-internal KV data: not resources, never visible in the tree.

What an entry cannot hold is an ``on_sent`` callback (code): it runs in the
process that queued the notification only. The one thing that must survive
a restart, the ``exc`` countdown of a subscription, is data in the entry
(``exc``, ``event``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .outcome import Batching, Notification
from .ports import KvDelete, KvPut, Op, Store

__all__ = ["OUTBOX_NS", "Outbox", "encode", "decode"]

OUTBOX_NS = "outbox"
_WIDTH = 16


def encode(n: Notification) -> dict[str, Any]:
    """The JSON form of ``n`` as it is stored (short keys: one per pending notification)."""
    rec: dict[str, Any] = {"k": n.key, "t": n.target, "p": n.payload}
    if n.latest:
        rec["l"] = True
    if n.batching is not None:
        rec["b"] = [n.batching.num, n.batching.dur]
    if n.owner is not None:
        rec["o"] = n.owner
    if n.sur is not None:
        rec["s"] = n.sur
    if n.exc is not None:
        rec["x"] = n.exc
    if n.event is not None:
        rec["e"] = n.event
    if n.ec is not None:
        rec["c"] = n.ec
    return rec


def decode(entry: str, rec: dict[str, Any]) -> Notification:
    """The notification stored as ``rec`` under ``entry``."""
    b = rec.get("b")
    return Notification(rec["k"], rec["t"], rec["p"], latest=bool(rec.get("l")),
                        batching=Batching(int(b[0]), float(b[1])) if b else None,
                        owner=rec.get("o"), sur=rec.get("s"), exc=rec.get("x"), event=rec.get("e"), entry=entry,
                        ec=rec.get("c"))


class Outbox:
    """Names and stages outbox entries; reads them back at start-up."""

    def __init__(self, store: Store, *, tag: str = "") -> None:
        """``tag`` ends every name this instance gives (several workers: module docstring)."""
        self._store = store
        self._tag = tag
        self._next = 0

    async def open(self) -> list[Notification]:
        """Every entry left by the previous run, oldest first; later entries
        are named after them. Call once, after the store is open and before
        anything is committed."""
        items = sorted(await self._store.kv_items(OUTBOX_NS))
        if items:
            self._next = max(int(k[:_WIDTH]) for k, _ in items) + 1
        return [decode(k, v) for k, v in items]

    def stage(self, sends: Sequence[Notification]) -> tuple[list[Notification], list[Op]]:
        """``sends`` named as entries, and the ops writing them (for the same commit)."""
        staged: list[Notification] = []
        ops: list[Op] = []
        for n in sends:
            entry = f"{self._next:0{_WIDTH}d}{self._tag}"
            self._next += 1
            n = replace(n, entry=entry)
            staged.append(n)
            ops.append(KvPut(OUTBOX_NS, entry, encode(n)))
        return staged, ops

    @staticmethod
    def rewrite(n: Notification) -> Op:
        """The op storing ``n`` again under its entry (a changed entry keeps its place)."""
        assert n.entry is not None
        return KvPut(OUTBOX_NS, n.entry, encode(n))

    @staticmethod
    def done(entries: Sequence[str]) -> list[Op]:
        """The ops deleting settled entries."""
        return [KvDelete(OUTBOX_NS, e) for e in entries]

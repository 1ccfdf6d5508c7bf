"""What a subscription watches beyond ``net``: operationMonitor (``enc.om``)
and notification statistics (``nse``/``nsi``) (TS-0001 9.6.8, TS-0004 7.5.1,
docs/onem2m.md "Subscriptions and notifications").

* ``enc.om`` = ``{"ops": [operations], "org": [originators]}``: a
  notification is sent when one of ``ops`` (any operation when absent or
  empty) by one of ``org`` (anyone when absent or empty) is performed on
  the subscribed-to resource: CREATE (of a child under it), RETRIEVE,
  UPDATE, DELETE. Its ``nev`` carries ``om`` =
  ``{"ops": <operation>, "org": <originator>}``. A RETRIEVE changes
  nothing and is normally not an event at all: only a resource that an
  operationMonitor covering RETRIEVE watches produces one
  (:class:`Watched` says which, from the commit events).
* ``nse`` true makes the CSE keep ``nsi``, one entry per target:
  ``{"tg": target, "rqs": notification requests sent, "rsr": responses
  received}``. Setting ``nse`` from false (or absent) to true starts
  ``nsi`` afresh (empty); setting it to false stops counting and keeps
  ``nsi``. The counts are gathered in memory and written in one commit
  per ``flush_after`` (:class:`NotificationStats`): a crash loses at
  most that much of them, never a notification. Writing them is a
  read-modify-write of the subscription (``nsi`` plus what was counted),
  so it never interleaves with another write of it: the flushes of one
  process run one at a time, and each holds the write gate of several
  workers (docs/scaling.md) from its read to its commit, as a request
  does -- otherwise two flushes (or a flush and an UPDATE of the
  subscription) reading the same ``nsi`` would each write their own
  sum and one count, or the UPDATE, would be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from cse.core.context import Context
from cse.core.events import Event, EventKind
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Put

__all__ = ["NotificationStats", "Watched", "monitored", "operation_of", "reset_stats"]

log = logging.getLogger("cse.subscription")

SUBSCRIPTION_TY = 23
_CREATE, _RETRIEVE, _UPDATE, _DELETE = 1, 2, 3, 4
# The operation an event reports on the subscribed-to resource (a child's
# deletion is a DELETE of the child, not of the subscribed-to resource).
_OPERATION = {EventKind.CREATE_CHILD: _CREATE, EventKind.RETRIEVED: _RETRIEVE,
              EventKind.RETRIEVE_NO_CHILD: _RETRIEVE, EventKind.UPDATE: _UPDATE, EventKind.DELETE: _DELETE}


def operation_of(ev: Event) -> int | None:
    """The oneM2M operation ``ev`` reports on its subject, if any."""
    return _OPERATION.get(ev.kind)


def monitored(sub: Doc, ev: Event) -> dict[str, Any] | None:
    """``{"ops": op, "org": originator}`` when ``sub``'s operationMonitor
    covers ``ev``, else None."""
    om = (sub.get("enc") or {}).get("om")
    if not isinstance(om, dict):
        return None
    op = operation_of(ev)
    if op is None:
        return None
    ops, org = om.get("ops") or (), om.get("org") or ()
    if ops and op not in ops:
        return None
    if org and ev.originator not in org:
        return None
    out: dict[str, Any] = {"ops": op}
    if ev.originator:
        out["org"] = ev.originator
    return out


def _watches_retrieve(sub: Doc) -> bool:
    om = (sub.get("enc") or {}).get("om")
    return isinstance(om, dict) and (not om.get("ops") or _RETRIEVE in om["ops"])


def reset_stats(old: Doc | None, new: Doc) -> None:
    """``nsi`` starts afresh when ``nse`` turns true (CREATE or UPDATE)."""
    if new.get("nse") is True and not (old or {}).get("nse"):
        new["nsi"] = []


class Watched:
    """Which resources an operationMonitor watches for RETRIEVE, and which
    subscriptions keep statistics: read once from the store, then kept up
    to date from the commit events (so a RETRIEVE costs no store read)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._retrieve: dict[str, str] | None = None  # subscription ri -> subscribed-to ri
        self._stats: set[str] = set()

    async def load(self) -> None:
        """Read the subscriptions once (the first RETRIEVE or event)."""
        if self._retrieve is not None:
            return
        retrieve: dict[str, str] = {}
        for sub in await self.ctx.store.lookup("ty", SUBSCRIPTION_TY):
            self._note(sub, retrieve)
        self._retrieve = retrieve

    def _note(self, sub: Doc, retrieve: dict[str, str]) -> None:
        if _watches_retrieve(sub):
            retrieve[sub["ri"]] = sub["pi"]
        else:
            retrieve.pop(sub["ri"], None)
        if sub.get("nse") is True:
            self._stats.add(sub["ri"])
        else:
            self._stats.discard(sub["ri"])

    def on_events(self, events: Sequence[Event]) -> None:
        """Follow subscriptions created, changed and deleted."""
        if self._retrieve is None:
            return
        for ev in events:
            if ev.doc.get("ty") != SUBSCRIPTION_TY:
                continue
            if ev.kind == EventKind.DELETE:
                self._retrieve.pop(ev.doc["ri"], None)
                self._stats.discard(ev.doc["ri"])
            elif ev.kind in (EventKind.CREATE_CHILD, EventKind.UPDATE):
                self._note(ev.doc, self._retrieve)

    async def retrieved(self, ri: str) -> bool:
        """A RETRIEVE of ``ri`` is watched by an operationMonitor."""
        await self.load()
        assert self._retrieve is not None
        return ri in self._retrieve.values()

    def keeps_stats(self, sub_ri: str) -> bool:
        """``sub_ri`` has ``nse`` true (as of the last commit seen)."""
        return sub_ri in self._stats


class NotificationStats:
    """``nsi`` counting (module docstring): :meth:`record` is called by the
    notifier for each notification request it sends; the counts go to the
    store through the executor, batched."""

    def __init__(self, ctx: Context, watched: Watched, *, flush_after: float = 0.2,
                 max_pending: int = 10_000,
                 serialize: Callable[[], AbstractAsyncContextManager[None]] | None = None) -> None:
        """``serialize``: the write gate of several workers (none in one
        process: reads and the in-memory apply of a commit do not suspend
        there, cse.core.executor)."""
        self.ctx = ctx
        self.serialize = serialize or nullcontext
        self._writing = asyncio.Lock()  # one flush at a time in this process (module docstring)
        self.watched = watched
        self.flush_after = flush_after
        self.max_pending = max_pending
        self._pending: dict[tuple[str, str], list[int]] = {}  # (subscription, target) -> [sent, answered]
        self._task: asyncio.Task[None] | None = None

    def record(self, key: str, target: str, answered: bool) -> None:
        """One notification request to ``target`` for subscription ``key``."""
        if not self.watched.keeps_stats(key):
            return
        counts = self._pending.get((key, target))
        if counts is None:
            if len(self._pending) >= self.max_pending:
                return  # bounded: past it, counts are lost (statistics, never notifications)
            counts = self._pending[(key, target)] = [0, 0]
        counts[0] += 1
        counts[1] += int(answered)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_later(), name="notify-stats")

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.flush_after)
        finally:
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write the counts gathered so far (one commit), read and written
        under the write gate (module docstring)."""
        async with self._writing, self.serialize():
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        by_sub: dict[str, list[tuple[str, list[int]]]] = {}
        for (key, target), counts in pending.items():
            by_sub.setdefault(key, []).append((target, counts))
        ops = []
        for key, items in by_sub.items():
            sub = await self.ctx.store.get(key)
            if sub is None or sub.get("nse") is not True:
                continue
            nsi = [dict(e) for e in sub.get("nsi") or ()]
            for target, (sent, answered) in items:
                entry = next((e for e in nsi if e.get("tg") == target), None)
                if entry is None:
                    entry = {"tg": target, "rqs": 0, "rsr": 0}
                    nsi.append(entry)
                entry["rqs"] = int(entry.get("rqs", 0)) + sent
                entry["rsr"] = int(entry.get("rsr", 0)) + answered
            ops.append(Put({**sub, "nsi": nsi}))
        if ops:
            try:
                await self.ctx.apply(Outcome(ops=ops))
            except Exception:
                log.exception("notification statistics (nsi) not written")

    async def stop(self) -> None:
        """Write what is pending (shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.flush()

"""Outbox delivery when several workers share the store (docs/scaling.md).

Every worker commits its notifications as outbox entries
(docs/architecture.md "The outbox"), but only one worker sends: the one
leading job ``outbox`` (cse.store.pg_coord).  It reads the pending entries in
commit order and hands each one it has not queued yet to its delivery queue,
which deletes the entry once it is settled.  So each entry is claimed by one
worker, a subscription's notifications are sent in the order their changes
were committed, and when the leader dies the next one finds every entry
still pending (delivered at least once, as across a restart).

A pass runs when a worker committed an entry (``wake``, from the store's
NOTIFY) and every ``poll_s`` otherwise; the entries are bounded by the
delivery queue's bounds (``outbound.max_pending``), so a pass reads a
bounded list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cse.core.outbox import OUTBOX_NS, decode
from cse.core.outcome import Notification
from cse.core.ports import Store

__all__ = ["OutboxRelay"]

log = logging.getLogger("cse.notification")


class OutboxRelay:
    """Hands pending outbox entries to the delivery queue while this worker leads delivery."""

    def __init__(self, store: Store, leads: Callable[[], Awaitable[bool]], deliver: Callable[[Notification], None],
                 *, poll_s: float = 1.0,
                 read: Callable[[str], Awaitable[list[tuple[str, Any]]]] | None = None) -> None:
        """``read(ns)`` lists what the database holds (default: the store's
        ``kv_items``): a worker's memory also holds commits not written yet
        (cse.store.pg_shared), and a notification of a change that then
        fails to commit must never be sent."""
        self._read = read or store.kv_items
        self._store = store
        self._leads = leads
        self._deliver = deliver
        self._poll_s = poll_s
        self._queued: set[str] = set()  # entries handed over and still pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if await self._leads():
                    await self.relay()
            except Exception:  # the store is away: the next pass tries again
                log.exception("outbox relay: pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def relay(self) -> int:
        """One pass: queue every pending entry not queued yet, oldest first; how many."""
        present: set[str] = set()
        queued = 0
        for entry, rec in await self._read(OUTBOX_NS):
            present.add(entry)
            if entry not in self._queued:
                self._queued.add(entry)
                self._deliver(decode(entry, rec))
                queued += 1
        self._queued &= present
        return queued

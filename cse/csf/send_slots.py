"""How many notification sends may be in flight: in all, per target, per originator.

A send to a target that never answers holds its slot until the send
timeout. With one shared pool, a few hundred notifications to one tarpit
(or to many tarpits of one originator) would take every slot and everyone
else's notifications would wait behind them (docs/security.md "Outbound
requests"). So a send takes, in this order, a slot of its target (its
address and port), a slot of its originator, then one of the shared pool.
Waiting for the first two holds nothing of the pool: the sends that wait
for a slow target or a greedy originator cost memory, not other people's
slots. The order is fixed, so two sends never wait for each other's slots.

Each bound is an ``asyncio.Semaphore`` made when a name is first used and
dropped once nobody holds or waits for it, so the per-target and
per-originator tables do not grow with every name ever seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

__all__ = ["SendSlots"]


class _Bounded:
    """Named semaphores of one size, forgotten when unused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        sem = self._sems.get(name)
        if sem is None:
            sem = self._sems[name] = asyncio.Semaphore(self.limit)
        self._users[name] = self._users.get(name, 0) + 1
        try:
            async with sem:
                yield
        finally:
            left = self._users[name] - 1
            if left:
                self._users[name] = left
            else:
                del self._users[name]
                del self._sems[name]


class SendSlots:
    """The three bounds of the module docstring."""

    def __init__(self, *, total: int = 64, per_target: int = 4, per_originator: int = 16) -> None:
        self.total = total
        self.per_target = per_target
        self.per_originator = per_originator
        self._targets = _Bounded(per_target)
        self._originators = _Bounded(per_originator)
        self._pool = asyncio.Semaphore(total)

    @asynccontextmanager
    async def hold(self, target: str, originator: str | None) -> AsyncIterator[None]:
        """A slot of ``target``, of ``originator`` (when known) and of the pool, for one send."""
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._targets.hold(target))
            if originator:
                await stack.enter_async_context(self._originators.hold(originator))
            await stack.enter_async_context(self._pool_slot())
            yield

    @asynccontextmanager
    async def _pool_slot(self) -> AsyncIterator[None]:
        async with self._pool:
            yield

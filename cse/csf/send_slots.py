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
from types import TracebackType

__all__ = ["SendSlots"]


class _Bounded:
    """Named semaphores of one size, forgotten when unused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    async def acquire(self, name: str) -> asyncio.Semaphore:
        """Wait for a slot of ``name``; the semaphore to :meth:`release` it to."""
        sem = self._sems.get(name)
        if sem is None:
            sem = self._sems[name] = asyncio.Semaphore(self.limit)
        self._users[name] = self._users.get(name, 0) + 1
        try:
            await sem.acquire()
        except BaseException:  # cancelled while waiting: no slot taken, no longer a user
            self._leave(name)
            raise
        return sem

    def release(self, name: str, sem: asyncio.Semaphore) -> None:
        """Give back the slot :meth:`acquire` returned."""
        sem.release()
        self._leave(name)

    def _leave(self, name: str) -> None:
        left = self._users[name] - 1
        if left:
            self._users[name] = left
        else:
            del self._users[name]
            del self._sems[name]


class _Held:
    """One send's three slots, taken in the fixed order and given back in
    reverse (an ``async with`` object rather than nested generator-based
    context managers: it is entered for every notification sent)."""

    __slots__ = ("_slots", "_target", "_originator", "_tsem", "_osem")

    def __init__(self, slots: SendSlots, target: str, originator: str | None) -> None:
        self._slots = slots
        self._target = target
        self._originator = originator
        self._tsem: asyncio.Semaphore | None = None
        self._osem: asyncio.Semaphore | None = None

    async def __aenter__(self) -> None:
        slots = self._slots
        self._tsem = await slots._targets.acquire(self._target)
        try:
            if self._originator:
                self._osem = await slots._originators.acquire(self._originator)
            try:
                await slots._pool.acquire()
            except BaseException:
                if self._osem is not None:
                    slots._originators.release(self._originator or "", self._osem)
                    self._osem = None
                raise
        except BaseException:
            slots._targets.release(self._target, self._tsem)
            self._tsem = None
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        slots = self._slots
        slots._pool.release()
        if self._osem is not None:
            slots._originators.release(self._originator or "", self._osem)
            self._osem = None
        if self._tsem is not None:
            slots._targets.release(self._target, self._tsem)
            self._tsem = None


class SendSlots:
    """The three bounds of the module docstring."""

    def __init__(self, *, total: int = 64, per_target: int = 4, per_originator: int = 16) -> None:
        self.total = total
        self.per_target = per_target
        self.per_originator = per_originator
        self._targets = _Bounded(per_target)
        self._originators = _Bounded(per_originator)
        self._pool = asyncio.Semaphore(total)

    def hold(self, target: str, originator: str | None) -> _Held:
        """A slot of ``target``, of ``originator`` (when known) and of the pool, for one send
        (``async with slots.hold(target, originator): ...``)."""
        return _Held(self, target, originator)

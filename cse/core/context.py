"""The per-CSE context passed to every CSF: identity, registry, store, clock.

Built once by the composition root (``cse.app``). CSFs never reach for
globals; whatever they need is here. ``events`` receives resource events after
each successful commit (the subscription CSF and the expiry scheduler listen).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ports import Clock, Doc, Store
from .registry import Registry
from .timestamps import format_ts

__all__ = ["CSEIdentity", "Event", "EventKind", "Context", "SystemClock"]


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class CSEIdentity:
    """Who this CSE is (RUNNING.md ``[cse]``) and its limits."""

    csi: str = "/id-in"
    cb_name: str = "cse-in"
    sp_id: str | None = None
    cse_type: int = 1
    admin: str = "CAdmin"
    poa: tuple[str, ...] = ()
    default_et_s: float = 10 * 365 * 86400.0
    max_result: int = 10_000

    @property
    def cb_ri(self) -> str:
        """The CSEBase ri: the CSE-ID without its slash (``id-in``)."""
        return self.csi.lstrip("/")


class EventKind:
    """Resource event names, mirroring subscription ``net`` values."""

    UPDATE = 1
    DELETE = 2
    CREATE_CHILD = 3
    DELETE_CHILD = 4


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened to ``doc`` (for child events: ``doc`` is the child
    and ``parent`` the subscribed-to resource). ``modified`` lists attributes
    an UPDATE changed; ``originator`` is who caused it (None: the CSE)."""

    kind: int
    doc: Doc
    parent: Doc | None = None
    modified: tuple[str, ...] = ()
    originator: str | None = None
    quiet: bool = False


EventSink = Callable[[Sequence[Event]], Awaitable[None]]


async def _no_events(events: Sequence[Event]) -> None:
    return None


@dataclass
class Context:
    """Everything a CSF may use. ``forwarder`` (issue 4) sends remote requests."""

    identity: CSEIdentity
    registry: Registry
    store: Store
    clock: Clock = field(default_factory=SystemClock)
    listeners: list[EventSink] = field(default_factory=list)
    forwarder: Any = None

    def now_ts(self) -> str:
        """The current time as a canonical oneM2M timestamp."""
        return format_ts(self.clock.now())

    async def emit(self, events: Sequence[Event]) -> None:
        """Hand committed events to every listener, in registration order."""
        if not events:
            return
        for listener in self.listeners:
            await listener(events)

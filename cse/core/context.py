"""The per-CSE context passed to every CSF: identity, registry, store, clock.

Built once by the composition root (``cse.app``). CSFs never reach for
globals; whatever they need is here. CSFs read through ``store`` and change
things only by handing an :class:`~cse.core.outcome.Outcome` to ``apply``
(the executor): they never commit, emit or arm timers themselves.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from .outcome import Outcome
from .ports import Clock, CommitResult, Store
from .registry import Registry
from .timestamps import format_ts

__all__ = ["Apply", "CSEIdentity", "Context", "MonotonicClock", "SystemClock"]

Apply = Callable[[Outcome], Awaitable[CommitResult]]


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class MonotonicClock:
    """A :class:`~cse.core.ports.Clock` on a monotonic source, for what
    measures durations (a token bucket's refill) that a wall-clock step must
    not move (docs/troubleshooting.md "Clock jumps")."""

    source: Callable[[], float]

    def now(self) -> float:
        return self.source()


@dataclass(frozen=True, slots=True)
class CSEIdentity:
    """Who this CSE is (the ``[cse]`` section of docs/configuration.md), its registrar
    (``[registrar] cse_id``, None without one) and its limits."""

    csi: str = "/id-in"
    cb_name: str = "cse-in"
    sp_id: str | None = None
    cse_type: int = 1
    admin: str = "CAdmin"
    poa: tuple[str, ...] = ()
    default_et_s: float = 10 * 365 * 86400.0
    max_result: int = 1000  # [limits]: results of one walk, then partial content
    max_depth: int = 64  # [limits]: levels below the CSEBase a resource may be created at
    max_resources_per_originator: int = 0  # [limits]: 0 = no quota
    registrar: str | None = None

    @property
    def cb_ri(self) -> str:
        """The CSEBase ri: the CSE-ID without its slash (``id-in``)."""
        return self.csi.lstrip("/")


@dataclass
class Context:
    """Everything a CSF may use (module docstring)."""

    identity: CSEIdentity
    registry: Registry
    store: Store
    apply: Apply
    clock: Clock = field(default_factory=SystemClock)

    def now_ts(self) -> str:
        """The current time as a canonical oneM2M timestamp."""
        return format_ts(self.clock.now())

    def reachable_at(self, poa: tuple[str, ...]) -> None:
        """This CSE's point of access once it is known: with port 0 the
        operating system picks the port when the server starts."""
        self.identity = replace(self.identity, poa=poa)

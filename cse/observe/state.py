"""One look at the CSE's state, taken when ``/health`` or ``/metrics`` is read.

Why a snapshot: the numbers behind readiness and the gauges come from the
store (sessions, stored requests, resources) and are read asynchronously,
once per scrape, never on the request path (docs/configuration.md "[metrics]").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Snapshot", "Probe"]


@dataclass(frozen=True)
class Snapshot:
    """What readiness and the gauges need; no identities, keys or addresses."""

    store_writable: bool
    registrar: bool | None  # None: this CSE has no registrar; else registered at its last check
    notifications_pending: int  # queued in the outbox, not yet delivered
    notifications: dict[str, int] = field(default_factory=dict)  # sent, failed, dropped, coalesced (totals)
    stored_requests: int = 0  # session-based requests held by store-and-forward
    sessions: dict[str, int] = field(default_factory=dict)  # by state: establishing, established, terminating
    resources: int = 0  # documents in the store
    connections: int = 0  # HTTP connections open

    @property
    def ready(self) -> bool:
        """Ready for traffic: the store can write and, with a registrar, this CSE is registered."""
        return self.store_writable and self.registrar is not False

    def reasons(self) -> list[str]:
        """Why it is not ready (empty when it is)."""
        out = []
        if not self.store_writable:
            out.append("the store cannot write (docs/troubleshooting.md \"Store damaged or full\")")
        if self.registrar is False:
            out.append("not registered with its registrar")
        return out


#: Takes a :class:`Snapshot` (composed in cse/app.py).
Probe = Callable[[], Awaitable[Snapshot]]

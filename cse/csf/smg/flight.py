"""Which stored requests of a flush pass may be in flight together
(docs/sessions.md "Store-and-forward"): the ordering contract of
:mod:`.queue`, and the bookkeeping that applies it cheaply."""

from __future__ import annotations

import asyncio

from cse.core.messages import Operation, Request
from cse.core.schedule import Schedule

__all__ = ["Flying", "may_overlap", "window_open"]


def _path(to: str) -> list[str] | None:
    """The structured path segments of an SP-relative target, or None when
    the form says nothing about where it sits (resource IDs, CSEBase)."""
    parts = [p for p in to.split("/") if p]
    return parts if len(parts) >= 3 else None


def may_overlap(earlier: Request, later: Request) -> bool:
    """Whether ``later`` may be sent while ``earlier`` (stored before it, same
    session) is still unanswered without changing what either does.

    CREATEs into the same parent may (siblings: their creation times may
    interleave, and two of the same name race for it). Otherwise both targets must be structured and neither at or
    below the other: an UPDATE or DELETE of the same resource, or anything
    below a resource being created or deleted, waits. Unknown forms wait.
    """
    if earlier.op == Operation.CREATE and later.op == Operation.CREATE and earlier.to == later.to:
        return True
    a, b = _path(earlier.to), _path(later.to)
    if a is None or b is None:
        return False
    n = min(len(a), len(b))
    return a[:n] != b[:n]


def window_open(memo: dict[tuple[str, int], bool], policy_ri: str, sched: Schedule, now: float) -> bool:
    """``sched.is_open(now)``, asked once per policy and second in a flush
    pass: a window opens and closes on whole seconds (``sch`` entries have
    a seconds field, docs/onem2m.md "Schedule entries";
    :meth:`Schedule.is_open` answers for the second containing ``now``), so every stored
    request of that second gets the same answer."""
    key = (policy_ri, int(now // 1))
    found = memo.get(key)
    if found is None:
        found = memo[key] = sched.is_open(now)
    return found


class Flying:
    """The unanswered deliveries of one session in a flush pass, grouped by
    (operation, target): CREATEs into one parent never wait for each other
    (:func:`may_overlap`), so a burst of them costs one look per group per
    request instead of one per request in flight."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: dict[tuple[int, str], list[tuple[Request, asyncio.Task[None]]]] = {}

    def conflicting(self, req: Request) -> list[asyncio.Task[None]]:
        """The deliveries still in flight that ``req`` must wait for."""
        waits: list[asyncio.Task[None]] = []
        for (op, to), group in self.groups.items():
            if op == Operation.CREATE and req.op == Operation.CREATE and to == req.to:
                continue  # siblings (may_overlap's first rule)
            waits.extend(t for r, t in group if not t.done() and not may_overlap(r, req))
        return waits

    def add(self, req: Request, task: asyncio.Task[None]) -> None:
        """``req`` is in flight as ``task``; answered ones are dropped."""
        key = (int(req.op), req.to)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = []
        elif len(group) > 64:  # more than a window's worth: most are answered
            group[:] = [(r, t) for r, t in group if not t.done()]
        group.append((req, task))
        if len(self.groups) > 64:  # many distinct targets: forget the answered ones
            self.groups = {k: live for k, g in self.groups.items()
                           if (live := [(r, t) for r, t in g if not t.done()])}

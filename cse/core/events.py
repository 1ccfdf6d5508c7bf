"""Resource events: what a committed change tells the CSFs that listen.

An event is produced by the CSF that makes a change (as part of its
:class:`cse.core.outcome.Outcome`) and handed to the listeners by the
executor after the change is durable (TS-0001 10.2.10: notifications follow
the change they report, never precede it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ports import Doc

__all__ = ["Event", "EventKind"]


class EventKind:
    """Resource event names, mirroring subscription ``net`` values."""

    UPDATE = 1
    DELETE = 2
    CREATE_CHILD = 3
    DELETE_CHILD = 4
    MISSING_DATA = 8  # reportOnGeneratedMissingDataPoints: sent by the timeSeries timer, never a commit event
    # net 5: a RETRIEVE of the latest/oldest instance of a container that has
    # none (TS-0001 9.6.8 "Retrieve_of_container_resource_with_no_child_resource";
    # ``doc`` is the container)
    RETRIEVE_NO_CHILD = 5
    # not a net value: a RETRIEVE of ``doc`` that an operationMonitor (``enc.om``)
    # watches; only produced when one does (docs/onem2m.md "Subscriptions and notifications")
    RETRIEVED = 100


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

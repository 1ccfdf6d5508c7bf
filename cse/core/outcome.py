"""What handling a request (or a timer) decided: the h11-style outcome.

A CSF reads the store, decides, and describes its decision as an
:class:`Outcome`: store operations, the events they cause, notifications to
hand to the delivery queue, deadlines for timers, and the response. It does
not commit, emit, send or arm anything itself; :class:`cse.core.executor.Executor`
does, in that order, for every outcome whatever CSF produced it. That is
what keeps "the change is durable before anyone hears of it" and "every
``et`` arms the expiry timer" true in one place instead of in each CSF.

An outcome maps onto one store transaction: a backend that has real
transactions commits ``ops`` as one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import M2MError
from .events import Event
from .messages import Response
from .ports import Doc, Op

__all__ = ["Ask", "Batching", "Deadline", "Notification", "OnSent", "Outcome", "Removal", "EXPIRY",
           "STORE_AND_FORWARD"]

EXPIRY = "expiry"
STORE_AND_FORWARD = "store-and-forward"

OnSent = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Batching:
    """``bn`` of a subscription: up to ``num`` per message, waiting ``dur`` s."""

    num: int
    dur: float


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification for the delivery queue named ``key`` (a subscription,
    a ``<request>``): ``payload`` to ``target`` (a URL or an AE-ID).
    ``on_sent`` runs once the receiver accepted it, in this process only
    (it is code: an outbox entry cannot hold it, cse/core/outbox.py).
    ``owner`` is the originator it is sent for (the subscription's
    creator, the request's originator) and ``sur`` what it is about: a
    target that has not accepted a verification request for ``owner``
    gets one naming them first (docs/security.md "Outbound requests").
    ``exc`` names the subscription whose expirationCounter counts down on
    the first accepted delivery among the notifications sharing ``event``
    (one event, several targets); both are data, so they survive a
    restart. ``entry`` is the outbox entry holding it once staged
    (docs/architecture.md "The outbox"). ``ec`` is the event category
    the NOTIFY carries (TS-0004 ``ec``, ``X-M2M-EC`` in TS-0009)."""

    key: str
    target: str
    payload: dict[str, Any]
    latest: bool = False
    batching: Batching | None = None
    on_sent: OnSent | None = None
    owner: str | None = None
    sur: str | None = None
    exc: str | None = None
    event: str | None = None
    entry: str | None = None
    ec: int | None = None


@dataclass(frozen=True, slots=True)
class Deadline:
    """Run the timer named ``timer`` at ``at`` (epoch seconds) if that is
    sooner than it is armed for."""

    timer: str
    at: float


@dataclass(frozen=True, slots=True)
class Removal:
    """The events of a subtree deletion, which only the commit knows in full:
    DELETE for every document the ``Delete`` of ``doc`` removed, and
    DELETE_CHILD of ``doc`` for its ``parent``."""

    doc: Doc
    parent: Doc | None
    originator: str | None


@dataclass(frozen=True, slots=True)
class Ask:
    """A question the step needs answered before it can decide: send
    ``payload`` as a NOTIFY to ``target`` (verified first for ``owner``,
    about ``sur``) and wait at most ``timeout`` seconds. The executor sends
    it (:meth:`cse.core.executor.Executor.settle`) and hands the answer --
    the Response, or the :class:`M2MError` of a send that failed or timed
    out -- to ``then``, whose outcome replaces the asking one (it may raise
    to refuse the request). E.g. a blockingUpdate (cse/csf/blocking_update.py)."""

    target: str
    payload: dict[str, Any]
    timeout: float
    then: Callable[[Response | M2MError], Awaitable[Outcome]]
    owner: str | None = None
    sur: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything one step decided (module docstring). An outcome with an
    ``ask`` is not final: the executor settles it first (:class:`Ask`)."""

    response: Response | None = None
    ops: Sequence[Op] = ()
    events: Sequence[Event] = ()
    removal: Removal | None = None
    sends: Sequence[Notification] = ()
    deadlines: Sequence[Deadline] = ()
    ask: Ask | None = None

    def adding(self, *, ops: Sequence[Op] = (), sends: Sequence[Notification] = (),
               deadlines: Sequence[Deadline] = ()) -> Outcome:
        """This outcome with more operations (same commit), sends and deadlines."""
        return Outcome(self.response, (*self.ops, *ops), self.events, self.removal,
                       (*self.sends, *sends), (*self.deadlines, *deadlines), self.ask)

    def with_removal(self, removal: Removal) -> Outcome:
        """This outcome, its commit's removals reported as ``removal``."""
        return Outcome(self.response, self.ops, self.events, removal, self.sends, self.deadlines, self.ask)

    def answering(self, response: Response) -> Outcome:
        """This outcome with ``response`` as its answer."""
        return Outcome(response, self.ops, self.events, self.removal, self.sends, self.deadlines, self.ask)

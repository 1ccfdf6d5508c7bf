"""Session Management CSF (SMG): M2M service sessions across CSEs (docs/sessions.md).

:class:`SMG` assembles the parts for the composition root: session
establishment/transit/termination (:mod:`.sessions`), session events to
endpoint AEs (:mod:`.events`), policy replication (:mod:`.policies`), the
gate every session-based request passes (:mod:`.gate`), the
store-and-forward queue (:mod:`.queue`), and the hooks the generic data CSF
calls for the session types.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from cse.core.context import Context
from cse.core.events import Event
from cse.core.ids import Target
from cse.core.keyring import Keyring
from cse.core.messages import Request, Response
from cse.core.outcome import STORE_AND_FORWARD, Deadline, Outcome

from ..forwarding import Forwarder
from ..hooks import TypeHooks
from ..nonblocking import NonBlockingCSF
from ..notification import Notifier
from .events import SessionEvents
from .gate import Resolve, Serve, SessionGate
from .history import REPLAY_KEEP, forget_ops
from .keys import KeyCheck, check_stored_keys
from .model import POLICY_TY, SESSION_TY
from .policies import PolicyReplicator
from .queue import StoreAndForward
from .sessions import SessionManager

__all__ = ["SMG"]


class SMG:
    """The SMG of one CSE."""

    def __init__(self, ctx: Context, forwarder: Forwarder, notifier: Notifier, nonblocking: NonBlockingCSF, *,
                 resolve: Resolve, serve: Serve, keyring: Keyring, notify_timeout: float = 10.0,
                 establish_timeout: float = 25.0, freshness_s: float = 300.0, history: int = 50,
                 replay_keep: int = REPLAY_KEEP, monotonic: Callable[[], float] = time.monotonic,
                 queue_tag: str = "",
                 queue_serialize: Callable[[], AbstractAsyncContextManager[None]] | None = None,
                 queue_shared: bool = False) -> None:
        """``resolve`` and ``serve`` are the dispatcher's target resolution
        and the local router, for session-based requests served here;
        ``keyring`` wraps the session keys this CSE stores
        (docs/security.md "Keys at rest"); ``queue_tag`` ends the keys of
        stored requests and ``queue_serialize`` is the write gate their
        answers are recorded under; ``queue_shared``: other workers store
        and forward from the same queue (several workers, docs/scaling.md)."""
        self.ctx = ctx
        self.keyring = keyring
        self.forwarder = forwarder
        self.events = SessionEvents(ctx, notifier, timeout=notify_timeout)
        self.queue = StoreAndForward(ctx, nonblocking, forwarder.forward, monotonic=monotonic, history=history,
                                      tag=queue_tag, serialize=queue_serialize, shared=queue_shared)
        self.gate = SessionGate(ctx, self.events, resolve=resolve, serve=serve, forward=forwarder.forward,
                                store=self.queue.store, accept=nonblocking.accept, keyring=keyring,
                                freshness_s=freshness_s, history=history, replay_keep=replay_keep)
        self.sessions = SessionManager(ctx, forwarder, self.events, self._forgetting, keyring=keyring,
                                       establish_timeout=establish_timeout)
        self.policies = PolicyReplicator(ctx, forwarder, timeout=establish_timeout)

    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """A policy created, changed or removed may open a window now: the
        store-and-forward timer looks again."""
        for ev in events:
            if ev.doc["ty"] == POLICY_TY:
                return Outcome(deadlines=[Deadline(STORE_AND_FORWARD, self.ctx.clock.now())])
        return None

    async def check_keys(self) -> KeyCheck:
        """The stored session keys checked against this CSE's keyring, with
        the outcome wrapping those stored in plain (start-up)."""
        return await check_stored_keys(self.ctx, self.keyring)

    async def _forgetting(self, sid: str) -> Outcome:
        """A session ends here: the outcome dropping its stored requests,
        remembered answers and low-water marks (its cached keys go at once;
        its wrapped key goes with the session document)."""
        self.gate.forget(sid)
        dropped = await self.queue.dropping(sid)
        return dropped.adding(ops=await forget_ops(self.ctx, sid))

    def hooks(self) -> dict[int, TypeHooks]:
        """Hooks of the SMG's resource types, by ``ty``."""
        return {SESSION_TY: self.sessions.hooks(), POLICY_TY: self.policies.hooks()}

    async def forward(self, req: Request, target: Target) -> Response:
        """The dispatcher's forwarding entry: session creates passing
        through are kept here on the way (transit); the rest is forwarded."""
        if self.sessions.intercepts(req):
            return await self.sessions.transit(req, target)
        return await self.forwarder.forward(req, target)

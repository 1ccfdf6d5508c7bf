"""Session Management CSF (SMG): M2M service sessions across CSEs (SESSIONS.md).

:class:`SMG` assembles the parts for the composition root: session
establishment/transit/termination (:mod:`.sessions`), session events to
endpoint AEs (:mod:`.events`), policy replication (:mod:`.policies`), and
the hooks the generic data CSF calls for the session types.
"""

from __future__ import annotations

from collections.abc import Sequence

from cse.core.context import Context, Event
from cse.core.ids import Target
from cse.core.messages import Request, Response
from cse.core.ports import KvDelete

from ..forwarding import Forwarder
from ..hooks import TypeHooks
from ..nonblocking import NonBlockingCSF
from ..notification import Notifier
from .events import SessionEvents
from .gate import SessionGate, replay_ns
from .model import POLICY_TY, SESSION_TY
from .policies import PolicyReplicator
from .queue import StoreAndForward
from .sessions import SessionManager

__all__ = ["SMG"]


class SMG:
    """The SMG of one CSE."""

    def __init__(self, ctx: Context, forwarder: Forwarder, notifier: Notifier, nonblocking: NonBlockingCSF, *,
                 notify_timeout: float = 10.0, establish_timeout: float = 25.0, freshness_s: float = 300.0,
                 history: int = 50) -> None:
        self.ctx = ctx
        self.forwarder = forwarder
        self.events = SessionEvents(ctx, notifier, timeout=notify_timeout)
        self.sessions = SessionManager(ctx, forwarder, self.events, establish_timeout=establish_timeout)
        self.sessions.on_removed = self._forget
        self.policies = PolicyReplicator(ctx, forwarder, timeout=establish_timeout)
        self.gate = SessionGate(ctx, self.events, freshness_s=freshness_s, history=history)
        self.gate.forward = forwarder.forward
        self.gate.nonblocking = nonblocking
        self.queue = StoreAndForward(ctx, self.gate, nonblocking, forwarder.forward)
        self.gate.queue = self.queue

    async def on_events(self, events: Sequence[Event]) -> None:
        """A policy created, changed or removed may open a window now: let
        the store-and-forward timer look again."""
        if self.queue.timer is None:
            return
        for ev in events:
            if ev.doc["ty"] == POLICY_TY:
                self.queue.timer.poke(self.ctx.clock.now())
                return

    async def _forget(self, sid: str) -> None:
        """A session ended here: drop its stored requests, answers and keys."""
        await self.queue.drop_session(sid)
        items = await self.ctx.store.kv_items(replay_ns(sid))
        if items:
            await self.ctx.store.commit([KvDelete(replay_ns(sid), k) for k, _ in items])
        self.gate.forget(sid)

    def hooks(self) -> dict[int, TypeHooks]:
        """Hooks of the SMG's resource types, by ``ty``."""
        return {SESSION_TY: self.sessions.hooks(), POLICY_TY: self.policies.hooks()}

    async def forward(self, req: Request, target: Target) -> Response:
        """The dispatcher's forwarding entry: session creates passing
        through are kept here on the way (transit); the rest is forwarded."""
        if self.sessions.intercepts(req):
            return await self.sessions.transit(req, target)
        return await self.forwarder.forward(req, target)

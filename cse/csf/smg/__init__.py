"""Session Management CSF (SMG): M2M service sessions across CSEs (SESSIONS.md).

:class:`SMG` assembles the parts for the composition root: session
establishment/transit/termination (:mod:`.sessions`), session events to
endpoint AEs (:mod:`.events`), policy replication (:mod:`.policies`), and
the hooks the generic data CSF calls for the session types.
"""

from __future__ import annotations

from cse.core.context import Context
from cse.core.ids import Target
from cse.core.messages import Request, Response

from ..forwarding import Forwarder
from ..hooks import TypeHooks
from ..notification import Notifier
from .events import SessionEvents
from .model import POLICY_TY, SESSION_TY
from .policies import PolicyReplicator
from .sessions import SessionManager

__all__ = ["SMG"]


class SMG:
    """The SMG of one CSE."""

    def __init__(self, ctx: Context, forwarder: Forwarder, notifier: Notifier, *,
                 notify_timeout: float = 10.0, establish_timeout: float = 25.0) -> None:
        self.ctx = ctx
        self.forwarder = forwarder
        self.events = SessionEvents(ctx, notifier, timeout=notify_timeout)
        self.sessions = SessionManager(ctx, forwarder, self.events, establish_timeout=establish_timeout)
        self.policies = PolicyReplicator(ctx, forwarder, timeout=establish_timeout)

    def hooks(self) -> dict[int, TypeHooks]:
        """Hooks of the SMG's resource types, by ``ty``."""
        return {SESSION_TY: self.sessions.hooks(), POLICY_TY: self.policies.hooks()}

    async def forward(self, req: Request, target: Target) -> Response:
        """The dispatcher's forwarding entry: session creates passing
        through are kept here on the way (transit); the rest is forwarded."""
        if self.sessions.intercepts(req):
            return await self.sessions.transit(req, target)
        return await self.forwarder.forward(req, target)

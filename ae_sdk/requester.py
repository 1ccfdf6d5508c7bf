"""What the SDK's parts need from a client (docs/sdk.md): the narrow interfaces
that :class:`~ae_sdk.session.Session`, :class:`~ae_sdk.session_manager.SessionManager`,
:class:`~ae_sdk.nonblocking.PendingResult` and the subscription bookkeeping of
:mod:`ae_sdk.client_notify` are written against, instead of against
:class:`~ae_sdk.client.AEClient` itself.

:class:`~ae_sdk.client.AEClient` satisfies both protocols and holds those
parts; they never import it. So the SDK's modules import one way: this
module knows only the leaf modules (messages, transport, notification
server), the parts know this module, and the client knows the parts.

* :class:`Requester` -- the AE's identity (originator, its ``<AE>``, the
  CSE's names), addressing, and building and sending one request: enough to
  poll a ``<request>``, send session-based requests and manage
  subscriptions.
* :class:`SessionClient` -- a :class:`Requester` that can also receive
  notifications and subscribe: what the session manager needs to hear the
  AE's session events (docs/sessions.md, docs/sdk.md "Sessions between two
  AEs on two CSEs").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cse.core.messages import Operation, Request, Response

from .notify_server import NotificationCallback, NotificationServer
from .transport import Transport

__all__ = ["Requester", "SessionClient"]


class Requester(Protocol):
    """A client that builds and sends requests as one AE.

    ``send`` raises :class:`~ae_sdk.errors.M2MResponseError` for an error RSC
    (>= 3000); ``request`` is ``send(build(op, path, **kw))``.
    """

    @property
    def originator(self) -> str | None:
        """The From of requests (the AE-ID once registered)."""

    @property
    def ae(self) -> Mapping[str, Any] | None:
        """The registered ``<AE>``'s attributes, if known."""

    @property
    def cse_name(self) -> str:
        """The registrar CSE's CSEBase name (``cse-in``)."""

    @property
    def cse_id(self) -> str:
        """The registrar CSE's CSE-ID (``/id-in``)."""

    @property
    def notifications(self) -> NotificationServer | None:
        """The AE's notification server, if started (the default ``rtu`` of ``rt`` 2)."""

    def target(self, path: str) -> str:
        """The To value for ``path`` (a path below the CSEBase, or used as given)."""

    def ri_path(self, ri: str) -> str:
        """SP-relative address of the resource whose ``ri`` is ``ri``."""

    def build(self, op: Operation, path: str, *, ty: int | None = ..., pc: Any = ..., rcn: int | None = ...,
              rt: int | None = ..., rtu: Sequence[str] | None = ..., atrl: str | Sequence[str] = ...,
              query: Mapping[str, Sequence[str]] | None = ..., drt: int = ..., fr: str | None = ...) -> Request:
        """A request from this AE (fresh request ID, RVI 3, the originator unless ``fr``)."""

    async def send(self, req: Request) -> Response:
        """Send ``req``; error RSCs raise :class:`~ae_sdk.errors.M2MResponseError`."""

    async def request(self, op: Operation, path: str, **kw: Any) -> Response:
        """Build and send a request (see :meth:`build`)."""


class SessionClient(Requester, Protocol):
    """A :class:`Requester` that also hears notifications: what a
    :class:`~ae_sdk.session_manager.SessionManager` serves."""

    @property
    def transport(self) -> Transport:
        """How requests reach the CSE (for requests that must not raise or be recorded)."""

    async def require_ae(self) -> Mapping[str, Any]:
        """The registered ``<AE>``'s attributes (retrieved once if only the AE-ID is known)."""

    async def start_notifications(self) -> NotificationServer:
        """Start (once) the AE's notification server and return it."""

    async def subscribe(self, path: str, callback: NotificationCallback, *, net: Sequence[int] = ...,
                        rn: str | None = ..., replace: bool = ...) -> dict[str, Any]:
        """Subscribe to events ``net`` on ``path``; ``callback`` gets each ``m2m:sgn``."""

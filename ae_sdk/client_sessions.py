"""M2M service sessions on an :class:`~ae_sdk.client.AEClient` (docs/sessions.md;
:mod:`ae_sdk.session`): ``AEClient.enable_sessions``, ``AEClient.establish``,
``AEClient.on_session``, ``AEClient.on_terminated``, ``AEClient.on_session_update``,
``AEClient.next_session`` and ``client.sessions``, kept apart from the request
plumbing of :mod:`ae_sdk.client`. The state lives in a
:class:`~ae_sdk.session_manager.SessionManager` made on first use.

Example::

    await ae2.enable_sessions(lambda offer: {"role": "sensor"})
    s1 = await ae1.establish("/id-cse2/Cae2")
    s2 = await ae2.next_session(timeout=30)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .session import OnRequest, Session, SessionCallback, TerminatedCallback, UpdateCallback
from .session_manager import DEFAULT_SUBSCRIPTION_RN, SessionManager

if TYPE_CHECKING:
    from .client import AEClient

__all__ = ["SessionsMixin"]


class SessionsMixin:
    """The session side of :class:`~ae_sdk.client.AEClient`."""

    _smg: SessionManager | None

    @property
    def session_manager(self: AEClient) -> SessionManager:
        """This AE's session state (made on first use)."""
        if self._smg is None:
            self._smg = SessionManager(self)
        return self._smg

    @property
    def sessions(self) -> dict[str, Session]:
        """The established sessions of this AE, by ``sid`` (terminated ones are removed)."""
        return self.session_manager.sessions

    async def enable_sessions(self, on_request: OnRequest | None = None, *, decision_timeout: float = 5.0,
                              confirm_timeout: float = 30.0, rn: str = DEFAULT_SUBSCRIPTION_RN) -> dict[str, Any]:
        """Hear this AE's session events and answer establishment requests.

        Starts the notification server if needed, creates (or replaces) the
        subscription ``rn`` under the AE's ``sessions`` collection (the AE
        must be registered with ``scp=["smg"]``) and returns it. From then on:

        * each establishment request is decided by ``on_request(offer)``
          (a :class:`~ae_sdk.session.SessionOffer`; plain function or
          coroutine) *before* the CSE gets its answer: ``True`` or a dict
          (the AE's endpoint attributes ``epa``) accepts, ``False`` rejects
          (the initiator gets 4103). Without ``on_request`` every request is
          accepted with an empty ``epa``. No decision within
          ``decision_timeout`` s (under the CSE's 10 s), an exception, or
          any other value (``None`` too) rejects;
        * an accepted session is announced to :meth:`on_session` callbacks
          and :meth:`next_session` once the CSE has stored it (within
          ``confirm_timeout`` s);
        * terminations (by the peer, expiry) mark the :class:`Session`
          terminated, remove it from :attr:`sessions` and run
          :meth:`on_terminated` callbacks.

        An initiating AE should enable sessions too, to hear when the peer
        ends a session (it may reject every request: ``lambda offer: False``).

        Example::

            await client.register("ae2", scp=["smg"])
            await client.enable_sessions(lambda offer: {"unit": "C"} if offer.initiator.startswith("/id-cse1/")
                                         else False)
            session = await client.next_session(timeout=60)
        """
        return await self.session_manager.enable(on_request, decision_timeout=decision_timeout,
                                                 confirm_timeout=confirm_timeout, rn=rn)

    async def establish(self, target_ae_id: str, *, epa: Mapping[str, Any] | None = None, sec: int = 1,
                        et: str | float | None = None) -> Session:
        """Establish a session with the AE ``target_ae_id`` (SP-relative,
        ``/id-cse2/Cae2``; a bare AE-ID is one at this CSE) and return it.

        ``epa`` are this AE's endpoint attributes (the target sees them in its
        offer), ``sec`` the security mode (1: MAC required, 0: none), ``et``
        the expiration (a oneM2M timestamp, or seconds from now). Raises
        :class:`M2MResponseError`: 4103 the target rejected, 5103 it could not
        be reached (offline, not subscribed to its session events, no answer
        in time), 4004 no such AE -- ``dbg`` says which.

        Example::

            s = await client.establish("/id-cse2/Cae2", epa={"role": "collector"}, et=3600)
            print(s.sid, s.peer_epa)
        """
        return await self.session_manager.establish(target_ae_id, epa=epa, sec=sec, et=et)

    def on_session(self, callback: SessionCallback) -> SessionCallback:
        """Call ``callback(session)`` for each accepted incoming session (also
        usable as a decorator). Needs :meth:`enable_sessions`."""
        self.session_manager._on_session.append(callback)
        return callback

    def on_terminated(self, callback: TerminatedCallback) -> TerminatedCallback:
        """Call ``callback(session, why)`` when one of this AE's sessions ends:
        told by the CSE (typ 3: ``why`` 1 deleted by the peer, 2 expired, 3
        peer lost) or ended by :meth:`Session.terminate` here (``why`` 1,
        ``session.terminated_here`` True)."""
        self.session_manager._on_terminated.append(callback)
        return callback

    def on_session_update(self, callback: UpdateCallback) -> UpdateCallback:
        """Call ``callback(session, sevt)`` for each session event typ 2 (a
        session-based request changed ``sevt["res"]``)."""
        self.session_manager._on_update.append(callback)
        return callback

    async def next_session(self, timeout: float = 10.0) -> Session:
        """The next accepted incoming session (oldest first); TimeoutError
        after ``timeout`` seconds."""
        return await self.session_manager.next_session(timeout)


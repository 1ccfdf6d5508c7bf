"""The session state of one AE (docs/sessions.md "Flow 1: establishment", "Flow 3: termination"):
:class:`SessionManager`, reached as ``client.session_manager``.

It answers establishment questions (session event typ 1) for
:meth:`AEClient.enable_sessions` -- deciding through ``on_request`` *before*
the notification is acknowledged, then announcing the accepted
:class:`~ae_sdk.session.Session` once the own CSE has stored it --,
establishes sessions for :meth:`AEClient.establish`, and routes the other
session events: typ 2 (a session-based request changed a resource of this
AE) to :meth:`Session.next_update` and ``on_session_update`` callbacks, typ 3
(termination) to :meth:`Session.wait_terminated` and ``on_terminated``.

Use it through the client; see :mod:`ae_sdk.session` for the example. It
works on any :class:`~ae_sdk.requester.SessionClient` (an
:class:`~ae_sdk.client.AEClient` holds one, made on first use) and never
imports the client.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from cse.core.messages import Operation, Response
from cse.core.timestamps import format_ts

from .content import unwrap, wrap
from .errors import M2MResponseError, SDKError, TransportError
from .notify_server import Answer
from .requester import SessionClient
from .session import (
    SESSION_TY,
    SESSIONS_RN,
    OnRequest,
    Session,
    SessionCallback,
    SessionOffer,
    TerminatedCallback,
    UpdateCallback,
    Why,
    call_callback,
    credentials,
    session_event,
)
from .session_crypto import SessionCryptoError

__all__ = ["DEFAULT_SUBSCRIPTION_RN", "SessionManager"]

log = logging.getLogger("ae_sdk.session")

REJECT_RSC = 4103
DEFAULT_SUBSCRIPTION_RN = "sdk-sessions"
# Session events reach every subscription under ``sessions`` whatever its
# ``enc``; asking only for updates of the collection itself (net 1, which
# never happens) keeps the generic child-created/-deleted notifications away.
_SUBSCRIPTION_NET = (1,)
_EARLY_TERMINATIONS = 256


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _epa(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class SessionManager:
    """The session state of one AE (``client.session_manager``).

    Use it through the client: :meth:`AEClient.enable_sessions`,
    :meth:`AEClient.establish`, :meth:`AEClient.on_session`,
    :meth:`AEClient.on_terminated`, :meth:`AEClient.on_session_update`,
    :meth:`AEClient.next_session`, ``client.sessions`` -- each documented
    there and delegating to the method of the same job here.
    """

    def __init__(self, client: SessionClient) -> None:
        self.client = client
        self.sessions: dict[str, Session] = {}
        self.on_request: OnRequest | None = None
        self.decision_timeout = 5.0
        self.confirm_timeout = 30.0
        self.subscription: dict[str, Any] | None = None
        self._pending: dict[str, Session] = {}
        self._confirming: dict[str, asyncio.Task[None]] = {}
        self._early: collections.OrderedDict[str, int | None] = collections.OrderedDict()
        self._incoming: asyncio.Queue[Session] = asyncio.Queue(maxsize=1000)
        self._on_session: list[SessionCallback] = []
        self._on_terminated: list[TerminatedCallback] = []
        self._on_update: list[UpdateCallback] = []

    @property
    def enabled(self) -> bool:
        """Whether :meth:`enable` subscribed this AE to its session events."""
        return self.subscription is not None

    async def sessions_path(self) -> str:
        """``<cse>/<ae-rn>/sessions`` of this client's AE."""
        ae = await self.client.require_ae()
        return f"{self.client.cse_name}/{ae['rn']}/{SESSIONS_RN}"

    # -- accepting --------------------------------------------------------------------
    async def enable(self, on_request: OnRequest | None = None, *, decision_timeout: float = 5.0,
                     confirm_timeout: float = 30.0, rn: str = DEFAULT_SUBSCRIPTION_RN) -> dict[str, Any]:
        """Subscribe to the AE's session events and answer establishment
        requests with ``on_request`` (:meth:`AEClient.enable_sessions`)."""
        if not 0 < decision_timeout < 10:
            raise ValueError("decision_timeout must be above 0 and well under the CSE's 10 s notification timeout")
        path = await self.sessions_path()
        self.on_request = on_request
        self.decision_timeout = decision_timeout
        self.confirm_timeout = confirm_timeout
        server = await self.client.start_notifications()
        # installed before the subscription exists: the first question may follow at once
        server.add_responder(self._respond, timeout=decision_timeout + 1.0)
        try:
            sub = await self.client.subscribe(path, self._on_event, net=_SUBSCRIPTION_NET, rn=rn, replace=True)
        except BaseException as exc:
            if self.subscription is None:  # not enabled before: leave nothing behind
                server.remove_responder(self._respond)
            if isinstance(exc, M2MResponseError) and exc.rsc == 4004:
                exc.add_note(f"{path} does not exist: was the AE registered with scp=['smg'] "
                             "at a CSE whose SMG is enabled?")
            raise
        self.subscription = sub
        return sub

    async def _respond(self, sgn: dict[str, Any]) -> Answer | None:
        sevt = session_event(sgn)
        if sevt is None or sevt.get("typ") != 1:
            return None
        sid, iep, tep = (_text(sevt.get(k)) for k in ("sid", "iep", "tep"))
        try:
            if not (sid and iep and tep):
                raise SessionCryptoError("sid, iep and tep must be non-empty strings")
            kid, key, alg = credentials(sevt.get("scr"))
        except SessionCryptoError as exc:
            log.warning("malformed session establishment rejected: %s", exc)
            return Answer(4000, dbg=f"malformed session establishment event: {exc}")
        known = self.sessions.get(sid) or self._pending.get(sid)
        if known is not None and not known.terminated:  # asked again: the same answer
            return Answer(2000, pc={"m2m:sep": {"epa": known.epa}})
        offer = SessionOffer(sid=sid, iep=iep, tep=tep, epa=_epa(sevt.get("epa")), kid=kid, alg=alg, sevt=sevt)
        accepted, detail = await self._decide(offer)
        if not accepted:
            log.info("session %s... from %s rejected: %s", sid[:10], iep, detail)
            return Answer(REJECT_RSC, dbg=f"AE {self.client.originator} rejected the session: {detail}")
        epa = detail if isinstance(detail, dict) else {}
        session = Session(self.client, sid=sid, kid=kid, key=key, alg=alg, iep=iep, tep=tep, role="target",
                          epa=epa, peer_epa=offer.epa, path=None,
                          sec=sevt["sec"] if isinstance(sevt.get("sec"), int) else 1, ended_here=self._ended_here)
        self._pending[sid] = session
        self._confirming[sid] = asyncio.get_running_loop().create_task(self._confirm(session))
        return Answer(2000, pc={"m2m:sep": {"epa": epa}})

    async def _decide(self, offer: SessionOffer) -> tuple[bool, dict[str, Any] | str]:
        """(accepted, epa) or (False, why)."""
        if self.on_request is None:
            return True, {}
        try:
            result = self.on_request(offer)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.decision_timeout)
        except TimeoutError:
            log.warning("on_request did not decide on session %s... within %g s: rejected",
                        offer.sid[:10], self.decision_timeout)
            return False, f"no decision within {self.decision_timeout:g} s"
        except Exception as exc:
            log.exception("on_request failed for session %s...: rejected", offer.sid[:10])
            return False, f"the AE's decision failed ({type(exc).__name__})"
        if isinstance(result, Mapping):
            epa = dict(result)
            try:
                json.dumps(epa)
            except (TypeError, ValueError):
                log.error("on_request returned endpoint attributes that are not JSON: rejected")
                return False, "the AE's endpoint attributes are not JSON"
            return True, epa
        if isinstance(result, bool):
            return (True, {}) if result else (False, "declined")
        if result is None:
            log.warning("on_request returned None for session %s...: rejected (return True, False or a dict)",
                        offer.sid[:10])
            return False, "no decision (None)"
        log.error("on_request returned %r (expected True, False or a dict): rejected", result)
        return False, "no valid decision"

    async def _confirm(self, session: Session) -> None:
        """Wait until the own CSE stores the accepted session, then announce it."""
        sid = session.sid
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        candidates = [f"{await self.sessions_path()}/ses{sid}", self.client.ri_path(f"ses{sid}")]
        delay = 0.01
        try:
            while not session.terminated:
                found = None
                for path in candidates:
                    resp = await self._fetch(path)
                    if resp is not None and unwrap(resp.pc).get("sid") == sid:
                        found = (path, unwrap(resp.pc))
                        break
                if found is not None and found[0] != candidates[0]:
                    # stored between the two probes? the structured path wins when it resolves
                    resp = await self._fetch(candidates[0])
                    if resp is not None and unwrap(resp.pc).get("sid") == sid:
                        found = (candidates[0], unwrap(resp.pc))
                if found is not None:
                    if session.terminated:
                        return
                    session.path, session.resource = found
                    await self._announce(session)
                    return
                if loop.time() > deadline:
                    log.warning("session %s... was accepted but %s did not store it within %g s: dropped",
                                sid[:10], self.client.cse_id, self.confirm_timeout)
                    self._pending.pop(sid, None)
                    session._mark_terminated(None, here=False)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)
        finally:
            self._confirming.pop(sid, None)

    async def _fetch(self, path: str) -> Response | None:
        """RETRIEVE without touching the client's ``last_response``; None if absent."""
        try:
            resp = await self.client.transport.send(self.client.build(Operation.RETRIEVE, path))
        except TransportError as exc:
            log.debug("retrieving %s failed: %s", path, exc)
            return None
        return resp if resp.rsc == 2000 else None

    async def _announce(self, session: Session) -> None:
        self._pending.pop(session.sid, None)
        self.sessions[session.sid] = session
        if self._incoming.full():
            self._incoming.get_nowait()
        self._incoming.put_nowait(session)
        log.info("session %s... with %s established (target)", session.sid[:10], session.peer)
        for callback in list(self._on_session):
            await call_callback(callback, session)

    # -- initiating --------------------------------------------------------------------
    async def establish(self, target_ae_id: str, *, epa: Mapping[str, Any] | None = None, sec: int = 1,
                        et: str | float | None = None) -> Session:
        """Establish a session with ``target_ae_id`` (:meth:`AEClient.establish`).
        An AE registered without ``scp=['smg']`` has no sessions collection:
        :class:`SDKError` saying so, before anything is sent."""
        path = await self.sessions_path()
        ae = await self.client.require_ae()
        if "smg" not in (ae.get("scp") or ()):
            raise SDKError(f"AE '{ae.get('rn')}' was registered without session capability, so it has no "
                           "sessions collection: register it with scp=['smg'] (client.register(..., "
                           "scp=['smg'])) to establish sessions")
        body: dict[str, Any] = {"tep": target_ae_id, "sec": sec}
        if epa is not None:
            body["epa"] = dict(epa)
        if et is not None:
            body["et"] = et if isinstance(et, str) else format_ts(time.time() + float(et))
        created = unwrap((await self.client.request(Operation.CREATE, path, ty=SESSION_TY,
                                                    pc=wrap(SESSION_TY, body))).pc)
        try:
            kid, key, alg = credentials(created.get("scr"))
        except SessionCryptoError as exc:
            raise SDKError(f"the CSE's answer to the session create is unusable: {exc}") from None
        seps = [s for s in created.get("m2m:sep") or () if isinstance(s, Mapping)]
        own = next((s for s in seps if s.get("rol") == 1), {})
        peer = next((s for s in seps if s.get("rol") == 2), {})
        sid = str(created["sid"])
        resource = {k: v for k, v in created.items() if k not in ("scr", "m2m:sep")}
        session = Session(self.client, sid=sid, kid=kid, key=key, alg=alg, iep=str(created.get("iep", "")),
                          tep=str(created.get("tep", target_ae_id)), role="initiator",
                          epa=_epa(own.get("epa", created.get("epa"))), peer_epa=_epa(peer.get("epa")),
                          path=f"{path}/{created.get('rn', 'ses' + sid)}", sec=int(created.get("sec", sec)),
                          resource=resource, ended_here=self._ended_here)
        if sid in self._early:  # the peer ended it before this answer was read
            session._mark_terminated(self._early.pop(sid), here=False)
            return session
        self.sessions[sid] = session
        log.info("session %s... with %s established (initiator)", sid[:10], session.peer)
        return session

    # -- events ------------------------------------------------------------------------
    async def _on_event(self, sgn: dict[str, Any]) -> None:
        sevt = session_event(sgn)
        if sevt is None:
            return  # a generic notification about the collection: not a session event
        typ, sid = sevt.get("typ"), sevt.get("sid")
        if not isinstance(sid, str):
            return
        if typ == 3:
            why = sevt.get("why")
            await self._ended(sid, why if isinstance(why, int) else None, here=False)
        elif typ == 2:
            session = self.sessions.get(sid)
            if session is None:
                return
            if session._updates.full():
                session._updates.get_nowait()
            session._updates.put_nowait(sevt)
            for callback in list(self._on_update):
                await call_callback(callback, session, sevt)

    async def _ended_here(self, session: Session) -> None:
        """:meth:`Session.terminate` deleted the session at the own CSE."""
        await self._ended(session.sid, int(Why.DELETED), here=True)

    async def _ended(self, sid: str, why: int | None, *, here: bool) -> None:
        session = self.sessions.pop(sid, None)
        announced = session is not None
        if session is None:
            session = self._pending.pop(sid, None)
            task = self._confirming.pop(sid, None)
            if task is not None:
                task.cancel()
        if session is None:
            if not here:
                self._early[sid] = why
                while len(self._early) > _EARLY_TERMINATIONS:
                    self._early.popitem(last=False)
            return
        if session.terminated:
            return
        session._mark_terminated(why, here)
        log.info("session %s... with %s terminated (why %s%s)", sid[:10], session.peer, why,
                 ", here" if here else "")
        if announced:
            for callback in list(self._on_terminated):
                await call_callback(callback, session, why)

    # -- consumers ----------------------------------------------------------------------
    def on_session(self, callback: SessionCallback) -> SessionCallback:
        """Call ``callback(session)`` for each accepted incoming session (:meth:`AEClient.on_session`)."""
        self._on_session.append(callback)
        return callback

    def on_terminated(self, callback: TerminatedCallback) -> TerminatedCallback:
        """Call ``callback(session, why)`` when a session ends (:meth:`AEClient.on_terminated`)."""
        self._on_terminated.append(callback)
        return callback

    def on_update(self, callback: UpdateCallback) -> UpdateCallback:
        """Call ``callback(session, sevt)`` for each session event typ 2 (:meth:`AEClient.on_session_update`)."""
        self._on_update.append(callback)
        return callback

    async def next_session(self, timeout: float = 10.0) -> Session:
        """The next accepted incoming session (:meth:`AEClient.next_session`)."""
        try:
            return await asyncio.wait_for(self._incoming.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no session was established with {self.client.originator} "
                               f"within {timeout:g} s") from None

    async def close(self) -> None:
        """Stop confirming pending sessions (the client is closing)."""
        tasks = list(self._confirming.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._confirming.clear()
        server = self.client.notifications
        if server is not None:
            server.remove_responder(self._respond)

"""M2M service sessions on the AE side (docs/sessions.md, "The call flows on the wire", flows 1-3).

An AE registered with ``scp=["smg"]`` can

* **accept** sessions: :meth:`AEClient.enable_sessions` subscribes to the AE's
  ``sessions`` collection and answers each establishment question (session
  event typ 1) *before* the notification is acknowledged: ``on_request``
  gets a :class:`SessionOffer` and accepts (``True``, or a dict = the AE's
  endpoint attributes ``epa``) or rejects (``False``; the initiator sees 4103);
* **initiate** sessions: :meth:`AEClient.establish` creates a session toward a
  target AE-ID and returns a :class:`Session` (or raises
  :class:`~ae_sdk.errors.M2MResponseError`: 4103 rejected, 5103 unreachable
  or not listening, 4004 unknown target AE);
* **use** them (flow 2): :meth:`Session.create`, :meth:`Session.retrieve`,
  :meth:`Session.update` and :meth:`Session.delete` send session-based
  requests, signed and with content encrypted end to end
  (:mod:`ae_sdk.session_requests`);
* **end** them: :meth:`Session.terminate` deletes the session at the own CSE;
  the other side is told (typ 3) and its :class:`Session` is marked
  terminated, removed from ``client.sessions``, and ``on_terminated`` runs.

Every :class:`Session` holds the session ID, the key (bytes) with its ``kid``,
both endpoints and their ``epa``, its resource path at the own CSE, and the
derived keys for session-based requests and end-to-end encryption
(:mod:`ae_sdk.session_crypto`). The per-AE state (incoming sessions, events)
is a :class:`~ae_sdk.session_manager.SessionManager`.

An accepted incoming session is announced (``on_session`` callbacks,
:meth:`AEClient.next_session`) only once the own CSE has stored it -- the CSE
stores it after the AE's answer -- so whatever the callback does with it
(add a policy, terminate it) finds it there.

Example::

    # target AE (AE2 at CSE2)
    async def decide(offer: SessionOffer) -> dict | bool:
        return {"role": "sensor"} if offer.initiator.endswith("/Cae1") else False

    await ae2.enable_sessions(decide)
    session = await ae2.next_session(timeout=30)

    # initiating AE (AE1 at CSE1)
    await ae1.enable_sessions()               # to hear terminations by the peer
    s = await ae1.establish("/id-cse2/Cae2", epa={"role": "collector"})
    await s.update("container1", {"lbl": ["seen"]}, ty=3)      # AE2's container1
    await s.create("container1", 4, {"con": "21.5"})            # con encrypted
    await s.add_policy(2, sch=["* * 0-5 * * * *"], rn="night")
    await s.terminate()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from cse.core.messages import Operation

from .content import unwrap, wrap
from .errors import M2MResponseError, SDKError
from .requester import Requester
from .session_crypto import SessionCryptoError, b64u_decode, decrypt, derive_keys, encrypt
from .session_requests import SessionRequests

__all__ = [
    "POLICIES_RN",
    "POLICY_TY",
    "SESSIONS_RN",
    "SESSION_TY",
    "OnRequest",
    "Session",
    "SessionCallback",
    "SessionOffer",
    "TerminatedCallback",
    "UpdateCallback",
    "Why",
]

log = logging.getLogger("ae_sdk.session")

SESSIONS_RN = "sessions"
POLICIES_RN = "sessionPolicies"
SESSION_TY = 9002
POLICY_TY = 9006


class Why(IntEnum):
    """Why a session ended (``why`` of a typ 3 session event)."""

    DELETED = 1
    EXPIRED = 2
    PEER_LOST = 3


Role = Literal["initiator", "target"]


@dataclass(frozen=True)
class SessionOffer:
    """An establishment question (session event typ 1) for ``on_request``.

    ``initiator`` is the initiating AE-ID (SP-relative, ``/id-cse1/Cae1``),
    ``epa`` its endpoint attributes, ``kid``/``alg`` the offered key's ID and
    algorithm; ``sevt`` is the whole event (the key included).
    """

    sid: str
    iep: str
    tep: str
    epa: dict[str, Any]
    kid: str
    alg: str
    sevt: dict[str, Any] = field(repr=False)

    @property
    def initiator(self) -> str:
        """The initiating AE-ID (``iep``)."""
        return self.iep


OnRequest = Callable[[SessionOffer], "bool | Mapping[str, Any] | Awaitable[bool | Mapping[str, Any] | None] | None"]
SessionCallback = Callable[["Session"], Awaitable[None] | None]
TerminatedCallback = Callable[["Session", "int | None"], Awaitable[None] | None]
UpdateCallback = Callable[["Session", dict[str, Any]], Awaitable[None] | None]
EndedHere = Callable[["Session"], Awaitable[None]]


def session_event(sgn: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``m2m:sevt`` inside a notification's ``nev.rep`` (None if it is not a session event)."""
    nev = sgn.get("nev")
    rep = nev.get("rep") if isinstance(nev, Mapping) else None
    sevt = rep.get("m2m:sevt") if isinstance(rep, Mapping) else None
    return sevt if isinstance(sevt, dict) else None


def credentials(scr: Any) -> tuple[str, bytes, str]:
    """(kid, key bytes, alg) of an ``scr``; SessionCryptoError when unusable."""
    if not isinstance(scr, Mapping):
        raise SessionCryptoError("the session credentials (scr) are missing")
    kid, key, alg = scr.get("kid"), scr.get("key"), scr.get("alg", "A256GCM")
    if not isinstance(kid, str) or not kid:
        raise SessionCryptoError("the session credentials have no key ID (scr.kid)")
    raw = b64u_decode(key, what="the session key (scr.key)") if isinstance(key, str) else None
    if raw is None or len(raw) != 32:
        raise SessionCryptoError("the session key (scr.key) must be 32 bytes, base64url without padding")
    return kid, raw, str(alg)


async def call_callback(callback: Callable[..., Any], *args: Any) -> None:
    """Run a user callback (function or coroutine); its exceptions are logged."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("session callback %r failed", callback)


class Session(SessionRequests):
    """One M2M service session as one endpoint AE sees it.

    Attributes: ``sid``; ``kid``, ``key`` (32 bytes) and ``alg`` of the
    session key; ``iep``/``tep`` (initiating/target AE-IDs, SP-relative);
    ``role`` (``"initiator"`` or ``"target"``); ``peer`` (the other AE-ID);
    ``epa`` (this AE's endpoint attributes) and ``peer_epa``; ``sec`` (1:
    requests need a MAC); ``path`` (the session resource at the own CSE:
    ``<cse>/<ae-rn>/sessions/ses<sid>``, or ``/<csi>/ses<sid>`` for the target
    of a session whose both endpoints share one CSE); ``resource`` (its
    attributes as last seen); ``terminated`` and ``why`` (a :class:`Why`
    value, None if unknown); ``peer_ae_path`` (where relative paths of
    session-based requests point: the peer AE, SP-relative; settable).

    ``client`` sends the session's requests (an
    :class:`~ae_sdk.client.AEClient`, or any :class:`~ae_sdk.requester.Requester`);
    ``ended_here`` is how the :class:`~ae_sdk.session_manager.SessionManager`
    that made the session learns that :meth:`terminate` ended it (without
    one, the session is just marked terminated).

    Example::

        s = await client.establish("/id-cse2/Cae2")
        token = s.encrypt("21.5")           # for a contentInstance's con
        await s.add_policy(1, rn="now")
        cnt = await s.retrieve("container1")  # session-based, signed
        await s.terminate()
    """

    def __init__(self, client: Requester, *, sid: str, kid: str, key: bytes, alg: str, iep: str, tep: str,
                 role: Role, epa: Mapping[str, Any] | None, peer_epa: Mapping[str, Any] | None,
                 path: str | None, sec: int = 1, resource: Mapping[str, Any] | None = None,
                 ended_here: EndedHere | None = None) -> None:
        self.client = client
        self._ended_here = ended_here
        self.sid = sid
        self.kid = kid
        self.key = key
        self.alg = alg
        self.iep = iep
        self.tep = tep
        self.role: Role = role
        self.epa: dict[str, Any] = dict(epa or {})
        self.peer_epa: dict[str, Any] = dict(peer_epa or {})
        self.path = path
        self.sec = sec
        self.resource: dict[str, Any] = dict(resource or {})
        self.terminated = False
        self.why: int | None = None
        self.terminated_here = False
        self._done = asyncio.Event()
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._keys: tuple[bytes, bytes] | None = None
        self._peer_ae_path: str | None = None

    def __repr__(self) -> str:
        state = f"terminated why={self.why}" if self.terminated else "established"
        return f"<Session {self.sid[:10]}... {self.role} peer={self.peer} {state}>"

    # -- identity -------------------------------------------------------------------------
    @property
    def peer(self) -> str:
        """The other endpoint's AE-ID (SP-relative)."""
        return self.tep if self.role == "initiator" else self.iep

    @property
    def own_epa(self) -> dict[str, Any]:
        """This AE's endpoint attributes (same as ``epa``)."""
        return self.epa

    @property
    def policies_path(self) -> str:
        """The session's ``sessionPolicies`` collection at the own CSE."""
        return f"{self._path()}/{POLICIES_RN}"

    def _path(self) -> str:
        if self.path is None:
            raise SDKError(f"session {self.sid[:10]}... is not stored at the CSE yet")
        return self.path

    # -- keys -----------------------------------------------------------------------------
    @property
    def k_mac(self) -> bytes:
        """HKDF-derived key for request MACs (``m2m-session-mac``)."""
        return self._derived()[0]

    @property
    def k_enc(self) -> bytes:
        """HKDF-derived key for end-to-end encryption (``m2m-session-enc``)."""
        return self._derived()[1]

    def _derived(self) -> tuple[bytes, bytes]:
        if self._keys is None:
            self._keys = derive_keys(self.key, self.sid)
        return self._keys

    def encrypt(self, plaintext: bytes | str) -> str:
        """``sess1.<kid>.<nonce>.<ct>`` of ``plaintext`` under this session's key."""
        return encrypt(self.k_enc, self.sid, self.kid, plaintext)

    def decrypt(self, token: str) -> bytes:
        """The plaintext of a value encrypted in this session; raises
        :class:`~ae_sdk.session_crypto.SessionCryptoError` if it was altered or
        belongs to another session or key."""
        return decrypt(self.k_enc, self.sid, token, kid=self.kid)

    def decrypt_text(self, token: str) -> str:
        """:meth:`decrypt` as UTF-8 text."""
        return self.decrypt(token).decode("utf-8")

    # -- life cycle -----------------------------------------------------------------------
    async def wait_terminated(self, timeout: float | None = None) -> int | None:
        """Wait until the session ends; returns ``why``. TimeoutError after
        ``timeout`` seconds (None: no limit)."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"session {self.sid[:10]}... still established after {timeout:g} s") from None
        return self.why

    async def terminate(self) -> str | None:
        """End the session: DELETE of its resource at the own CSE, which tells
        the other hops and the peer AE. Returns the CSE's ``dbg`` when some hop
        could not be reached (the session is ended here anyway), else None.
        Terminating a session the CSE no longer knows (4004) just marks it
        terminated; other errors raise :class:`M2MResponseError`."""
        if self.terminated:
            return None
        path = self._path()
        try:
            resp = await self.client.request(Operation.DELETE, path)
        except M2MResponseError as exc:
            if exc.rsc != 4004:
                raise
            resp = exc.response
        pc = resp.pc if isinstance(resp.pc, dict) else {}
        dbg = pc.get("m2m:dbg") if resp.ok else None
        if self._ended_here is not None:
            await self._ended_here(self)
        else:
            self._mark_terminated(int(Why.DELETED), here=True)
        return dbg if isinstance(dbg, str) else None

    def _mark_terminated(self, why: int | None, here: bool) -> None:
        """Record the end (by the session manager, which also tells the callbacks)."""
        self.terminated = True
        self.why = why
        self.terminated_here = here
        self._done.set()

    async def refresh(self) -> dict[str, Any]:
        """The session resource at the own CSE now (``sst``, ``hst``, ``rqn``...;
        never the credentials); also kept in ``resource``. Same as
        :meth:`retrieve` without a path."""
        self.resource = unwrap((await self.client.request(Operation.RETRIEVE, self._path())).pc)
        return self.resource

    async def next_update(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next session event typ 2 (a session-based request changed
        ``res``) for this session: the ``m2m:sevt`` object."""
        try:
            return await asyncio.wait_for(self._updates.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no update event for session {self.sid[:10]}... within {timeout:g} s") from None

    # -- policies -------------------------------------------------------------------------
    async def add_policy(self, spt: int, sch: str | Sequence[str] | None = None, rn: str | None = None,
                         **attrs: Any) -> dict[str, Any]:
        """Create a sessionPolicy (replicated by the CSEs to every hop before
        the answer). ``spt`` 1 immediate, 2 store-and-forward (needs ``sch``
        windows, oneM2M schedule strings); other attributes: ``hop``, ``aep``,
        ``ops``, ``mbd``, ``mbr``, ``lbl``, ``et``. Returns the policy.

        Example::

            await session.add_policy(2, sch="* * 0-5 * * * *", rn="night", hop="/id-cse1", mbr=100)
        """
        body: dict[str, Any] = {"spt": spt, **attrs}
        if sch is not None:
            body["sch"] = [sch] if isinstance(sch, str) else list(sch)
        if rn is not None:
            body["rn"] = rn
        resp = await self.client.request(Operation.CREATE, self.policies_path, ty=POLICY_TY,
                                         pc=wrap(POLICY_TY, body))
        return unwrap(resp.pc)

    async def update_policy(self, rn: str, **attrs: Any) -> dict[str, Any]:
        """Update the policy ``rn`` (None deletes an attribute) at every hop."""
        if "sch" in attrs and isinstance(attrs["sch"], str):
            attrs["sch"] = [attrs["sch"]]
        resp = await self.client.request(Operation.UPDATE, f"{self.policies_path}/{rn}", pc=wrap(POLICY_TY, attrs))
        return unwrap(resp.pc)

    async def delete_policy(self, rn: str) -> None:
        """Delete the policy ``rn`` at every hop."""
        await self.client.request(Operation.DELETE, f"{self.policies_path}/{rn}")

    async def policy(self, rn: str) -> dict[str, Any]:
        """The policy ``rn`` as the own CSE holds it."""
        return unwrap((await self.client.request(Operation.RETRIEVE, f"{self.policies_path}/{rn}")).pc)

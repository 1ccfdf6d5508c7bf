"""Session establishment and termination (call flows 1 and 3; docs/sessions.md).

Three roles, one per CSE on the path:

* **initiator's CSE** -- the endpoint AE POSTs ``m2m:sess`` with ``tep``
  to its own ``sessions``. The SMG allocates ``sid`` and ``scr`` (secrets
  module), then either asks a local target AE directly or sends the create,
  as itself, to the next hop toward the target's CSE. Only when the answer
  is 2001 does it store the session, both sessionEndpoints, the nextHop and
  the sessionPolicies collection, and answer the AE with sid and scr.
* **transit CSE** -- a session create from a peer SMG for an AE elsewhere:
  it stores the session (state establishing) under its CSEBase
  ``sessions``, sends the create on as itself, and on success completes it
  with two nextHops; on failure it removes what it stored.
* **target's CSE** -- a session create from a peer SMG for one of its AEs:
  it asks the AE (establishment notification) and, on accept, stores the
  session with the AE's endpoint attributes and answers with the endpoints.

Failures leave nothing behind on any hop and reach the initiator as 4103
(rejected), 5103 (target unreachable) or 4004 (unknown target AE).

Termination: deleting a session (endpoint AE, admin, peer SMG, expiry)
first sends a DELETE of ``/<hop>/ses<sid>`` to every nextHop except the one
it came from, tells the local endpoint AE (typ 3) unless it asked for it,
and then removes the subtree. Unreachable hops are named in the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    RSC,
    BadRequest,
    Conflict,
    M2MError,
    NotFound,
    OriginatorHasNoPrivilege,
    RequestTimeout,
    TargetNotReachable,
)
from cse.core.ids import Target
from cse.core.keyring import Keyring
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome
from cse.core.ports import Delete, Doc, Op, Put
from cse.core.timestamps import format_ts, parse_abs_rel

from ..forwarding import Forwarder
from ..hooks import TypeHooks
from ..result import public
from .events import SessionEvents
from .model import (
    ENDPOINT_TY,
    NEXT_HOP_TY,
    SESSION_TY,
    SESSIONS_RN,
    Role,
    State,
    Why,
    endpoint_doc,
    new_credentials,
    new_sid,
    next_hop_doc,
    policies_doc,
    session_ri,
    sp_ae_id,
    split_ae_id,
)

__all__ = ["SessionManager"]

log = logging.getLogger("cse.smg")

_PEER_ONLY = ("sid", "scr", "iep")
_RETURN_SHARE = 0.1  # of the establishment timeout, kept for the answer to travel back


def is_cse_id(originator: str | None) -> bool:
    """``/id-cse1`` (a CSE), not ``/id-cse1/Cae1`` (an AE of it)."""
    if not originator:
        return False
    return originator.startswith("/") and len(originator) > 1 and "/" not in originator[1:]


Forgetting = Callable[[str], Awaitable[Outcome]]


class SessionManager:
    """Establishment, transit and termination of sessions at this CSE."""

    def __init__(self, ctx: Context, forwarder: Forwarder, events: SessionEvents, forgetting: Forgetting, *,
                 keyring: Keyring, establish_timeout: float = 25.0) -> None:
        """``forgetting(sid)`` is the outcome that drops what a terminated
        session leaves at this CSE (stored requests, remembered answers);
        ``keyring`` wraps session keys before they are stored and unwraps
        them where they are sent (docs/security.md "Keys at rest")."""
        self.ctx = ctx
        self.keyring = keyring
        self.forwarder = forwarder
        self.events = events
        self.forgetting = forgetting
        self.establish_timeout = establish_timeout

    def hooks(self) -> TypeHooks:
        """Hooks of the session type."""
        return TypeHooks(identify=self._identify, on_create=self._on_create, verify=self._establish,
                         pre_delete=self._terminate, view_created=self._view_created)

    # -- creation ------------------------------------------------------------------
    async def _identify(self, ctx: Context, req: Request, attrs: dict[str, Any]) -> tuple[str, str | None]:
        if is_cse_id(req.fr):
            sid = attrs.get("sid")
            if not sid or "scr" not in attrs or "iep" not in attrs:
                raise BadRequest("a session create from a peer SMG must carry sid, scr and iep")
        else:
            present = [a for a in _PEER_ONLY if a in attrs]
            if present:
                raise BadRequest(f"attribute '{present[0]}' is set by the SMG, not by an AE")
            sid = new_sid()
        if await ctx.store.get(session_ri(sid)) is not None:
            raise Conflict(f"a session with sid {sid} already exists here")
        return session_ri(sid), None

    async def _on_create(self, ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
        ae = await ctx.store.get(parent["pi"])
        if ae is None or ae["ty"] != 2:
            raise BadRequest("sessions are created under an AE's sessions collection")
        csi = ctx.identity.csi
        try:
            tep_csi, tep_stem = split_ae_id(doc["tep"], csi)
        except ValueError as exc:
            raise BadRequest(f"tep: {exc}") from None
        if is_cse_id(req.fr):  # a peer SMG brings the session to its target
            if tep_csi != csi or tep_stem != ae["ri"]:
                raise BadRequest(f"tep {doc['tep']} is not the AE {ae['ri']} this sessions collection belongs to")
            doc["_scr"] = self.keyring.wrap(doc["sid"], doc.pop("scr"))
            doc["_own"] = ae["ri"]
        else:
            if req.fr != ae["ri"]:
                raise OriginatorHasNoPrivilege(
                    f"only the AE {ae['ri']} can establish sessions from its sessions collection")
            doc["sid"] = doc["ri"][3:]
            doc["iep"] = sp_ae_id(ae["ri"], csi)
            if doc["tep"] == doc["iep"] or (tep_csi == csi and tep_stem == ae["ri"]):
                raise BadRequest("an AE cannot establish a session with itself")
            doc["tep"] = f"{tep_csi}/{tep_stem}"
            doc["_scr"] = self.keyring.wrap(doc["sid"], new_credentials())
            doc["_own"] = ae["ri"]
        doc.setdefault("sec", 1)
        doc.setdefault("epa", {})
        doc["sst"] = State.ESTABLISHING
        doc["hst"] = []
        doc["rqn"] = 0
        return []

    def credentials(self, doc: Doc) -> dict[str, Any]:
        """The session's ``scr`` in plain, for the peers it is sent to (stored wrapped)."""
        return self.keyring.unwrap(doc["sid"], doc["_scr"])

    def _wire_fields(self, doc: Doc) -> dict[str, Any]:
        """What one SMG sends the next about a session being established."""
        out = {"sid": doc["sid"], "scr": self.credentials(doc), "iep": doc["iep"], "tep": doc["tep"],
               "sec": doc["sec"], "epa": doc.get("epa", {})}
        if "et" in doc:
            out["et"] = doc["et"]
        return out

    async def _establish(self, ctx: Context, req: Request, doc: Doc) -> list[Op]:
        """The round trip that must succeed before the session is stored."""
        csi = ctx.identity.csi
        now = ctx.now_ts()
        iep_csi, iep_stem = split_ae_id(doc["iep"], csi)
        tep_csi, tep_stem = split_ae_id(doc["tep"], csi)
        ops: list[Op] = []
        if is_cse_id(req.fr):  # target's CSE: ask the AE, within the initiator's deadline
            deadline = self._deadline(req)
            epa_t = await self.events.ask_establishment(tep_stem, {
                "sid": doc["sid"], "iep": doc["iep"], "tep": doc["tep"], "scr": self.credentials(doc),
                "epa": doc.get("epa", {})}, timeout=None if deadline is None else deadline - ctx.clock.now())
            if deadline is not None and ctx.clock.now() >= deadline:
                raise RequestTimeout("the target AE answered after the initiator's deadline (X-M2M-RET)")
            hop = await self.forwarder.next_hop(req.fr or "", None)
            ops.append(Put(next_hop_doc(doc, now, csi=req.fr or "", poa=list(hop.get("poa") or []),
                                        aei=doc["iep"])))
        elif tep_csi == csi:  # both endpoints here: no hop
            target_ae = await ctx.store.get(tep_stem)
            if target_ae is None or target_ae["ty"] != 2:
                raise NotFound(f"target AE {doc['tep']} does not exist")
            if "smg" not in (target_ae.get("scp") or ()):
                raise TargetNotReachable(f"target AE {doc['tep']} does not support sessions (no smg in scp)")
            epa_t = await self.events.ask_establishment(tep_stem, {
                "sid": doc["sid"], "iep": doc["iep"], "tep": doc["tep"], "scr": self.credentials(doc),
                "epa": doc.get("epa", {})})
        else:  # initiator's CSE, target elsewhere: one hop toward it
            resp = await self._send_on(doc, tep_csi, tep_stem)
            epa_t = _target_epa(resp)
            hop = await self.forwarder.next_hop(tep_csi, None)
            ops.append(Put(next_hop_doc(doc, now, csi=hop["csi"], poa=list(hop.get("poa") or []),
                                        aei=doc["tep"])))
        doc["sst"] = State.ESTABLISHED
        log.info("session %s established: %s <-> %s", doc["sid"][:8], doc["iep"], doc["tep"])
        ops.append(Put(endpoint_doc(doc, now, aei=doc["iep"], csi=iep_csi, rol=Role.INITIATOR,
                                    epa=doc.get("epa", {}))))
        ops.append(Put(endpoint_doc(doc, now, aei=doc["tep"], csi=tep_csi, rol=Role.TARGET, epa=epa_t)))
        ops.append(Put(policies_doc(doc, now)))
        return ops

    def _deadline(self, req: Request) -> float | None:
        """The initiator's deadline (``X-M2M-RET``; it already keeps time for the way back)."""
        if req.rqet is None:
            return None
        try:
            return parse_abs_rel(req.rqet, self.ctx.clock.now())
        except ValueError:
            raise BadRequest(f"X-M2M-RET '{req.rqet[:40]}' is not a oneM2M time") from None

    async def _send_on(self, doc: Doc, tep_csi: str, tep_stem: str) -> Response:
        """Send the session create, as this CSE, one hop toward ``tep_csi``.

        It carries a deadline (``X-M2M-RET``) a little before this CSE gives
        up, so no hop completes a session the initiator was told failed; if
        this CSE still gives up, it withdraws the session toward the target.
        """
        now = self.ctx.clock.now()
        out = Request(op=Operation.CREATE, to=f"{tep_csi}/{tep_stem}/{SESSIONS_RN}", fr=self.ctx.identity.csi,
                      rqi=f"est-{doc['sid'][:16]}", ty=SESSION_TY, ot=format_ts(now),
                      rqet=format_ts(now + self.establish_timeout * (1 - _RETURN_SHARE)),
                      pc={"m2m:sess": self._wire_fields(doc)})
        target = Target(False, tep_csi, (tep_stem, SESSIONS_RN), False)
        try:
            resp = await self.forwarder.forward(out, target, timeout=self.establish_timeout)
        except M2MError as exc:
            if isinstance(exc, RequestTimeout):
                await self._withdraw(doc, tep_csi)
            raise type(exc)(f"session establishment toward {tep_csi} failed: {exc.message}") from None
        if resp.rsc != 2001:
            dbg = resp.pc.get("m2m:dbg", "") if isinstance(resp.pc, dict) else ""
            raise _error_for(resp.rsc, f"session establishment failed beyond {self.ctx.identity.csi}: {dbg}")
        return resp

    async def _withdraw(self, doc: Doc, tep_csi: str) -> None:
        """Best effort: remove a session the far side may have completed late."""
        req = Request(op=Operation.DELETE, to=f"{tep_csi}/{doc['ri']}", fr=self.ctx.identity.csi,
                      rqi=f"wdr-{doc['sid'][:16]}", ot=self.ctx.now_ts())
        try:
            await self.forwarder.forward(req, Target(False, tep_csi, (doc["ri"],), False), timeout=5.0)
        except M2MError as exc:
            log.info("could not withdraw session %s from %s: %s", doc["sid"][:8], tep_csi, exc.message)

    def _view_created(self, doc: Doc, ops: list[Op]) -> dict[str, Any]:
        """The create's answer: the session with its credentials (shown once,
        to the initiator or the previous SMG) and its endpoints inline."""
        view = public(doc)
        view["scr"] = self.credentials(doc)
        view["m2m:sep"] = [public(op.doc) for op in ops if isinstance(op, Put) and op.doc["ty"] == ENDPOINT_TY]
        return view

    # -- transit ---------------------------------------------------------------------
    def intercepts(self, req: Request) -> bool:
        """A session create from a peer SMG passing through this CSE."""
        return req.op == Operation.CREATE and req.ty == SESSION_TY and is_cse_id(req.fr)

    async def transit(self, req: Request, target: Target) -> Response:
        """Keep the session here (CSEBase sessions) and send it on."""
        ctx = self.ctx
        attrs = (req.pc or {}).get("m2m:sess") if isinstance(req.pc, dict) else None
        if not isinstance(attrs, dict) or not all(k in attrs for k in ("sid", "scr", "iep", "tep")):
            raise BadRequest("a session create from a peer SMG must carry sid, scr, iep and tep")
        if not isinstance(attrs["sid"], str) or not isinstance(attrs["scr"], dict) \
                or not isinstance(attrs["scr"].get("key"), str):
            raise BadRequest("a session create needs sid as a string and scr as {kid, key, alg}")
        sid = attrs["sid"]
        if await ctx.store.get(session_ri(sid)) is not None:
            raise Conflict(f"a session with sid {sid} already passes through {ctx.identity.csi}")
        sessions = await ctx.store.child_by_name(ctx.identity.cb_ri, SESSIONS_RN)
        if sessions is None:
            raise NotFound("this CSE has no sessions collection for transit sessions")
        prev = await self.forwarder.next_hop(req.fr or "", None)
        nxt = await self.forwarder.next_hop(target.csi, req.fr)
        now = ctx.now_ts()
        ri = session_ri(sid)
        doc: Doc = {"ty": SESSION_TY, "ri": ri, "rn": ri, "pi": sessions["ri"], "ct": now, "lt": now,
                    "sid": sid, "iep": attrs["iep"], "tep": attrs["tep"], "sec": attrs.get("sec", 1),
                    "epa": attrs.get("epa", {}), "sst": State.ESTABLISHING, "hst": [], "rqn": 0,
                    "_scr": self.keyring.wrap(sid, attrs["scr"]), "_srn": f"{sessions['_srn']}/{ri}"}
        if "et" in attrs:
            doc["et"] = attrs["et"]
        # kept (establishing) while the create travels on, so a second one with the sid is refused
        await ctx.apply(Outcome(ops=[Put(doc)]))
        try:
            resp = await self.forwarder.forward(replace(req, fr=ctx.identity.csi), target,
                                                timeout=self.establish_timeout)
        except M2MError:
            await ctx.apply(Outcome(ops=[Delete(ri)]))
            raise
        if resp.rsc != 2001:
            await ctx.apply(Outcome(ops=[Delete(ri)]))
            return resp
        done = {**doc, "sst": State.ESTABLISHED}
        ops: list[Op] = [Put(done),
                         Put(next_hop_doc(done, now, csi=prev["csi"], poa=list(prev.get("poa") or []),
                                          aei=attrs["iep"])),
                         Put(next_hop_doc(done, now, csi=nxt["csi"], poa=list(nxt.get("poa") or []),
                                          aei=attrs["tep"])),
                         Put(policies_doc(done, now))]
        for sep in _seps(resp):
            ops.append(Put(endpoint_doc(done, now, aei=sep.get("aei", ""), csi=sep.get("csi", ""),
                                        rol=sep.get("rol", 1), epa=sep.get("epa") or {})))
        await ctx.apply(Outcome(ops=ops))
        log.info("transit session %s: %s <-> %s", sid[:8], prev["csi"], nxt["csi"])
        return resp

    # -- termination -------------------------------------------------------------------
    async def _terminate(self, ctx: Context, doc: Doc, originator: str | None) -> tuple[str | None, Outcome]:
        """Carry the termination to the other hops; return what could not be
        reached (for the answer's dbg) and the outcome to apply with the
        deletion (the local endpoint AE told, typ 3, unless it asked for it;
        what the session leaves here dropped)."""
        if doc["ty"] != SESSION_TY:
            return None, Outcome()
        csi = ctx.identity.csi
        came_from = originator if is_cse_id(originator) else None
        # Every copy has the same et: a peer's termination at (or after) it is an expiry too.
        expired = doc.get("et") is not None and doc["et"] <= format_ts(ctx.clock.now() + 1.0)
        why = Why.EXPIRED if originator is None or (came_from and expired) else Why.DELETED
        # terminating from now on: the gate refuses its requests during the round trips
        await ctx.apply(Outcome(ops=[Put({**doc, "sst": State.TERMINATING})]))
        unreachable: list[str] = []
        for hop in await ctx.store.children(doc["ri"], NEXT_HOP_TY):
            if hop["csi"] == came_from:
                continue
            req = Request(op=Operation.DELETE, to=f"{hop['csi']}/{doc['ri']}", fr=csi,
                          rqi=f"term-{doc['sid'][:16]}", ot=ctx.now_ts())
            try:
                resp = await self.forwarder.forward(req, Target(False, hop["csi"], (doc["ri"],), False),
                                                    timeout=self.establish_timeout)
                if resp.rsc not in (2002, 4004):
                    unreachable.append(f"{hop['csi']} answered {resp.rsc}")
            except M2MError as exc:
                unreachable.append(f"{hop['csi']}: {exc.message}")
        outcome = await self.forgetting(doc["sid"])
        for sep in await ctx.store.children(doc["ri"], ENDPOINT_TY):
            sep_csi, stem = split_ae_id(sep["aei"], csi)
            if sep_csi == csi and originator != stem and originator != sep["aei"]:
                outcome = outcome.adding(sends=await self.events.notices(
                    stem, 3, {"sid": doc["sid"], "iep": doc["iep"], "tep": doc["tep"], "why": why}))
        log.info("session %s terminated (why %d) by %s", doc["sid"][:8], why, originator or "expiry")
        if unreachable:
            log.warning("session %s terminated; unreachable hops: %s", doc["sid"][:8], unreachable)
            return "session terminated here; not reached: " + "; ".join(unreachable), outcome
        return None, outcome


def _seps(resp: Response) -> list[dict[str, Any]]:
    sess = resp.pc.get("m2m:sess") if isinstance(resp.pc, dict) else None
    seps = sess.get("m2m:sep") if isinstance(sess, dict) else None
    return [s for s in seps if isinstance(s, dict)] if isinstance(seps, list) else []


def _target_epa(resp: Response) -> dict[str, Any]:
    for sep in _seps(resp):
        if sep.get("rol") == Role.TARGET and isinstance(sep.get("epa"), dict):
            return dict(sep["epa"])
    return {}


def _error_for(rsc: int, message: str) -> M2MError:
    """The M2MError subclass for a relayed ``rsc`` (5103 for unknown codes)."""
    for cls in M2MError.__subclasses__():
        if int(cls.rsc) == rsc:
            return cls(message)
    err = M2MError(message)
    err.rsc = RSC(rsc) if rsc in RSC._value2member_map_ else RSC.TARGET_NOT_REACHABLE
    return err

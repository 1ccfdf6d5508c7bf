"""Session-based requests at every CSE they pass (seed call flow 2; SESSIONS.md
"Marking a request as session-based").

A request carrying a session ID (``X-M2M-SID`` or ``?sessionID=``) comes here
before normal processing:

1. the session must exist here and be established (else 4004);
2. the originator must be one of its endpoints (SP-relative AE-IDs) or a
   neighbour SMG, and the target must be on a CSE hosting an endpoint; where
   the target is hosted, it must be at or below an endpoint AE (4103), and a
   session never deletes an AE or its ``sessions`` collection;
3. with ``sec`` 1 the MAC must verify and ``X-M2M-OT`` be fresh (4103);
   a request ID seen before in this session gets the first answer again,
   without a second execution (durably remembered, which also makes
   store-and-forward redelivery after a crash exactly-once);
4. served here (with the session's authority, whatever the ACPs say) when
   the target is local, else sent on now (immediate, the default) or stored
   for the next window (store-and-forward policy for this hop, endpoint and
   operation; :mod:`.queue`);
5. the exchange is recorded in the session context (``hst``, ``rqn``) once
   its answer is known, and a change to an endpoint AE's resources made by
   the other endpoint is told to that AE (typ 2).

Freshness: the CSE that receives the request from its AE checks
``X-M2M-OT`` against the freshness window; hops after it (which may receive
a stored request hours later) check that it is not from the future and not
older than the session, and rely on the request-ID memory for replays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cse.core.context import Context
from cse.core.dispatcher import Resolved
from cse.core.effects import EFFECT_TAG, EffectTag
from cse.core.errors import BadRequest, NotFound, OriginatorHasNoPrivilege
from cse.core.ids import Target
from cse.core.messages import Operation, Request, Response
from cse.core.ports import Doc, KvDelete, KvPut, Op, Put
from cse.core.session_crypto import canonical, derive_keys, sp_relative_target, unb64u, verify
from cse.core.timestamps import parse_ts

from .. import access
from ..result import address, wrap
from .events import SessionEvents
from .model import NEXT_HOP_TY, POLICIES_RN, POLICY_TY, SESSIONS_TY, State, session_ri, sp_ae_id, split_ae_id
from .sessions import is_cse_id

__all__ = ["SessionGate", "replay_ns"]

log = logging.getLogger("cse.smg")

_OP_BIT = {Operation.CREATE: 1, Operation.RETRIEVE: 2, Operation.UPDATE: 4, Operation.DELETE: 8}
_CHANGES = (Operation.CREATE, Operation.UPDATE, Operation.DELETE)
_DONE_RSC = {Operation.CREATE: 2001, Operation.UPDATE: 2004, Operation.DELETE: 2002}
REPLAY_KEEP = 4096

Resolve = Callable[[Target, Operation], Awaitable[Resolved]]
Serve = Callable[[Request, Resolved], Awaitable[Response]]
Forward = Callable[[Request, Target], Awaitable[Response]]


def replay_ns(sid: str) -> str:
    """KV namespace of a session's remembered answers."""
    return f"smg-rsp:{sid}"


class SessionGate:
    """Checks, routes and records session-based requests (module docstring)."""

    def __init__(self, ctx: Context, events: SessionEvents, *, freshness_s: float = 300.0,
                 history: int = 50) -> None:
        self.ctx = ctx
        self.events = events
        self.freshness = freshness_s
        self.history = history
        self.resolve: Resolve | None = None
        self.serve: Serve | None = None
        self.forward: Forward | None = None
        self.queue: Any = None        # StoreAndForward
        self.nonblocking: Any = None  # NonBlockingCSF
        self._keys: dict[str, bytes] = {}

    # -- entry ----------------------------------------------------------------------
    async def handle(self, req: Request, target: Target) -> Response:
        ctx = self.ctx
        sid = req.sid or ""
        session = await ctx.store.get(session_ri(sid)) if sid else None
        if session is None or session.get("sid") != sid:
            raise NotFound(f"session '{sid[:64]}' does not exist at {ctx.identity.csi}")
        if session.get("sst") != State.ESTABLISHED:
            raise NotFound(f"session '{sid[:64]}' is not established at {ctx.identity.csi}")
        if req.op not in _OP_BIT:
            raise BadRequest("only CREATE, RETRIEVE, UPDATE and DELETE can be session-based")
        me = await self._check_originator(req, session)
        endpoint = self._targeted_endpoint(target, session)
        if session.get("sec", 1) == 1:
            self._check_mac(req, session, me)
        cached = await ctx.store.kv_get(replay_ns(sid), req.rqi)
        if cached is not None:
            if cached.get("done"):  # executed, then the CSE died before remembering the answer
                return await self._answer_executed(req, session, cached)
            return Response(rsc=cached["rsc"], rqi=req.rqi, pc=cached.get("pc"), location=cached.get("loc"),
                            rvi=req.rvi)
        if target.local:
            # "this rqi was executed" goes into the very commit of the effect (cse.core.effects),
            # so no crash can keep the effect and lose the memory that stops a second execution
            token = EFFECT_TAG.set(EffectTag(lambda ops: [KvPut(replay_ns(sid), req.rqi, _executed(req, ops))]))
            try:
                resp = await self._serve_local(req, target, session, endpoint)
            finally:
                EFFECT_TAG.reset(token)
            # the context entry and the remembered answer in one durable commit
            await self.record(session["ri"], req, resp, ctx.identity.csi,
                              also=await self._remember_ops(sid, req.rqi, resp, session))
            return resp
        hop = await self._hop_toward(session, endpoint)
        policy = await self.policy(session, req.op, endpoint)
        if policy is not None and policy.get("spt") == 2:
            resp = await self.queue.store(req, session, hop, policy, target)
        elif req.rt in (1, 2):
            async def execute(r: Request) -> Response:
                out = await self._send_on(r, target)
                await self.record(session["ri"], r, out, hop)
                return out
            resp = await self.nonblocking.accept(req, execute)
        else:
            resp = await self._send_on(req, target)
            await self.record(session["ri"], req, resp, hop,
                              also=await self._remember_ops(sid, req.rqi, resp, session))
            return resp
        # accepted (1001/1002): the answer is remembered now, the exchange recorded when it completes
        await self.ctx.store.commit(await self._remember_ops(sid, req.rqi, resp, session))
        return resp

    # -- checks -----------------------------------------------------------------------
    async def _check_originator(self, req: Request, session: Doc) -> str:
        fr = req.fr or ""
        me = sp_ae_id(fr, self.ctx.identity.csi)
        if me in (session.get("iep"), session.get("tep")):
            return me
        if is_cse_id(fr) and any(h["csi"] == fr for h in await self.ctx.store.children(session["ri"], NEXT_HOP_TY)):
            return me  # a neighbour SMG relaying
        raise OriginatorHasNoPrivilege(f"originator '{fr[:80]}' is not an endpoint of session {session['sid'][:16]}")

    def _targeted_endpoint(self, target: Target, session: Doc) -> str:
        """Which endpoint's CSE the target is on (4103 when neither)."""
        for ep in (session["tep"], session["iep"]):
            csi, _ = split_ae_id(ep, self.ctx.identity.csi)
            if csi == target.csi:
                return str(ep)
        raise OriginatorHasNoPrivilege(
            f"target is on {target.csi}, which hosts no endpoint of session {session['sid'][:16]}: "
            "not a valid session target")

    def _check_mac(self, req: Request, session: Doc, me: str) -> None:
        if not req.smac or not req.ot:
            raise OriginatorHasNoPrivilege("this session requires X-M2M-SMAC and X-M2M-OT (sec 1)")
        try:
            ot = parse_ts(req.ot)
        except ValueError:
            raise OriginatorHasNoPrivilege(f"X-M2M-OT '{req.ot[:40]}' is not a oneM2M timestamp") from None
        now = self.ctx.clock.now()
        ingress = not (req.fr or "").startswith("/") or (req.fr or "").startswith(self.ctx.identity.csi + "/")
        if ot > now + self.freshness:
            raise OriginatorHasNoPrivilege(f"X-M2M-OT {req.ot} is in the future (stale or forged request)")
        if ingress and now - ot > self.freshness:
            raise OriginatorHasNoPrivilege(
                f"X-M2M-OT {req.ot} is older than the freshness window of {self.freshness:g} s")
        if not ingress and ot < parse_ts(session["ct"]) - self.freshness:
            raise OriginatorHasNoPrivilege(f"X-M2M-OT {req.ot} is older than the session")
        k_mac = self._mac_key(session)
        data = canonical(req.op.name, sp_relative_target(req.to, self.ctx.identity.csi), session["sid"],
                         req.rqi, req.ot, req.body)
        if not verify(k_mac, data, req.smac):
            raise OriginatorHasNoPrivilege("X-M2M-SMAC does not verify: bad MAC for this session and request")

    def _mac_key(self, session: Doc) -> bytes:
        sid = session["sid"]
        key = self._keys.get(sid)
        if key is None:
            if len(self._keys) > 4096:
                self._keys.clear()
            key = self._keys[sid] = derive_keys(unb64u(session["_scr"]["key"]), sid)[0]
        return key

    def forget(self, sid: str) -> None:
        """Drop cached key material of a terminated session."""
        self._keys.pop(sid, None)

    # -- routing --------------------------------------------------------------------------
    async def _hop_toward(self, session: Doc, endpoint: str) -> str:
        for hop in await self.ctx.store.children(session["ri"], NEXT_HOP_TY):
            if hop.get("aei") == endpoint:
                return str(hop["csi"])
        raise NotFound(f"session {session['sid'][:16]} has no next hop toward {endpoint}")

    async def policy(self, session: Doc, op: Operation, endpoint: str) -> Doc | None:
        """The policy that applies at this hop to ``op`` toward ``endpoint``."""
        spc = await self.ctx.store.child_by_name(session["ri"], POLICIES_RN)
        if spc is None:
            return None
        csi = self.ctx.identity.csi
        for p in await self.ctx.store.children(spc["ri"], POLICY_TY):
            if p.get("hop") and p["hop"] != csi:
                continue
            if p.get("aep") and p["aep"] != endpoint:
                continue
            if p.get("ops") and not (p["ops"] & _OP_BIT[op]):
                continue
            return p
        return None

    async def _send_on(self, req: Request, target: Target) -> Response:
        assert self.forward is not None
        return await self.forward(req, target)

    async def _serve_local(self, req: Request, target: Target, session: Doc, endpoint: str) -> Response:
        assert self.resolve is not None and self.serve is not None
        resolved = await self.resolve(target, req.op)
        doc = resolved.doc
        assert doc is not None
        ae, via_sessions = await _ae_of(self.ctx, doc)
        _, stem = split_ae_id(endpoint, self.ctx.identity.csi)
        if ae is None or ae["ri"] != stem:
            raise OriginatorHasNoPrivilege(
                f"'{doc.get('_srn', doc['ri'])}' is not at or below endpoint AE {endpoint}: not a valid session target")
        if via_sessions:
            # Another session's keys and subscriptions live there: a session
            # never reaches into an AE's sessions collection.
            raise OriginatorHasNoPrivilege("an AE's sessions collection is not reachable through a session")
        if req.op == Operation.DELETE and doc["ty"] == 2:
            raise OriginatorHasNoPrivilege("a session cannot delete an endpoint AE or its sessions collection")
        token = access.SESSION_GRANT.set(frozenset({ae["ri"]}))
        try:
            resp = await self.serve(req, resolved)
        finally:
            access.SESSION_GRANT.reset(token)
        if resp.rsc < 4000 and req.op in _CHANGES and sp_ae_id(req.fr or "", self.ctx.identity.csi) != endpoint:
            changed = f"{self.ctx.identity.csi}/{resp.location or doc['_srn']}"
            await self.events.tell(ae["ri"], 2, {"sid": session["sid"], "iep": session["iep"],
                                                 "tep": session["tep"], "res": changed, "op": int(req.op),
                                                 "rqi": req.rqi})
        return resp

    async def _answer_executed(self, req: Request, session: Doc, done: dict[str, Any]) -> Response:
        """Answer a redelivered request whose effect is durable but whose
        answer was never remembered (crash in between): rebuilt from the
        resource it created or updated, then remembered and recorded."""
        doc = await self.ctx.store.get(done["ri"]) if done.get("ri") else None
        shown = doc if req.op != Operation.DELETE else None
        resp = Response(rsc=done["rsc"], rqi=req.rqi, pc=wrap(self.ctx.registry, shown) if shown else None,
                        location=address(shown, 1) if shown and req.op == Operation.CREATE else None,
                        rvi=req.rvi)
        await self.record(session["ri"], req, resp, self.ctx.identity.csi,
                          also=await self._remember_ops(session["sid"], req.rqi, resp, session))
        return resp

    # -- bookkeeping ----------------------------------------------------------------------------
    async def record(self, ri: str, req: Request, resp: Response, hop: str, also: Sequence[Op] = ()) -> None:
        """Add the exchange to the session context (``hst``, ``rqn``), committed
        together with ``also``."""
        session = await self.ctx.store.get(ri)
        if session is None:
            if also:
                await self.ctx.store.commit(list(also))
            return
        entry = {"rqi": req.rqi, "op": int(req.op), "to": req.to, "rsc": resp.rsc, "ts": self.ctx.now_ts(),
                 "hop": hop}
        hst = [*session.get("hst", []), entry][-self.history:]
        await self.ctx.store.commit([Put({**session, "hst": hst, "rqn": session.get("rqn", 0) + 1}), *also])

    async def _remember_ops(self, sid: str, rqi: str, resp: Response, session: Doc) -> list[Op]:
        """The ops that remember ``resp`` as the answer to ``rqi`` (bounded)."""
        value: dict[str, Any] = {"rsc": resp.rsc}
        if resp.pc is not None:
            value["pc"] = resp.pc
        if resp.location:
            value["loc"] = resp.location
        ops: list[Op] = [KvPut(replay_ns(sid), rqi, value)]
        if (session.get("rqn", 0) + 1) % 512 == 0:  # bound the memory, oldest first
            items = await self.ctx.store.kv_items(replay_ns(sid))
            ops.extend(KvDelete(replay_ns(sid), k) for k, _ in items[: max(0, len(items) - REPLAY_KEEP)])
        return ops


def _executed(req: Request, ops: Sequence[Op]) -> dict[str, Any]:
    """The provisional memory of ``req``: executed, with the code it succeeds
    with and the resource it wrote (the first Put of the effect commit)."""
    ri = next((op.doc["ri"] for op in ops if isinstance(op, Put)), None)
    return {"rsc": _DONE_RSC.get(req.op, 2000), "done": True, "ri": ri}


async def _ae_of(ctx: Context, doc: Doc) -> tuple[Doc | None, bool]:
    """The AE ``doc`` is (or is below), and whether the way up passes
    through (or starts at) a ``sessions`` collection."""
    cur: Doc | None = doc
    via_sessions = False
    for _ in range(64):
        if cur is None or cur["ty"] == 5:
            return None, via_sessions
        if cur["ty"] == 2:
            return cur, via_sessions
        via_sessions = via_sessions or cur["ty"] == SESSIONS_TY
        cur = await ctx.store.get(cur["pi"]) if cur.get("pi") else None
    return None, via_sessions

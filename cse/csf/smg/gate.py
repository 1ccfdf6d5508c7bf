"""Session-based requests at every CSE they pass (call flow 2; docs/sessions.md
"Marking a request as session-based").

A request carrying a session ID (``X-M2M-SID`` or ``?sessionID=``) comes here
before normal processing:

1. the session must exist here and be established (else 4004);
2. the originator must be one of its endpoints (SP-relative AE-IDs) or a
   neighbour SMG, and the target must be on a CSE hosting an endpoint; where
   the target is hosted, it must be at or below an endpoint AE (4103), and a
   session carries data operations only: never into an AE's ``sessions``
   collection, never a change of the AE resource itself, of an ACP or of
   any ``acpi`` (4103, docs/sessions.md "What a session authorizes");
3. with ``sec`` 1 the MAC must verify and ``X-M2M-OT`` be fresh (4103);
   a request ID seen before in this session gets the first answer again,
   without a second execution (durably remembered, which also makes
   store-and-forward redelivery after a crash exactly-once); a request the
   bounded memory does not hold must be newer than the OTs it has forgotten
   (the low-water mark of :mod:`.history`), else 4103;
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
older than the session. Replays are stopped at every hop by the request-ID
memory together with its low-water mark (docs/security.md "Replay protection"), not
by the memory alone, whose size is bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from cse.core.context import Context
from cse.core.dispatcher import Resolved
from cse.core.errors import BadRequest, NotFound, OriginatorHasNoPrivilege
from cse.core.ids import Target
from cse.core.keyring import Keyring
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Op, Put
from cse.core.session_crypto import canonical, derive_keys, sp_relative_target, unb64u, verify
from cse.core.timestamps import format_ts, parse_ts

from ..access import Grant
from .events import SessionEvents
from .history import REPLAY_KEEP, low_water_mark, record_ops, remember_ops, replay_ns
from .model import NEXT_HOP_TY, POLICIES_RN, POLICY_TY, SESSIONS_TY, State, session_ri, sp_ae_id, split_ae_id
from .sessions import is_cse_id

__all__ = ["SessionGate"]

log = logging.getLogger("cse.smg")

_OP_BIT = {Operation.CREATE: 1, Operation.RETRIEVE: 2, Operation.UPDATE: 4, Operation.DELETE: 8}
_CHANGES = (Operation.CREATE, Operation.UPDATE, Operation.DELETE)
ACP_TY, AE_TY = 1, 2

Resolve = Callable[[Target, Operation], Awaitable[Resolved]]
Serve = Callable[[Request, Resolved, Grant], Awaitable[Outcome]]
Forward = Callable[[Request, Target], Awaitable[Response]]
Store = Callable[[Request, Doc, str, Doc, Target], Awaitable[Response]]
Accept = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


class SessionGate:
    """Checks, routes and records session-based requests (module docstring)."""

    def __init__(self, ctx: Context, events: SessionEvents, *, resolve: Resolve, serve: Serve, forward: Forward,
                 store: Store, accept: Accept, keyring: Keyring, freshness_s: float = 300.0, history: int = 50,
                 replay_keep: int = REPLAY_KEEP) -> None:
        """``resolve`` finds a local target, ``serve`` handles it with a
        session grant, ``forward`` sends a request on, ``store`` keeps one
        for a store-and-forward window, ``accept`` runs one non-blocking;
        ``keyring`` unwraps the stored session keys; ``replay_keep`` bounds
        the memory of answers per session."""
        self.ctx = ctx
        self.events = events
        self.resolve = resolve
        self.serve = serve
        self.forward = forward
        self.store = store
        self.accept = accept
        self.freshness = freshness_s
        self.history = history
        self.keyring = keyring
        self.replay_keep = replay_keep
        self._keys: dict[str, bytes] = {}

    # -- entry ----------------------------------------------------------------------
    async def handle(self, req: Request, target: Target) -> Outcome:
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
        ot = self._check_mac(req, session, me) if session.get("sec", 1) == 1 else None
        cached = await ctx.store.kv_get(replay_ns(sid), req.rqi)
        if cached is not None:
            return Outcome(Response(rsc=cached["rsc"], rqi=req.rqi, pc=cached.get("pc"), location=cached.get("loc"),
                                    rvi=req.rvi))
        if ot is not None:
            await self._check_not_forgotten(req, session, endpoint, ot)
        memo = _Memo(ot, endpoint, self.replay_keep)
        if target.local:
            # The effect, the context entry and the remembered answer are one
            # commit: no crash can keep the effect and lose the memory that
            # stops a second execution of a redelivered request.
            served = await self._serve_local(req, target, session, endpoint)
            assert served.response is not None
            return served.adding(ops=await self._bookkeeping(session["ri"], req, served.response, ctx.identity.csi,
                                                             memo))
        hop = await self._hop_toward(session, endpoint)
        policy = await self.policy(session, req.op, endpoint)
        if policy is not None and policy.get("spt") == 2:
            resp = await self.store(req, session, hop, policy, target)
        elif req.rt in (1, 2):
            async def execute(r: Request) -> Response:
                out = await self._send_on(r, target)
                await ctx.apply(Outcome(ops=await record_ops(ctx, session["ri"], r, out, hop, self.history)))
                return out
            resp = await self.accept(req, execute)
        else:
            resp = await self._send_on(req, target)
            return Outcome(resp, await self._bookkeeping(session["ri"], req, resp, hop, memo))
        # accepted (1001/1002): the answer is remembered now, the exchange recorded when it completes
        return Outcome(resp, await remember_ops(ctx, sid, req.rqi, resp, session.get("rqn", 0) + 1,
                                                ot=memo.ot, toward=memo.toward, keep=memo.keep))

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

    def _check_mac(self, req: Request, session: Doc, me: str) -> float:
        """Verify ``X-M2M-SMAC`` and the freshness of ``X-M2M-OT``; return the OT
        (epoch seconds), which the MAC covers."""
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
        if not ingress and ot < _created(session["ct"]) - self.freshness:
            raise OriginatorHasNoPrivilege(f"X-M2M-OT {req.ot} is older than the session")
        k_mac = self._mac_key(session)
        data = canonical(req.op.name, sp_relative_target(req.to, self.ctx.identity.csi), session["sid"],
                         req.rqi, req.ot, req.body)
        if not verify(k_mac, data, req.smac):
            raise OriginatorHasNoPrivilege("X-M2M-SMAC does not verify: bad MAC for this session and request")
        return ot

    async def _check_not_forgotten(self, req: Request, session: Doc, endpoint: str, ot: float) -> None:
        """A request the memory does not hold must be newer than every request
        toward the same endpoint that the memory has forgotten: else it may be
        a replay of one of them (docs/security.md "Replay protection"). Checked at every
        hop, after the memory, so a redelivery it still holds is answered."""
        mark = await low_water_mark(self.ctx, session["sid"], endpoint)
        if mark is not None and ot <= mark:
            raise OriginatorHasNoPrivilege(
                f"X-M2M-OT {req.ot} is not newer than the requests toward {endpoint} that "
                f"{self.ctx.identity.csi} no longer remembers in session {session['sid'][:16]} "
                f"(up to {format_ts(mark)}): a replay, or a request overtaken by more than "
                f"{self.replay_keep} newer ones")

    def _mac_key(self, session: Doc) -> bytes:
        sid = session["sid"]
        key = self._keys.get(sid)
        if key is None:
            if len(self._keys) > 4096:
                self._keys.clear()
            scr = self.keyring.unwrap(sid, session["_scr"])
            key = self._keys[sid] = derive_keys(unb64u(scr["key"]), sid)[0]
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
        return await self.forward(req, target)

    async def _serve_local(self, req: Request, target: Target, session: Doc, endpoint: str) -> Outcome:
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
        refusal = _beyond_data(req, doc)
        if refusal is not None:
            raise OriginatorHasNoPrivilege(f"{refusal}: not permitted through session {session['sid'][:16]}")
        # the session's authority: everything at or below the endpoint AE, whatever its ACPs say
        outcome = await self.serve(req, resolved, frozenset({ae["ri"]}))
        resp = outcome.response
        assert resp is not None
        if resp.rsc < 4000 and req.op in _CHANGES and sp_ae_id(req.fr or "", self.ctx.identity.csi) != endpoint:
            changed = f"{self.ctx.identity.csi}/{resp.location or doc['_srn']}"
            outcome = outcome.adding(sends=await self.events.notices(ae["ri"], 2, {
                "sid": session["sid"], "iep": session["iep"], "tep": session["tep"], "res": changed,
                "op": int(req.op), "rqi": req.rqi}))
        return outcome

    # -- bookkeeping ----------------------------------------------------------------------------
    async def _bookkeeping(self, ri: str, req: Request, resp: Response, hop: str, memo: _Memo) -> list[Op]:
        """The context entry and the remembered answer of an answered request."""
        ops = await record_ops(self.ctx, ri, req, resp, hop, self.history)
        if not ops or not isinstance(ops[0], Put):
            return []
        session = ops[0].doc
        return [*ops, *await remember_ops(self.ctx, session["sid"], req.rqi, resp, session["rqn"],
                                          ot=memo.ot, toward=memo.toward, keep=memo.keep)]


@dataclass(frozen=True, slots=True)
class _Memo:
    """What the memory of answers keeps of a request besides its answer: its
    verified OT and the endpoint it targets (the low-water marks), and its bound."""

    ot: float | None
    toward: str
    keep: int


@lru_cache(maxsize=1024)
def _created(ct: str) -> float:
    """A session's creation time in epoch seconds: parsed once per session,
    not per request relayed in it."""
    return parse_ts(ct)


def _beyond_data(req: Request, doc: Doc) -> str | None:
    """Why ``req`` on ``doc`` is more than the data operation a session
    authorises (docs/sessions.md "What a session authorizes"), or None.

    Whoever could change the endpoint AE (its ``poa``), an ACP or an
    ``acpi`` through a session could take the AE over or keep access after
    the session ends; those stay with the AE's own, non-session requests.
    """
    if doc["ty"] == AE_TY and req.op in (Operation.UPDATE, Operation.DELETE):
        return "a session never changes or deletes the endpoint AE resource itself"
    if doc["ty"] == ACP_TY and req.op != Operation.RETRIEVE:
        return "a session never changes an accessControlPolicy or creates anything under one"
    if req.op == Operation.CREATE and req.ty == ACP_TY:
        return "a session never creates an accessControlPolicy"
    if req.op in (Operation.CREATE, Operation.UPDATE) and _sets_acpi(req.pc):
        return "a session never sets acpi (accessControlPolicyIDs) of any resource"
    return None


def _sets_acpi(pc: object) -> bool:
    """Whether the content ``{"m2m:xxx": {...}}`` names ``acpi`` (even as null)."""
    return isinstance(pc, dict) and any(isinstance(attrs, dict) and "acpi" in attrs for attrs in pc.values())


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

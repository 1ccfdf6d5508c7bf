"""sessionPolicy replication along the session's path (docs/sessions.md "Policies"; flow 1 steps 18-23).

A policy created, updated or deleted at one hop is sent, by this CSE, to
every nextHop of the session except the one it came from, addressed as
``/<hop>/ses<sid>/sessionPolicies[/<rn>]`` (the policy keeps its ``rn`` at
every hop). The request is answered only when every hop holds the change; a
create that some hop refuses is withdrawn from the hops that took it and
fails with their error (5103 when unreachable). ``sch`` entries must parse,
and a store-and-forward policy (``spt`` 2) needs at least one window.
"""

from __future__ import annotations

import logging
from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest, M2MError, TargetNotReachable
from cse.core.ids import Target, new_ri
from cse.core.messages import Operation, Request
from cse.core.outcome import Outcome
from cse.core.ports import Doc, Op
from cse.core.schedule import Schedule

from ..forwarding import Forwarder
from ..hooks import TypeHooks
from .model import NEXT_HOP_TY, POLICIES_RN, POLICY_TY
from .sessions import is_cse_id

__all__ = ["PolicyReplicator"]

log = logging.getLogger("cse.smg")

_WIRE = ("spt", "sch", "hop", "aep", "ops", "mbd", "mbr", "lbl", "et")


class PolicyReplicator:
    """Keeps every hop's copy of a session's policies the same."""

    def __init__(self, ctx: Context, forwarder: Forwarder, *, timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.forwarder = forwarder
        self.timeout = timeout

    def hooks(self) -> TypeHooks:
        return TypeHooks(on_create=self._check_create, on_update=self._check_update,
                         verify=self._replicate_create, verify_update=self._replicate_update,
                         pre_delete=self._replicate_delete)

    @staticmethod
    def _check(doc: Doc) -> None:
        if doc.get("sch"):
            Schedule(doc["sch"])
        if doc.get("spt") == 2 and not doc.get("sch"):
            raise BadRequest("a store-and-forward policy (spt 2) needs forwarding windows in sch")

    async def _check_create(self, ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
        self._check(doc)
        return []

    async def _check_update(self, ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
        self._check(new)
        return []

    async def _session_of(self, policy_parent_ri: str) -> Doc | None:
        spc = await self.ctx.store.get(policy_parent_ri)
        return await self.ctx.store.get(spc["pi"]) if spc is not None else None

    async def _hops(self, session: Doc, came_from: str | None) -> list[str]:
        return [h["csi"] for h in await self.ctx.store.children(session["ri"], NEXT_HOP_TY)
                if h["csi"] != came_from]

    async def _send(self, hop: str, op: Operation, to: str, pc: Any = None) -> int:
        req = Request(op=op, to=to, fr=self.ctx.identity.csi, rqi=new_ri("spo", 12), pc=pc,
                      ty=POLICY_TY if op == Operation.CREATE else None, ot=self.ctx.now_ts())
        resp = await self.forwarder.forward(req, Target(False, hop, (), False), timeout=self.timeout)
        return resp.rsc

    async def _replicate_create(self, ctx: Context, req: Request, doc: Doc) -> list[Op] | None:
        session = await self._session_of(doc["pi"])
        if session is None:
            return None
        came_from = req.fr if is_cse_id(req.fr) else None
        body = {"m2m:spo": {"rn": doc["rn"], **{k: doc[k] for k in _WIRE if k in doc}}}
        done: list[str] = []
        for hop in await self._hops(session, came_from):
            base = f"{hop}/{session['ri']}/{POLICIES_RN}"
            try:
                rsc = await self._send(hop, Operation.CREATE, base, body)
            except M2MError as exc:
                rsc, why = int(exc.rsc), exc.message
            else:
                why = f"answered {rsc}"
            if rsc != 2001:
                for ok in done:  # withdraw it where it was taken
                    try:
                        await self._send(ok, Operation.DELETE, f"{ok}/{session['ri']}/{POLICIES_RN}/{doc['rn']}")
                    except M2MError:
                        log.warning("could not withdraw policy %s from %s", doc["rn"], ok)
                raise TargetNotReachable(f"policy not replicated to {hop}: {why}")
            done.append(hop)
        return None

    async def _replicate_update(self, ctx: Context, req: Request, old: Doc, new: Doc) -> list[Op] | None:
        session = await self._session_of(old["pi"])
        if session is None or not isinstance(req.pc, dict):
            return None
        came_from = req.fr if is_cse_id(req.fr) else None
        for hop in await self._hops(session, came_from):
            to = f"{hop}/{session['ri']}/{POLICIES_RN}/{old['rn']}"
            try:
                rsc = await self._send(hop, Operation.UPDATE, to, req.pc)
            except M2MError as exc:
                raise TargetNotReachable(f"policy update not replicated to {hop}: {exc.message}") from None
            if rsc != 2004:
                raise TargetNotReachable(f"policy update not replicated to {hop}: answered {rsc}")
        return None

    async def _replicate_delete(self, ctx: Context, doc: Doc, originator: str | None) -> tuple[str | None, Outcome]:
        session = await self._session_of(doc["pi"])
        if session is None:
            return None, Outcome()
        came_from = originator if is_cse_id(originator) else None
        missed = []
        for hop in await self._hops(session, came_from):
            to = f"{hop}/{session['ri']}/{POLICIES_RN}/{doc['rn']}"
            try:
                rsc = await self._send(hop, Operation.DELETE, to)
                if rsc not in (2002, 4004):
                    missed.append(f"{hop} answered {rsc}")
            except M2MError as exc:
                missed.append(f"{hop}: {exc.message}")
        return ("policy deleted here; not reached: " + "; ".join(missed)) if missed else None, Outcome()

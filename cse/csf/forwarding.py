"""Forwarding requests to other CSEs (TS-0004 7.3.2.6, docs/onem2m.md "Forwarding").

Next hop for a target CSE-ID: the ``<remoteCSE>`` with that ``csi`` (a
registered peer, or our registrar), else one whose ``dcse`` lists it, else
our registrar -- unless the request came from the registrar itself, which
would bounce it back (then 4004). A CSE-relative originator (an AE of ours,
``Cae1``) becomes SP-relative (``/id-cse1/Cae1``) on the way out; the
request ID, body bytes and parameters stay as they were, and the next hop's
answer comes back unchanged -- except that CSE-relative references in a
RETRIEVE's discovery or child-reference result (``m2m:uril``, ``m2m:rrl``)
become SP-relative for the target CSE, so the originator here can use them
(``cse.csf.result.refs_sp_relative``). A refused connection is 5103, no answer within
the forwarding timeout is 4008 -- never a hang.

Loops: while a request is being forwarded, its (originator, request ID) is
remembered; if the same request arrives here again before that finished,
the route loops and the second copy is refused with 5103 naming the loop.
Transit CSEs refuse AE and CSE registrations (4000).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cse.core.context import Context
from cse.core.errors import BadRequest, NotFound, TargetNotReachable
from cse.core.ids import Target
from cse.core.messages import Operation, Request, Response
from cse.core.ports import Doc, Outbound

from .outbound import is_url
from .result import refs_sp_relative

__all__ = ["Forwarder", "REMOTE_CSE_TY"]

log = logging.getLogger("cse.forwarding")

REMOTE_CSE_TY = 16


class Forwarder:
    """Sends requests for other CSEs to the right next hop."""

    def __init__(self, ctx: Context, outbound: Outbound, *, registrar_csi: str | None,
                 timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.outbound = outbound
        self.registrar_csi = registrar_csi
        self.timeout = timeout
        self._in_flight: dict[tuple[str, str], int] = {}

    async def next_hop(self, csi: str, came_from: str | None) -> Doc:
        """The remoteCSE to send a request for ``csi`` to."""
        store = self.ctx.store
        for doc in await store.lookup("csi", csi):
            if doc["ty"] == REMOTE_CSE_TY:
                return doc
        for doc in await store.children(self.ctx.identity.cb_ri, REMOTE_CSE_TY):
            if csi in (doc.get("dcse") or ()):
                return doc
        if self.registrar_csi is not None and not _from_cse(came_from, self.registrar_csi):
            for doc in await store.lookup("csi", self.registrar_csi):
                if doc["ty"] == REMOTE_CSE_TY:
                    return doc
        raise NotFound(f"no route to CSE '{csi}': it is not registered here and there is no registrar to ask")

    async def forward(self, req: Request, target: Target, *, timeout: float | None = None) -> Response:
        """Forward ``req`` to the CSE hosting ``target``; relay its answer."""
        ident = self.ctx.identity
        if req.op == Operation.CREATE and req.ty in (2, REMOTE_CSE_TY):
            raise BadRequest(f"registrations cannot be forwarded: register with {target.csi} directly")
        hop = await self.next_hop(target.csi, req.fr)
        poas = [p for p in hop.get("poa") or () if is_url(p)]  # http(s), or mqtt(s) (TS-0010)
        if not poas:
            raise TargetNotReachable(f"next hop {hop.get('csi')} has no http(s) or mqtt(s) point of access")
        fr = req.fr
        if fr and not fr.startswith("/"):
            fr = f"{ident.csi}/{fr}"
        key = (fr or "", req.rqi)
        if key in self._in_flight:
            raise TargetNotReachable(
                f"forwarding loop: request {req.rqi} from {fr} came back to {ident.csi} "
                f"on its way to {target.csi}")
        out = replace(req, fr=fr) if fr != req.fr else req
        self._in_flight[key] = 1
        try:
            last: TargetNotReachable | None = None
            for poa in poas:
                try:
                    resp = await self.outbound.send(poa, out, timeout=timeout or self.timeout, peer=hop.get("csi"))
                    if req.op == Operation.RETRIEVE and resp.ok:
                        resp = replace(resp, pc=refs_sp_relative(resp.pc, target.csi))
                    return resp
                except TargetNotReachable as exc:
                    last = exc
            assert last is not None
            raise TargetNotReachable(f"next hop {hop.get('csi')} for {target.csi} is unreachable: {last.message}")
        finally:
            del self._in_flight[key]


def _from_cse(originator: str | None, csi: str) -> bool:
    """Whether ``originator`` is the CSE ``csi`` or one of its entities."""
    return originator is not None and (originator == csi or originator.startswith(csi + "/"))

"""Routes a resolved local request to the CSF that handles its operation.

Parses the filter criteria once (they are not permitted on CREATE and
NOTIFY), sends ``fu=1`` RETRIEVEs to discovery, checks ``disr`` for direct
access to instances, and leaves everything else to :class:`DataCSF`. A
RETRIEVE from another CSE's originator gets its references SP-relative
(``result.refs_sp_relative``): CSE-relative ones are for local originators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from cse.core.context import Context
from cse.core.dispatcher import FOPT, Resolved
from cse.core.errors import BadRequest, M2MError, NotFound, OperationNotAllowed
from cse.core.events import Event, EventKind
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import Outcome
from cse.core.ports import Doc

from . import access
from .access import Grant, Permission
from .data import DataCSF
from .filters import parse_filter_criteria
from .result import check_rcn, originator_is_local, refs_sp_relative
from .tree import discover

__all__ = ["LocalRouter"]

Relay = Callable[[Request, Doc], Awaitable[Response]]
FanOut = Callable[[Request, Resolved, Grant], Awaitable[Outcome]]
Poll = Callable[[Request, Doc], Awaitable[Outcome]]
Retrieved = Callable[[Request, Doc], Awaitable[Sequence[Event]]]


class LocalRouter:
    """The dispatcher's handler for targets hosted here."""

    def __init__(self, ctx: Context, data: DataCSF, relay_notify: Relay | None = None,
                 fan_out: FanOut | None = None, polling: Poll | None = None,
                 retrieved: Retrieved | None = None) -> None:
        """``fan_out`` serves a group's fanOutPoint (:mod:`.group`); ``polling``
        serves ``<pollingChannel>/pcu`` (docs/onem2m.md "pollingChannel");
        ``retrieved`` gives the events of a RETRIEVE (those a subscription's
        operationMonitor watches; none for most)."""
        self.retrieved = retrieved
        self.ctx = ctx
        self.data = data
        self.relay_notify = relay_notify
        self.fan_out = fan_out
        self.polling = polling

    async def handle(self, req: Request, target: Resolved, grant: Grant = None) -> Outcome:
        """The outcome of ``req`` on the local ``target``; ``grant`` is the
        session grant when the SMG serves a session-based request."""
        doc = target.doc
        if doc is None:
            return await self._no_instance(req, target, grant)
        if target.virtual == FOPT:
            if self.fan_out is None:
                raise NotFound(f"'{doc['_srn']}/{FOPT}': this CSE serves no fanOutPoint")
            return await self.fan_out(req, target, grant)
        if target.virtual == "pcu":
            if self.polling is None or grant is not None:
                raise OperationNotAllowed("pcu is not served here" if grant is None else
                                          "pcu is not used within a session")
            return await self.polling(req, doc)
        fc = parse_filter_criteria(req.query, self.ctx.registry.attribute_names) if req.query else None
        if fc is not None and req.op in (Operation.CREATE, Operation.NOTIFY):
            raise BadRequest(f"filter criteria are not permitted on {req.op.name}")
        if fc is not None and fc.fu == 1 and req.op != Operation.RETRIEVE:
            raise BadRequest(f"filterUsage fu=1 (discovery) is only valid on RETRIEVE, not {req.op.name}")
        if target.virtual is None and doc["ty"] == 4 and req.op in (Operation.RETRIEVE, Operation.DELETE):
            parent = await self.ctx.store.get(doc["pi"])
            if parent is not None and parent.get("disr"):
                raise OperationNotAllowed(f"retrieval is disabled (disr) on container '{parent['_srn']}'")
        op = req.op
        if op == Operation.RETRIEVE:
            if fc is not None and fc.fu == 1:
                rcn = check_rcn(op, req.rcn, discovery=True)
                found = await discover(self.ctx, req, doc, fc, rcn, grant)
                resp = Response(rsc=2000, rqi=req.rqi, pc=found.pc, rvi=req.rvi, cnst=found.cnst,
                                cnot=found.cnot)
            else:
                resp = await self.data.retrieve(req, doc, fc, grant)
            csi = self.ctx.identity.csi
            if resp.ok and not originator_is_local(req.fr, csi):
                resp = replace(resp, pc=refs_sp_relative(resp.pc, csi))
            events = await self.retrieved(req, doc) if self.retrieved is not None and resp.ok else ()
            return Outcome(resp, events=events)
        if op == Operation.CREATE:
            return await self.data.create(req, doc, grant)
        if op == Operation.UPDATE:
            return await self.data.update(req, doc, grant)
        if op == Operation.DELETE:
            return await self.data.delete(req, doc, fc, grant)
        self._not_a_create(req)
        if doc["ty"] == 2 and self.relay_notify is not None:
            # A notification for one of our AEs (e.g. from another CSE): pass it on.
            if not (access.is_privileged(self.ctx, req.fr) or (req.fr or "").startswith("/")):
                await access.check(self.ctx, req.fr, Permission.NOTIFY, doc, grant)
            return Outcome(await self.relay_notify(req, doc))
        raise OperationNotAllowed(f"NOTIFY to '{doc['_srn']}' is not supported: only AEs receive notifications")

    async def _no_instance(self, req: Request, target: Resolved, grant: Grant) -> Outcome:
        """A RETRIEVE of ``la``/``ol`` of a resource that keeps instances
        (container, flexContainer, timeSeries) and has none: 4004, and the
        net 5 event (TS-0001 9.6.8; subscriptions allow it on a container
        only) when the originator may retrieve the parent (else the same
        4004, and nobody hears of the attempt)."""
        container = target.container
        assert container is not None
        rtype = self.ctx.registry.get(container["ty"])
        instance = self.ctx.registry.get(rtype.instance_ty) if rtype.instance_ty is not None else None
        message = (f"{rtype.name} '{container['_srn']}' has no "
                   f"{instance.name if instance is not None else 'instance'}")
        resp = Response(rsc=4004, rqi=req.rqi, pc={"m2m:dbg": message}, rvi=req.rvi)
        try:
            await access.check(self.ctx, req.fr, Permission.RETRIEVE, container, grant)
        except M2MError:
            raise NotFound(message) from None
        return Outcome(resp, events=[Event(EventKind.RETRIEVE_NO_CHILD, container, originator=req.fr)])

    def _not_a_create(self, req: Request) -> None:
        """A POST without ``ty`` is a NOTIFY (TS-0009 6.4.2); when its body is
        a resource representation (``m2m:cnt`` ...), the client meant a
        CREATE and forgot the type: say so (4000) rather than answer as to a
        notification (docs/troubleshooting.md "4000 Bad request")."""
        pc = req.pc
        if isinstance(pc, dict) and len(pc) == 1:
            rtype = self.ctx.registry.by_root.get(next(iter(pc)))
            if rtype is not None:
                raise BadRequest(
                    f"CREATE needs the resource type: Content-Type: application/json;ty={rtype.ty} "
                    f"(the body is an {rtype.root} representation; a POST without ty is read as a NOTIFY)")

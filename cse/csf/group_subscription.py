"""Group subscriptions (TS-0001 10.2.7, 9.6.8 ``groupID``/``notificationForwardingURI``;
docs/onem2m.md "group"): a subscription created through a group's
fanOutPoint.

* A CREATE of a ``<subscription>`` sent to ``<group>/fopt`` goes to every
  member as usual (cse/csf/group.py), each member's subscription carrying
  ``gpi`` = the group's resource ID and ``nfu`` = the group's fanOutPoint
  (``<CSE-ID>/<group ri>/fopt``), set by the group CSF over whatever the
  request said.
* A subscription with ``gpi`` or ``nfu`` needs both; the group must be one
  hosted here (a group on another CSE is 5001: its members' notifications
  could not be aggregated here), the subscribed-to resource one of its
  members, and ``nfu`` that group's fanOutPoint (else 4000). Neither can
  be changed by an UPDATE.
* Its notifications go to ``nfu`` instead of ``nu``: NOTIFY to the
  fanOutPoint, through the dispatcher (the notifier treats a fanOutPoint as
  a target reached through the CSEs). The fanOutPoint accepts a NOTIFY from
  this CSE only (4005 else, as any NOTIFY there), about a subscription hosted here whose ``gpi``
  is that group (4000 else), answers a verification request 2000, and
  queues the notification to that subscription's ``nu`` (at most
  ``[outbound] max_targets``), which were verified when it was created.
* Aggregation: the notifications of all member subscriptions of one group
  with the same creator share one queue per target, so with ``bn`` they are
  batched together into one ``m2m:agn`` whatever member they come from,
  and are delivered in the order they reached the group.
"""

from __future__ import annotations

from typing import Any

from cse.core.context import Context
from cse.core.errors import BadRequest, NotImplementedOp, OperationNotAllowed
from cse.core.ids import parse_to
from cse.core.messages import Request, Response
from cse.core.outcome import Batching, Notification, Outcome
from cse.core.ports import Doc
from cse.core.timestamps import parse_duration

from .outbound import OutboundPolicy

__all__ = ["fan_out_point", "with_group", "check_group", "forwarded"]

GROUP_TY = 9
SUBSCRIPTION_TY = 23


def fan_out_point(csi: str, group_ri: str) -> str:
    """The ``nfu`` of a member subscription of ``group_ri``."""
    return f"{csi}/{group_ri}/fopt"


def with_group(pc: Any, group_ri: str, csi: str) -> Any:
    """The content of a subscription CREATE sent through the fanOutPoint of
    ``group_ri``: ``gpi`` and ``nfu`` set (module docstring)."""
    if not isinstance(pc, dict) or not isinstance(pc.get("m2m:sub"), dict):
        return pc
    return {**pc, "m2m:sub": {**pc["m2m:sub"], "gpi": group_ri, "nfu": fan_out_point(csi, group_ri)}}


async def check_group(ctx: Context, doc: Doc, parent: Doc) -> None:
    """A subscription's ``gpi``/``nfu`` (module docstring): 4000, 5001."""
    gpi, nfu = doc.get("gpi"), doc.get("nfu")
    if gpi is None and nfu is None:
        return
    if not gpi or not nfu:
        raise BadRequest("a group subscription needs both groupID (gpi) and notificationForwardingURI (nfu); "
                         "create it through the group's fanOutPoint (<group>/fopt)")
    ident = ctx.identity
    try:
        target = parse_to(str(gpi), ident.csi, ident.cb_name, ident.sp_id)
    except BadRequest:
        raise BadRequest(f"groupID (gpi) '{str(gpi)[:100]}' is not a resource ID") from None
    if not target.local:
        raise NotImplementedOp(f"groupID (gpi) '{str(gpi)[:100]}' names a group on another CSE: this CSE "
                               "aggregates the notifications of groups it hosts only")
    group = await (ctx.store.get_by_path(target.srn) if target.structured else ctx.store.get(target.segments[-1]))
    if group is None or group.get("ty") != GROUP_TY:
        raise BadRequest(f"groupID (gpi) '{str(gpi)[:100]}' is not a group hosted here")
    names = {parent["ri"], parent.get("_srn"), f"{ident.csi}/{parent['ri']}", f"{ident.csi}/{parent.get('_srn')}"}
    if not names & set(group.get("mid") or ()):
        raise BadRequest(f"the subscribed-to resource is not a member of group '{group['ri']}' (gpi)")
    if nfu != fan_out_point(ident.csi, group["ri"]):
        raise BadRequest(f"notificationForwardingURI (nfu) must be the fanOutPoint of group gpi: "
                         f"{fan_out_point(ident.csi, group['ri'])}")
    doc["gpi"] = group["ri"]


async def forwarded(ctx: Context, policy: OutboundPolicy, req: Request, group: Doc) -> Outcome:
    """The outcome of a NOTIFY received at ``group``'s fanOutPoint (module docstring)."""
    ident = ctx.identity
    if req.fr != ident.csi:
        raise OperationNotAllowed("NOTIFY to a fanOutPoint is accepted from this CSE only (the notifications "
                                  "of a group subscription's members)")
    sgn = req.pc.get("m2m:sgn") if isinstance(req.pc, dict) else None
    if not isinstance(sgn, dict):
        raise BadRequest("a NOTIFY to a fanOutPoint carries an m2m:sgn of a member subscription")
    ok = Response(rsc=2000, rqi=req.rqi, rvi=req.rvi)
    if sgn.get("vrq") is True:
        return Outcome(ok)  # the group hosting CSE forwards for its members' subscriptions
    sur = str(sgn.get("sur") or "")
    sub = await ctx.store.get(sur[len(ident.csi) + 1:]) if sur.startswith(ident.csi + "/") else None
    if sub is None or sub.get("ty") != SUBSCRIPTION_TY or sub.get("gpi") != group["ri"]:
        raise BadRequest(f"'{sur[:100]}' is not a subscription of a member of group '{group['ri']}' here")
    owner = sub.get("cr") or sub.get("_own")
    key = f"{group['ri']}|{owner or ''}"  # one queue per group, creator and target: aggregated
    bn = sub.get("bn")
    batch = Batching(int(bn["num"]), parse_duration(str(bn["dur"]))) if isinstance(bn, dict) else None
    sends = [Notification(key, target, {"m2m:sgn": sgn}, batching=batch, owner=str(owner) if owner else None,
                          sur=sur)
             for target in policy.fan_out(sub.get("nu") or (), ident.csi)]
    return Outcome(ok, sends=sends)

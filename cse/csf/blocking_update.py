"""blockingUpdate (``net`` 7; TS-0001 9.6.8, TS-0004 7.5.1): an UPDATE of a
resource that has a net 7 subscription is first notified to that
subscription's target, and performed only when the target accepts it
(docs/onem2m.md "Subscriptions and notifications").

* At most one net 7 subscription per resource: a second is 4124
  (BLOCKING_SUBSCRIPTION_ALREADY_EXISTS); it has exactly one ``nu``
  target (the one whose answer decides) and neither ``bn`` nor ``ln``
  (the notification cannot wait in a batch): else 4000.
* The notification is ``{"m2m:sgn": {"nev": {"rep": ..., "net": 7},
  "sur": ..., "cr": ...}}``, ``rep`` per ``nct``: 2 (the default for a
  net 7 subscription) the attributes the UPDATE sets, 1 the resource as
  it would be after it. It is sent at once, off the delivery queues
  (verified first like every notification, docs/security.md "Outbound
  requests"): the UPDATE's outcome is an :class:`~cse.core.outcome.Ask`
  that the executor sends and waits for; this CSF only decides from the
  answer (it sends nothing and waits for nothing itself).
* The wait is bounded: at most ``timeout`` seconds, less when the
  UPDATE's own request expiration (``rqet``) comes sooner (read on the
  CSE's clock). An answer 2000 (any 2xxx) lets the UPDATE proceed; any
  other answer is 4127 (OPERATION_DENIED_BY_REMOTE_ENTITY); no answer
  in time is 4008 (REQUEST_TIMEOUT); a target that cannot be reached
  5103. Nothing is changed in those cases.
* The resource changed or went while the UPDATE waited: 4105 / 4004
  (the answer was about a version that no longer exists).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    BlockingSubscriptionAlreadyExists,
    Conflict,
    M2MError,
    NotFound,
    OperationDeniedByRemoteEntity,
    RequestTimeout,
)
from cse.core.messages import Request, Response
from cse.core.outcome import Ask, Outcome
from cse.core.ports import Doc
from cse.core.timestamps import parse_abs_rel

from .outbound import OutboundPolicy
from .result import wrap

__all__ = ["BlockingUpdates", "NET_BLOCKING_UPDATE"]

NET_BLOCKING_UPDATE = 7
SUBSCRIPTION_TY = 23
Proceed = Callable[[], Awaitable[Outcome]]


def is_blocking(sub: Doc) -> bool:
    """``sub`` has ``net`` 7."""
    return NET_BLOCKING_UPDATE in ((sub.get("enc") or {}).get("net") or ())


class BlockingUpdates:
    """Checks net 7 subscriptions and asks their target before an UPDATE."""

    def __init__(self, ctx: Context, policy: OutboundPolicy, *, timeout: float = 5.0) -> None:
        self.ctx = ctx
        self.policy = policy
        self.timeout = timeout

    async def check_subscription(self, doc: Doc, targets: Sequence[str]) -> None:
        """A net 7 subscription's own rules (module docstring): 4000, 4124."""
        if not is_blocking(doc):
            return
        if len(targets) != 1:
            raise BadRequest(f"a blockingUpdate (net 7) subscription needs exactly one notificationURI target "
                             f"(its answer decides the UPDATE), not {len(targets)}")
        if doc.get("bn") or doc.get("ln"):
            raise BadRequest("a blockingUpdate (net 7) subscription cannot use batchNotify (bn) or latestNotify "
                             "(ln): its notification is sent at once and answered")
        for other in await self.ctx.store.children(doc["pi"], SUBSCRIPTION_TY):
            if other["ri"] != doc["ri"] and is_blocking(other):
                raise BlockingSubscriptionAlreadyExists(
                    f"the subscribed-to resource already has a blockingUpdate (net 7) subscription "
                    f"'{other['ri']}': only one is allowed (TS-0004 7.5.1)")

    async def before_update(self, req: Request, old: Doc, new: Doc, attrs: dict[str, Any],
                            proceed: Proceed) -> Outcome | None:
        """None when ``old`` has no net 7 subscription; else the outcome
        asking its subscriber, which the executor settles: ``proceed()``
        once the subscriber accepted, a refusal otherwise (module docstring)."""
        if old.get("ty") == SUBSCRIPTION_TY:
            return None  # a subscription has no subscriptions
        subs = [s for s in await self.ctx.store.children(old["ri"], SUBSCRIPTION_TY) if is_blocking(s)]
        if not subs:
            return None
        sub = subs[0]
        targets = self.policy.fan_out(sub.get("nu") or (), self.ctx.identity.csi)
        if not targets:
            return None
        limit = self._limit(req)
        sur = f"{self.ctx.identity.csi}/{sub['ri']}"
        if sub.get("nct", 2) == 1:
            rep = wrap(self.ctx.registry, new)
        else:
            rep = wrap(self.ctx.registry, new, {k: new[k] for k in attrs if k in new})
        sgn: dict[str, Any] = {"nev": {"rep": rep, "net": NET_BLOCKING_UPDATE}, "sur": sur}
        owner = sub.get("cr") or sub.get("_own")
        if sub.get("cr"):
            sgn["cr"] = sub["cr"]
        name = sub["ri"]

        async def judged(answer: Response | M2MError) -> Outcome:
            if isinstance(answer, RequestTimeout):
                raise RequestTimeout(f"blockingUpdate: the subscriber of '{name}' did not answer within "
                                     f"{limit:g} s; the UPDATE is not performed")
            if isinstance(answer, M2MError):
                raise type(answer)(f"blockingUpdate: the subscriber of '{name}' could not be asked "
                                   f"({answer.message}); the UPDATE is not performed")
            if not 2000 <= answer.rsc < 3000:
                raise OperationDeniedByRemoteEntity(
                    f"blockingUpdate: the subscriber of '{name}' refused the UPDATE (answered {answer.rsc})")
            current = await self.ctx.store.get(old["ri"])
            if current is None:
                raise NotFound(f"'{old.get('_srn', old['ri'])}' was deleted while its blockingUpdate "
                               "subscriber was asked")
            if current.get("lt") != old.get("lt"):
                raise Conflict(f"'{old.get('_srn', old['ri'])}' was changed while its blockingUpdate "
                               "subscriber was asked: send the UPDATE again")
            return await proceed()

        return Outcome(ask=Ask(targets[0], {"m2m:sgn": sgn}, limit, judged,
                               owner=str(owner) if owner else None, sur=sur))

    def _limit(self, req: Request) -> float:
        """How long to wait: ``timeout``, or less until the UPDATE's ``rqet``."""
        limit = self.timeout
        if req.rqet:
            now = self.ctx.clock.now()
            try:
                left = parse_abs_rel(req.rqet, now) - now
            except ValueError:
                left = limit  # the dispatcher already refused a malformed rqet
            limit = min(limit, left)
        if limit <= 0:
            raise RequestTimeout("blockingUpdate: no time left before the UPDATE's request expiration (rqet) "
                                 "to ask the subscriber")
        return limit

"""Session event notifications to endpoint AEs (docs/sessions.md "Session event notifications").

Sent to every subscription under the AE's ``sessions`` collection, whatever
its ``enc``, as ``{"m2m:sgn": {"nev": {"rep": {"m2m:sevt": {...}}, "net": N},
"sur": ...}}`` with ``net`` 3 for establishment (a session is created), 1 for
an update and 4 for termination (a session is removed).

Establishment (typ 1) is a question: it is sent synchronously, and the first
target that answers decides: 2000 (optionally with ``{"m2m:sep": {"epa":
{...}}}``) accepts, any 4xxx rejects (4103 to the initiator). No
subscription, or nobody reachable within the notification timeout, is 5103.
Update and termination events are queued like any notification: not
merged, since each names its own resource and ``rqi``; one that is lost
(queue full, failed send) is counted, and the next event delivered to that
target says how many were lost (``"dropped": N``, docs/sessions.md
"Session event notifications").
"""

from __future__ import annotations

import logging
from typing import Any

from cse.core.context import Context
from cse.core.errors import M2MError, OriginatorHasNoPrivilege, RequestTimeout, TargetNotReachable
from cse.core.outcome import Notification
from cse.core.ports import Doc

from ..notification import Notifier
from .model import SESSIONS_RN

__all__ = ["SessionEvents"]

log = logging.getLogger("cse.smg")

SUBSCRIPTION_TY = 23
_NET = {1: 3, 2: 1, 3: 4}


class SessionEvents:
    """Builds and sends ``m2m:sevt`` notifications."""

    def __init__(self, ctx: Context, notifier: Notifier, *, timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.notifier = notifier
        self.timeout = timeout

    async def _subscriptions(self, aei: str) -> list[Doc]:
        """The AE's subscriptions under its ``sessions``: only those the AE
        itself (or the admin) made, since an event may carry a session key
        (docs/sessions.md "Who sees sessions"). Access control already
        refuses anyone else's; this also ignores any made before it did."""
        sessions = await self.ctx.store.child_by_name(aei, SESSIONS_RN)
        if sessions is None:
            return []
        identity = self.ctx.identity
        return [sub for sub in await self.ctx.store.children(sessions["ri"], SUBSCRIPTION_TY)
                if sub.get("_own") in (aei, identity.admin, identity.csi)]

    def _payload(self, sub: Doc, typ: int, fields: dict[str, Any]) -> dict[str, Any]:
        sevt = {"typ": typ, **fields}
        sgn: dict[str, Any] = {"nev": {"rep": {"m2m:sevt": sevt}, "net": _NET[typ]},
                               "sur": f"{self.ctx.identity.csi}/{sub['ri']}"}
        return {"m2m:sgn": sgn}

    async def ask_establishment(self, aei: str, fields: dict[str, Any], *,
                                timeout: float | None = None) -> dict[str, Any]:
        """Ask the target AE; its ``epa`` on accept, else raise 4103/5103.

        ``timeout`` (the initiator's remaining time) caps the notification timeout.
        """
        limit = self.timeout if timeout is None else min(self.timeout, timeout)
        if limit <= 0:
            raise RequestTimeout("no time left to ask the target AE before the initiator's deadline")
        subs = await self._subscriptions(aei)
        if not subs:
            raise TargetNotReachable(
                f"target AE {aei} has no subscription under its sessions collection: "
                "it cannot be asked to accept the session")
        problems: list[str] = []
        for sub in subs:
            payload = self._payload(sub, 1, fields)
            for target in self.notifier.policy.fan_out(sub.get("nu") or (), self.ctx.identity.csi):
                try:
                    resp = await self.notifier.send_now(target, payload, timeout=limit, owner=_owner(sub),
                                                        sur=payload["m2m:sgn"]["sur"])
                except M2MError as exc:
                    problems.append(f"{target[:80]}: {exc.message}")
                    continue
                if resp.rsc == 2000:
                    sep = resp.pc.get("m2m:sep") if isinstance(resp.pc, dict) else None
                    epa = sep.get("epa") if isinstance(sep, dict) else None
                    return epa if isinstance(epa, dict) else {}
                if resp.rsc >= 4000:
                    raise OriginatorHasNoPrivilege(f"target AE {aei} rejected the session (answered {resp.rsc})")
                problems.append(f"{target[:80]}: answered {resp.rsc}")
        raise TargetNotReachable(
            f"target AE {aei} did not accept the session within {limit:g} s: " + "; ".join(problems))

    async def notices(self, aei: str, typ: int, fields: dict[str, Any]) -> list[Notification]:
        """The notifications of an update (2) or termination (3) event for
        the AE ``aei``, for the caller's outcome (sent once it is applied)."""
        out: list[Notification] = []
        for sub in await self._subscriptions(aei):
            payload = self._payload(sub, typ, fields)
            out.extend(Notification(sub["ri"], target, payload, owner=_owner(sub), sur=payload["m2m:sgn"]["sur"])
                       for target in self.notifier.policy.fan_out(sub.get("nu") or (), self.ctx.identity.csi))
        return out


def _owner(sub: Doc) -> str | None:
    """Whom a subscription notifies for (its creator): a target that has
    not accepted a verification request for it gets one first."""
    owner = sub.get("cr") or sub.get("_own")
    return str(owner) if owner else None

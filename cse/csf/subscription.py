"""Subscriptions: validation, verification, and events -> notifications.

TS-0004 7.4.8 / 7.5.1, docs/onem2m.md "Subscriptions and notifications".

* CREATE needs RETRIEVE privilege on the subscribed-to resource too;
  defaults are ``enc.net`` [1] and ``nct`` 1; ``nct`` must fit every ``net``
  (net 1: 1, 2, 3; net 2/3/4: 1, 3); ``chty`` must name child types the
  parent can have.
* Targets (docs/security.md "Outbound requests"): ``nu`` has at most
  ``[outbound] max_targets`` entries (else 4000); every ``nu`` and the
  ``su`` must pass the outbound policy (else 4000); an originator has at
  most ``max_subscriptions`` subscriptions (else 4103; not the admin).
* Verification: every distinct ``nu`` -- the originator's own AE-ID too:
  its ``poa`` is asked (when it has none, before its first notification)
  -- and the ``su`` get
  ``{"m2m:sgn": {"vrq": true, "sur": ..., "cr": ...}}`` before the
  subscription exists; anything but a 2000 answer is 5204 and nothing is
  stored. An UPDATE of ``nu`` verifies the targets it adds.
* Events (from every commit) become notifications: UPDATE (net 1, filtered
  by ``atr``), DELETE (net 2), child CREATE/DELETE (net 3/4, filtered by
  ``chty``), one per distinct target (at most ``max_targets``).
  ``rep`` follows ``nct``: the whole resource, the modified attributes, or
  its address. ``exc`` counts down and removes the
  subscription at 0. A removed subscription sends ``sud`` to ``su``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    M2MError,
    OriginatorHasNoPrivilege,
    SubscriptionVerificationInitiationFailed,
)
from cse.core.events import Event, EventKind
from cse.core.ids import normalize_originator
from cse.core.messages import Request
from cse.core.outcome import Batching, Notification, OnSent, Outcome
from cse.core.ports import Doc, Op, Put
from cse.core.timestamps import parse_duration

from .hooks import TypeHooks
from .notification import Notifier
from .result import wrap

__all__ = ["SubscriptionCSF", "SUBSCRIPTION_TY"]

log = logging.getLogger("cse.subscription")

SUBSCRIPTION_TY = 23
SESSIONS_TY = 9001
_NCT_FOR_NET = {1: {1, 2, 3}, 2: {1, 3}, 3: {1, 3}, 4: {1, 3}}
_DEFAULT_BN_DUR = 60.0
# A subscription being verified counts towards its originator's cap until
# its creation is committed; one whose CREATE failed after verification
# stops counting after this long.
_PENDING_S = 60.0


Remove = Callable[[Doc, str | None], Awaitable[None]]


class SubscriptionCSF:
    """Owns subscription behaviour."""

    def __init__(self, ctx: Context, notifier: Notifier, remove: Remove, *, max_subscriptions: int = 100) -> None:
        """``remove`` deletes a resource outside a request (the data CSF's),
        for a subscription whose ``exc`` ran out. ``max_subscriptions`` is
        the most an originator (other than the admin) may have."""
        self.ctx = ctx
        self.notifier = notifier
        self.policy = notifier.policy
        self.remove = remove
        self.max_subscriptions = max_subscriptions
        self._owned: dict[str, int] | None = None  # subscriptions per originator, from commit events
        self._pending: dict[str, tuple[str, float]] = {}  # ri -> (originator, since): being verified

    def hooks(self) -> TypeHooks:
        """The subscription type's hooks."""
        return TypeHooks(on_create=self._on_create, on_update=self._on_update, verify=self._verify,
                         verify_update=self._verify_update)

    # -- hooks -----------------------------------------------------------------
    async def _on_create(self, ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
        _defaults(doc)
        if "cr" not in doc:
            doc["cr"] = req.fr
        self._check(doc, parent)
        return []

    async def _on_update(self, ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
        _defaults(new)
        parent = await ctx.store.get(old["pi"])
        self._check(new, parent or {})
        return []

    def _check(self, doc: Doc, parent: Doc) -> None:
        self.policy.check_count(doc["nu"], "nu")
        nct = doc["nct"]
        for net in doc["enc"]["net"]:
            if nct not in _NCT_FOR_NET[net]:
                raise BadRequest(f"notificationContentType nct={nct} is not valid with net={net}")
        chty = doc["enc"].get("chty")
        if chty and parent:
            allowed = set(self.ctx.registry.child_types(parent["ty"]))
            bad = [t for t in chty if t not in allowed]
            if bad:
                raise BadRequest(f"chty lists type {bad[0]}, which cannot be a child of the subscribed resource")
        if "bn" in doc:
            self._batching(doc)

    def _batching(self, doc: Doc) -> Batching | None:
        bn = doc.get("bn")
        if not bn:
            return None
        dur = _DEFAULT_BN_DUR
        if bn.get("dur"):
            try:
                dur = parse_duration(bn["dur"])
            except ValueError as exc:
                raise BadRequest(f"batchNotify dur: {exc}") from None
        return Batching(bn["num"], dur)

    async def _verify(self, ctx: Context, req: Request, doc: Doc) -> None:
        self._reserve(doc.get("_own") or req.fr or "", doc["ri"], await self._counts())
        try:
            targets = self.policy.fan_out(doc["nu"], self.ctx.identity.csi)
            for su in self.policy.fan_out([doc.get("su") or ""], self.ctx.identity.csi):
                if su not in targets:
                    targets.append(su)
            await self._verify_targets(targets, _owner(doc) or req.fr or "", self.sur(doc), req.fr)
        except BaseException:
            self._pending.pop(doc["ri"], None)
            raise

    async def _verify_update(self, ctx: Context, req: Request, old: Doc, new: Doc) -> None:
        csi = self.ctx.identity.csi
        before = set(self.policy.fan_out(old.get("nu") or (), csi))
        added = [t for t in self.policy.fan_out(new["nu"], csi) if t not in before]
        if added:
            await self._verify_targets(added, _owner(new) or req.fr or "", self.sur(new), req.fr)

    async def _verify_targets(self, targets: Sequence[str], owner: str, sur: str, originator: str | None) -> None:
        """The policy for all of them first (4000 before anything is sent),
        then one verification request each (5204 unless each answers 2000).

        The originator's own AE-ID without an http(s) ``poa`` is the one
        target not asked now: there is nothing to ask, and nothing is sent
        to it either until it has a ``poa`` -- which the notifier then asks
        before the first notification.
        """
        own = normalize_originator(originator, self.ctx.identity.csi)
        targets = [t for t in targets
                   if not (t == own and not self.notifier.is_remote(t) and await self.notifier.resolve(t) is None)]
        for target in targets:
            try:
                await self.notifier.destination(target)
            except BadRequest:
                raise
            except M2MError as exc:
                raise SubscriptionVerificationInitiationFailed(
                    f"verification request to '{target[:100]}' failed: {exc.message}") from None
        for target in targets:
            try:
                await self.notifier.verify(target, owner=owner, sur=sur)
            except (BadRequest, SubscriptionVerificationInitiationFailed):
                raise
            except M2MError as exc:
                raise SubscriptionVerificationInitiationFailed(
                    f"verification request to '{target[:100]}' failed: {exc.message}") from None

    # -- subscriptions per originator ------------------------------------------------
    async def _counts(self) -> dict[str, int]:
        """Subscriptions per originator: counted once from the store, then
        kept up to date from commit events."""
        if self._owned is None:
            owned: dict[str, int] = {}
            for doc in await self.ctx.store.lookup("ty", SUBSCRIPTION_TY):
                who = doc.get("_own") or ""
                owned[who] = owned.get(who, 0) + 1
            self._owned = owned
        return self._owned

    def _reserve(self, owner: str, ri: str, owned: dict[str, int]) -> None:
        """Count ``ri`` for ``owner`` while it is verified; 4103 past the cap."""
        if owner == self.ctx.identity.admin:
            return
        now = self.ctx.clock.now()
        self._pending = {k: v for k, v in self._pending.items() if now - v[1] < _PENDING_S}
        have = owned.get(owner, 0) + sum(1 for who, _ in self._pending.values() if who == owner)
        if have >= self.max_subscriptions:
            raise OriginatorHasNoPrivilege(
                f"originator {owner[:100]} already has {have} subscriptions, the most allowed "
                "([outbound] max_subscriptions)")
        self._pending[ri] = (owner, now)

    def _count(self, events: Sequence[Event]) -> None:
        owned = self._owned
        for ev in events:
            if ev.doc.get("ty") != SUBSCRIPTION_TY:
                continue
            if ev.kind == EventKind.CREATE_CHILD:
                self._pending.pop(ev.doc["ri"], None)
                if owned is not None:
                    who = ev.doc.get("_own") or ""
                    owned[who] = owned.get(who, 0) + 1
            elif ev.kind == EventKind.DELETE and owned is not None:
                who = ev.doc.get("_own") or ""
                left = owned.get(who, 0) - 1
                if left > 0:
                    owned[who] = left
                else:
                    owned.pop(who, None)

    def _removed(self, events: Sequence[Event]) -> dict[str, list[Doc]]:
        """The subscriptions ``events`` delete, by the ri they were on."""
        removed_subs: dict[str, list[Doc]] = {}
        deleted = {ev.doc["ri"] for ev in events if ev.kind == EventKind.DELETE}
        for ev in events:
            if ev.kind == EventKind.DELETE and ev.doc["ty"] == SUBSCRIPTION_TY:
                removed_subs.setdefault(ev.doc["pi"], []).append(ev.doc)
                if ev.doc["pi"] not in deleted:
                    # The subscription itself went (DELETE, exc, expiry): its
                    # pending notifications go with it (7.3). When the
                    # subscribed resource went, earlier events still go out,
                    # followed by net 2.
                    self.notifier.discard(ev.doc["ri"])
        return removed_subs

    # -- events ------------------------------------------------------------------
    def sur(self, sub: Doc) -> str:
        """The subscription reference sent in notifications (SP-relative ri)."""
        return f"{self.ctx.identity.csi}/{sub['ri']}"

    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """Turn committed events into notifications (the executor queues them)."""
        sends: list[Notification] = []
        removed_subs: dict[str, list[Doc]] = {}
        for ev in events:
            if ev.doc.get("ty") == SUBSCRIPTION_TY:  # most commits change no subscription
                self._count(events)
                removed_subs = self._removed(events)
                break
        for ev in events:
            if ev.kind in (EventKind.CREATE_CHILD, EventKind.DELETE_CHILD):
                subject = ev.parent
            else:
                subject = ev.doc
            if subject is None or subject["ty"] == SESSIONS_TY:
                continue  # subscriptions under sessions hear session events only (SMG)
            if ev.kind == EventKind.DELETE:
                subs = removed_subs.get(subject["ri"], [])
            else:
                subs = await self.ctx.store.children(subject["ri"], SUBSCRIPTION_TY)
            for sub in subs:
                if sub["ri"] == ev.doc["ri"]:
                    continue  # a subscription is not notified of its own creation
                if self._matches(sub, ev):
                    sends.extend(self._notify(sub, ev, alive=ev.kind != EventKind.DELETE))
        for subs in removed_subs.values():
            for sub in subs:
                if sub.get("su"):
                    sends.append(Notification(sub["ri"], sub["su"], {"m2m:sgn": {"sud": True, "sur": self.sur(sub)}},
                                              owner=_owner(sub), sur=self.sur(sub)))
        return Outcome(sends=sends) if sends else None

    def _matches(self, sub: Doc, ev: Event) -> bool:
        enc = sub.get("enc") or {}
        if ev.kind not in enc.get("net", (1,)):
            return False
        if ev.kind == EventKind.UPDATE and enc.get("atr"):
            if not set(enc["atr"]) & set(ev.modified):
                return False
        if ev.kind in (EventKind.CREATE_CHILD, EventKind.DELETE_CHILD) and enc.get("chty"):
            if ev.doc["ty"] not in enc["chty"]:
                return False
        return True

    def _rep(self, sub: Doc, ev: Event) -> Any:
        nct = sub.get("nct", 1)
        if nct == 3:
            return {"m2m:uri": ev.doc.get("_srn", ev.doc["ri"])}
        if nct == 2 and ev.kind == EventKind.UPDATE:
            return wrap(self.ctx.registry, ev.doc, {k: ev.doc[k] for k in ev.modified if k in ev.doc})
        return wrap(self.ctx.registry, ev.doc)

    def _notify(self, sub: Doc, ev: Event, *, alive: bool) -> list[Notification]:
        sgn: dict[str, Any] = {"nev": {"rep": self._rep(sub, ev), "net": ev.kind}, "sur": self.sur(sub)}
        if sub.get("cr"):
            sgn["cr"] = sub["cr"]
        payload = {"m2m:sgn": sgn}
        batching = self._batching(sub)
        on_sent: OnSent | None = None
        if alive and sub.get("exc") is not None:
            counted = False
            ri = sub["ri"]

            async def count_once() -> None:  # once per event, on the first accepted delivery
                nonlocal counted
                if not counted:
                    counted = True
                    await self._count_down(ri)
            on_sent = count_once
        latest = bool(sub.get("ln"))
        owner, sur = _owner(sub), self.sur(sub)
        return [Notification(sub["ri"], target, payload, latest, batching, on_sent, owner, sur)
                for target in self.policy.fan_out(sub["nu"], self.ctx.identity.csi)]

    async def _count_down(self, ri: str) -> None:
        """``exc`` minus one after a delivered notification; at 0 the
        subscription is removed (with its deletion notification)."""
        current = await self.ctx.store.get(ri)
        if current is None or current.get("exc") is None:
            return
        left = current["exc"] - 1
        if left <= 0:
            await self.remove(current, None)
        else:
            await self.ctx.apply(Outcome(ops=[Put({**current, "exc": left})]))


def _owner(sub: Doc) -> str | None:
    """The originator a subscription notifies for: its creator."""
    owner = sub.get("cr") or sub.get("_own")
    return str(owner) if owner else None


def _defaults(doc: Doc) -> None:
    """``enc.net`` [1] and ``nct`` 1 unless given (TS-0004 7.4.8.2.1); ``enc``
    is replaced by a new dict, never changed where it may be shared."""
    enc = doc.get("enc", {"net": [1]})
    doc["enc"] = {**enc, "net": enc.get("net", [1])}
    doc.setdefault("nct", 1)

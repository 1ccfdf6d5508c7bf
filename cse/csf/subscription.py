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
* net 5: a RETRIEVE of ``la``/``ol`` of the subscribed-to container while
  it has no contentInstance (only under a container, else 4000; ``rep`` is
  the container). net 6 (trigger received for an AE) is 5001: this CSE
  receives no device triggers (docs/onem2m.md "Subscriptions and
  notifications"). net 7, blockingUpdate: cse/csf/blocking_update.py.
* ``enc.om`` (operationMonitor) and ``nse``/``nsi`` (statistics):
  cse/csf/sub_monitor.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from cse.core.context import Context
from cse.core.errors import (
    BadRequest,
    M2MError,
    NotImplementedOp,
    OriginatorHasNoPrivilege,
    SubscriptionVerificationInitiationFailed,
)
from cse.core.events import Event, EventKind
from cse.core.ids import new_ri, normalize_originator
from cse.core.messages import Request
from cse.core.outcome import Batching, Notification, Outcome
from cse.core.ports import Doc, Op, Put
from cse.core.timestamps import parse_duration

from .blocking_update import BlockingUpdates
from .group_subscription import check_group, forwarded
from .hooks import TypeHooks
from .notification import Notifier
from .result import wrap
from .sub_monitor import NotificationStats, Watched, monitored, reset_stats

__all__ = ["SubscriptionCSF", "SUBSCRIPTION_TY"]

log = logging.getLogger("cse.subscription")

SUBSCRIPTION_TY = 23
SESSIONS_TY = 9001
_NCT_FOR_NET = {1: {1, 2, 3}, 2: {1, 3}, 3: {1, 3}, 4: {1, 3}, 5: {1, 3}, 7: {1, 2}, 8: {5}}
TIME_SERIES_TY = 29
CONTAINER_TY = 3
_NET_NO_CHILD, _NET_TRIGGER, _NET_BLOCKING = 5, 6, 7
# batchNotify (TS-0001 9.6.8, TS-0004 6.3.5 m2m:batchNotify): both parts are
# optional; the Hosting CSE stores its defaults in the resource, so that a
# RETRIEVE shows how the subscription actually behaves (docs/onem2m.md "Choices").
_DEFAULT_BN_DUR = "PT60S"
_DEFAULT_BN_NUM = 100  # with only ``dur`` given: ``dur`` decides, this bounds one batch
# A subscription being verified counts towards its originator's cap until
# its creation is committed; one whose CREATE failed after verification
# stops counting after this long.
_PENDING_S = 60.0
_EC_LATEST = 4  # TS-0004 m2m:stdEventCats "latest"
NET_MISSING = EventKind.MISSING_DATA


Removal = Callable[[Doc, str | None], Awaitable[tuple[Outcome, str | None]]]


class SubscriptionCSF:
    """Owns subscription behaviour."""

    def __init__(self, ctx: Context, notifier: Notifier, removal: Removal, *, max_subscriptions: int = 100,
                 blocking_timeout: float = 5.0,
                 serialize: Callable[[], AbstractAsyncContextManager[None]] | None = None) -> None:
        """``removal`` gives the outcome deleting a resource outside a
        request (the data CSF's), for a subscription whose ``exc`` ran out.
        ``max_subscriptions`` is the most an originator (other than the
        admin) may have; ``blocking_timeout`` bounds the wait for a
        blockingUpdate subscriber's answer; ``serialize`` is the write gate
        of several workers, held while ``nsi`` is written (cse/csf/sub_monitor.py)."""
        self.ctx = ctx
        self.notifier = notifier
        self.policy = notifier.policy
        self.removal = removal
        self.max_subscriptions = max_subscriptions
        self._owned: dict[str, int] | None = None  # subscriptions per originator, from commit events
        self._pending: dict[str, tuple[str, float]] = {}  # ri -> (originator, since): being verified
        self.blocking = BlockingUpdates(ctx, notifier.policy, timeout=blocking_timeout)
        self.watched = Watched(ctx)
        self.stats = NotificationStats(ctx, self.watched, serialize=serialize)

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
        await self.blocking.check_subscription(doc, self.policy.fan_out(doc["nu"], self.ctx.identity.csi))
        await check_group(ctx, doc, parent)
        reset_stats(None, doc)
        return []

    async def _on_update(self, ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
        _defaults(new)
        parent = await ctx.store.get(old["pi"])
        self._check(new, parent or {})
        await self.blocking.check_subscription(new, self.policy.fan_out(new["nu"], self.ctx.identity.csi))
        reset_stats(old, new)
        return []

    def _check(self, doc: Doc, parent: Doc) -> None:
        self.policy.check_count(doc["nu"], "nu")
        nct = doc["nct"]
        nets = doc["enc"]["net"]
        if _NET_TRIGGER in nets:
            raise NotImplementedOp(
                "net 6 (trigger received for AE) is not supported: it reports device triggers received "
                "through an underlying network, and this CSE receives none (docs/onem2m.md "
                "\"Subscriptions and notifications\")")
        if _NET_NO_CHILD in nets and parent and parent.get("ty") != CONTAINER_TY:
            raise BadRequest("net 5 (retrieve of a container with no child) needs a container as the "
                             "subscribed-to resource")
        for net in nets:
            if nct not in _NCT_FOR_NET[net]:
                raise BadRequest(f"notificationContentType nct={nct} is not valid with net={net}")
        _check_missing_data(doc["enc"], parent)
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
        try:
            dur = parse_duration(bn.get("dur") or _DEFAULT_BN_DUR)
        except ValueError as exc:
            raise BadRequest(f"batchNotify dur: {exc}") from None
        return Batching(int(bn.get("num") or _DEFAULT_BN_NUM), dur)

    async def _verify(self, ctx: Context, req: Request, doc: Doc) -> None:
        self._reserve(doc.get("_own") or req.fr or "", doc["ri"], await self._counts())
        try:
            targets = self.policy.fan_out(doc["nu"], self.ctx.identity.csi)
            for su in self.policy.fan_out([doc.get("su") or ""], self.ctx.identity.csi):
                if su not in targets:
                    targets.append(su)
            await self._verify_targets(targets, _owner(doc) or req.fr or "", self.sur(doc), req.fr)
            # the round trip let another net 7 subscription in: one only (4124)
            await self.blocking.check_subscription(doc, self.policy.fan_out(doc["nu"], self.ctx.identity.csi))
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
        before the first notification. An AE with ``rr`` false (by AE-ID
        or resource ID, the originator's own too) is asked through its
        pollingChannel, and is 5204 without one: it cannot be notified at
        all (docs/onem2m.md "pollingChannel").
        """
        own = normalize_originator(originator, self.ctx.identity.csi)
        targets = [t for t in targets if not (t == own and await self._later(t))]
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

    async def _later(self, target: str) -> bool:
        """Whether the originator's own AE-ID ``target`` is asked only once it
        has a ``poa``: a local entity that is not an AE (the admin) or an
        AE without one, unless its ``rr`` is false or it is connected over
        a WebSocket."""
        if self.notifier.is_remote(target):
            return False
        ae = await self.notifier.target_ae(target)
        if ae is None:
            return True
        if self.notifier.over_websocket(ae):  # its connection answers (docs/bindings.md "WebSocket")
            return False
        return ae.get("rr") is not False and self.notifier.poa_url(ae) is None

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

    # -- events ------------------------------------------------------------------
    def sur(self, sub: Doc) -> str:
        """The subscription reference sent in notifications (SP-relative ri)."""
        return f"{self.ctx.identity.csi}/{sub['ri']}"

    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """Turn committed events into notifications (the executor queues them)."""
        self._count(events)
        await self.watched.load()
        self.watched.on_events(events)
        sends: list[Notification] = []
        ops: list[Op] = []
        removed_subs: dict[str, list[Doc]] = {}
        deleted = {ev.doc["ri"] for ev in events if ev.kind == EventKind.DELETE}
        for ev in events:
            if ev.kind == EventKind.DELETE and ev.doc["ty"] == SUBSCRIPTION_TY:
                removed_subs.setdefault(ev.doc["pi"], []).append(ev.doc)
                if ev.doc["pi"] not in deleted:
                    # The subscription itself went (DELETE, exc, expiry): its
                    # pending notifications go with it (7.3). When the
                    # subscribed resource went, earlier events still go out,
                    # followed by net 2. Their outbox entries go in the same commit.
                    ops.extend(self.notifier.discarding(ev.doc["ri"]))
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
                net = self._matches(sub, ev)
                om = monitored(sub, ev)
                if net or om is not None:
                    sends.extend(self._notify(sub, ev, alive=ev.kind != EventKind.DELETE, net=net, om=om))
        for subs in removed_subs.values():
            for sub in subs:
                if sub.get("su"):
                    sends.append(Notification(sub["ri"], sub["su"], {"m2m:sgn": {"sud": True, "sur": self.sur(sub)}},
                                              owner=_owner(sub), sur=self.sur(sub)))
        return Outcome(ops=ops, sends=sends) if sends or ops else None

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

    def missing_data(self, sub: Doc, points: list[str]) -> list[Notification]:
        """net 8 (TS-0001 10.2.4.29): ``points`` a timeSeries missed, as
        ``m2m:tsn`` (cse.csf.timeseries decides when)."""
        tsn = {"m2m:tsn": {"mdlt": points, "mdc": len(points)}}
        return self._deliveries(sub, tsn, EventKind.MISSING_DATA, alive=True)

    def _notify(self, sub: Doc, ev: Event, *, alive: bool, net: bool = True,
                om: dict[str, Any] | None = None) -> list[Notification]:
        return self._deliveries(sub, self._rep(sub, ev), ev.kind if net else None, alive=alive, om=om)

    def _deliveries(self, sub: Doc, rep: Any, net: int | None, *, alive: bool,
                    om: dict[str, Any] | None = None) -> list[Notification]:
        """The notifications of one event to ``sub``'s targets: ``nev`` has
        ``net`` unless None (an operationMonitor match alone) and ``om`` if given."""
        nev: dict[str, Any] = {"rep": rep}
        if net is not None:
            nev["net"] = net
        if om is not None:
            nev["om"] = om
        sgn: dict[str, Any] = {"nev": nev, "sur": self.sur(sub)}
        if sub.get("cr"):
            sgn["cr"] = sub["cr"]
        payload = {"m2m:sgn": sgn}
        batching = self._batching(sub)
        # exc counts once per event, on the first accepted delivery to any
        # target; the notifier does it (durably, cse/core/outbox.py) with count_down
        exc = sub["ri"] if alive and sub.get("exc") is not None else None
        event = new_ri("ev", 12) if exc is not None else None
        latest = bool(sub.get("ln"))
        owner, sur = _owner(sub), self.sur(sub)
        ec = _event_category(sub)
        # a group subscription's notifications go one by one to the group's fanOutPoint (nfu),
        # which forwards them, batched there (cse/csf/group_subscription.py)
        targets = self.policy.fan_out(sub["nu"], self.ctx.identity.csi)
        if sub.get("nfu"):
            targets, latest, batching = [str(sub["nfu"])], False, None
        return [Notification(sub["ri"], target, payload, latest, batching, None, owner, sur, exc, event, ec=ec)
                for target in targets]

    async def retrieved(self, req: Request, doc: Doc) -> list[Event]:
        """The event of a RETRIEVE of ``doc``, when an operationMonitor
        watches it (none otherwise: a read is normally no event)."""
        if await self.watched.retrieved(doc["ri"]):
            return [Event(EventKind.RETRIEVED, doc, originator=req.fr)]
        return []

    async def group_notification(self, req: Request, group: Doc) -> Outcome:
        """A NOTIFY received at ``group``'s fanOutPoint (cse/csf/group_subscription.py)."""
        return await forwarded(self.ctx, self.policy, req, group)

    async def count_down(self, ri: str) -> Outcome | None:
        """The outcome of ``exc`` minus one after a delivered notification; at
        0 the subscription is removed (with its deletion notification)."""
        current = await self.ctx.store.get(ri)
        if current is None or current.get("exc") is None:
            return None
        left = current["exc"] - 1
        if left <= 0:
            return (await self.removal(current, None))[0]
        return Outcome(ops=[Put({**current, "exc": left})])


def _event_category(sub: Doc) -> int | None:
    """The event category a subscription's notifications carry (TS-0004
    ``ec``, ``X-M2M-EC``): ``latest`` (4) under ``ln`` -- TS-0001 9.6.8:
    the notification sent under latestNotify has the Event Category
    'latest' -- else its ``nec`` (notificationEventCat), else none."""
    if sub.get("ln"):
        return _EC_LATEST
    nec = sub.get("nec")
    return int(nec) if isinstance(nec, int) else None


def _check_missing_data(enc: dict[str, Any], parent: Doc) -> None:
    """net 8 and ``md`` are about a timeSeries' missing data (TS-0001 10.2.4.29)."""
    if NET_MISSING in enc["net"] and parent and parent.get("ty") != TIME_SERIES_TY:
        raise BadRequest("net 8 (missing data points) applies to a timeSeries only")
    md = enc.get("md")
    if md is not None and NET_MISSING not in enc["net"]:
        raise BadRequest("enc.md (missingData) needs net 8 in enc.net")
    if md and md.get("dur") is not None:
        try:
            parse_duration(md["dur"])
        except ValueError as exc:
            raise BadRequest(f"enc.md dur: {exc}") from None


def _owner(sub: Doc) -> str | None:
    """The originator a subscription notifies for: its creator."""
    owner = sub.get("cr") or sub.get("_own")
    return str(owner) if owner else None


def _defaults(doc: Doc) -> None:
    """``enc.net`` [1] and ``nct`` 1 unless given (TS-0004 7.4.8.2.1); a
    ``bn`` gets the CSE's ``dur`` and ``num`` where it has none (TS-0001
    9.6.8: either part may be given alone). ``enc`` and ``bn`` are replaced
    by new dicts, never changed where they may be shared."""
    enc = doc.get("enc", {"net": [1]})
    doc["enc"] = {**enc, "net": enc.get("net", [1])}
    # net 8 alone: a timeSeriesNotification; blockingUpdate alone: the modified
    # attributes (what the subscriber decides on)
    net = set(doc["enc"]["net"])
    doc.setdefault("nct", 5 if net == {NET_MISSING} else 2 if net == {_NET_BLOCKING} else 1)
    bn = doc.get("bn")
    if isinstance(bn, dict):
        doc["bn"] = {"num": bn.get("num", _DEFAULT_BN_NUM), "dur": bn.get("dur", _DEFAULT_BN_DUR), **bn}

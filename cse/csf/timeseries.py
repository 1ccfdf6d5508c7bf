"""timeSeries and timeSeriesInstance, with missing-data detection
(TS-0001 9.6.36, 9.6.37, 10.2.4.29; TS-0004 7.4.38, 7.4.39; docs/onem2m.md "timeSeries").

Instances follow the container rules (:mod:`.container`: ``cs``, eviction by
``mni``/``mbs``, ``et`` capped by ``mia``, ``cni``/``cbs``, ``la``/``ol``).
An instance is identified by its ``dgt``: a second one with the same ``dgt``
under the same timeSeries is 4105 (the newest ``dgt`` is remembered on the
timeSeries, so instances arriving in order cost no scan).

Missing data: with ``mdd`` true and ``pei`` set, every instance arriving at
``t`` means the next is expected with ``dgt`` + ``pei`` and is declared
missing when none arrives by ``t + pei + mdt`` (milliseconds; ``mdt``
absent is 0, or ``peid`` when that is set; ``pei`` at least 100 ms, else
4000). A missing point is its
expected ``dgt``: appended to ``mdlt`` (at most ``mdn`` entries, 1000 without
``mdn``, the oldest dropped; ``mdc`` is how many it holds),
and the next one is expected a ``pei`` later, until an instance arrives.
Detection starts with the first instance and stops when ``mdd`` goes false.

``peid`` (periodicIntervalDelta, TS-0001 9.6.36, 10.2.4.29) makes the
expected times a grid: an instance whose ``dgt`` is within ``peid`` of the
expected ``dgt`` E is that point (the next is expected at E + ``pei``,
so jitter does not drift the grid); one more than ``peid`` before E is an
old or early point and changes nothing; one more than ``peid`` after E
means the points of the grid before it were skipped: they are missing at
once (recorded and notified by the timer's next run, ``_mdp``), and the
grid goes on from that instance (from the grid point it is within
``peid`` of, else from its ``dgt``). Without ``peid`` any arriving
instance is the expected point. ``peid`` must be at most ``pei``/2 and
less than ``mdt`` (TS-0001 9.6.36), else 4000.

Subscriptions with ``net`` 8 hear of missing points as ``m2m:tsn``
(``mdlt``: the points, ``mdc``: their number). With ``enc.md`` {``num``,
``dur``} the points are collected per subscription and sent once ``num``
have gone missing within ``dur`` of the first of them (the window restarts
after each notification and when ``dur`` passes); without it each point is
sent at once.

The timer: the next detection time of each timeSeries (``_mdx``, epoch
seconds), its expected ``dgt`` (``_mdg``) and the points found skipped by
an arriving instance (``_mdp``, due at ``_mdq``: that arrival) are stored
on it, in the commit of the instance that set them. :class:`TimeSeriesCSF` keeps an index
of them (ri -> time), read from the store at start-up (so detection
survives a restart) and kept current from commit events, whose outcomes
carry the :class:`~cse.core.outcome.Deadline` poking the ``missing-data``
timer. The timer's job, :meth:`TimeSeriesCSF.detect`, re-reads each due
timeSeries: the store decides, the index only says where to look.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cse.core.context import Context
from cse.core.errors import BadRequest, Conflict
from cse.core.events import Event, EventKind
from cse.core.messages import Request
from cse.core.outcome import Deadline, Notification, Outcome
from cse.core.ports import Doc, Op, Put
from cse.core.timestamps import format_ts, normalize_ts, parse_duration, parse_ts

from .container import add_instance, content_size, evict_on_update, instance_removed
from .hooks import TypeHooks

__all__ = ["MISSING_DATA", "TS_TY", "TSI_TY", "TimeSeriesCSF"]

MISSING_DATA = "missing-data"  # the timer's name
TS_TY = 29
TSI_TY = 30
SUBSCRIPTION_TY = 23
NET_MISSING_DATA = 8
# Missing points recorded for one timeSeries in one run of the job: a CSE that
# was stopped for long catches up at most this many, then skips to now.
_MAX_CATCH_UP = 1000
_DEFAULT_MDN = 1000  # mdlt's bound when mdn is absent: a list that only grows is not kept
# The shortest pei detection accepts: each pei is a run of the timer's job.
_MIN_DETECT_PEI_MS = 100

Notify = Callable[[Doc, list[str]], list[Notification]]


def _detecting(ts: Doc) -> bool:
    return bool(ts.get("mdd")) and ts.get("pei") is not None


def _mdt_ms(ts: Doc) -> int:
    """``mdt``; absent: ``peid`` (a point may come that late), else 0."""
    mdt = ts.get("mdt")
    return int(mdt if mdt is not None else ts.get("peid") or 0)


def _next_check(ts: Doc, arrival: float) -> float:
    """When an instance is declared missing if none arrives after ``arrival``."""
    return arrival + (int(ts["pei"]) + _mdt_ms(ts)) / 1000.0


def _due_at(ts: Doc) -> float:
    """When the timer's job next has something to do for stored ``ts``."""
    if ts.get("_mdp"):
        return min(float(ts["_mdx"]), float(ts.get("_mdq") or 0.0))
    return float(ts["_mdx"])


class Arrival(NamedTuple):
    """Detection after an instance arrived (module docstring): the next
    expected ``dgt``, its detection time, the grid points it skipped."""

    expected: str
    due: float
    skipped: list[str]


def arrival(ts: Doc, dgt: str, ct: float) -> Arrival | None:
    """What an instance with ``dgt`` arriving at ``ct`` does to the detection
    of ``ts`` (as stored before it; detecting); None: nothing (an old or
    early point, ``peid``). Pure: the instance's hook and the commit event's
    listener both ask it, with the same answer."""
    pei = ts["pei"] / 1000.0
    due = _next_check(ts, ct)
    d = parse_ts(dgt)
    peid, mdg = ts.get("peid"), ts.get("_mdg")
    if peid is None or mdg is None:  # any instance is the expected point; the newest dgt sets the next
        newest = max(d, parse_ts(ts["_mxd"])) if ts.get("_mxd") else d
        return Arrival(format_ts(newest + pei), due, [])
    delta, expected = peid / 1000.0, parse_ts(mdg)
    if abs(d - expected) <= delta:
        return Arrival(format_ts(expected + pei), due, [])
    if d < expected - delta:
        return None
    k = round((d - expected) / pei)
    if abs(d - (expected + k * pei)) <= delta:  # on a later grid point: the ones before it were skipped
        skipped, nxt = k, expected + (k + 1) * pei
    else:  # off the grid: the points before its window were skipped; the grid restarts at it
        skipped, nxt = math.ceil((d - delta - expected) / pei), d + pei
    points = [format_ts(expected + j * pei) for j in range(min(skipped, _MAX_CATCH_UP))]
    return Arrival(format_ts(nxt), due, points)


class TimeSeriesCSF:
    """timeSeries behaviour and its missing-data timer (module docstring)."""

    def __init__(self, ctx: Context, notify: Notify) -> None:
        """``notify(sub, points)``: the notifications of a net 8 subscription
        for ``points`` (the subscription CSF's, late-bound)."""
        self.ctx = ctx
        self.notify = notify
        self._due: dict[str, float] = {}

    def hooks(self) -> dict[int, TypeHooks]:
        """Hooks of timeSeries and timeSeriesInstance, by ``ty``."""
        return {TS_TY: TypeHooks(on_create=self._ts_create, on_update=self._ts_update),
                TSI_TY: TypeHooks(on_create=self._tsi_create, on_delete=instance_removed)}

    # -- hooks -------------------------------------------------------------------
    async def _ts_create(self, ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
        _check(doc)
        doc["cni"] = 0
        doc["cbs"] = 0
        if doc.get("mdd"):
            doc["mdlt"] = []
            doc["mdc"] = 0
        return []

    async def _ts_update(self, ctx: Context, req: Request, old: Doc, new: Doc, changed: dict[str, Any]) -> list[Op]:
        _check(new)
        if not _detecting(new):  # detection stops; what was found stays readable
            for key in ("_mdx", "_mdg", "_mdp", "_mdq"):
                new.pop(key, None)
        elif not old.get("mdd"):  # switched on: a fresh list, detection starts with the next instance
            new["mdlt"] = []
            new["mdc"] = 0
        return await evict_on_update(ctx, req, old, new, changed)

    async def _tsi_create(self, ctx: Context, req: Request, parent: Doc, doc: Doc) -> list[Op]:
        try:
            dgt = normalize_ts(doc["dgt"])
        except ValueError as exc:
            raise BadRequest(f"attribute 'dgt': {exc}") from None
        doc["dgt"] = dgt
        newest = parent.get("_mxd")
        if newest is None or dgt <= newest:  # out of order: look for the same dgt
            for tsi in await ctx.store.children(parent["ri"], TSI_TY):
                if tsi.get("dgt") == dgt:
                    raise Conflict(f"a timeSeriesInstance with dataGenerationTime {dgt} already exists "
                                   f"in '{parent['_srn']}' ({tsi['rn']})")
        ts = dict(parent)
        ts["st"] = ts.get("st", 0) + 1
        if newest is None or dgt > newest:
            ts["_mxd"] = dgt
        ops = await add_instance(ctx, ts, doc, content_size(doc["con"]), what="timeSeriesInstance")
        step = arrival(parent, dgt, parse_ts(doc["ct"])) if _detecting(parent) else None
        if step is not None:  # the next expected point (module docstring)
            ts["_mdg"], ts["_mdx"] = step.expected, step.due
            if step.skipped:  # found missing now: the timer records and notifies them at once
                ts["_mdp"] = [*(ts.get("_mdp") or []), *step.skipped][-_MAX_CATCH_UP:]
                ts["_mdq"] = parse_ts(doc["ct"])
        ops.append(Put(ts))
        return ops

    # -- the index and the timer -------------------------------------------------
    async def load(self) -> float | None:
        """At start-up: the index from the stored timeSeries (one scan); the
        first deadline, for the timer."""
        self._due = {d["ri"]: _due_at(d) for d in await self.ctx.store.lookup("ty", TS_TY)
                     if d.get("_mdx") is not None and _detecting(d)}
        return min(self._due.values(), default=None)

    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """Keep the index current from commit events; an instance's arrival
        answers with the deadline it sets (module docstring)."""
        deadlines: list[Deadline] = []
        for ev in events:
            ty = ev.doc.get("ty")
            if ty == TSI_TY and ev.kind == EventKind.CREATE_CHILD and ev.parent is not None:
                step = arrival(ev.parent, ev.doc["dgt"], parse_ts(ev.doc["ct"])) if _detecting(ev.parent) else None
                if step is not None:  # as the instance's hook decided (arrival is pure)
                    at = step.due
                    if step.skipped or ev.parent.get("_mdp"):
                        at = min(at, parse_ts(ev.doc["ct"]))
                    self._due[ev.parent["ri"]] = at
                    deadlines.append(Deadline(MISSING_DATA, at))
            elif ty == TS_TY and (ev.kind == EventKind.DELETE or
                                  (ev.kind == EventKind.UPDATE and not _detecting(ev.doc))):
                self._due.pop(ev.doc["ri"], None)
        return Outcome(deadlines=deadlines) if deadlines else None

    async def detect(self, now: float) -> float | None:
        """The timer's job: record what went missing by ``now`` and notify;
        the next deadline."""
        for ri in [ri for ri, at in self._due.items() if at <= now]:
            stored = await self.ctx.store.get(ri)
            if stored is None or not _detecting(stored) or stored.get("_mdx") is None:
                self._due.pop(ri, None)
                continue
            if _due_at(stored) > now:  # an instance came meanwhile
                self._due[ri] = _due_at(stored)
                continue
            ts = dict(stored)  # a stored document is never changed in place
            outcome = await self._missing(ts, now)
            await self.ctx.apply(outcome)
            self._due[ri] = _due_at(ts)  # only once recorded: a failed commit is retried at the next run
        return min(self._due.values(), default=None)

    async def _missing(self, ts: Doc, now: float) -> Outcome:
        """The outcome recording the points ``ts`` missed by ``now`` (``ts``
        is a private copy, updated in place)."""
        pei = ts["pei"] / 1000.0
        points: list[str] = list(ts.pop("_mdp", None) or ())  # skipped, as an instance showed (peid)
        ts.pop("_mdq", None)
        limit = len(points) + _MAX_CATCH_UP
        expected = parse_ts(ts["_mdg"])
        while ts["_mdx"] <= now and len(points) < limit:
            points.append(format_ts(expected))
            expected += pei
            ts["_mdx"] += pei
        if ts["_mdx"] <= now:  # stopped for long: the rest is skipped, not listed
            skipped = int((now - ts["_mdx"]) // pei) + 1
            expected += skipped * pei
            ts["_mdx"] += skipped * pei
        ts["_mdg"] = format_ts(expected)
        mdn = ts.get("mdn") or _DEFAULT_MDN
        mdlt = [*(ts.get("mdlt") or []), *points]
        if len(mdlt) > mdn:
            mdlt = mdlt[len(mdlt) - mdn:]
        ts["mdlt"] = mdlt
        ts["mdc"] = len(mdlt)
        sends: list[Notification] = []
        windows: dict[str, Any] = {}
        old_windows = ts.get("_mdw") or {}
        for sub in await self.ctx.store.children(ts["ri"], SUBSCRIPTION_TY):
            enc = sub.get("enc") or {}
            if NET_MISSING_DATA not in enc.get("net", ()):
                continue
            ready, window = _collect(enc.get("md"), old_windows.get(sub["ri"]), points, now)
            if window is not None:
                windows[sub["ri"]] = window
            for batch in ready:
                sends.extend(self.notify(sub, batch))
        if windows:
            ts["_mdw"] = windows
        else:
            ts.pop("_mdw", None)
        return Outcome(ops=[Put(ts)], sends=sends)


def _collect(md: dict[str, Any] | None, window: dict[str, Any] | None, points: list[str],
             now: float) -> tuple[list[list[str]], dict[str, Any] | None]:
    """Per subscription: the batches of points to send now and the window
    to keep (``enc.md``, module docstring)."""
    if not md:
        return ([points] if points else []), None
    num = int(md.get("num") or 1)
    dur = parse_duration(md["dur"]) if md.get("dur") else None
    start = window["start"] if window else now
    held: list[str] = list(window["pts"]) if window else []
    ready: list[list[str]] = []
    for point in points:
        if dur is not None and held and now - start > dur:
            held = []
        if not held:
            start = now
        held.append(point)
        if len(held) >= num:
            ready.append(held)
            held = []
    return ready, ({"start": start, "pts": held} if held else None)


def _check(doc: Doc) -> None:
    """``peid`` at most ``pei``/2 and less than ``mdt`` (TS-0001 9.6.36); ``mdd``
    needs ``pei`` (without it there is no expected time), and one of at least
    ``_MIN_DETECT_PEI_MS``: every period costs a run of the timer."""
    pei, peid, mdt = doc.get("pei"), doc.get("peid"), doc.get("mdt")
    if peid is not None and pei is not None and peid * 2 > pei:
        raise BadRequest(f"periodicIntervalDelta (peid) {peid} ms must be at most half the periodicInterval "
                         f"(pei) {pei} ms (TS-0001 9.6.36)")
    if peid is not None and mdt is not None and mdt <= peid:
        raise BadRequest(f"missingDataDetectTimer (mdt) {mdt} ms must be greater than the periodicIntervalDelta "
                         f"(peid) {peid} ms (TS-0001 9.6.36)")
    if not doc.get("mdd"):
        return
    if doc.get("pei") is None:
        raise BadRequest("missingDataDetect (mdd) needs periodicInterval (pei): the interval at which "
                         "timeSeriesInstances are expected")
    if doc["pei"] < _MIN_DETECT_PEI_MS:
        raise BadRequest(f"periodicInterval (pei) {doc['pei']} ms is too short for missingDataDetect (mdd): "
                         f"this CSE detects missing data at intervals of {_MIN_DETECT_PEI_MS} ms or more")

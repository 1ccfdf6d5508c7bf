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
absent is 0; ``pei`` at least 100 ms, else 4000). A missing point is its
expected ``dgt``: appended to ``mdlt`` (at most ``mdn`` entries, 1000 without
``mdn``, the oldest dropped; ``mdc`` is how many it holds),
and the next one is expected a ``pei`` later, until an instance arrives.
Detection starts with the first instance and stops when ``mdd`` goes false.

Subscriptions with ``net`` 8 hear of missing points as ``m2m:tsn``
(``mdlt``: the points, ``mdc``: their number). With ``enc.md`` {``num``,
``dur``} the points are collected per subscription and sent once ``num``
have gone missing within ``dur`` of the first of them (the window restarts
after each notification and when ``dur`` passes); without it each point is
sent at once.

The timer: the next detection time of each timeSeries (``_mdx``, epoch
seconds) and its expected ``dgt`` (``_mdg``) are stored on it, in the
commit of the instance that set them. :class:`TimeSeriesCSF` keeps an index
of them (ri -> time), read from the store at start-up (so detection
survives a restart) and kept current from commit events, whose outcomes
carry the :class:`~cse.core.outcome.Deadline` poking the ``missing-data``
timer. The timer's job, :meth:`TimeSeriesCSF.detect`, re-reads each due
timeSeries: the store decides, the index only says where to look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def _next_check(ts: Doc, arrival: float) -> float:
    """When an instance is declared missing if none arrives after ``arrival``."""
    return arrival + (int(ts["pei"]) + int(ts.get("mdt") or 0)) / 1000.0


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
            new.pop("_mdx", None)
            new.pop("_mdg", None)
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
        if _detecting(ts):  # the next point is expected a pei after the newest one
            ts["_mdg"] = format_ts(parse_ts(ts["_mxd"]) + ts["pei"] / 1000.0)
            ts["_mdx"] = _next_check(ts, parse_ts(doc["ct"]))
        ops.append(Put(ts))
        return ops

    # -- the index and the timer -------------------------------------------------
    async def load(self) -> float | None:
        """At start-up: the index from the stored timeSeries (one scan); the
        first deadline, for the timer."""
        self._due = {d["ri"]: float(d["_mdx"]) for d in await self.ctx.store.lookup("ty", TS_TY)
                     if d.get("_mdx") is not None and _detecting(d)}
        return min(self._due.values(), default=None)

    async def on_events(self, events: Sequence[Event]) -> Outcome | None:
        """Keep the index current from commit events; an instance's arrival
        answers with the deadline it sets (module docstring)."""
        deadlines: list[Deadline] = []
        for ev in events:
            ty = ev.doc.get("ty")
            if ty == TSI_TY and ev.kind == EventKind.CREATE_CHILD and ev.parent is not None:
                if _detecting(ev.parent):
                    at = _next_check(ev.parent, parse_ts(ev.doc["ct"]))
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
            if stored["_mdx"] > now:  # an instance came meanwhile
                self._due[ri] = stored["_mdx"]
                continue
            ts = dict(stored)  # a stored document is never changed in place
            outcome = await self._missing(ts, now)
            await self.ctx.apply(outcome)
            self._due[ri] = ts["_mdx"]  # only once recorded: a failed commit is retried at the next run
        return min(self._due.values(), default=None)

    async def _missing(self, ts: Doc, now: float) -> Outcome:
        """The outcome recording the points ``ts`` missed by ``now`` (``ts``
        is a private copy, updated in place)."""
        pei = ts["pei"] / 1000.0
        points: list[str] = []
        expected = parse_ts(ts["_mdg"])
        while ts["_mdx"] <= now and len(points) < _MAX_CATCH_UP:
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
    """``mdd`` needs ``pei`` (without it there is no expected time), and one
    of at least ``_MIN_DETECT_PEI_MS``: every period costs a run of the timer."""
    if not doc.get("mdd"):
        return
    if doc.get("pei") is None:
        raise BadRequest("missingDataDetect (mdd) needs periodicInterval (pei): the interval at which "
                         "timeSeriesInstances are expected")
    if doc["pei"] < _MIN_DETECT_PEI_MS:
        raise BadRequest(f"periodicInterval (pei) {doc['pei']} ms is too short for missingDataDetect (mdd): "
                         f"this CSE detects missing data at intervals of {_MIN_DETECT_PEI_MS} ms or more")

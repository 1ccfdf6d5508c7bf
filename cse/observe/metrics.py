"""Prometheus metrics of one CSE, in its own :class:`CollectorRegistry`.

Several CSEs may run in one process (tests, benchmarks), so nothing goes to
prometheus_client's global registry. The request path pays for two list-item
increments and one float addition: the counts live in plain lists owned by
this object (one event loop thread updates them, so no lock) and become
Prometheus families only when scraped; prometheus_client's own ``Counter``
and ``Histogram`` take a lock and walk the buckets on every observation,
which cost a few per cent of a RETRIEVE. Everything read from the store is
also taken once per scrape (:mod:`cse.observe.state`).

Label values are bounded: ``op`` is one of the five operations, ``ty`` a
declared resource type's short name (else ``-``), ``rsc`` a status code
this CSE knows (else ``other``): a remote CSE's answer cannot grow the
series without bound (docs/security.md "Limits").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from cse.core.errors import RSC
from cse.core.messages import Operation, Request, Response

from .state import Snapshot

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_KNOWN_RSC = frozenset(int(r) for r in RSC)
_OPS = {int(op): op.name.lower() for op in Operation}
_CACHED = 4096  # distinct (op, ty, root, rsc) keys whose series are cached


class _State(Collector):
    """The gauges and totals of the last :class:`Snapshot` (set just before a scrape)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def show(self, snapshot: Snapshot) -> None:
        """Report ``snapshot`` at the next collection (right after: rendering has no await)."""
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap is None:
            return
        yield GaugeMetricFamily("cse_ready", "1 when the CSE is ready for traffic (GET /health answers 200)",
                                value=1 if snap.ready else 0)
        yield GaugeMetricFamily("cse_store_writable", "1 when the store can write", value=int(snap.store_writable))
        if snap.registrar is not None:
            yield GaugeMetricFamily("cse_registrar_registered", "1 when registered with the registrar "
                                    "(at its last check)", value=int(snap.registrar))
        yield GaugeMetricFamily("cse_notifications_pending", "notifications queued, not yet delivered",
                                value=snap.notifications_pending)
        for name, value in sorted(snap.notifications.items()):
            yield CounterMetricFamily(f"cse_notifications_{name}", f"notifications {name} since start",
                                      value=value)
        yield GaugeMetricFamily("cse_stored_requests", "session-based requests held by store-and-forward",
                                value=snap.stored_requests)
        sessions = GaugeMetricFamily("cse_sessions", "session resources hosted here, by state", labels=["state"])
        for state, n in sorted(snap.sessions.items()):
            sessions.add_metric([state], n)
        yield sessions
        yield GaugeMetricFamily("cse_store_resources", "documents in the store", value=snap.resources)
        yield GaugeMetricFamily("cse_http_connections", "HTTP connections open", value=snap.connections)


class _Histogram:
    """Observations bucketed as Prometheus does (``le``: upper bound inclusive)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        """Add this histogram's cumulative buckets, as a series of ``family``."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            buckets.append((bound, running))
        family.add_metric(labels, buckets, self.total)


class _Requests(Collector):
    """``cse_requests_total``, ``cse_request_duration_seconds`` and
    ``cse_store_commit_seconds``, from counts kept in plain Python."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], list[int]] = {}  # labels -> [n]: one shared cell
        self.latency: dict[str, _Histogram] = {}
        self.commit = _Histogram(_COMMIT_BUCKETS)

    def series(self, op: str, ty: str, rsc: str) -> tuple[list[int], _Histogram]:
        """The count cell of ``(op, ty, rsc)`` and the latency histogram of ``op``."""
        cell = self.counts.setdefault((op, ty, rsc), [0])
        latency = self.latency.get(op)
        if latency is None:
            latency = self.latency[op] = _Histogram(_LATENCY_BUCKETS)
        return cell, latency

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("cse_requests", "requests answered, by operation, resource type and rsc",
                                       labels=["op", "ty", "rsc"])
        for labels, cell in sorted(self.counts.items()):
            requests.add_metric(list(labels), cell[0])
        yield requests
        latency = HistogramMetricFamily("cse_request_duration_seconds", "time to answer a request, by operation",
                                        labels=["op"])
        for op, histogram in sorted(self.latency.items()):
            histogram.add_to(latency, [op])
        yield latency
        commit = HistogramMetricFamily("cse_store_commit_seconds", "time for a store commit (the journal write "
                                       "of a durable store)")
        self.commit.add_to(commit, [])
        yield commit


class Metrics:
    """The metrics of one CSE (module docstring)."""

    def __init__(self, type_names: Mapping[int, str], root_names: Mapping[str, str]) -> None:
        """``type_names``: ``ty`` -> short name; ``root_names``: JSON root
        (``m2m:cnt``) -> short name, of the declared resource types."""
        self.registry = CollectorRegistry(auto_describe=False)
        self._type_names = dict(type_names)
        self._root_names = dict(root_names)
        self._requests = _Requests()
        self.registry.register(self._requests)
        self._state = _State()
        self.registry.register(self._state)
        self._series: dict[tuple[object, ...], tuple[list[int], _Histogram]] = {}

    def request(self, req: Request | None, resp: Response, seconds: float) -> None:
        """Count one answered request (the request path: keep it cheap);
        ``req`` None: refused before it was a oneM2M request (op ``-``).

        The pair of series is cached by what the labels are computed from
        (at most :data:`_CACHED` such keys: past them, computed each time)."""
        if req is None:
            raw: tuple[object, ...] = (None, None, None, resp.rsc)
        else:
            pc = resp.pc
            root = next(iter(pc)) if req.ty is None and type(pc) is dict and len(pc) == 1 else None
            raw = (req.op, req.ty, root, resp.rsc)
        pair = self._series.get(raw)
        if pair is None:
            pair = self._pair(raw)
            if len(self._series) < _CACHED:
                self._series[raw] = pair
        pair[0][0] += 1
        pair[1].observe(seconds)

    def _pair(self, raw: tuple[object, ...]) -> tuple[list[int], _Histogram]:
        """The request count cell and latency histogram for ``(op, ty, root, rsc)``, labels bounded."""
        op, ty, root, rsc = raw
        op_name = _OPS.get(op, "-") if isinstance(op, int) else "-"
        if isinstance(ty, int):
            ty_name = self._type_names.get(ty, "-")
        else:
            ty_name = self._root_names.get(root, "-") if isinstance(root, str) else "-"
        rsc_name = str(rsc) if rsc in _KNOWN_RSC else "other"
        return self._requests.series(op_name, ty_name, rsc_name)

    def commit(self, seconds: float) -> None:
        """One store commit took ``seconds`` (the executor's observer)."""
        self._requests.commit.observe(seconds)

    def render(self, snapshot: Snapshot) -> bytes:
        """The text exposition of everything, with ``snapshot`` as the gauges."""
        self._state.show(snapshot)
        return generate_latest(self.registry)

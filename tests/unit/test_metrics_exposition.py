"""The request metrics kept in plain Python expose exactly what
prometheus_client's own Counter and Histogram would for the same
observations (cse.observe.metrics keeps them cheap on the request path)."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cse.core.messages import Operation, Response
from cse.observe import metrics as metrics_module
from cse.observe.metrics import Metrics
from cse.observe.state import Snapshot


class _Req:
    def __init__(self, op: int, ty: int | None) -> None:
        self.op = op
        self.ty = ty


def _samples(text: bytes, names: set[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name in names:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_counts_and_buckets_match_prometheus_client() -> None:
    rng = random.Random(7)
    ours = Metrics({3: "cnt", 4: "cin"}, {"m2m:cnt": "cnt"})
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("cse_requests", "x", ["op", "ty", "rsc"], registry=registry)
    latency = Histogram("cse_request_duration_seconds", "x", ["op"],
                        buckets=metrics_module._LATENCY_BUCKETS, registry=registry)
    commit = Histogram("cse_store_commit_seconds", "x", buckets=metrics_module._COMMIT_BUCKETS,
                       registry=registry)
    bounds = list(metrics_module._LATENCY_BUCKETS)
    for _ in range(2000):
        op = rng.choice([Operation.CREATE, Operation.RETRIEVE, Operation.DELETE])
        ty = 3 if op == Operation.CREATE else None
        rsc = rng.choice([2000, 2001, 4004, 9999])
        seconds = rng.choice(bounds) if rng.random() < 0.3 else rng.uniform(0, 12)  # edges included
        ours.request(_Req(int(op), ty), Response(rsc, pc={"m2m:cnt": {}}), seconds)
        counter.labels(op.name.lower(), "cnt", str(rsc) if rsc != 9999 else "other").inc()
        latency.labels(op.name.lower()).observe(seconds)
        took = rng.choice(metrics_module._COMMIT_BUCKETS) if rng.random() < 0.3 else rng.uniform(0, 2)
        ours.commit(took)
        commit.observe(took)
    names = {"cse_requests_total", "cse_request_duration_seconds_bucket", "cse_request_duration_seconds_count",
             "cse_store_commit_seconds_bucket", "cse_store_commit_seconds_count"}
    expected = _samples(generate_latest(registry), names)
    got = _samples(ours.render(Snapshot(store_writable=True, registrar=None, notifications_pending=0)), names)
    assert got == expected
    assert sum(v for (n, _), v in got.items() if n == "cse_requests_total") == 2000

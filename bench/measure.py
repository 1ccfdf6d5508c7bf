"""The measuring context shared by the scenarios: run options, the load tool
(wrk or the asyncio client), warm-up, and the per-scenario record with CPU
(utime+stime from /proc) and RSS of the CSE processes involved."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .asyncload import run_spec
from .common import LoadResult, LoadSpec
from .procs import Proc, ProcSet, cpu_seconds, rss_mb
from .wrk import run_wrk

__all__ = ["Options", "Bench"]


@dataclass
class Options:
    """Sizes and durations of one run (``quick`` shrinks them all)."""

    quick: bool = False
    duration: float = 5.0         # measured seconds per throughput scenario
    create_duration: float = 3.0  # measured seconds of the CREATE windows (they grow the store)
    warmup: float = 1.0
    connections: int = 32         # wrk connections (the ceiling uses the same)
    workers: int = 32             # asyncio workers of the session scenarios
    resident: int = 100_000       # contentInstances resident for the "100k" scenarios
    start_at: int = 1_000         # resident contentInstances for the "1k" CREATE
    discovery: int = 10_000       # resources in the discovery subtree
    sf_requests: int = 10_000     # requests stored, then flushed
    wrk: str | None = None        # path of wrk, None: the asyncio client everywhere

    @classmethod
    def make(cls, quick: bool, wrk: str | None) -> Options:
        if not quick:
            return cls(wrk=wrk)
        return cls(quick=True, duration=1.0, create_duration=1.0, warmup=0.3, connections=16, workers=16,
                   resident=3_000, start_at=300, discovery=500, sf_requests=200, wrk=wrk)


@dataclass
class Bench:
    """Options, the processes of the run and the results so far."""

    opts: Options
    procs: ProcSet
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def tool(self) -> str:
        return "wrk" if self.opts.wrk else "asyncio"

    async def load(self, url: str, spec: LoadSpec, duration: float | None = None) -> LoadResult:
        """One load run of ``spec`` with the run's tool and connection count."""
        d = duration if duration is not None else self.opts.duration
        if self.opts.wrk:
            return await run_wrk(self.opts.wrk, url, spec, d, self.opts.connections)
        return await run_spec(url, spec, self.opts.connections, duration=d)

    async def warm(self, url: str, spec: LoadSpec) -> None:
        """A short unmeasured run (connections, caches, allocator)."""
        await self.load(url, spec, self.opts.warmup)

    async def measure(self, name: str, procs: dict[str, Proc], run: Callable[[], Awaitable[LoadResult]],
                      **extra: Any) -> dict[str, Any]:
        """Run ``run`` and record its result with each process's CPU seconds and
        % of one core over the run, and its RSS afterwards; also the client's CPU."""
        before = {k: cpu_seconds(p.pid) for k, p in procs.items()}
        own = os.times()
        t0 = time.perf_counter()
        res = await run()
        wall = time.perf_counter() - t0
        own2 = os.times()
        rec: dict[str, Any] = res.as_dict()
        rec["cpu"] = {k: {"cpu_s": round(cpu_seconds(p.pid) - before[k], 2),
                          "pct_core": round(100 * (cpu_seconds(p.pid) - before[k]) / wall, 1)}
                      for k, p in procs.items()}
        for v in rec["cpu"].values():
            v["ms_per_req"] = round(1000 * v["cpu_s"] / res.requests, 4) if res.requests else 0.0
        rec["cpu"]["bench_client"] = {
            "cpu_s": round((own2.user + own2.system) - (own.user + own.system), 2),
            "pct_core": round(100 * ((own2.user + own2.system) - (own.user + own.system)) / wall, 1)}
        rec["rss_mb"] = {k: round(rss_mb(p.pid), 1) for k, p in procs.items()}
        rec.update(extra)
        self.results[name] = rec
        print(f"  {name:<30} {rec['req_per_s']:>9.1f} req/s  p50 {rec['p50_ms']:.2f} ms  "
              f"p99 {rec['p99_ms']:.2f} ms  errors {rec['errors']}", flush=True)
        return rec

    def record(self, name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
        """A scenario whose result is one value (seconds, MB)."""
        rec = {"value": round(value, 3), "unit": unit, "errors": 0, **extra}
        self.results[name] = rec
        print(f"  {name:<30} {value:>9.3f} {unit}", flush=True)
        return rec

"""The asyncio load generator: ``workers`` concurrent loops calling one
request coroutine, for a duration or a total count.

Used where every request must differ (session-based requests: fresh
request ID, OT and MAC each time, built by the SDK), for exact-count bulk
loading, and instead of wrk when wrk is absent (CI). Its own ceiling is
measured against the bare aiohttp server in the same run, so one can see
whether it, and not the CSE, limits a scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from .common import LoadResult, LoadSpec, percentile

__all__ = ["run_workers", "run_spec", "client_session"]

Call = Callable[[], Awaitable[bool]]


def client_session(connections: int) -> aiohttp.ClientSession:
    """An aiohttp session with at most ``connections`` pooled connections, no timeout cap below 30 s."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def run_workers(call: Call, workers: int, *, duration: float | None = None, total: int | None = None,
                      tool: str = "asyncio") -> LoadResult:
    """Run ``call`` in ``workers`` loops until ``duration`` s passed or ``total``
    calls were started; ``call`` returns True for success (an exception counts
    as an error too). Latency per call is recorded."""
    if (duration is None) == (total is None):
        raise ValueError("give exactly one of duration and total")
    lat: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    started = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + duration if duration is not None else float("inf")

    async def worker() -> None:
        nonlocal errors, started
        while True:
            if total is not None:
                if started >= total:
                    return
                started += 1
            elif loop.time() >= end:
                return
            s = time.perf_counter()
            try:
                ok = await call()
            except Exception as exc:  # counted, the run goes on
                ok = False
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            lat.append(time.perf_counter() - s)
            if not ok:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = loop.time() - t0
    lat.sort()
    return LoadResult(tool=tool, connections=workers, requests=len(lat), errors=errors, duration_s=elapsed,
                      p50_ms=percentile(lat, 50) * 1000, p99_ms=percentile(lat, 99) * 1000,
                      mean_ms=(sum(lat) / len(lat) * 1000) if lat else 0.0, error_detail=kinds)


async def run_spec(base_url: str, spec: LoadSpec, connections: int, *, duration: float | None = None,
                   total: int | None = None) -> LoadResult:
    """Repeat ``spec`` against ``base_url`` (the asyncio counterpart of wrk)."""
    body = spec.body.encode() if spec.body else None
    urls = [base_url + p for p in spec.paths]
    i = 0
    async with client_session(connections) as s:
        async def call() -> bool:
            nonlocal i
            url = urls[i % len(urls)]
            i += 1
            async with s.request(spec.method, url, headers=spec.headers, data=body) as r:
                await r.read()
                return r.status in spec.ok_status
        return await run_workers(call, connections, duration=duration, total=total)

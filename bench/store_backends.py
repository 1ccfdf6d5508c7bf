"""CPU per RETRIEVE and per CREATE through the whole pipeline, embedded (TinyDB) vs PostgreSQL store.

Why: the PostgreSQL store (docs/configuration.md "PostgreSQL store") adds a
database round trip to every commit; this says what a request then costs
in CPU -- in the CSE process and in the PostgreSQL server processes
serving it -- and in wall time, with the HTTP binding left out (requests go
straight to ``CSE.handle`` in this process, so only the pipeline and the
store are measured).

Run: ``python bench/store_backends.py [N] [--dsn postgresql://...]``
(default N=2000, the test database at 127.0.0.1:5432). For each backend: N
CREATEs of a contentInstance one after the other, N RETRIEVEs of them, then
N CREATEs 16 at a time (group commit). ``pg-direct`` is
:class:`~cse.store.pg_store.PgDirectStore` (every read a query), what
several workers run on (with a write gate, docs/scaling.md): shown for what
reads from the database cost, without the concurrent run (without that gate
it would lose cni updates, cse.store.pg_store docstring). ``cse µs`` is this process's CPU
time per request (``time.process_time``), ``pg µs`` the CPU time of the
PostgreSQL backends of this run's connections (from /proc, so only on the
same machine), ``wall µs`` the elapsed time per request. Uses a schema of
its own, dropped at the end, and a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import asyncpg

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation, Request
from cse.core.ports import Store
from cse.store.pg_store import PgDirectStore, PostgresStore
from cse.store.tinydb_store import TinyDBStore

_rqi = itertools.count()


def _ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class PgCpu:
    """CPU seconds of the server backends serving this run's connections."""

    def __init__(self, dsn: str, app: str) -> None:
        self.dsn, self.app = dsn, app

    async def seconds(self) -> float:
        conn = await asyncpg.connect(self.dsn)
        try:
            pids = [r[0] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1", self.app)]
        finally:
            await conn.close()
        total = 0
        for pid in pids:
            try:
                total += _ticks(pid)
            except OSError:
                pass
        return total / os.sysconf("SC_CLK_TCK")


async def measure(n: int, run: Callable[[int], Awaitable[None]], pg: PgCpu | None) -> tuple[float, float, float]:
    pg0 = await pg.seconds() if pg else 0.0
    c0, w0 = time.process_time(), time.perf_counter()
    await run(n)
    c1, w1 = time.process_time(), time.perf_counter()
    pg1 = await pg.seconds() if pg else 0.0
    return (c1 - c0) / n * 1e6, (pg1 - pg0) / n * 1e6, (w1 - w0) / n * 1e6


async def bench(name: str, store: Store, n: int, pg: PgCpu | None, tmp: str) -> None:
    config = load_config(None, db=os.path.join(tmp, f"{name}.db"))
    cse = CSE(config, store=store)
    await cse.start(serve_http=False)
    try:
        async def call(op: Operation, to: str, fr: str, ty: int | None = None, pc: Any = None) -> Any:
            r = await cse.handle(Request(op=op, to=to, fr=fr, rqi=f"b{next(_rqi)}", ty=ty, pc=pc))
            assert r.rsc in (2000, 2001), (r.rsc, r.pc)
            return r.pc

        ae = await call(Operation.CREATE, "cse-in", "C", 2,
                        {"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
        aei = ae["m2m:ae"]["aei"]
        await call(Operation.CREATE, "cse-in/app", aei, 3, {"m2m:cnt": {"rn": "data", "mni": 10 * n}})

        async def creates(k: int) -> None:
            for i in range(k):
                await call(Operation.CREATE, "cse-in/app/data", aei, 4, {"m2m:cin": {"rn": f"s{i}", "con": "21.5"}})

        async def retrieves(k: int) -> None:
            for i in range(k):
                await call(Operation.RETRIEVE, f"cse-in/app/data/s{i % n}", aei)

        async def concurrent(k: int) -> None:
            it = iter(range(k))

            async def worker() -> None:
                for i in it:
                    await call(Operation.CREATE, "cse-in/app/data", aei, 4, {"m2m:cin": {"rn": f"p{i}", "con": "1"}})
            await asyncio.gather(*(worker() for _ in range(16)))

        runs: list[tuple[str, Callable[[int], Awaitable[None]]]] = [("CREATE seq", creates), ("RETRIEVE", retrieves)]
        if not isinstance(store, PgDirectStore):  # concurrent CREATEs there would lose cni updates
            runs.append(("CREATE x16", concurrent))
        for label, fn in runs:
            cpu, pg_cpu, wall = await measure(n, fn, pg)
            pg_text = f"{pg_cpu:8.0f}" if pg else "       -"
            print(f"{name:10s} {label:11s} cse µs {cpu:7.0f}  pg µs {pg_text}  wall µs {wall:8.0f}", flush=True)
    finally:
        await cse.stop()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("n", nargs="?", type=int, default=2000)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    schema = "bench_" + uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory() as tmp:
        await bench("tinydb", TinyDBStore(os.path.join(tmp, "t.db")), args.n, None, tmp)
        for name, kind in (("postgresql", PostgresStore), ("pg-direct", PgDirectStore)):
            try:
                await bench(name, kind(args.dsn, schema=schema), args.n, PgCpu(args.dsn, "cse"), tmp)
            finally:
                conn = await asyncpg.connect(args.dsn)
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                finally:
                    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

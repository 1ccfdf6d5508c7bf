"""Micro-benchmark of the store backends: µs per operation at 1k/50k/300k docs.

Why: the store sits under every request; this shows that per-operation cost
stays flat as the table grows (no O(N) work) and what group commit buys.

Run: ``python bench/store_micro.py [sizes...]`` (default 1000 50000 300000).
Rows: ``put``/``replace`` = IndexedDocs.apply of one Put (the in-memory
cost both backends pay), ``get``/``path``/``children`` (100 kids)/``edge`` =
awaited store reads, ``commit seq`` = one awaited single-Put commit at a
time, ``commit x2000`` = 2000 concurrent single-Put commits (group commit;
median of 7 rounds), ``full gc ms`` = one full ``gc.collect()`` with this
many documents alive (the pause Python's collector adds now and then,
whatever the store does), ``reopen s`` = close + open of the TinyDB store
(snapshot load + index build), in seconds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cse.core.ports import Doc, Put
from cse.store.memory import MemoryStore
from cse.store.tinydb_store import TinyDBStore

KIDS = 100  # children per container


def cin(pi: str, ri: str) -> Doc:
    return {
        "ri": ri, "ty": 4, "rn": ri, "pi": pi, "_srn": f"cse-in/{pi}/{ri}",
        "ct": "20240101T000000", "lt": "20240101T000000", "et": "20990101T000000",
        "st": 1, "cs": 11, "cnf": "text/plain:0", "con": "21.5", "lbl": ["bench"],
    }


def cnt(ri: str) -> Doc:
    return {"ri": ri, "ty": 3, "rn": ri, "pi": "id-in", "_srn": f"cse-in/{ri}", "aei": None}


async def populate(store: Any, n: int) -> list[str]:
    base = {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in"}
    containers = [f"cnt{i}" for i in range(max(1, n // KIDS))]
    batch = [Put(base)]
    for c in containers:
        batch.append(Put(cnt(c)))
        for k in range(KIDS - 1):
            batch.append(Put(cin(c, f"{c}-{k}")))
            if len(batch) >= 1000:
                await store.commit(batch)
                batch = []
    if batch:
        await store.commit(batch)
    return containers


def per_op(seconds: float, ops: int) -> str:
    return f"{seconds / ops * 1e6:8.2f}"


async def timed(ops: int, fn: Callable[[int], Awaitable[Any]]) -> str:
    start = time.perf_counter()
    for i in range(ops):
        await fn(i)
    return per_op(time.perf_counter() - start, ops)


async def bench(store: MemoryStore | TinyDBStore, n: int,
                reopen: Callable[[], Awaitable[Any]] | None) -> dict[str, str]:
    containers = await populate(store, n)
    if isinstance(store, TinyDBStore):
        await store.flush()  # let a compaction triggered by populating finish
    idx = store._idx  # private on purpose: the in-memory cost is what we measure
    out: dict[str, str] = {"docs": str(await store.count())}
    m = 20_000
    start = time.perf_counter()
    for i in range(m):
        idx.apply([Put(cin("cnt0", f"x{i}"))])
    out["put"] = per_op(time.perf_counter() - start, m)
    start = time.perf_counter()
    for i in range(m):
        idx.apply([Put({**cin("cnt0", f"x{i}"), "con": "changed"})])
    out["replace"] = per_op(time.perf_counter() - start, m)
    ris = [f"{containers[i % len(containers)]}-{i % (KIDS - 1)}" for i in range(m)]
    out["get"] = await timed(m, lambda i: store.get(ris[i]))
    paths = [f"cse-in/{r.split('-')[0]}/{r}" for r in ris]
    out["path"] = await timed(m, lambda i: store.get_by_path(paths[i]))
    c = containers[-1]
    out["children"] = await timed(5000, lambda i: store.children(c, 4))
    out["edge"] = await timed(m, lambda i: store.edge_child(c, 4, True))
    out["commit seq"] = await timed(2000, lambda i: store.commit([Put(cin(c, f"s{i}"))]))
    rounds = []
    for r in range(7):  # median: a full GC pass may land in any one round
        start = time.perf_counter()
        await asyncio.gather(*(store.commit([Put(cin(c, f"g{r}-{i}"))]) for i in range(2000)))
        rounds.append(time.perf_counter() - start)
    out["commit x2000"] = per_op(sorted(rounds)[len(rounds) // 2], 2000)
    start = time.perf_counter()
    gc.collect()
    out["full gc ms"] = f"{(time.perf_counter() - start) * 1e3:8.1f}"
    if reopen is not None:
        out["reopen s"] = f"{await reopen():8.2f}"
    return out


async def run(sizes: list[int]) -> None:
    rows: list[tuple[str, dict[str, str]]] = []
    for n in sizes:
        rows.append((f"memory {n}", await bench(MemoryStore(), n, None)))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "cse.json")
            store = TinyDBStore(path)
            await store.open()

            async def reopen(store: TinyDBStore = store, path: str = path) -> float:
                await store.close()
                start = time.perf_counter()
                again = TinyDBStore(path)
                await again.open()
                took = time.perf_counter() - start
                await again.close()
                return took

            rows.append((f"tinydb {n}", await bench(store, n, reopen)))
    cols = list(rows[-1][1])
    print(f"{'backend':>14} " + " ".join(f"{c:>12}" for c in cols) + "   (µs per op)")
    for name, data in rows:
        print(f"{name:>14} " + " ".join(f"{data.get(c, '-'):>12}" for c in cols))


if __name__ == "__main__":
    asyncio.run(run([int(a) for a in sys.argv[1:]] or [1_000, 50_000, 300_000]))

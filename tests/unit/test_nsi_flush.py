"""nsi counting never loses a count (cse/csf/sub_monitor.py): its write is a
read-modify-write of the subscription, so two flushes -- or a flush and
another writer -- must never interleave between the read and the commit.
A store whose reads suspend (as the store of several workers does,
cse.store.pg_store ``PgDirectStore``) makes the interleaving happen if
nothing prevents it; the in-memory stores never suspend there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from cse.core.outcome import Outcome
from cse.core.ports import Doc, Put
from cse.csf.sub_monitor import NotificationStats, Watched

SUB = {"ri": "sub1", "ty": 23, "pi": "cnt1", "nse": True, "nsi": []}


class SlowStore:
    """Reads and commits that suspend (a store answering from a database)."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {SUB["ri"]: dict(SUB)}

    async def get(self, ri: str) -> Doc | None:
        await asyncio.sleep(0)
        return self.docs.get(ri)

    async def lookup(self, attr: str, value: Any) -> list[Doc]:
        return [d for d in self.docs.values() if d.get(attr) == value]


class Ctx:
    def __init__(self) -> None:
        self.store = SlowStore()
        self.gate = asyncio.Lock()
        self.asked = asyncio.Event()  # a flush asked for the gate
        self.commits_outside_gate = 0

    async def apply(self, outcome: Outcome) -> None:
        await asyncio.sleep(0)
        if not self.gate.locked():
            self.commits_outside_gate += 1
        ops: Sequence[Any] = outcome.ops
        for op in ops:
            assert isinstance(op, Put)
            self.store.docs[op.doc["ri"]] = op.doc


async def stats_for(ctx: Ctx) -> NotificationStats:
    watched = Watched(ctx)  # type: ignore[arg-type]
    await watched.load()

    @asynccontextmanager
    async def gate() -> AsyncIterator[None]:
        ctx.asked.set()
        async with ctx.gate:
            yield

    return NotificationStats(ctx, watched, flush_after=3600, serialize=gate)  # type: ignore[arg-type]


async def test_concurrent_flushes_of_one_subscription_keep_every_count() -> None:
    ctx = Ctx()
    stats = await stats_for(ctx)
    flushes = []
    for answered in (True, False, True):  # three batches, each flushed while the others are in flight
        stats.record("sub1", "http://127.0.0.1:9/n", answered)
        flushes.append(asyncio.create_task(stats.flush()))
        await asyncio.sleep(0)
    await asyncio.gather(*flushes)
    await stats.stop()
    assert ctx.store.docs["sub1"]["nsi"] == [{"tg": "http://127.0.0.1:9/n", "rqs": 3, "rsr": 2}]
    assert ctx.commits_outside_gate == 0  # read and commit under the write gate of several workers


async def test_a_writer_holding_the_gate_is_not_overwritten() -> None:
    """An UPDATE of the subscription (another worker's, under the gate) that
    lands while a flush waits keeps its change: the flush reads after it."""
    ctx = Ctx()
    stats = await stats_for(ctx)
    stats.record("sub1", "http://127.0.0.1:9/n", True)
    async with ctx.gate:
        flush = asyncio.create_task(stats.flush())
        await asyncio.wait_for(ctx.asked.wait(), 5)  # the flush waits for the gate
        ctx.store.docs["sub1"] = {**ctx.store.docs["sub1"], "nu": ["http://127.0.0.1:9/other"]}
    await flush
    await stats.stop()
    doc = ctx.store.docs["sub1"]
    assert doc["nu"] == ["http://127.0.0.1:9/other"] and doc["nsi"][0]["rqs"] == 1, doc

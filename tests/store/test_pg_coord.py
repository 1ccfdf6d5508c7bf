"""The write gate and the job leaderships of workers on one PostgreSQL schema (cse.store.pg_coord).

Why: the workers of one CSE (docs/scaling.md) must never run two writers'
read-compute-commit at once (a lost ``cni`` update), each job must run in
one worker only and pass to another when its worker's connection dies, and
a gate handed from one writer to the next of the same worker must not stay
locked when that next writer goes away. In-process, two coordinators
playing two workers; the real processes are tests/e2e/test_pg_workers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cse.store.pg_coord import GRACE_S, HOLD_MAX, PgCoordinator
from tests.pg import PG_DSN, pg_schema


@pytest.fixture
async def pair() -> AsyncIterator[tuple[PgCoordinator, PgCoordinator]]:
    async with pg_schema() as schema:
        a, b = PgCoordinator(PG_DSN, schema), PgCoordinator(PG_DSN, schema)
        await a.open()
        await b.open()
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()


async def test_one_worker_at_a_time_in_the_gate(pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    """Writers of two workers are never in the gate together; writers of one
    worker may be (as in one process: each reads and applies without
    suspending, then waits for its write)."""
    inside = {0: 0, 1: 0}
    both, together, counter = 0, 0, 0

    async def write(w: int) -> None:
        nonlocal both, together, counter
        async with pair[w].gate():
            inside[w] += 1
            both += inside[0] > 0 and inside[1] > 0
            together = max(together, inside[w])
            counter += 1  # read-compute-apply without suspending
            await asyncio.sleep(0.001)  # the write to the database
            inside[w] -= 1

    await asyncio.gather(*(write(i % 2) for i in range(80)))
    assert (counter, both) == (80, 0)
    assert together > 1  # one worker's writers shared its turn


async def test_a_busy_worker_lets_the_other_in_after_a_turn(pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    a, b = pair
    stop = asyncio.Event()
    entered_a = 0

    async def busy() -> None:
        nonlocal entered_a
        while not stop.is_set():
            async with a.gate():
                entered_a += 1
                await asyncio.sleep(0)

    writers = [asyncio.create_task(busy()) for _ in range(8)]
    try:
        async with asyncio.timeout(10):
            async with b.gate():
                pass
        assert entered_a <= 3 * HOLD_MAX  # b got in after a's turn, not after a went idle
    finally:
        stop.set()
        await asyncio.gather(*writers)


async def test_the_gate_syncs_when_it_takes_the_lock_only() -> None:
    synced = 0

    async def sync() -> None:
        nonlocal synced
        synced += 1

    async with pg_schema() as schema:
        coord = PgCoordinator(PG_DSN, schema, sync=sync)
        await coord.open()
        try:
            release = asyncio.Event()

            async def write() -> None:
                async with coord.gate():
                    await release.wait()

            tasks = [asyncio.create_task(write()) for _ in range(5)]
            await asyncio.sleep(0.05)  # all five in one turn
            release.set()
            await asyncio.gather(*tasks)
            assert synced == 1
            async with asyncio.timeout(5):  # no writer for GRACE_S: the lock goes
                while coord.holding_gate:
                    await asyncio.sleep(GRACE_S)
            async with coord.gate():  # taken again, synced again
                pass
            assert synced == 2
        finally:
            await coord.close()


async def test_a_job_has_one_leader_and_moves_when_its_connection_dies(
        pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    a, b = pair
    assert await a.leads("expiry") and not await b.leads("expiry")
    assert await b.leads("outbox") and not await a.leads("outbox")  # each kind its own lock
    assert await a.leads("expiry")  # still held
    conn = await asyncpg.connect(PG_DSN)
    try:  # the worker's session dies as in a crash: PostgreSQL releases its locks
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l WHERE l.locktype = 'advisory' "
            "AND l.classid = (hashtext($1)::bigint & 4294967295)::oid AND l.objid = 1 AND l.granted", a.schema)
    finally:
        await conn.close()
    assert [tuple(r) for r in killed] == [(True,)]
    assert await b.leads("expiry")  # free again: the first to ask takes it over
    assert not await a.leads("expiry")  # a reconnected, and no longer leads
    assert "expiry" in b.held and "expiry" not in a.held


async def test_a_gate_kept_for_a_writer_that_went_away_is_released(
        pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    """The lock is kept, not unlocked, when the last writer leaves while
    another of its worker waits to enter; if that one is cancelled before it
    enters, the lock must still go."""
    a, b = pair
    waiter: list[asyncio.Task[None]] = []

    async def first() -> None:
        async with a.gate():
            pass
        # the second writer was woken to enter this turn (the lock is kept for it): it goes away first
        waiter[0].cancel()

    async def second() -> None:
        async with a.gate():
            raise AssertionError("the cancelled writer never runs")

    async with b.gate():  # a's writers wait: the first for the lock, the second behind it
        t1 = asyncio.create_task(first())
        waiter.append(asyncio.create_task(second()))
        await asyncio.sleep(0.05)
    await t1
    with pytest.raises(asyncio.CancelledError):
        await waiter[0]

    async def other_worker() -> None:
        async with b.gate():
            pass

    await asyncio.wait_for(other_worker(), 5.0)

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

from cse.store.pg_coord import PgCoordinator
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


async def test_one_writer_at_a_time_across_workers(pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    counter, inside, most = 0, 0, 0

    async def write(coord: PgCoordinator) -> None:
        nonlocal counter, inside, most
        async with coord.gate():
            inside += 1
            most = max(most, inside)
            seen = counter
            await asyncio.sleep(0.001)  # a read-compute-commit that suspends
            counter = seen + 1
            inside -= 1

    await asyncio.gather(*(write(pair[i % 2]) for i in range(40)))
    assert (counter, most) == (40, 1)


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


async def test_a_gate_handed_to_a_writer_that_went_away_is_released(
        pair: tuple[PgCoordinator, PgCoordinator]) -> None:
    a, b = pair
    holding, leave = asyncio.Event(), asyncio.Event()
    waiter: list[asyncio.Task[None]] = []

    async def first() -> None:
        async with a.gate():
            holding.set()
            await leave.wait()
        # the gate was handed to the waiting writer (it waits): it goes away before it runs
        waiter[0].cancel()

    async def second() -> None:
        async with a.gate():
            raise AssertionError("the cancelled writer never runs")

    t1 = asyncio.create_task(first())
    await holding.wait()
    waiter.append(asyncio.create_task(second()))
    await asyncio.sleep(0.01)  # the second writer waits for a's gate
    leave.set()
    await t1
    with pytest.raises(asyncio.CancelledError):
        await waiter[0]

    async def other_worker() -> None:
        async with b.gate():
            pass

    await asyncio.wait_for(other_worker(), 5.0)

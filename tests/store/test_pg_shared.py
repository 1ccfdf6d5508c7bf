"""Workers' memories kept current through the change log (cse.store.pg_shared).

Why: each worker of a CSE on PostgreSQL (docs/scaling.md) answers reads
from its own memory, so what another worker committed must be there before
a request reads it: after ``sync``, under the write gate, and (for an idle
worker) after the NOTIFY.  A worker that fell behind the kept log, or that
commits while loading again, must still end with exactly the database's
documents.  In-process, two stores playing two workers; the real processes
are tests/e2e/test_pg_workers.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from cse.core.ports import Delete, Doc, KvDelete, KvPut, Put
from cse.store.pg_shared import PgSharedStore
from cse.store.pg_store import PgStoreWriteError
from tests.pg import PG_DSN, pg_schema

AE, CNT, CIN = 2, 3, 4


def base() -> Doc:
    return {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in", "csi": "/id-in"}


def child(parent: Doc, ri: str, ty: int, **attrs: Any) -> Doc:
    return {"ri": ri, "ty": ty, "rn": ri, "pi": parent["ri"], "_srn": f"{parent['_srn']}/{ri}", **attrs}


@pytest.fixture
async def workers() -> AsyncIterator[tuple[PgSharedStore, PgSharedStore, str]]:
    async with pg_schema() as schema:
        a, b = PgSharedStore(PG_DSN, schema=schema), PgSharedStore(PG_DSN, schema=schema)
        await a.open()
        await b.open()
        try:
            yield a, b, schema
        finally:
            await a.close()
            await b.close()


async def view(store: PgSharedStore, pi: str) -> list[tuple[str, Any]]:
    """The children of ``pi`` in order, with their ``con``: what a request would read."""
    return [(d["ri"], d.get("con")) for d in await store.children(pi)]


async def database(schema: str) -> tuple[list[Doc], list[tuple[str, str, Any]]]:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        docs = [r[0] for r in await conn.fetch("SELECT doc::text FROM doc ORDER BY seq")]
        kv = [tuple(r) for r in await conn.fetch("SELECT ns, key, value::text FROM kv ORDER BY seq")]
    finally:
        await conn.close()
    return docs, kv


async def memory(store: PgSharedStore) -> tuple[list[Doc], list[tuple[str, str, Any]]]:
    docs, spaces = store.dump()
    kv = [(ns, k, v) for ns, space in spaces.items() for k, v in space.items()]
    conn = await asyncpg.connect(PG_DSN)
    try:  # the same text form as the database's: jsonb normalises key order and spacing
        docs_text = [await conn.fetchval("SELECT $1::jsonb::text", json.dumps(d)) for d in docs]
        kv_text = [(ns, k, await conn.fetchval("SELECT $1::jsonb::text", json.dumps(v))) for ns, k, v in kv]
    finally:
        await conn.close()
    return docs_text, sorted(kv_text)


async def same_as_database(store: PgSharedStore, schema: str, *, ordered: bool = True) -> bool:
    """Memory holds exactly the database's documents and KV entries (in
    creation order, unless ``ordered`` is false: commits made outside the
    write gate may reach two workers' memories in different orders,
    docs/scaling.md)."""
    docs, kv = await database(schema)
    mine_docs, mine_kv = await memory(store)
    if not ordered:
        docs, mine_docs = sorted(docs), sorted(mine_docs)
    return (docs, sorted(kv)) == (mine_docs, mine_kv)


async def test_a_commit_of_one_worker_is_read_by_the_other_after_sync(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    a, b, schema = workers
    cb = base()
    cnt = child(cb, "cnt", CNT)
    await a.commit([Put(cb), Put(cnt)])
    await b.sync()
    assert (await b.get("cnt")) == cnt
    # each commit after a sync, as under the write gate: every worker then holds the database's order
    await b.commit([Put(child(cnt, "i1", CIN, con="b1")), KvPut("ns", "k1", {"v": 1})])
    await a.sync()
    await a.commit([Put(child(cnt, "i2", CIN, con="a2")), Put({**cnt, "cni": 2}), KvPut("ns", "k2", 2)])
    await b.sync()
    await b.commit([Put(child(cnt, "i3", CIN, con="b3"))])
    await a.sync()
    assert await view(a, "cnt") == await view(b, "cnt") == [("i1", "b1"), ("i2", "a2"), ("i3", "b3")]
    assert (await b.get("cnt") or {}).get("cni") == 2
    assert await b.kv_items("ns") == await a.kv_items("ns") == [("k1", {"v": 1}), ("k2", 2)]
    await b.commit([Delete("cnt"), KvDelete("ns", "k1")])  # a subtree, as in the database
    await a.sync()
    assert await a.get("i2") is None and await a.count_children("cnt") == 0
    assert await a.kv_items("ns") == [("k2", 2)]
    assert await same_as_database(a, schema) and await same_as_database(b, schema)


async def test_the_write_gate_reads_what_the_other_worker_committed_before_it(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    """Concurrent read-compute-commits of a counter through two workers'
    gates lose no update: each worker's turn starts with the other's last
    commit, and writers of one turn read each other's from memory."""
    a, b, schema = workers
    await a.commit([Put(base()), Put(child(base(), "cnt", CNT, cni=0))])
    coords = [a.coordinator, b.coordinator]
    for c in coords:
        await c.open()
    try:
        async def bump(i: int) -> None:
            store, coord = (a, coords[0]) if i % 2 else (b, coords[1])
            async with coord.gate():
                cnt = await store.get("cnt")  # memory: no suspension from the read to the apply in commit()
                assert cnt is not None
                await store.commit([Put({**cnt, "cni": cnt["cni"] + 1}),
                                    Put(child(cnt, f"i{i}", CIN, con=i))])

        await asyncio.gather(*(bump(i) for i in range(60)))
    finally:
        for c in coords:
            await c.close()
    await a.sync()
    await b.sync()
    assert (await a.get("cnt") or {})["cni"] == (await b.get("cnt") or {})["cni"] == 60
    assert await view(a, "cnt") == await view(b, "cnt")
    assert await a.count_children("cnt", CIN) == 60
    assert await same_as_database(a, schema) and await same_as_database(b, schema)


async def test_a_gated_commit_in_flight_holds_the_gate_until_it_ends(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    """A gated commit is written on the gate's session, so the gate cannot
    pass to another worker while that commit may still land.  Here worker
    a's gate session is cut (as when its process is killed) while a's commit
    waits on a row lock; worker b then takes the gate.  Had a's commit been
    written on another connection, it would land once the row lock goes,
    after b read the change log under the gate: b would compute from memory
    lacking it.  It must fail instead (cse.store.pg_coord ``writing``)."""
    a, b, schema = workers
    await a.commit([Put(base()), Put(child(base(), "cnt", CNT, cni=0))])
    await a.coordinator.open()
    await b.coordinator.open()
    blocker = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    b_inside, b_done = asyncio.Event(), asyncio.Event()
    seen: list[Doc | None] = []

    async def worker_b() -> None:
        async with b.coordinator.gate():
            b_inside.set()
            await b_done.wait()
            seen.append(await b.get("i1"))

    try:
        async with a.coordinator.gate():
            cnt = await a.get("cnt")
            assert cnt is not None
            await blocker.execute("BEGIN")
            await blocker.execute("SELECT gen FROM chg_head FOR UPDATE")  # a's commit will wait on this row
            pending = asyncio.ensure_future(a.commit([Put({**cnt, "cni": 1}), Put(child(cnt, "i1", CIN))]))
            await _blocked_by(blocker.get_server_pid())
            gate_session = a.coordinator._gate_conn  # the test cuts the session holding a's gate
            assert gate_session is not None
            await blocker.execute("SELECT pg_terminate_backend($1)", gate_session.get_server_pid())
            b_task = asyncio.ensure_future(worker_b())
            await asyncio.wait_for(b_inside.wait(), 10)  # b holds the gate now
            await blocker.execute("ROLLBACK")  # the row lock goes: whatever a still had in flight lands now
            with pytest.raises(PgStoreWriteError):  # ... but nothing: it went with the gate's session
                await asyncio.wait_for(pending, 10)
        b_done.set()
        await asyncio.wait_for(b_task, 10)
        assert seen == [None]
        await a.sync()
        assert await a.get("i1") is None  # undone in a's memory too
        assert await same_as_database(a, schema) and await same_as_database(b, schema)
    finally:
        await blocker.close()
        await a.coordinator.close()
        await b.coordinator.close()


async def _blocked_by(pid: int) -> None:
    """Return once some backend waits on a lock held by backend ``pid``
    (polled, 10 s at most, from a connection of its own: a transaction sees
    one snapshot of pg_stat_activity, so the blocker's cannot watch)."""
    watcher = await asyncpg.connect(PG_DSN)
    try:
        async with asyncio.timeout(10):
            while not await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid):
                await asyncio.sleep(0.01)
    finally:
        await watcher.close()


async def test_concurrent_syncs_share_rounds_and_all_see_the_commit(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    a, b, _ = workers
    await a.commit([Put(base())])
    seen = await asyncio.gather(*(_synced_get(b, "id-in") for _ in range(50)))
    assert all(doc is not None and doc["ri"] == "id-in" for doc in seen)


async def _synced_get(store: PgSharedStore, ri: str) -> Doc | None:
    await store.sync()
    return await store.get(ri)


async def test_an_idle_worker_hears_of_a_commit_without_being_asked(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    a, b, _ = workers
    await a.commit([Put(base())])
    await _until(lambda: b._idx.docs.get("id-in") is not None)


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``cond`` (set by the store's background task) with a timeout."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_a_worker_behind_the_kept_log_loads_everything_again(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    a, b, schema = workers
    await a.commit([Put(base()), Put(child(base(), "cnt", CNT))])
    await b.sync()
    cnt = await b.get("cnt")
    assert cnt is not None
    await b.close()  # b stops listening; a goes on, and the log is pruned past b
    for i in range(5):
        await a.commit([Put(child(cnt, f"i{i}", CIN, con=i))])
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        await conn.execute("DELETE FROM chg WHERE gen < (SELECT max(gen) FROM chg)")
    finally:
        await conn.close()
    late = PgSharedStore(PG_DSN, schema=schema)
    await late.open()
    try:
        late._gen -= 3  # as if its memory were older than the kept log
        late._idx.apply([Delete("i4")])
        await late.sync()
        assert [ri for ri, _ in await view(late, "cnt")] == [f"i{i}" for i in range(5)]
        assert await same_as_database(late, schema)
    finally:
        await late.close()


async def test_commits_made_while_loading_again_end_in_memory(
        workers: tuple[PgSharedStore, PgSharedStore, str]) -> None:
    a, b, schema = workers
    await a.commit([Put(base()), Put(child(base(), "cnt", CNT))])
    await b.sync()
    cnt = await b.get("cnt")
    assert cnt is not None
    load = asyncio.ensure_future(b._full_load())
    await asyncio.sleep(0)  # the load has started reading
    commits = [b.commit([Put(child(cnt, f"b{i}", CIN))]) for i in range(10)]
    commits += [a.commit([Put(child(cnt, f"a{i}", CIN))]) for i in range(10)]
    await asyncio.gather(load, *commits)  # no write gate: the two workers' commits interleave
    await b.sync()
    await a.sync()
    assert await b.count_children("cnt", CIN) == 20
    assert await same_as_database(b, schema, ordered=False) and await same_as_database(a, schema, ordered=False)

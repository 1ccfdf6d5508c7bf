"""The candidate indexes of the stores that answer reads from memory
(cse.core.ports.SelectIndex; discovery, cse.csf.discovery): they follow puts,
replaces, re-creations and subtree deletes, and ``select_under`` answers in
the order a depth-first walk in creation order would.  The database-only
store (PgDirectStore) has no such indexes: discovery walks there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cse.core.ports import Delete, SelectIndex
from cse.store.memory import MemoryStore
from cse.store.tinydb_store import TinyDBStore
from tests.pg import pg_schema, pg_store
from tests.store.test_contract import AE, CIN, CNT, base, child, put

KEYS_TY_CIN = [("ty", (CIN,))]


@pytest.fixture(params=["memory", "tinydb", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "postgresql":
        async with pg_schema() as schema:
            s: Any = pg_store(schema, direct=False)
            await s.open()
            yield s
            await s.close()
        return
    s = MemoryStore() if request.param == "memory" else TinyDBStore(str(tmp_path / "d" / "cse.json"))
    await s.open()
    yield s
    await s.close()


def ris(found: list[tuple[dict[str, Any], int]] | None) -> list[tuple[str, int]]:
    assert found is not None
    return [(d["ri"], depth) for d, depth in found]


async def test_select_follows_walk_order_not_creation_order(store: Any) -> None:
    assert isinstance(store, SelectIndex)
    cse = base()
    ae = child(cse, "ae", AE)
    c1, c2 = child(ae, "c1", CNT, lbl=["x"]), child(ae, "c2", CNT, lbl=["x", "y"])
    # created interleaved: c2's instance before c1's second one
    i1, j1, i2 = child(c1, "i1", CIN, cr="Ca"), child(c2, "j1", CIN, lbl=["y"]), child(c1, "i2", CIN, cr="Cb")
    await put(store, cse, ae, c1, c2, i1, j1, i2)
    assert ris(await store.select_under("ae", KEYS_TY_CIN, False, 100, 64)) == [("i1", 2), ("i2", 2), ("j1", 2)]
    assert ris(await store.select_under("c1", KEYS_TY_CIN, False, 100, 64)) == [("i1", 1), ("i2", 1)]
    assert ris(await store.select_under("id-in", [("lbl", ("y", "x"))], False, 100, 64)) == [
        ("c1", 2), ("c2", 2), ("j1", 3)]
    # AND: the smallest key's holders (cr=Cb: one) -- the caller checks the rest
    assert ris(await store.select_under("ae", [*KEYS_TY_CIN, ("cr", ("Cb",))], False, 100, 64)) == [("i2", 2)]
    # AND with ty and lbl: exactly the resources holding both (discovery checks neither again)
    assert ris(await store.select_under("id-in", [("ty", (CIN,)), ("lbl", ("y", "x"))], False, 100, 64)) == [
        ("j1", 3)]
    assert ris(await store.select_under("id-in", [("ty", (CNT, CIN)), ("lbl", ("y",))], False, 100, 64)) == [
        ("c2", 2), ("j1", 3)]
    assert ris(await store.select_under("ae", [("lbl", ("x",)), ("ty", (CIN,))], False, 100, 64)) == []
    # OR: every key's holders, each once
    assert ris(await store.select_under("ae", [("lbl", ("y",)), ("cr", ("Ca",))], True, 100, 64)) == [
        ("i1", 2), ("c2", 1), ("j1", 2)]
    assert ris(await store.select_under("ae", KEYS_TY_CIN, False, 100, 1)) == []  # depth bound
    assert await store.select_under("ae", KEYS_TY_CIN, False, 2, 64) is None  # more candidates than the cap
    assert await store.select_under("ae", [("con", ("1",))], False, 100, 64) is None  # no such index
    assert await store.deepest() == 3


async def test_select_indexes_follow_replaces_recreations_and_deletes(store: Any) -> None:
    cse = base()
    a1, a2 = child(cse, "a1", AE), child(cse, "a2", AE)
    c = child(a1, "c", CNT, lbl=["old"])
    i = child(c, "i", CIN)
    await put(store, cse, a1, a2, c, i)
    await put(store, {**c, "lbl": ["new"]})  # replace: labels move, position stays
    assert ris(await store.select_under("id-in", [("lbl", ("old",))], False, 100, 64)) == []
    assert ris(await store.select_under("id-in", [("lbl", ("new",))], False, 100, 64)) == [("c", 2)]
    d = child(a2, "d", CNT)
    await put(store, d, {**c, "pi": "a2", "_srn": "cse-in/a2/c"})  # re-creation: now after d
    assert ris(await store.select_under("a2", [("ty", (CNT,))], False, 100, 64)) == [("d", 1), ("c", 1)]
    assert ris(await store.select_under("a2", KEYS_TY_CIN, False, 100, 64)) == [("i", 2)]
    # one label: its holders are found by parent; the re-created c holds "old" again, under a2 now
    assert ris(await store.select_under("a2", [("lbl", ("old",))], False, 100, 64)) == [("c", 1)]
    assert ris(await store.select_under("a1", [("lbl", ("old",))], False, 100, 64)) == []
    assert ris(await store.select_under("id-in", [("lbl", ("new",))], False, 100, 64)) == []
    assert ris(await store.select_under("id-in", [("lbl", ("old",))], False, 100, 1)) == []  # depth bound
    assert ris(await store.select_under("id-in", [("lbl", ("old",))], False, 100, 2)) == [("c", 2)]
    await store.commit([Delete("a2")])
    assert ris(await store.select_under("id-in", [("ty", (CNT, CIN))], False, 100, 64)) == []
    assert ris(await store.select_under("id-in", [("lbl", ("old",))], False, 100, 64)) == []
    assert await store.deepest() == 1


async def test_time_ranges_select_by_minute_buckets_and_follow_changes(store: Any) -> None:
    cse = base()
    ae = child(cse, "ae", AE, ct="20300101T000000,000000", lt="20300101T000000,000000")
    a = child(ae, "a", CNT, ct="20300101T100000,000000", lt="20300101T100000,000000", et="20310101T000000,000000")
    b = child(ae, "b", CNT, ct="20300101T100059,999999", lt="20300101T100059,999999")
    c = child(ae, "c", CNT, ct="20300101T100100,000000", lt="20300101T100100,000000")
    await put(store, cse, ae, a, b, c)

    async def ct(lo: str | None, hi: str | None, attr: str = "ct") -> list[tuple[str, int]]:
        return ris(await store.select_under("ae", [(attr, ((lo, hi),))], False, 100, 64))

    # a superset at minute granularity: a and b share 10:00, c is 10:01
    assert await ct("20300101T100030", None) == [("a", 1), ("b", 1), ("c", 1)]
    assert await ct("20300101T100100", None) == [("c", 1)]
    assert await ct(None, "20300101T100100") == [("a", 1), ("b", 1), ("c", 1)]  # the bucket of the bound
    assert await ct(None, "20300101T100059,999999") == [("a", 1), ("b", 1)]
    assert await ct("20300102", None) == []
    assert await ct(None, None, "et") == [("a", 1)]
    await put(store, {**c, "lt": "20300105T000000,000000"})  # a replace moves c in lt
    assert await ct("20300102", None, "lt") == [("c", 1)]
    await store.commit([Delete("c")])
    assert await ct("20300102", None, "lt") == []
    with pytest.raises(ValueError):
        await store.select_under("ae", [("ct", ("20300101",))], False, 100, 64)


async def test_a_wide_time_range_stops_counting_at_the_cap(store: Any) -> None:
    """An open range holding more than the cap is refused (None: the walk
    answers); a narrow one at the end of many minutes is answered."""
    cse = base()
    ae = child(cse, "ae", AE)
    docs = [child(ae, f"c{i}", CNT, ct=f"20300101T{i // 60:02d}{i % 60:02d}00,000000") for i in range(300)]
    await put(store, cse, ae, *docs)
    assert await store.select_under("ae", [("ct", (("2030", None),))], False, 10, 64) is None
    found = await store.select_under("ae", [("ct", (("20300101T0458", None),))], False, 10, 64)
    assert ris(found) == [("c298", 1), ("c299", 1)]

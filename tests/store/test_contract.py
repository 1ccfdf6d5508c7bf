"""Store contract (see ``cse.core.ports``) checked against every backend.

Why one parametrized suite: the pipeline must not be able to tell the
backends apart, so all of them run the very same assertions (the
PostgreSQL one in a schema of its own per test, tests/pg.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cse.core.ports import Delete, Doc, KvDelete, KvPut, Put, Store
from cse.store.memory import MemoryStore
from cse.store.tinydb_store import TinyDBStore
from tests.pg import pg_schema, pg_store

AE, CNT, CIN, SUB = 2, 3, 4, 23


@pytest.fixture(params=["memory", "tinydb", "postgresql", "postgresql-direct", "postgresql-shared"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param.startswith("postgresql"):
        async with pg_schema() as schema:
            s: Any = pg_store(schema, direct=request.param.endswith("direct"),
                              shared=request.param.endswith("shared"))
            await s.open()
            yield s
            await s.close()
        return
    s = MemoryStore() if request.param == "memory" else TinyDBStore(str(tmp_path / "d" / "cse.json"))
    await s.open()
    yield s
    await s.close()


def base() -> Doc:
    return {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in", "csi": "/id-in"}


def child(parent: Doc, ri: str, ty: int, rn: str | None = None, **attrs: Any) -> Doc:
    rn = rn or ri
    return {"ri": ri, "ty": ty, "rn": rn, "pi": parent["ri"], "_srn": f"{parent['_srn']}/{rn}", **attrs}


async def put(store: Store, *docs: Doc) -> None:
    await store.commit([Put(d) for d in docs])


def ris(docs: list[Doc]) -> list[str]:
    return [d["ri"] for d in docs]


def ri_of(doc: Doc | None) -> str | None:
    return None if doc is None else doc["ri"]


async def test_store_satisfies_protocol(store: Store) -> None:
    assert isinstance(store, Store)


async def test_put_get_replace(store: Store) -> None:
    cse = base()
    ae = child(cse, "ae1", AE, aei="Cae1", lbl=["a"])
    res = await store.commit([Put(cse), Put(ae)])
    assert res.removed == []
    assert await store.get("ae1") == ae
    assert await store.get("nope") is None
    assert await store.count() == 2
    ae2 = {**ae, "lbl": ["b"]}
    await put(store, ae2)
    assert await store.get("ae1") == ae2
    assert await store.count() == 2


async def test_get_by_path_and_child_by_name(store: Store) -> None:
    cse = base()
    ae = child(cse, "ae1", AE, "myae")
    cnt = child(ae, "cnt1", CNT, "box")
    await put(store, cse, ae, cnt)
    assert await store.get_by_path("cse-in") == cse
    assert await store.get_by_path("cse-in/myae/box") == cnt
    assert await store.get_by_path("cse-in/other") is None
    assert await store.child_by_name("id-in", "myae") == ae
    assert await store.child_by_name("ae1", "box") == cnt
    assert await store.child_by_name("id-in", "box") is None
    # A replace that renames moves both the path and the name entries.
    renamed = {**cnt, "rn": "crate", "_srn": "cse-in/myae/crate"}
    await put(store, renamed)
    assert await store.child_by_name("ae1", "box") is None
    assert await store.get_by_path("cse-in/myae/box") is None
    assert await store.child_by_name("ae1", "crate") == renamed
    assert await store.get_by_path("cse-in/myae/crate") == renamed


async def test_children_order_and_type_filter(store: Store) -> None:
    cse = base()
    ae = child(cse, "ae1", AE)
    kids = [child(ae, f"k{i}", CNT if i % 2 else SUB) for i in range(6)]
    await put(store, cse, ae)
    for k in kids:  # one commit each: creation order is commit order
        await put(store, k)
    assert ris(await store.children("ae1")) == [f"k{i}" for i in range(6)]
    assert ris(await store.children("ae1", CNT)) == ["k1", "k3", "k5"]
    assert ris(await store.children("ae1", SUB)) == ["k0", "k2", "k4"]
    assert await store.children("ae1", CIN) == []
    assert await store.children("nobody") == []
    # Replacing keeps the creation-order slot, and children return the new doc.
    new_k0 = {**kids[0], "lbl": ["x"]}
    await put(store, new_k0)
    assert ris(await store.children("ae1")) == [f"k{i}" for i in range(6)]
    assert (await store.children("ae1"))[0] == new_k0
    # Deleted then re-put: a new creation, so it goes last.
    await store.commit([Delete("k2"), Put(kids[2])])
    assert ris(await store.children("ae1")) == ["k0", "k1", "k3", "k4", "k5", "k2"]


async def test_edge_child_and_count(store: Store) -> None:
    cse = base()
    cnt = child(cse, "cnt", CNT)
    await put(store, cse, cnt)
    assert await store.edge_child("cnt", CIN, newest=True) is None
    assert await store.edge_child("cnt", CIN, newest=False) is None
    assert await store.count_children("cnt") == 0
    cins = [child(cnt, f"ci{i}", CIN) for i in range(5)]
    for c in cins:
        await put(store, c)
    await put(store, child(cnt, "sub", SUB))
    assert ri_of(await store.edge_child("cnt", CIN, newest=True)) == "ci4"
    assert ri_of(await store.edge_child("cnt", CIN, newest=False)) == "ci0"
    assert await store.count_children("cnt") == 6
    assert await store.count_children("cnt", CIN) == 5
    assert await store.count_children("cnt", SUB) == 1
    assert await store.count_children("cnt", AE) == 0
    await store.commit([Delete("ci4"), Delete("ci0")])
    assert ri_of(await store.edge_child("cnt", CIN, newest=True)) == "ci3"
    assert ri_of(await store.edge_child("cnt", CIN, newest=False)) == "ci1"
    assert await store.count_children("cnt", CIN) == 3
    replaced = {**cins[3], "con": "new"}
    await put(store, replaced)
    assert await store.edge_child("cnt", CIN, newest=True) == replaced


async def test_subtree_delete_cleans_every_index(store: Store) -> None:
    cse = base()
    ae = child(cse, "ae1", AE, "app", aei="Capp", et="20300101T000000")
    other = child(cse, "ae2", AE, "other", aei="Cother", et="20300101T000000")
    cnt = child(ae, "cnt1", CNT, "box", et="20250101T000000")
    cin = child(cnt, "cin1", CIN, "c1", et="20240101T000000")
    sub = child(cnt, "sub1", SUB, "s1")
    await put(store, cse, ae, other, cnt, cin, sub)
    res = await store.commit([Delete("ae1")])
    assert sorted(ris(res.removed)) == ["ae1", "cin1", "cnt1", "sub1"]
    assert {d["ri"]: d for d in res.removed}["cnt1"] == cnt
    for ri in ("ae1", "cnt1", "cin1", "sub1"):
        assert await store.get(ri) is None
    for path in ("cse-in/app", "cse-in/app/box", "cse-in/app/box/c1"):
        assert await store.get_by_path(path) is None
    assert await store.child_by_name("id-in", "app") is None
    assert await store.child_by_name("cnt1", "c1") is None
    assert ris(await store.children("id-in")) == ["ae2"]
    assert await store.children("ae1") == []
    assert await store.children("cnt1", CIN) == []
    assert await store.count_children("cnt1") == 0
    assert await store.edge_child("cnt1", CIN, newest=True) is None
    assert await store.lookup("aei", "Capp") == []
    assert await store.expired("20991231T000000") == ["ae2"]
    assert await store.next_expiry() == "20300101T000000"
    assert await store.count() == 2
    assert (await store.commit([Delete("ae1")])).removed == []  # missing: no-op
    # The same names can be created again.
    await put(store, ae)
    assert await store.get_by_path("cse-in/app") == ae
    assert await store.child_by_name("id-in", "app") == ae


async def test_lookup_by_aei_and_csi(store: Store) -> None:
    cse = base()
    a1 = child(cse, "ae1", AE, aei="Cone")
    a2 = child(cse, "ae2", AE, aei="Ctwo")
    rem = child(cse, "csr1", 16, csi="/id-mn")
    await put(store, cse, a1, a2, rem)
    assert await store.lookup("aei", "Cone") == [a1]
    assert await store.lookup("aei", "Cnone") == []
    assert await store.lookup("csi", "/id-mn") == [rem]
    assert await store.lookup("csi", "/id-in") == [cse]
    # Replace changing the indexed value moves the entry.
    a1b = {**a1, "aei": "Cthree"}
    await put(store, a1b)
    assert await store.lookup("aei", "Cone") == []
    assert await store.lookup("aei", "Cthree") == [a1b]
    # Two documents with the same value; unindexed attributes scan.
    a2b = {**a2, "aei": "Cthree"}
    await put(store, a2b)
    assert sorted(ris(await store.lookup("aei", "Cthree"))) == ["ae1", "ae2"]
    assert await store.lookup("rn", "csr1") == [rem]
    assert await store.lookup("ty", AE) == [a1b, a2b]


async def test_count_by_owner_follows_puts_replaces_and_subtree_deletes(store: Store) -> None:
    """``count_by("_own", x)`` is what the per-originator quota reads
    (docs/security.md "Limits"): O(1), and right after every kind of change."""
    cse = base()
    ae = child(cse, "ae1", AE, "app", _own="Capp")
    cnt = child(ae, "cnt1", CNT, "box", _own="Capp")
    cin = child(cnt, "cin1", CIN, "c1", _own="Cother")
    mine = child(cse, "cnt2", CNT, "free", _own="Capp")
    await put(store, cse, ae, cnt, cin, mine)
    assert await store.count_by("_own", "Capp") == 3
    assert await store.count_by("_own", "Cother") == 1
    assert await store.count_by("_own", "Cnobody") == 0
    await put(store, {**mine, "_own": "Cother"})  # a replace that changes the owner
    assert (await store.count_by("_own", "Capp"), await store.count_by("_own", "Cother")) == (2, 2)
    await store.commit([Delete("ae1")])  # the subtree goes, whoever owned its parts
    assert (await store.count_by("_own", "Capp"), await store.count_by("_own", "Cother")) == (0, 1)
    assert await store.count_by("rn", "free") == 1  # an attribute without an index is counted by a scan


async def test_expired_and_next_expiry(store: Store) -> None:
    cse = base()
    docs = [child(cse, f"r{i}", CIN, et=f"2024010{i}T000000") for i in range(1, 6)]
    docs.append(child(cse, "never", CIN))
    await put(store, cse, *reversed(docs))
    assert await store.next_expiry() == "20240101T000000"
    assert await store.expired("20240103T000000") == ["r1", "r2", "r3"]
    assert await store.expired("20240103T000000", limit=2) == ["r1", "r2"]
    assert await store.expired("20240103T000000", limit=0) == []
    assert await store.expired("20231231T000000") == []
    # expired() only reports; nothing is removed.
    assert await store.expired("20240103T000000") == ["r1", "r2", "r3"]
    # Replace pushing et later, pulling et earlier, and dropping et.
    await put(store, {**docs[0], "et": "20240109T000000"})
    await put(store, {**docs[4], "et": "20231201T000000"})
    await put(store, {k: v for k, v in docs[1].items() if k != "et"})
    assert await store.next_expiry() == "20231201T000000"
    assert await store.expired("20240110T000000") == ["r5", "r3", "r4", "r1"]
    # Back to an earlier et value (old heap entries must not duplicate).
    await put(store, {**docs[0], "et": "20240109T000000", "x": 1})
    await put(store, docs[0])
    assert await store.expired("20240110T000000") == ["r5", "r1", "r3", "r4"]
    await store.commit([Delete("r5"), Delete("r1")])
    assert await store.next_expiry() == "20240103T000000"
    assert await store.expired("20240110T000000") == ["r3", "r4"]
    await store.commit([Delete("r3"), Delete("r4")])
    assert await store.next_expiry() is None
    assert await store.expired("20991231T000000") == []


async def test_many_et_changes_stay_consistent(store: Store) -> None:
    cse = base()
    doc = child(cse, "r", CIN, et="20240101T000000")
    await put(store, cse, doc)
    for i in range(3000):  # forces the lazy heap to rebuild at least once
        await put(store, {**doc, "et": f"2025{i:010d}"})
    assert await store.next_expiry() == "20250000002999"
    assert await store.expired("20991231T000000") == ["r"]


async def test_kv_ops_and_order(store: Store) -> None:
    assert await store.kv_get("q", "a") is None
    assert await store.kv_items("q") == []
    await store.commit([KvPut("q", "b", {"n": 1}), KvPut("q", "a", [1, 2]), KvPut("cnt", "a", 7)])
    await store.commit([KvPut("q", "c", "three")])
    assert await store.kv_items("q") == [("b", {"n": 1}), ("a", [1, 2]), ("c", "three")]
    assert await store.kv_get("q", "a") == [1, 2]
    assert await store.kv_get("cnt", "a") == 7
    await store.commit([KvPut("q", "b", {"n": 2})])  # replace keeps position
    assert [k for k, _ in await store.kv_items("q")] == ["b", "a", "c"]
    assert await store.kv_get("q", "b") == {"n": 2}
    await store.commit([KvDelete("q", "a"), KvDelete("q", "missing"), KvDelete("none", "x")])
    assert await store.kv_items("q") == [("b", {"n": 2}), ("c", "three")]
    await store.commit([KvPut("q", "a", None)])
    assert [k for k, _ in await store.kv_items("q")] == ["b", "c", "a"]
    await store.commit([KvDelete("cnt", "a")])
    assert await store.kv_items("cnt") == []


async def test_commit_is_atomic(store: Store) -> None:
    cse = base()
    await put(store, cse)
    good = child(cse, "ae1", AE)
    bad = {"ri": "bad", "ty": AE}  # no pi / rn / _srn
    with pytest.raises((ValueError, TypeError)):
        await store.commit([Put(good), KvPut("q", "k", 1), Delete("id-in"), Put(bad)])
    assert await store.get("ae1") is None
    assert await store.get("id-in") == cse
    assert await store.kv_get("q", "k") is None
    assert await store.count() == 1
    # The store still works afterwards, and a good batch applies as a whole.
    res = await store.commit([Put(good), KvPut("q", "k", 1), Delete("ae1")])
    assert ris(res.removed) == ["ae1"]
    assert await store.kv_get("q", "k") == 1
    assert await store.count() == 1


async def test_reads_see_batch_before_commit_returns(store: Store) -> None:
    cse = base()
    seen: list[Any] = []

    async def reader() -> None:  # runs once commit() has been called
        seen.append(await store.get("id-in"))

    await asyncio.gather(store.commit([Put(cse)]), reader())
    assert seen == [cse]


async def test_concurrent_commits_all_apply(store: Store) -> None:
    cse = base()
    await put(store, cse)
    await asyncio.gather(*(put(store, child(cse, f"c{i}", CIN)) for i in range(200)))
    assert ris(await store.children("id-in")) == [f"c{i}" for i in range(200)]


async def test_replace_changing_parent_is_a_recreation(store: Store) -> None:
    cse = base()
    p1, p2 = child(cse, "p1", AE), child(cse, "p2", AE)
    a, b = child(p1, "a", CNT), child(p2, "b", CNT)
    grandchild = child(a, "g", CIN)
    await put(store, cse, p1, p2, a, b, grandchild)
    moved = {**a, "pi": "p2", "_srn": "cse-in/p2/a"}
    await put(store, moved)
    assert await store.children("p1") == []
    assert ris(await store.children("p2")) == ["b", "a"]
    assert await store.child_by_name("p2", "a") == moved
    assert await store.children("a") == [grandchild]  # its own subtree stays
    removed = (await store.commit([Delete("p2")])).removed
    assert sorted(ris(removed)) == ["a", "b", "g", "p2"]

"""The in-memory index gives Python's cyclic collector nothing to walk that
grows with the resident count once the table has been frozen
(``cse.store.indexed`` module docstring): a full collection then costs the
same at 1k and at 100k resources."""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterator
from typing import Any

import pytest

from cse.core.ports import Delete, Put
from cse.store.indexed import IndexedDocs

N = 20_000  # resident documents; larger than any container pytest itself keeps tracked


def _root() -> dict[str, Any]:
    return {"ri": "cb", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in", "srt": [2, 3, 4]}


def _cin(i: int, et: str = "2099") -> dict[str, Any]:
    return {"ri": f"cin{i}", "ty": 4, "rn": f"cin{i}", "pi": "cnt", "_srn": f"cse-in/cnt/cin{i}",
            "et": f"{et}{i:010d}", "_own": "Cae", "con": "21.5", "lbl": ["a"]}


def _containers(idx: IndexedDocs) -> Iterator[Any]:
    """Every dict/list the index itself holds (not the documents)."""
    stack: list[Any] = [getattr(idx, name) for name in IndexedDocs.__slots__]
    while stack:
        obj = stack.pop()
        yield obj
        if isinstance(obj, dict) and obj is not idx.docs:
            stack.extend(v for v in obj.values() if isinstance(v, (dict, list)))


def _walked_by_full_collection(idx: IndexedDocs) -> list[int]:
    """Sizes of the index's containers a full collection would walk now."""
    tracked = {id(o) for o in gc.get_objects()}  # every generation, not the frozen objects
    return [len(o) for o in _containers(idx) if id(o) in tracked and len(o) >= N // 2]


def test_a_grown_table_adds_nothing_for_a_full_collection_to_walk() -> None:
    idx = IndexedDocs()
    idx.apply([Put(_root()), Put({"ri": "cnt", "ty": 3, "rn": "cnt", "pi": "cb", "_srn": "cse-in/cnt"})])
    gc.collect()
    gc.freeze()  # what the application does once its tree is there
    try:
        for i in range(N):
            idx.apply([Put(_cin(i))])
        for i in range(N):  # a new et for each: stale heap entries, so the heap is rebuilt
            idx.apply([Put(_cin(i, et="2098"))])
        idx.apply([Delete(f"cin{i}") for i in range(0, N, 4)])
        gc.collect()
        assert _walked_by_full_collection(idx) == []
        # The indexes still answer (children in creation order, oldest/newest).
        assert idx.count_children("cnt", 4) == N - N // 4
        assert idx.edge_child("cnt", 4, newest=False)["ri"] == "cin1"  # type: ignore[index]
        assert idx.edge_child("cnt", 4, newest=True)["ri"] == f"cin{N - 1}"  # type: ignore[index]
        assert [d["ri"] for d in idx.children("cnt")][:3] == ["cin1", "cin2", "cin3"]
        assert idx.child_by_name("cnt", "cin5")["ri"] == "cin5"  # type: ignore[index]
        assert idx.child_by_name("cnt", "cin4") is None
    finally:
        gc.unfreeze()


def test_evicting_the_oldest_instance_never_rebuilds_the_expiry_heap_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``mni`` eviction (one create, one delete of the oldest) leaves stale
    expiry entries; they are purged a few per write, never in one pass over
    the heap, and what is due stays exact meanwhile."""
    idx = IndexedDocs()
    idx.apply([Put(_root()), Put({"ri": "cnt", "ty": 3, "rn": "cnt", "pi": "cb", "_srn": "cse-in/cnt"})])
    live = 2_000
    for i in range(live):
        idx.apply([Put(_cin(i, et=f"20{i % 7}"))])
    passes: list[int] = []
    monkeypatch.setattr(heapq, "heapify", lambda heap: passes.append(len(heap)))
    sizes: list[int] = []
    for i in range(live, live + 4 * live):
        idx.apply([Put(_cin(i, et=f"20{i % 7}")), Delete(f"cin{i - live}")])
        sizes.append(len(idx._heap) + len(idx._drain))
        if i % 997 == 0:
            due = sorted((et, ri) for ri, et in idx._et.items() if et <= "203")
            assert idx.expired("203", limit=10**6) == [ri for _, ri in due]
            assert idx.next_expiry() == min(idx._et.values())
    assert passes == [], "no pass over the whole heap"
    assert max(sizes) <= 3 * live + 1024 + 2 * live // 8 + 16, "stale entries stay bounded"
    assert max(sizes) > 2 * live + 1024, "stale entries did accumulate (the case under test)"
    assert idx.count_children("cnt", 4) == live

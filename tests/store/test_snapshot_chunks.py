"""A snapshot of a large store never holds the event loop for more than one
piece of ``CHUNK`` documents (``cse.store.snapshot`` module docstring):
counted in loop turns, not timed.  And what it writes is still the TinyDB
database a restart loads."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tinydb import TinyDB

from cse.core.ports import KvPut, Put
from cse.store import snapshot
from cse.store.tinydb_store import TinyDBStore

N = 3000


def _docs() -> list[dict[str, Any]]:
    cse = {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in"}
    return [cse] + [{"ri": f"ci{i}", "ty": 4, "rn": f"ci{i}", "pi": "id-in", "_srn": f"cse-in/ci{i}",
                     "con": f"v{i}", "lbl": ["x"]} for i in range(N)]


async def test_compaction_encodes_at_most_one_chunk_per_loop_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TinyDBStore(str(tmp_path / "db.json"))
    await store.open()
    try:
        for start in range(0, N + 1, 500):
            await store.commit([Put(d) for d in _docs()[start:start + 500]])
        await store.commit([KvPut("ns", "k", {"v": 1})])

        turn = 0
        per_turn: Counter[int] = Counter()
        threads: set[int] = set()
        encode = snapshot._encode

        def counting_encode(obj: Any) -> str:
            per_turn[turn] += 1
            threads.add(threading.get_ident())
            return encode(obj)

        async def ticker() -> None:
            nonlocal turn
            while True:
                turn += 1
                await asyncio.sleep(0)

        monkeypatch.setattr(snapshot, "_encode", counting_encode)
        tick = asyncio.get_running_loop().create_task(ticker())
        try:
            await store.compact()
        finally:
            tick.cancel()
        monkeypatch.undo()

        assert sum(per_turn.values()) >= N + 1, "every document encoded"
        assert threads == {threading.get_ident()}, "encoded on the loop, in pieces, not in a thread"
        assert max(per_turn.values()) <= snapshot.CHUNK + 2  # + the KV item and meta of the last piece
        assert len(per_turn) >= N // snapshot.CHUNK, "the loop turned between the pieces"
    finally:
        await store.close()

    # The file is the TinyDB database a restart loads, in creation order.
    db = TinyDB(str(tmp_path / "db.json"))
    try:
        resources = db.table("resources").all()
        assert [d["ri"] for d in resources] == [d["ri"] for d in _docs()]
        assert db.table("kv").all() == [{"ns": "ns", "key": "k", "value": {"v": 1}}]
        assert db.table("meta").all()[0]["count"] == N + 1
    finally:
        db.close()
    again = TinyDBStore(str(tmp_path / "db.json"))
    await again.open()
    try:
        assert await again.count() == N + 1
        assert [d["ri"] for d in await again.children("id-in")][-1] == f"ci{N - 1}"
        assert await again.kv_get("ns", "k") == {"v": 1}
    finally:
        await again.close()

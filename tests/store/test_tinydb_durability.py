"""Durability of :class:`TinyDBStore`: restart, crash, torn journal, compaction.

Why: the contract says a returned ``commit`` survives ``kill -9`` and that
creation order survives restarts; these tests check it against the real
files, including a real SIGKILL of a child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query, TinyDB

from cse.core.ports import Delete, Doc, KvDelete, KvPut, Put
from cse.store.journal import JournalWriter
from cse.store.tinydb_store import StoreCorruptError, StoreWriteError, TinyDBStore
from tests.childenv import checkout_first

AE, CNT, CIN = 2, 3, 4


def base() -> Doc:
    return {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in", "csi": "/id-in"}


def child(parent: Doc, ri: str, ty: int, **attrs: Any) -> Doc:
    return {"ri": ri, "ty": ty, "rn": ri, "pi": parent["ri"], "_srn": f"{parent['_srn']}/{ri}", **attrs}


async def populate(store: TinyDBStore) -> None:
    """A small tree with replaces, deletes, et changes and KV traffic."""
    cse = base()
    await store.commit([Put(cse), KvPut("q", "z", 1), KvPut("q", "a", {"x": [1]})])
    for a in range(3):
        ae = child(cse, f"ae{a}", AE, aei=f"Cae{a}", et=f"2030010{a}T000000")
        await store.commit([Put(ae)])
        cnt = child(ae, f"cnt{a}", CNT)
        await store.commit([Put(cnt)])
        for i in range(5):
            await store.commit([Put(child(cnt, f"ci{a}_{i}", CIN, con=f"v{i}", et=f"2029{a}{i}"))])
    await store.commit([Put({**child(base(), "ae0", AE, aei="Cnew")})])  # replace: keeps slot
    await store.commit([Delete("cnt1"), KvPut("q", "m", "mid"), KvDelete("q", "z")])
    await store.commit([Delete("ci2_1"), Put(child(child(base(), "ae2", AE), "late", CNT))])


async def state(store: TinyDBStore) -> dict[str, Any]:
    """Everything observable, in order, for before/after comparisons."""
    out: dict[str, Any] = {"count": await store.count(), "kv": await store.kv_items("q")}
    stack = [""]
    while stack:
        pi = stack.pop()
        kids = await store.children(pi)
        out[f"children:{pi}"] = kids
        for ty in (AE, CNT, CIN):
            out[f"edges:{pi}:{ty}"] = (
                await store.edge_child(pi, ty, newest=True),
                await store.edge_child(pi, ty, newest=False),
            )
        stack.extend(d["ri"] for d in kids)
    out["expired"] = await store.expired("20991231T000000")
    out["next_expiry"] = await store.next_expiry()
    out["aei"] = [await store.lookup("aei", v) for v in ("Cae0", "Cnew", "Cae1", "Cae2")]
    return out


async def reopen(path: str, **kw: Any) -> TinyDBStore:
    store = TinyDBStore(path, **kw)
    await store.open()
    return store


async def test_close_and_reopen_keeps_state_and_order(tmp_path: Path) -> None:
    path = str(tmp_path / "nested" / "dir" / "cse.json")  # parents get created
    store = await reopen(path)
    await populate(store)
    before = await state(store)
    assert [d["ri"] for d in before["children:id-in"]] == ["ae0", "ae1", "ae2"]
    await store.close()
    assert not os.path.exists(store.journal_path)  # close leaves only the snapshot
    store = await reopen(path)
    assert await state(store) == before
    await store.commit([Put(child(base(), "ae3", AE))])  # sequence continues
    await store.close()
    store = await reopen(path)
    assert [d["ri"] for d in await store.children("id-in")] == ["ae0", "ae1", "ae2", "ae3"]
    await store.close()


async def test_abandon_without_close_keeps_committed_batches(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    crashed = await reopen(path)
    await populate(crashed)
    before = await state(crashed)
    await crashed.abort()  # what kill -9 leaves behind: no flush, no snapshot
    with open(path) as f:  # the snapshot written at the first start covers nothing:
        assert json.load(f)["meta"]["1"]["seq"] == 0  # only the journal holds the data
    store = await reopen(path)
    assert await state(store) == before
    await store.close()


async def test_abandoned_store_still_running_is_readable(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    first = await reopen(path)
    await populate(first)
    before = await state(first)
    second = await reopen(path)  # `first` never closed or aborted
    assert await state(second) == before
    await second.close()
    await first.abort()


def _last_record_len(journal: str) -> int:
    data = Path(journal).read_bytes()
    return len(data) - data.rstrip(b"\n").rfind(b"\n") - 1


@pytest.mark.parametrize(
    "damage",
    ["half_line", "bad_checksum", "cut_last_record"],
)
async def test_torn_last_record_is_dropped(tmp_path: Path, damage: str) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    before = await state(store)
    await store.commit([Put(child(base(), "victim", AE))])
    await store.abort()
    journal = store.journal_path
    size = os.path.getsize(journal)
    last_len = _last_record_len(journal)
    if damage == "cut_last_record":  # the victim's record is half-written
        good = size - last_len
        with open(journal, "r+b") as f:
            f.truncate(size - last_len // 2)
    else:
        good = size
        tail = {
            "half_line": b'0badc0de {"s":999,"o":[["p",{"ri":"x"',
            "bad_checksum": b"00000000 " + json.dumps({"s": 99, "o": []}).encode() + b"\n",
        }[damage]
        with open(journal, "ab") as f:
            f.write(tail)
    store = await reopen(path)
    expected = await state(store)
    assert os.path.getsize(journal) == good  # truncated to the last good record
    if damage == "cut_last_record":
        assert await store.get("victim") is None
        assert expected == before
    else:
        assert await store.get("victim") is not None
    await store.commit([Put(child(base(), "after", AE))])  # appends cleanly
    await store.abort()
    store = await reopen(path)
    assert await store.get("after") is not None
    await store.close()


async def test_corruption_in_the_middle_raises(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    await store.abort()
    data = bytearray(Path(store.journal_path).read_bytes())
    data[20] ^= 0x01  # inside the first record's payload
    Path(store.journal_path).write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=r"cse\.json\.journal: damaged record at byte 0 "):
        await reopen(path)


async def test_missing_records_raise(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    await store.abort()
    lines = Path(store.journal_path).read_bytes().splitlines(keepends=True)
    Path(store.journal_path).write_bytes(b"".join(lines[:3] + lines[4:]))
    with pytest.raises(StoreCorruptError, match="missing"):
        await reopen(path)


async def test_compaction_then_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path, compact_bytes=1500)
    await populate(store)
    await store.flush()  # let the background compaction finish
    assert os.path.exists(path)
    assert not os.path.exists(store.journal_path + ".old")
    assert os.path.getsize(store.journal_path) <= 1500 + 600
    with open(path) as f:
        assert json.load(f)["meta"]["1"]["seq"] > 0
    before = await state(store)
    await store.abort()  # snapshot + journal tail, no final snapshot
    store = await reopen(path, compact_bytes=1500)
    assert await state(store) == before
    await store.close()
    store = await reopen(path)
    assert await state(store) == before
    await store.close()


async def test_interrupted_compaction_is_finished_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    await store.abort()
    # Crash right after rotation: records live in .old, nothing in .journal yet.
    os.replace(store.journal_path, store.journal_path + ".old")
    Path(path + ".tmp").write_text('{"half a snap')  # and a snapshot half-written
    store = await reopen(path)
    assert not os.path.exists(store.journal_path + ".old")
    assert not os.path.exists(path + ".tmp")
    before = await state(store)
    await store.commit([Put(child(base(), "more", AE))])
    await store.abort()
    store = await reopen(path)
    assert await store.get("more") is not None
    assert await store.count() == before["count"] + 1
    await store.close()


async def test_snapshot_is_a_tinydb_database(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    created = [d["ri"] for d in await store.children("id-in")]
    count = await store.count()
    await store.close()
    db = TinyDB(path)
    try:
        assert {"resources", "kv", "meta"} <= db.tables()
        resources = db.table("resources")
        assert len(resources) == count
        assert resources.search(Query().ri == "ae0")[0]["aei"] == "Cnew"
        by_id = sorted(resources.all(), key=lambda d: d.doc_id)
        assert [d["ri"] for d in by_id if d["pi"] == "id-in"] == created
        kv = db.table("kv").all()
        assert [(d["key"], d["value"]) for d in kv if d["ns"] == "q"] == [("a", {"x": [1]}), ("m", "mid")]
    finally:
        db.close()


async def test_non_json_value_is_rejected_without_effect(tmp_path: Path) -> None:
    store = await reopen(str(tmp_path / "cse.json"))
    await store.commit([Put(base())])
    with pytest.raises(TypeError):
        await store.commit([KvPut("q", "k", 1), Put(child(base(), "x", AE, bad=object()))])
    assert await store.kv_get("q", "k") is None
    assert await store.get("x") is None
    await store.commit([KvPut("q", "k", 2)])
    await store.close()
    store = await reopen(str(tmp_path / "cse.json"))
    assert await store.kv_get("q", "k") == 2
    await store.close()


async def test_fsync_mode_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path, fsync=True, compact_bytes=1500)
    await populate(store)
    before = await state(store)
    await store.flush()
    await store.abort()
    store = await reopen(path, fsync=True)
    assert await state(store) == before
    await store.close()


async def test_failed_journal_write_fails_commits_and_keeps_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await store.commit([Put(base())])

    def disk_full(self: JournalWriter, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(JournalWriter, "append", disk_full)
    with pytest.raises(StoreWriteError):
        await store.commit([Put(child(base(), "lost", AE))])
    with pytest.raises(StoreWriteError):  # the store stays read-only
        await store.commit([Put(child(base(), "refused", AE))])
    assert await store.get("refused") is None
    await store.close()  # no snapshot of unacknowledged state
    monkeypatch.undo()
    store = await reopen(path)
    assert await store.get("id-in") is not None
    assert await store.get("lost") is None
    await store.close()


async def test_commit_after_close_raises(tmp_path: Path) -> None:
    store = await reopen(str(tmp_path / "cse.json"))
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.commit([Put(base())])


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from cse.core.ports import Put
    from cse.store.tinydb_store import TinyDBStore

    async def worker(store, w):
        i = 0
        while True:
            ri = f"w{w}-{i}"
            doc = {"ri": ri, "ty": 4, "rn": ri, "pi": "id-in", "_srn": "cse-in/" + ri,
                   "con": "x" * 200}
            await store.commit([Put(doc)])
            sys.stdout.write(ri + "\\n")
            sys.stdout.flush()
            i += 1

    async def main():
        store = TinyDBStore(sys.argv[1], compact_bytes=int(sys.argv[2]))
        await store.open()
        await asyncio.gather(*(worker(store, w) for w in range(8)))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("compact_bytes", [64 * 1024 * 1024, 20_000])
async def test_kill_9_keeps_every_acknowledged_commit(tmp_path: Path, compact_bytes: int) -> None:
    path = str(tmp_path / "cse.json")
    env = checkout_first()
    acked: list[str] = []
    err_path = tmp_path / "child.stderr"  # a file, so a chatty child cannot block
    with open(err_path, "wb") as err, subprocess.Popen(
        [sys.executable, "-c", CHILD, path, str(compact_bytes)],
        stdout=subprocess.PIPE,
        stderr=err,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        try:
            while len(acked) < 1500:
                line = proc.stdout.readline()  # blocks until the child acks a commit
                if not line:
                    proc.wait()
                    pytest.fail("child exited early: " + err_path.read_text())
                acked.append(line.decode().strip())
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        # Lines still in the pipe were printed after their commit returned, too.
        acked.extend(line.decode() for line in proc.stdout.read().split(b"\n")[:-1])
    assert proc.returncode == -signal.SIGKILL
    store = await reopen(path)
    missing = [ri for ri in acked if await store.get(ri) is None]
    assert missing == []
    # Per writer, creation order is commit order.
    kids = [d["ri"] for d in await store.children("id-in")]
    for w in range(8):
        mine = [ri for ri in kids if ri.startswith(f"w{w}-")]
        assert mine == sorted(mine, key=lambda ri: int(ri.split("-")[1]))
    await store.close()


TORN_SEED = 20261122


@pytest.mark.parametrize("damage", ["cut", "cut_plus_zeros", "flip", "garbage_after"])
async def test_torn_last_record_at_random_offsets(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  damage: str) -> None:
    """What a kill -9 can leave at the end of the journal, at seeded random
    byte offsets of the last record: the store opens, drops exactly that
    record, says so in the log, and keeps every earlier commit (the fixed
    cases are in test_torn_last_record_is_dropped).  What a crash cannot
    leave -- zeros or binary junk at the end -- refuses the start, naming
    the file and the offset, and changes nothing."""
    import random

    rng = random.Random(f"{TORN_SEED}-{damage}")
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    before = await state(store)
    await store.commit([Put(child(base(), "victim", AE, lbl=["x" * 300]))])
    await store.abort()
    pristine = Path(store.journal_path).read_bytes()
    last_len = _last_record_len(store.journal_path)
    good_without_last = len(pristine) - last_len
    for trial in range(12):
        data = bytearray(pristine)
        if damage == "cut":  # the write stopped somewhere inside the last record
            data = data[: good_without_last + rng.randrange(1, last_len)]
        elif damage == "cut_plus_zeros":  # ... and zeros follow: not what a crash leaves
            data = data[: good_without_last + rng.randrange(1, last_len)] + bytes(rng.randrange(1, 64))
        elif damage == "flip":  # one payload bit of the last record is wrong (newline kept;
            # not the checksum digits: 'a' -> 'A' would still parse as the same number)
            pos = good_without_last + 9 + rng.randrange(0, last_len - 10)
            data[pos] ^= 1 << rng.randrange(8)
        else:  # the last record is whole; binary junk (no valid record) after it
            data += rng.randbytes(rng.randrange(1, 200)) + b"\x00"
        Path(store.journal_path).write_bytes(bytes(data))
        caplog.clear()
        if damage in ("cut_plus_zeros", "garbage_after"):
            with pytest.raises(StoreCorruptError, match=r"cse\.json\.journal: damaged record at byte \d+"):
                await reopen(path)
            assert Path(store.journal_path).read_bytes() == bytes(data), (damage, trial)
            Path(store.journal_path).write_bytes(pristine)
            continue
        with caplog.at_level("WARNING", logger="cse.store.tinydb_store"):
            reopened = await reopen(path)
        assert await state(reopened) == before, (damage, trial)
        assert os.path.getsize(store.journal_path) == good_without_last
        assert any("torn last record" in r.getMessage() for r in caplog.records), (damage, trial)
        await reopened.abort()
        Path(store.journal_path).write_bytes(pristine)

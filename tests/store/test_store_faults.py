"""Damaged, missing or unwritable store files (docs/troubleshooting.md "Store damaged or full").

Why: a store that starts after silently dropping acknowledged records, or
starts empty because its snapshot went missing, loses data without a word;
a commit whose journal write failed must leave no trace anywhere, and the
store must become writable again by itself once space returns.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cse.core.errors import RSC
from cse.core.ports import Delete, Put
from cse.store.journal import JournalWriter
from cse.store.tinydb_store import MARKER_SUFFIX, StoreCorruptError, StoreWriteError, TinyDBStore
from tests.childenv import checkout_first
from tests.store.test_tinydb_durability import AE, CIN, CNT, base, child, populate, reopen, state


async def _recover_command(path: str) -> subprocess.CompletedProcess[str]:
    """``python -m cse.store.recover <path>`` as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cse.store.recover", path], capture_output=True, text=True,
        env=checkout_first(), timeout=60, check=False)


def _record_offsets(journal: str) -> list[int]:
    data = Path(journal).read_bytes()
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos = data.index(b"\n", pos) + 1
    return offsets


async def _used_journal(tmp_path: Path) -> tuple[str, str, dict[str, Any]]:
    """A store with ~20 journal records, left as a kill -9 leaves it."""
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    before = await state(store)
    await store.abort()
    return path, store.journal_path, before


async def test_a_byte_flipped_in_each_of_the_last_three_records_refuses_the_start(tmp_path: Path) -> None:
    path, journal, _ = await _used_journal(tmp_path)
    offsets = _record_offsets(journal)
    data = bytearray(Path(journal).read_bytes())
    for start in offsets[-3:]:
        data[start + 12] ^= 0x04  # inside each payload
    Path(journal).write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=rf"cse\.json\.journal: damaged record at byte {offsets[-3]} ") as err:
        await reopen(path)
    assert "python -m cse.store.recover" in str(err.value)
    assert Path(journal).read_bytes() == bytes(data)  # nothing dropped or truncated


async def test_zeros_from_the_middle_to_the_end_refuse_the_start(tmp_path: Path) -> None:
    path, journal, _ = await _used_journal(tmp_path)
    data = Path(journal).read_bytes()
    middle = len(data) // 2
    Path(journal).write_bytes(data[:middle] + bytes(len(data) - middle))
    line_start = data.rfind(b"\n", 0, middle) + 1
    with pytest.raises(StoreCorruptError, match=rf"damaged record at byte {line_start} of {len(data)}"):
        await reopen(path)


async def test_recover_command_keeps_a_copy_and_cuts_back_to_the_last_good_record(tmp_path: Path) -> None:
    path, journal, _ = await _used_journal(tmp_path)
    offsets = _record_offsets(journal)
    pristine = Path(journal).read_bytes()
    data = bytearray(pristine)
    for start in offsets[-3:]:
        data[start + 12] ^= 0x04
    Path(journal).write_bytes(bytes(data))
    # What the store holds without the last three records.
    Path(journal).write_bytes(pristine[: offsets[-3]])
    expected = await state(store := await reopen(path))
    await store.abort()
    Path(journal).write_bytes(bytes(data))

    done = await _recover_command(path)
    assert done.returncode == 0, done.stderr
    copies = list(tmp_path.glob("cse.json.journal.damaged-*"))
    assert len(copies) == 1
    assert copies[0].read_bytes() == bytes(data)  # the file as it was
    assert oct(copies[0].stat().st_mode & 0o777) == "0o600"
    assert f"from offset {offsets[-3]}" in done.stdout and str(copies[0]) in done.stdout
    assert os.path.getsize(journal) == offsets[-3]
    store = await reopen(path)
    assert await state(store) == expected
    await store.close()


async def test_recover_command_on_a_healthy_store_changes_nothing(tmp_path: Path) -> None:
    path, journal, _ = await _used_journal(tmp_path)
    before = Path(journal).read_bytes()
    done = await _recover_command(path)
    assert done.returncode == 0 and "nothing changed" in done.stdout
    assert Path(journal).read_bytes() == before
    assert not list(tmp_path.glob("*.damaged-*"))


@pytest.mark.parametrize("how", ["missing", "empty"])
async def test_a_lost_snapshot_after_a_clean_stop_refuses_the_start(tmp_path: Path, how: str) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await populate(store)
    await store.close()
    assert not os.path.exists(store.journal_path)  # a clean stop leaves only the snapshot (and the marker)
    if how == "missing":
        os.remove(path)
    else:
        Path(path).write_bytes(b"")
    with pytest.raises(StoreCorruptError, match=rf"snapshot .*cse\.json is {how} but the store has been used"):
        await reopen(path)
    # Explicitly allowed: starts empty, says so.
    store = await reopen(path, allow_empty=True)
    assert await store.count() == 0
    await store.close()


async def test_a_lost_snapshot_with_a_journal_refuses_the_start(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path, compact_bytes=1500)  # compacts: the journal no longer starts at 1
    await populate(store)
    await store.flush()
    await store.abort()
    os.remove(path)
    os.remove(path + MARKER_SUFFIX)  # even without the marker: the journal shows the store was used
    with pytest.raises(StoreCorruptError, match=r"cse\.json is missing but the store has been used"):
        await reopen(path)


async def test_a_new_store_starts_empty_and_writes_its_marker(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "cse.json")
    store = await reopen(path)
    assert await store.count() == 0
    assert os.path.exists(path + MARKER_SUFFIX) and os.path.getsize(path) > 0
    await store.close()


# ------------------------------------------------------------------ disk full


class FullDisk:
    """Wraps the journal's file object: while ``full``, writes store at most
    ``room`` more bytes (as a real full filesystem does) and then fail ENOSPC."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.full = False
        self.room = 0

    def write(self, data: Any) -> int:
        if not self.full:
            return int(self.inner.write(data))
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        part = bytes(data)[: self.room]
        self.room -= len(part)
        return int(self.inner.write(part))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _fill(store: TinyDBStore, room: int = 0) -> FullDisk:
    """Fault injection through the journal's file object (test only)."""
    writer: JournalWriter = store._journal  # type: ignore[assignment]
    disk = FullDisk(writer._file)
    disk.room = room
    writer._file = disk  # type: ignore[assignment]
    return disk


def _container(n: int) -> list[Put]:
    cnt = child(base(), "cnt", CNT, cni=n)
    return [Put(base()), Put(cnt), *(Put(child(cnt, f"ci{i}", CIN, con=i)) for i in range(n))]


async def test_a_create_that_hits_a_full_disk_leaves_no_trace_and_space_returning_heals(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await store.commit(_container(3))
    before = await state(store)
    journal_size = os.path.getsize(store.journal_path)
    disk = _fill(store, room=40)  # part of the record reaches the file
    disk.full = True
    cnt = await store.get("cnt")
    assert cnt is not None
    # A contentInstance CREATE as the CSE makes it: the new instance, the
    # oldest pruned, the container's counters updated.
    create = [Put(child(cnt, "ci3", CIN, con=3)), Delete("ci0"), Put({**cnt, "cni": 3, "lbl": ["x"]})]
    with pytest.raises(StoreWriteError, match=r"the store cannot write: .*No space left on device") as err:
        await store.commit(create)
    assert err.value.rsc == RSC.INTERNAL_SERVER_ERROR
    assert await store.get("ci3") is None and await store.get("ci0") is not None
    assert (await store.edge_child("cnt", CIN, newest=True) or {})["ri"] == "ci2"  # `la`
    assert await store.count_children("cnt", CIN) == 3  # `cni` as counted
    assert await state(store) == before  # every index, the order included
    assert os.path.getsize(store.journal_path) == journal_size  # no partial line
    # Still full: refused, still nothing changed.
    with pytest.raises(StoreWriteError, match="No space left on device"):
        await store.commit(create)
    assert await state(store) == before
    # Space returns: the next write succeeds without a restart.
    disk.full = False
    await store.commit(create)
    assert await store.get("ci3") is not None and await store.get("ci0") is None
    after = await state(store)
    await store.abort()
    store = await reopen(path)
    assert await state(store) == after
    await store.close()


async def test_a_failed_group_commit_undoes_every_batch_of_the_group(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await store.commit(_container(5))
    before = await state(store)
    disk = _fill(store, room=300)  # a complete record or two of the group reach the file
    disk.full = True
    cnt = child(base(), "cnt", CNT, cni=5)
    batches = [
        [Put(child(base(), "ae-new", AE, aei="Cnew"))],
        [Delete("ci0")],
        [Delete("ci3"), Put({**cnt, "cni": 4})],
        [Put(child(cnt, "ci9", CIN, con=9))],
    ]
    results = await asyncio.gather(*(store.commit(b) for b in batches), return_exceptions=True)
    assert all(isinstance(r, StoreWriteError) for r in results), results
    assert await state(store) == before
    await store.abort()
    store = await reopen(path)
    assert await state(store) == before
    await store.close()


async def test_a_failed_write_is_not_in_the_snapshot_of_a_clean_stop(tmp_path: Path) -> None:
    path = str(tmp_path / "cse.json")
    store = await reopen(path)
    await store.commit(_container(2))
    disk = _fill(store)
    disk.full = True
    with pytest.raises(StoreWriteError):
        await store.commit([Put(child(base(), "lost", AE))])
    await store.close()
    with open(path) as f:
        assert "lost" not in json.dumps(json.load(f))
    store = await reopen(path)
    assert await store.get("lost") is None and await store.get("ci1") is not None
    await store.close()

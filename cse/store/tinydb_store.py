"""Durable store: a TinyDB snapshot file plus an append-only, group-committed journal.

Why this shape: plain TinyDB re-serialises the whole database and clears its
query cache on every write (O(N) per commit), and has no indexes.  So:

* All reads and the commit's effect on state are served by
  :class:`~cse.store.indexed.IndexedDocs` in memory (O(1) per operation).
* Durability comes from :mod:`cse.store.journal`: ``commit`` applies the
  batch in memory at once (reads see it immediately), encodes it as one
  checksummed line and waits; ONE writer task hands every line queued since
  its last write to a dedicated thread as a single write+flush(+fsync)
  (group commit), then resolves all those commits together.  No file I/O
  ever happens on the event loop.
* The file at ``path`` is a real TinyDB JSON database (tables ``resources``,
  one TinyDB document per resource in creation order; ``kv``; ``meta`` with
  the journal sequence the snapshot covers).  It is read through a TinyDB
  :class:`Storage` that hands the parsed dict back by reference and a
  :class:`Table` subclass with raw access, and written atomically
  (temp file, fsync, rename) by the same Storage.  It is rewritten only on
  compaction (journal > ``compact_bytes``, in the background), on ``close``
  and on an ``open`` that finds a half-finished compaction.

Creation order survives restarts because ``resources`` is written in
creation order (TinyDB document ids 1..N) and journal replay re-applies puts
in their original order; no internal key is added to documents.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from cse.core.ports import CommitResult, Doc, Op, Put
from cse.store.files import open_private, private_dirs, tighten
from cse.store.indexed import IndexedDocs
from cse.store.journal import (
    JournalCorruptError,
    JournalWriter,
    Patch,
    apply_patch,
    encode_record,
    fsync_dir,
    scan_journal,
)
from cse.store.memory import IndexedStore

__all__ = ["TinyDBStore", "StoreCorruptError", "StoreWriteError", "SNAPSHOT_FORMAT"]

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
_T = TypeVar("_T")
_encode = json.JSONEncoder(separators=(",", ":")).encode
_CHUNK = 2048  # documents per write() while streaming a snapshot


class StoreCorruptError(RuntimeError):
    """The snapshot or the journal cannot be loaded safely."""


class StoreWriteError(RuntimeError):
    """A journal write failed; the store refuses further commits."""


class SnapshotStorage(Storage):
    """TinyDB storage for the snapshot file.

    ``read`` parses the file once and hands the dict back *by reference*
    (TinyDB's JSONStorage would re-read it for every access); ``write``
    streams the database to a temp file, fsyncs and renames it over the
    snapshot atomically.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._data: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None and os.path.exists(self._path) and os.path.getsize(self._path):
            with open(self._path, "rb") as f:
                self._data = json.load(f)
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        tmp = self._path + ".tmp"
        try:
            with open_private(tmp, "w", encoding="ascii") as f:
                f.write("{")
                for n, (name, table) in enumerate(data.items()):
                    f.write(("," if n else "") + _encode(name) + ":{")
                    _write_table(f.write, table)
                    f.write("}")
                f.write("}")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        fsync_dir(os.path.dirname(self._path))


def _write_table(write: Callable[[str], Any], table: Mapping[str, Any]) -> None:
    """Stream ``"id":doc`` pairs in chunks (bounded memory, C encoder per doc)."""
    buf: list[str] = []
    first = True
    for doc_id, doc in table.items():
        buf.append(_encode(doc_id) + ":" + _encode(doc))
        if len(buf) >= _CHUNK:
            write(("" if first else ",") + ",".join(buf))
            first, buf = False, []
    if buf:
        write(("" if first else ",") + ",".join(buf))


class RawTable(Table):
    """TinyDB table with by-reference bulk access to its raw ``{id: doc}`` dict,
    skipping TinyDB's per-access document wrapping and id conversion."""

    def raw(self) -> dict[str, Doc]:
        return self._read_table()  # type: ignore[return-value]


class SnapshotDB(TinyDB):
    """TinyDB over :class:`SnapshotStorage` whose tables are :class:`RawTable`."""

    table_class = RawTable

    def __init__(self, path: str) -> None:
        super().__init__(path, storage=SnapshotStorage)

    def raw(self, name: str) -> dict[str, Doc]:
        """Table ``name`` as its raw ``{doc_id: doc}`` dict, by reference."""
        table = self.table(name)
        assert isinstance(table, RawTable)
        return table.raw()


def write_snapshot(path: str, docs: list[Doc], kv: dict[str, dict[str, Any]], seq: int) -> None:
    """Write the TinyDB snapshot covering journal sequence ``seq`` (thread-safe:
    only immutable documents and private copies are touched)."""
    data = {
        "resources": {str(i): doc for i, doc in enumerate(docs, 1)},
        "kv": {
            str(i): {"ns": ns, "key": key, "value": value}
            for i, (ns, key, value) in enumerate(
                ((ns, k, v) for ns, space in kv.items() for k, v in space.items()), 1
            )
        },
        "meta": {"1": {"format": SNAPSHOT_FORMAT, "seq": seq, "count": len(docs)}},
    }
    SnapshotStorage(path).write(data)


def load_snapshot(path: str, idx: IndexedDocs) -> int:
    """Load the snapshot into ``idx``; return the journal sequence it covers."""
    db = SnapshotDB(path)
    try:
        meta: Doc = next(iter(db.raw("meta").values()), {})
        if meta.get("format", SNAPSHOT_FORMAT) != SNAPSHOT_FORMAT:
            raise StoreCorruptError(f"snapshot {path}: unknown format {meta.get('format')!r}")
        idx.load(db.raw("resources").values())
        for item in db.raw("kv").values():
            idx.kv_set(item["ns"], item["key"], item["value"])
        return int(meta.get("seq", 0))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StoreCorruptError(f"snapshot {path} cannot be loaded: {exc!r}") from exc


@dataclass(slots=True)
class _Loaded:
    idx: IndexedDocs
    seq: int
    snap_seq: int
    snap_exists: bool
    journal: JournalWriter
    needs_compact: bool


def _load(path: str, journal_path: str, fsync: bool, compact_bytes: int) -> _Loaded:
    """Snapshot + journal replay; runs in the journal thread before the store
    is visible to anyone, so it may build the indexes without locking.

    The cyclic GC is paused meanwhile (process-wide, for the duration of
    ``open`` only): loading creates millions of acyclic JSON objects and the
    collector's repeated passes over them would triple the load time."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_unpaused(path, journal_path, fsync, compact_bytes)
    finally:
        if gc_was_enabled:
            gc.enable()


def _resolve(idx: IndexedDocs, ops: list[Op | Patch]) -> list[Op]:
    """Journal ops with patches turned back into the documents they make
    (each against the state the earlier ops of the record left)."""
    if not any(isinstance(op, Patch) for op in ops):
        return ops  # type: ignore[return-value]
    out: list[Op] = []
    made: dict[str, Doc] = {}
    for op in ops:
        if isinstance(op, Patch):
            old = made.get(op.ri) or idx.docs.get(op.ri)
            if old is None:
                raise ValueError(f"patch of missing document {op.ri!r}")
            op = Put(apply_patch(old, op))
        if isinstance(op, Put):
            made[op.doc["ri"]] = op.doc
        out.append(op)
    return out


def _load_unpaused(path: str, journal_path: str, fsync: bool, compact_bytes: int) -> _Loaded:
    private_dirs(os.path.dirname(os.path.abspath(path)))
    try:
        os.remove(path + ".tmp")  # a compaction killed mid-write
    except FileNotFoundError:
        pass
    for existing in (path, journal_path, journal_path + ".old"):
        tighten(existing)
    idx = IndexedDocs()
    snap_exists = os.path.exists(path) and os.path.getsize(path) > 0
    snap_seq = load_snapshot(path, idx) if snap_exists else 0
    journal = JournalWriter(journal_path, fsync=fsync)
    try:
        old, cur = scan_journal(journal.old_path), scan_journal(journal_path)
    except JournalCorruptError as exc:
        raise StoreCorruptError(str(exc)) from exc
    if old.torn and cur.records:
        raise StoreCorruptError(f"{old.path}: corrupt record at byte {old.good_size}")
    seq, prev = snap_seq, None
    for scan in (old, cur):
        for rec_seq, ops in scan.records:
            if (prev is not None and rec_seq != prev + 1) or (prev is None and rec_seq > snap_seq + 1):
                raise StoreCorruptError(
                    f"{scan.path}: journal sequence jumps to {rec_seq} after "
                    f"{prev if prev is not None else snap_seq}; records are missing"
                )
            prev = rec_seq
            if rec_seq > snap_seq:
                try:
                    idx.apply(_resolve(idx, ops))
                except (TypeError, ValueError, KeyError) as exc:
                    raise StoreCorruptError(f"{scan.path}: record {rec_seq}: {exc}") from exc
                seq = rec_seq
        if scan.torn:
            log.warning(
                "journal %s: dropped a torn/corrupt last record (%d bytes at offset %d)",
                scan.path, scan.size - scan.good_size, scan.good_size,
            )
    journal.open(truncate_to=cur.good_size if cur.torn else None)
    needs_compact = os.path.exists(journal.old_path) or journal.size > compact_bytes
    return _Loaded(idx, seq, snap_seq, snap_exists, journal, needs_compact)


class TinyDBStore(IndexedStore):
    """The default durable backend (see module docstring)."""

    def __init__(self, path: str, *, fsync: bool = False, compact_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__()
        self._path = path
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._journal: JournalWriter | None = None
        self._seq = 0  # last commit sequence handed out
        self._snap_seq = 0  # sequence the snapshot on disk covers
        self._snap_exists = False
        self._lines: list[bytes] = []  # encoded commits waiting for the writer
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._jexec: ThreadPoolExecutor | None = None  # journal thread
        self._cexec: ThreadPoolExecutor | None = None  # snapshot thread
        self._state = "new"  # new -> open -> closing -> closed
        self._failure: BaseException | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def journal_path(self) -> str:
        return self._path + ".journal"

    async def _in(self, executor: ThreadPoolExecutor | None, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Load snapshot + journal(s), finish an interrupted compaction, start the writer."""
        if self._state != "new":
            raise RuntimeError(f"TinyDBStore.open() on a {self._state} store")
        self._jexec = ThreadPoolExecutor(1, thread_name_prefix="cse-journal")
        self._cexec = ThreadPoolExecutor(1, thread_name_prefix="cse-snapshot")
        try:
            loaded = await self._in(
                self._jexec, _load, self._path, self.journal_path, self._fsync, self._compact_bytes
            )
            self._idx, self._journal = loaded.idx, loaded.journal
            self._seq, self._snap_seq, self._snap_exists = loaded.seq, loaded.snap_seq, loaded.snap_exists
            if loaded.needs_compact:
                await self._snapshot(reset_journal=True)
        except BaseException:
            self._state = "closed"
            if self._journal is not None:
                await self._in(self._jexec, self._journal.close)
            self._shutdown_threads()
            raise
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._state = "open"

    async def close(self) -> None:
        """Drain pending commits, write a final snapshot, remove the journal."""
        if self._state in ("new", "closed"):
            self._state = "closed"
            return
        if self._state == "closing":
            raise RuntimeError("TinyDBStore.close() already in progress")
        self._state = "closing"
        self._wake.set()
        try:
            if self._writer is not None:
                await self._writer
            if self._compactor is not None:
                await self._compactor
            journal = self._journal
            assert journal is not None
            snapshotted = False
            try:
                if self._failure is None:
                    if self._seq != self._snap_seq or not self._snap_exists:
                        await self._snapshot(reset_journal=False)
                    snapshotted = True
            finally:
                # The journal goes only once a snapshot covers all of it.
                await self._in(self._jexec, lambda: journal.close(remove=snapshotted))
        finally:
            self._state = "closed"
            self._shutdown_threads()

    async def abort(self) -> None:
        """Stop without flushing or snapshotting: leaves on disk what a
        ``kill -9`` would (plus any journal write or snapshot already under
        way in a thread, which is allowed to finish so nothing of this store
        touches the files afterwards).  Pending commits fail.  For tests and
        fatal errors."""
        if self._state not in ("open", "closing"):
            return
        self._state = "closed"
        for task in (self._writer, self._compactor):
            if task is not None:
                task.cancel()
        for task in (self._writer, self._compactor):
            if task is not None:
                try:
                    await task
                except BaseException:
                    pass
        self._fail_waiters(StoreWriteError("store aborted"))
        if self._journal is not None:
            await self._in(self._jexec, self._journal.close)
        self._shutdown_threads()
        for executor in (self._jexec, self._cexec):
            if executor is not None:  # wait for work already running there
                await self._in(None, executor.shutdown, True)

    def _shutdown_threads(self) -> None:
        for executor in (self._jexec, self._cexec):
            if executor is not None:
                executor.shutdown(wait=False)

    async def flush(self) -> None:
        """Wait until every commit so far is durable and no compaction runs."""
        await self.commit([])
        while self._compactor is not None and not self._compactor.done():
            await asyncio.shield(self._compactor)

    # ------------------------------------------------------------------ commit

    async def commit(self, ops: Sequence[Op]) -> CommitResult:
        """Apply ``ops`` in memory now; return once their journal record is
        flushed to the OS (and fsynced if ``fsync=True``)."""
        if self._state != "open":
            raise RuntimeError(f"commit on a {self._state} TinyDBStore")
        if self._failure is not None:
            raise StoreWriteError("journal write failed earlier") from self._failure
        if not isinstance(ops, (list, tuple)):
            ops = list(ops)  # iterated twice below
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not ops:  # a barrier: resolves after everything queued before it
            result = CommitResult()
        else:
            line = encode_record(self._seq + 1, ops, self._idx.docs.get)  # raises before any change
            result = self._idx.apply(ops)  # validates first; atomic
            self._seq += 1
            self._lines.append(line)
        self._waiters.append(fut)
        self._wake.set()
        await fut
        return result

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters, self._lines = self._waiters, [], []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc)

    async def _write_loop(self) -> None:
        """The single journal writer: one write per batch of queued commits."""
        journal = self._journal
        assert journal is not None
        while True:
            if not self._waiters:
                if self._state != "open":
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if self._failure is not None:
                self._fail_waiters(StoreWriteError("journal write failed earlier"))
                continue
            lines, waiters = self._lines, self._waiters
            self._lines, self._waiters = [], []
            size = journal.size
            if lines:
                try:
                    size = await self._in(self._jexec, journal.append, b"".join(lines))
                except Exception as exc:
                    log.exception("journal write failed; store is now read-only")
                    self._failure = exc
                    for fut in waiters:
                        if not fut.done():
                            fut.set_exception(StoreWriteError(f"journal write failed: {exc}"))
                    continue
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if size > self._compact_bytes and (self._compactor is None or self._compactor.done()):
                self._compactor = asyncio.get_running_loop().create_task(self._compact())

    # -------------------------------------------------------------- compaction

    async def compact(self) -> None:
        """Compact now, as a journal over ``compact_bytes`` does in the
        background: a fresh snapshot of the current state replaces the
        journal records before it, so what was deleted (a terminated
        session with its wrapped key) is in no store file any more."""
        if self._state != "open":
            raise RuntimeError(f"compact on a {self._state} TinyDBStore")
        await self.flush()  # every commit durable, no compaction running
        self._compactor = asyncio.get_running_loop().create_task(self._rotate_and_snapshot())
        await self._compactor

    async def _rotate_and_snapshot(self) -> None:
        """Rotate the journal, snapshot, drop the old journal."""
        journal = self._journal
        assert journal is not None
        if not await self._in(self._jexec, journal.has_old):
            await self._in(self._jexec, journal.rotate)
        await self._snapshot(reset_journal=False)

    async def _compact(self) -> None:
        """:meth:`_rotate_and_snapshot` in the background."""
        try:
            await self._rotate_and_snapshot()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The journal(s) still hold every record; retried on the next trigger
            # (a failed rotate leaves no open journal, so appends fail loudly).
            log.exception("journal compaction failed")

    async def _snapshot(self, *, reset_journal: bool) -> None:
        """Snapshot the current state (copied on the loop, written in the
        snapshot thread), then drop journal records it covers: ``.old``
        always, the active journal too if ``reset_journal`` (only safe while
        nothing can be appended, i.e. during open)."""
        journal = self._journal
        assert journal is not None
        seq = self._seq
        docs, kv = self._idx.snapshot()
        await self._in(self._cexec, write_snapshot, self._path, docs, kv, seq)
        self._snap_seq, self._snap_exists = seq, True
        await self._in(self._jexec, journal.reset if reset_journal else journal.drop_old)

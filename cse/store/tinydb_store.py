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
  the journal sequence the snapshot covers; :mod:`cse.store.snapshot`),
  written atomically (temp file, fsync, rename).  It is rewritten only on
  compaction (journal > ``compact_bytes``, in the background), on ``close``
  and on an ``open`` that finds a half-finished compaction.  A snapshot is
  encoded on the loop a few hundred documents at a time, with requests
  served in between, and written in a thread: it never stalls the loop for
  longer than one such piece.

Faults (docs/troubleshooting.md "Store damaged or full"):

* Damage the journal cannot explain as a torn last record, or a missing or
  empty snapshot in a store that has been used (a journal, or the marker
  file ``<path>.marker`` written at its first start), stops ``open`` with
  :class:`StoreCorruptError` naming the file; ``allow_empty`` accepts a
  missing snapshot explicitly.
* A failed journal write (disk full, I/O error) leaves no trace: the file
  is cut back to its last good length, the in-memory state is reloaded
  from the durable files (undoing every batch not yet written, the failed
  group and any queued after it) and only then do those commits fail with
  :class:`StoreWriteError`.  Until a write succeeds again the store is
  read-only; each later commit retries the journal (without touching
  memory first) and the first that succeeds makes it writable again.

Creation order survives restarts because ``resources`` is written in
creation order (TinyDB document ids 1..N) and journal replay re-applies puts
in their original order; no internal key is added to documents.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cse.core.errors import InternalServerError
from cse.core.ports import CommitResult, Doc, Op, Put
from cse.store.files import open_private, private_dirs, tighten
from cse.store.indexed import IndexedDocs, check_ops
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
from cse.store.snapshot import SNAPSHOT_FORMAT, SnapshotFile, StoreCorruptError, load_snapshot, snapshot_pieces

__all__ = ["TinyDBStore", "StoreCorruptError", "StoreWriteError", "SNAPSHOT_FORMAT", "MARKER_SUFFIX"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class StoreWriteError(InternalServerError):
    """A commit was not made durable (and left no trace).

    A oneM2M error so the client gets 5000 with an ``m2m:dbg`` naming the
    cause ("the store cannot write: [Errno 28] No space left on device")
    rather than an anonymous internal error (TS-0004 6.6.3.3: no more
    specific response status code exists for a full store)."""


MARKER_SUFFIX = ".marker"
_BLOCKED_LOG_EVERY_S = 10.0


def write_marker(path: str) -> None:
    """Write ``<path>.marker``: this store has been used, so a missing
    snapshot from now on is a loss, not a fresh start."""
    marker = path + MARKER_SUFFIX
    if os.path.exists(marker):
        return
    with open_private(marker, "w", encoding="ascii") as f:
        f.write("cse store in use; see docs/troubleshooting.md\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(os.path.dirname(marker))


@dataclass(slots=True)
class _Replayed:
    idx: IndexedDocs
    seq: int
    snap_seq: int
    snap_exists: bool
    cur_good_size: int
    cur_torn: bool


@dataclass(slots=True)
class _Loaded:
    state: _Replayed
    journal: JournalWriter
    needs_compact: bool


def _gc_paused(fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn`` with the cyclic GC paused (process-wide, for its duration):
    loading creates millions of acyclic JSON objects and the collector's
    repeated passes over them would triple the load time."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(*args)
    finally:
        if gc_was_enabled:
            gc.enable()


def _load(path: str, journal_path: str, fsync: bool, compact_bytes: int, allow_empty: bool) -> _Loaded:
    """Snapshot + journal replay; runs in the journal thread before the store
    is visible to anyone, so it may build the indexes without locking."""
    return _gc_paused(_load_unpaused, path, journal_path, fsync, compact_bytes, allow_empty)


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


def _check_not_emptied(path: str, journal_path: str, allow_empty: bool) -> bool:
    """Whether the snapshot exists; raise if it is missing or empty in a
    store that has been used, unless ``allow_empty``."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return True
    used = [p for p in (path + MARKER_SUFFIX, journal_path, journal_path + ".old")
            if os.path.exists(p) and (p.endswith(MARKER_SUFFIX) or os.path.getsize(p) > 0)]
    if used:
        what = "is empty" if os.path.exists(path) else "is missing"
        if not allow_empty:
            raise StoreCorruptError(
                f"snapshot {path} {what} but the store has been used ({', '.join(used)} exist): refusing "
                "to start without it; restore it from a backup, or set [store] allow_empty = true "
                "(or --allow-empty-store) to start from the journal alone")
        log.warning("snapshot %s %s in a used store; starting from the journal alone (allow_empty)", path, what)
    return False


def _replay(path: str, journal_path: str, snap_exists: bool, cur_limit: int | None = None) -> _Replayed:
    """The durable state: snapshot plus the journal records after it."""
    idx = IndexedDocs()
    snap_seq = load_snapshot(path, idx) if snap_exists else 0
    try:
        old = scan_journal(journal_path + ".old")
        cur = scan_journal(journal_path, limit=cur_limit)
    except JournalCorruptError as exc:
        raise StoreCorruptError(str(exc)) from exc
    if old.torn and cur.records:
        raise StoreCorruptError(
            f"{old.path}: damaged record at byte {old.good_size} is followed by {cur.path}; "
            "recover with `python -m cse.store.recover <store path>`")
    seq, prev = snap_seq, None
    for scan in (old, cur):
        for rec_seq, ops in scan.records:
            if (prev is not None and rec_seq != prev + 1) or (prev is None and rec_seq > snap_seq + 1):
                raise StoreCorruptError(
                    f"{scan.path}: journal sequence jumps to {rec_seq} after "
                    f"{prev if prev is not None else snap_seq}; records are missing"
                    + ("" if snap_exists else f" (snapshot {path} is missing)")
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
                "journal %s: dropped a torn last record (%d bytes at offset %d)",
                scan.path, scan.size - scan.good_size, scan.good_size,
            )
    return _Replayed(idx, seq, snap_seq, snap_exists, cur.good_size, cur.torn)


def _load_unpaused(path: str, journal_path: str, fsync: bool, compact_bytes: int, allow_empty: bool) -> _Loaded:
    private_dirs(os.path.dirname(os.path.abspath(path)))
    try:
        os.remove(path + ".tmp")  # a compaction killed mid-write
    except FileNotFoundError:
        pass
    for existing in (path, journal_path, journal_path + ".old", path + MARKER_SUFFIX):
        tighten(existing)
    snap_exists = _check_not_emptied(path, journal_path, allow_empty)
    state = _replay(path, journal_path, snap_exists)
    journal = JournalWriter(journal_path, fsync=fsync)
    journal.open(truncate_to=state.cur_good_size if state.cur_torn else None)
    # No snapshot yet: write one now (with the marker after it), so a
    # used store always has one and its loss is noticed.
    needs_compact = not snap_exists or os.path.exists(journal.old_path) or journal.size > compact_bytes
    return _Loaded(state, journal, needs_compact)


class TinyDBStore(IndexedStore):
    """The default durable backend (see module docstring)."""

    def __init__(self, path: str, *, fsync: bool = False, compact_bytes: int = 64 * 1024 * 1024,
                 allow_empty: bool = False) -> None:
        super().__init__()
        self._path = path
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._allow_empty = allow_empty
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
        self._failure: BaseException | None = None  # the last journal write error, until one succeeds
        self._durable_seq = 0  # last commit sequence known written
        self._generation = 0  # bumped whenever memory is reloaded from the files
        self._reloading = False
        self._probing = False
        self._blocked_logged = 0.0  # monotonic time of the last "still blocked" log line

    @property
    def path(self) -> str:
        return self._path

    @property
    def journal_path(self) -> str:
        return self._path + ".journal"

    @property
    def writable(self) -> bool:
        """Open, and the last journal write succeeded (readiness, GET /health):
        after a failed write commits are refused until one succeeds again."""
        return self._state == "open" and self._failure is None and not self._reloading

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
                self._jexec, _load, self._path, self.journal_path, self._fsync, self._compact_bytes,
                self._allow_empty,
            )
            st = loaded.state
            self._idx, self._journal = st.idx, loaded.journal
            self._seq, self._snap_seq, self._snap_exists = st.seq, st.snap_seq, st.snap_exists
            self._durable_seq = st.seq
            if loaded.needs_compact:
                await self._snapshot(reset_journal=True)
            await self._in(self._jexec, write_marker, self._path)
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
        flushed to the OS (and fsynced if ``fsync=True``).  If that write
        fails the batch is undone before :class:`StoreWriteError` is raised."""
        if self._state != "open":
            raise RuntimeError(f"commit on a {self._state} TinyDBStore")
        if not isinstance(ops, (list, tuple)):
            ops = list(ops)  # iterated twice below
        if self._failure is not None or self._reloading:
            return await self._retry_commit(ops)
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

    def _refusal(self) -> StoreWriteError:
        cause = self._failure
        return StoreWriteError(f"the store cannot write: {cause if cause is not None else 'recovering'}")

    async def _retry_commit(self, ops: Sequence[Op]) -> CommitResult:
        """A commit while the journal cannot be written: try the journal
        first and change memory only once the record is written (one such
        attempt at a time; others are refused at once)."""
        journal = self._journal
        assert journal is not None
        if self._reloading or self._probing or not ops:
            raise self._refusal()
        check_ops(ops)
        line = encode_record(self._seq + 1, ops, self._idx.docs.get)
        self._probing = True
        try:
            size = await self._in(self._jexec, journal.append, line)
        except Exception as exc:
            self._failure = exc
            now = time.monotonic()
            if now - self._blocked_logged >= _BLOCKED_LOG_EVERY_S:
                self._blocked_logged = now
                log.error("store %s is read-only: journal %s still cannot be written (%s); "
                          "retried on the next write", self._path, journal.path, exc)
            raise self._refusal() from exc
        finally:
            self._probing = False
        if self._state != "open":
            raise RuntimeError(f"commit on a {self._state} TinyDBStore")
        result = self._idx.apply(ops)
        self._seq += 1
        self._durable_seq = self._seq
        self._failure = None
        log.warning("store %s: journal %s is writable again; accepting writes", self._path, journal.path)
        self._maybe_compact(size)
        return result

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters, self._lines = self._waiters, [], []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc)

    def _maybe_compact(self, size: int) -> None:
        if size > self._compact_bytes and (self._compactor is None or self._compactor.done()):
            self._compactor = asyncio.get_running_loop().create_task(self._compact())

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
                self._fail_waiters(self._refusal())
                continue
            lines, waiters = self._lines, self._waiters
            self._lines, self._waiters = [], []
            size = journal.size
            if lines:
                try:
                    size = await self._in(self._jexec, journal.append, b"".join(lines))
                except Exception as exc:
                    await self._undo_unwritten(exc, waiters)
                    continue
                self._durable_seq += len(lines)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            self._maybe_compact(size)

    async def _undo_unwritten(self, exc: Exception, waiters: list[asyncio.Future[None]]) -> None:
        """The journal write of a group failed: undo it and every batch
        queued after it, then fail their commits (module docstring)."""
        journal = self._journal
        assert journal is not None
        self._failure = exc
        self._reloading = True
        self._blocked_logged = time.monotonic()
        waiters = waiters + self._waiters
        self._lines, self._waiters = [], []
        undone = self._seq - self._durable_seq
        log.error("store %s is read-only: journal %s cannot be written (%s); %d unwritten batch(es) undone; "
                  "the next write retries the journal", self._path, journal.path, exc, undone)
        try:
            state = await self._in(self._jexec, _gc_paused, _replay, self._path, self.journal_path,
                                   self._snap_exists, journal.size)
            self._idx, self._seq = state.idx, state.seq
            self._generation += 1
        except Exception:
            log.exception("store %s: reloading the durable state failed; no more writes", self._path)
            self._failure = exc
            self._probing = True  # refuses every later commit
        finally:
            self._reloading = False
        error = self._refusal()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(error)

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
        """Snapshot the current state, then drop journal records it covers:
        ``.old`` always, the active journal too if ``reset_journal`` (only
        safe while nothing can be appended, i.e. during open).

        The state is copied on the loop (a list of references, no document
        is copied), encoded on the loop ``CHUNK`` documents at a time with
        requests served between two pieces, and written in the snapshot
        thread (:mod:`cse.store.snapshot`).  The copy may include commits
        not yet written to the journal, so the snapshot is put in place only
        once they are, and thrown away if they were undone meanwhile (a
        failed write must leave no trace)."""
        journal = self._journal
        assert journal is not None
        seq, generation = self._seq, self._generation
        docs, kv = self._idx.snapshot()
        out = SnapshotFile(self._path)
        cexec = self._cexec
        assert cexec is not None
        try:
            await self._in(cexec, out.open)
            for piece in snapshot_pieces(docs, kv, seq):
                await self._in(cexec, out.write, piece)
            await self._in(cexec, out.finish)
        except BaseException:
            try:  # after any write still running there; not awaited (this may be a cancellation)
                cexec.submit(out.discard)
            except RuntimeError:
                pass  # threads already stopped: the next open removes the temp file
            raise
        while self._durable_seq < seq and self._generation == generation and self._failure is None:
            barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(barrier)
            self._wake.set()
            try:
                await barrier
            except StoreWriteError:
                break
        keep = self._durable_seq >= seq and self._generation == generation
        await self._in(cexec, out.install if keep else out.discard)
        if not keep:
            raise StoreWriteError(f"snapshot {self._path} not written: the commits it held were undone")
        self._snap_seq, self._snap_exists = seq, True
        await self._in(self._jexec, journal.reset if reset_journal else journal.drop_old)

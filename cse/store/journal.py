"""Append-only commit journal for the durable store: format, writer, replay.

Why: TinyDB rewrites its whole file on every write, which is O(N) per commit.
Instead each commit is appended here as one self-checking line and the
TinyDB snapshot is rewritten only when the journal has grown (compaction).

Record format, one per commit::

    <crc32 of payload, 8 lowercase hex digits> <payload JSON>\\n

where the payload is ``{"s": <commit sequence>, "o": [op, ...]}`` with ops
encoded as ``["p", doc]``, ``["d", ri]``, ``["k", ns, key, value]`` and
``["x", ns, key]``, and a replaced document as a patch against its previous
version, ``["u", ri, {attr: value}, [removed attr, ...], {attr: [drop, tail]}]``
(the last part: a list that lost its first ``drop`` items and gained
``tail``, e.g. a session's bounded history), so an update of a large
document journals what changed, not the whole document again.  Payloads
are ASCII JSON (``ensure_ascii``), so a record never contains a raw newline.

Files: ``<db>.journal`` is the active journal; compaction renames it to
``<db>.journal.old`` before snapshotting and deletes that once the snapshot
is safely in place.  Replay reads ``.old`` then the active file; sequence
numbers (recorded in the snapshot too) make it exact: records the snapshot
already covers are skipped.

Only what a crash can tear may be dropped: the *last* record, when it is
an incomplete final line (no newline, and nothing in it a record cannot
start with: a prefix of ``<hex> <ASCII JSON>``) or a complete final line
whose checksum fails.  It was never acknowledged, so it is dropped and the
file truncated.  Anything else -- a bad record with more bytes after its
line, zeros or binary junk at the end -- is damage and raises
:class:`JournalCorruptError` naming the file and the offset; the store
then refuses to start and ``python -m cse.store.recover`` (docs/
troubleshooting.md "Store damaged or full") cuts the file back to its last
good record, keeping a copy.

:class:`JournalWriter` is synchronous and must only be used from the store's
single journal thread, which serialises appends, rotation and removal.
"""

from __future__ import annotations

import json
import operator
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from cse.core.ports import Delete, KvDelete, KvPut, Op, Put
from cse.store.files import open_private

__all__ = [
    "JournalCorruptError",
    "JournalScan",
    "JournalWriter",
    "Patch",
    "apply_patch",
    "encode_record",
    "fsync_dir",
    "scan_journal",
]

# check_circular off: documents are parsed JSON or built by code, never cyclic (a
# cycle would raise RecursionError instead of ValueError); skipping the per-container
# bookkeeping makes every journal record about 30% cheaper to encode.
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class JournalCorruptError(RuntimeError):
    """The journal is damaged somewhere other than its last record."""


@dataclass(frozen=True, slots=True)
class Patch:
    """A journalled replacement of document ``ri`` as a change to its
    previous version; replay turns it back into a ``Put``."""

    ri: str
    set: dict[str, Any]
    unset: list[str]
    lists: dict[str, list[Any]]


_MISSING = object()


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Any]:
    """``["u", ri, set, unset, lists]`` taking ``old`` to ``new``. Values
    are compared by identity: an update copies the unchanged ones over."""
    changed: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is value:
            continue
        if type(value) is list and type(before) is list and value:
            tail = _appended(before, value)
            if tail is not None:
                lists[key] = [len(before) - len(value) + tail, value[-tail:]]
                continue
        changed[key] = value
    removed = [key for key in old if key not in new]
    return ["u", new["ri"], changed, removed, lists]


_TAIL_MAX = 256  # appended items a list patch looks for at most


def _appended(before: list[Any], value: list[Any]) -> int | None:
    """``n`` when ``value`` is ``before`` shifted by ``n`` appended items
    (the oldest dropped, same objects; a history that gained one entry, or
    a batch of entries in one commit), else None."""
    nv, nb = len(value), len(before)
    for n in range(max(1, nv - nb), min(nv, _TAIL_MAX) + 1):
        drop = nb - nv + n  # >= 0 from the first n on
        keep = nv - n
        if keep and value[0] is not before[drop]:
            continue  # the usual miss, found without a scan
        if all(map(operator.is_, value[:keep], before[drop:])):  # C-level loop: a 50-entry history per commit
            return n
    return None


def apply_patch(old: Mapping[str, Any], patch: Patch) -> dict[str, Any]:
    """The document ``patch`` makes of ``old``."""
    doc = {key: value for key, value in old.items() if key not in patch.unset}
    for key, (drop, tail) in patch.lists.items():
        doc[key] = [*old[key][drop:], *tail]
    doc.update(patch.set)
    return doc


def encode_record(seq: int, ops: Sequence[Op],
                  current: Callable[[str], Mapping[str, Any] | None] | None = None) -> bytes:
    """One journal line for commit ``seq``; raises if a value is not JSON.

    ``current(ri)`` gives the stored version a ``Put`` replaces (before this
    commit); with it, replacements are journalled as patches.
    """
    encoded: list[list[Any]] = []
    seen: dict[str, Mapping[str, Any]] = {}
    for op in ops:
        if isinstance(op, Put):
            doc = op.doc
            old = None
            ri = doc.get("ri") if isinstance(doc, dict) else None
            if current is not None and isinstance(ri, str):
                old = seen[ri] if ri in seen else current(ri)
                seen[ri] = doc
            if old is not None and old.get("pi") == doc.get("pi") and old.get("ty") == doc.get("ty"):
                encoded.append(_diff(old, doc))
            else:
                encoded.append(["p", doc])
        elif isinstance(op, Delete):
            current = None  # a subtree went: later documents are journalled whole
            encoded.append(["d", op.ri])
        elif isinstance(op, KvPut):
            encoded.append(["k", op.ns, op.key, op.value])
        elif isinstance(op, KvDelete):
            encoded.append(["x", op.ns, op.key])
        else:
            raise TypeError(f"unknown store operation {op!r}")
    payload = _encode({"s": seq, "o": encoded}).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode_ops(raw: list[Any]) -> list[Op | Patch]:
    ops: list[Op | Patch] = []
    for item in raw:
        tag = item[0]
        if tag == "p":
            ops.append(Put(item[1]))
        elif tag == "d":
            ops.append(Delete(item[1]))
        elif tag == "k":
            ops.append(KvPut(item[1], item[2], item[3]))
        elif tag == "x":
            ops.append(KvDelete(item[1], item[2]))
        elif tag == "u":
            ri, changed, removed, lists = item[1], item[2], item[3], item[4]
            if not (isinstance(ri, str) and isinstance(changed, dict) and isinstance(removed, list)
                    and isinstance(lists, dict)):
                raise ValueError("malformed patch")
            ops.append(Patch(ri, changed, removed, lists))
        else:
            raise ValueError(f"unknown op tag {tag!r}")
    return ops


def _parse(line: bytes) -> tuple[int, list[Op | Patch]] | None:
    """(seq, ops) of a journal line without its newline, or None if bad."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    payload = line[9:]
    if zlib.crc32(payload) != crc:
        return None
    try:
        obj = json.loads(payload)
        seq = obj["s"]
        if not isinstance(seq, int):
            return None
        return seq, _decode_ops(obj["o"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


@dataclass(slots=True)
class JournalScan:
    """What :func:`scan_journal` found in one journal file."""

    path: str
    records: list[tuple[int, list[Op | Patch]]] = field(default_factory=list)
    size: int = 0  # bytes in the file
    good_size: int = 0  # bytes up to the end of the last valid record

    @property
    def torn(self) -> bool:
        """True if bytes after the last valid record must be dropped."""
        return self.good_size < self.size


def scan_journal(path: str, *, lenient: bool = False, limit: int | None = None) -> JournalScan:
    """Read every valid record of ``path`` (missing file: no records).

    Raises :class:`JournalCorruptError` on damage other than a torn last
    record (module docstring); with ``lenient`` it stops at the first bad
    record instead (what the recovery command keeps).  ``limit``: read
    only that many bytes (what the writer knows to be complete).
    """
    scan = JournalScan(path)
    try:
        with open(path, "rb") as f:
            data = f.read() if limit is None else f.read(limit)
    except FileNotFoundError:
        return scan
    scan.size = len(data)
    pos, end = 0, len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        record = _parse(data[pos:nl]) if nl >= 0 else None
        if record is None:
            if not lenient and not _torn_tail(data, pos, nl):
                raise JournalCorruptError(
                    f"{path}: damaged record at byte {pos} of {end} (not a torn last record); "
                    "refusing to start. Recover with `python -m cse.store.recover <store path>` "
                    "(keeps a copy, cuts the journal back to its last good record) or restore a backup"
                )
            break
        scan.records.append(record)
        pos = nl + 1
    scan.good_size = pos
    return scan


#: What an incomplete last line torn by a crash can hold: a prefix of
#: ``<8 hex> <ASCII JSON>`` (no control bytes, no zeros).
_TORN_PREFIX = re.compile(rb"[0-9a-f]{0,8}(?: [\x20-\x7e]*)?\Z")


def _torn_tail(data: bytes, pos: int, nl: int) -> bool:
    """Whether the bad record at ``pos`` is one a crash mid-write leaves:
    the last line, either without its newline and looking like the start
    of a record, or complete (newline last byte of the file)."""
    if nl < 0:
        return _TORN_PREFIX.match(data, pos) is not None
    return nl == len(data) - 1


def fsync_dir(path: str) -> None:
    """Make a rename/create/unlink inside directory ``path`` durable."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalWriter:
    """The active journal file. Not thread-safe: one journal thread only."""

    def __init__(self, path: str, *, fsync: bool) -> None:
        self.path = path
        self.old_path = path + ".old"
        self._fsync = fsync
        self._file: BinaryIO | None = None
        self.size = 0  # bytes of complete, written records
        self._dirty = False  # a failed write may have left bytes after ``size``

    def open(self, truncate_to: int | None = None) -> None:
        """Open for appending, first cutting a torn tail off at ``truncate_to``."""
        if truncate_to is not None and os.path.exists(self.path):
            with open(self.path, "r+b") as f:
                f.truncate(truncate_to)
                f.flush()
                os.fsync(f.fileno())
        self._file = self._open_append()
        self.size = self._file.seek(0, os.SEEK_END)

    def _open_append(self) -> BinaryIO:
        # Unbuffered: a failed write must leave no bytes behind in a Python
        # buffer that a later flush would add to the file.
        return cast(BinaryIO, open_private(self.path, "ab", buffering=0))

    def append(self, data: bytes) -> int:
        """Write ``data`` and push it to the OS (and disk if fsync); new size.

        On any failure (disk full, I/O error) the file is cut back to its
        last good length before the error is raised, so no partial line
        remains and the next append can simply try again."""
        f = self._file
        assert f is not None, "journal not open"
        if self._dirty:
            self._cut_back()
        view = memoryview(data)
        try:
            done = 0
            while done < len(view):
                done += f.write(view[done:]) or 0
            if self._fsync:
                os.fsync(f.fileno())
        except BaseException:
            self._dirty = True
            try:
                self._cut_back()
            except OSError:
                pass  # retried before the next append
            raise
        self.size += len(data)
        return self.size

    def _cut_back(self) -> None:
        """Truncate the file to the last good length (frees what a failed
        write used; shrinking needs no space)."""
        f = self._file
        assert f is not None, "journal not open"
        os.ftruncate(f.fileno(), self.size)
        self._dirty = False

    def has_old(self) -> bool:
        return os.path.exists(self.old_path)

    def rotate(self) -> None:
        """Move the active journal to ``.old`` and start an empty one."""
        f = self._file
        assert f is not None, "journal not open"
        if self._dirty:
            self._cut_back()
        os.fsync(f.fileno())
        f.close()
        self._file = None
        os.replace(self.path, self.old_path)
        self._file = self._open_append()
        self.size = 0
        fsync_dir(os.path.dirname(self.path))

    def drop_old(self) -> None:
        """Delete ``.old`` (a snapshot now covers every record in it)."""
        try:
            os.remove(self.old_path)
        except FileNotFoundError:
            pass

    def reset(self) -> None:
        """Drop ``.old`` and empty the active journal (snapshot covers all)."""
        self.drop_old()
        f = self._file
        assert f is not None, "journal not open"
        f.truncate(0)
        os.fsync(f.fileno())
        self.size = 0
        self._dirty = False

    def close(self, *, remove: bool = False) -> None:
        """Close; with ``remove`` also delete both journal files."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if remove:
            self.drop_old()
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

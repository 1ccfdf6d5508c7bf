"""The durable store's snapshot file: a TinyDB JSON database, its streamed
writer and its loader.

The file at ``path`` is a real TinyDB database (tables ``resources``, one
TinyDB document per resource in creation order; ``kv``; ``meta`` with the
journal sequence the snapshot covers).  It is read through a TinyDB
:class:`Storage` that hands the parsed dict back by reference and a
:class:`Table` subclass with raw access.

Writing is split in two so that a snapshot of 100k resources never holds
the event loop, nor fights it for the GIL: :func:`snapshot_pieces` encodes
the documents ``chunk`` at a time (run on the event loop, which serves
requests between two pieces), and :class:`SnapshotFile` writes each piece to
``<path>.tmp`` (run in the store's snapshot thread, where the GIL is
released during the write) and finally fsyncs and renames it over the
snapshot.  Encoding in that thread instead would make the loop wait for the
GIL (up to the 5 ms switch interval) at every turn while it runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import IO, Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from cse.core.ports import Doc
from cse.store.files import open_private
from cse.store.indexed import IndexedDocs
from cse.store.journal import fsync_dir

__all__ = ["SNAPSHOT_FORMAT", "CHUNK", "SnapshotFile", "StoreCorruptError", "load_snapshot",
           "snapshot_pieces"]

SNAPSHOT_FORMAT = 1
CHUNK = 256  # documents encoded per piece: about a millisecond of the loop's time
_encode = json.JSONEncoder(separators=(",", ":")).encode


class StoreCorruptError(RuntimeError):
    """The snapshot or the journal cannot be loaded safely."""


def snapshot_pieces(docs: Sequence[Doc], kv: dict[str, dict[str, Any]], seq: int,
                    chunk: int = CHUNK) -> Iterator[str]:
    """The snapshot covering journal sequence ``seq`` as JSON text, in pieces
    of at most ``chunk`` documents each (``docs`` and ``kv``: private copies
    of immutable documents and values, see ``IndexedDocs.snapshot``)."""
    yield '{"resources":{'
    for start in range(0, len(docs), chunk):
        part = docs[start:start + chunk]
        yield ("," if start else "") + ",".join(
            f'"{n}":{_encode(doc)}' for n, doc in enumerate(part, start + 1))
    items = ((ns, k, v) for ns, space in kv.items() for k, v in space.items())
    yield '},"kv":{' + ",".join(
        f'"{n}":{_encode({"ns": ns, "key": key, "value": value})}' for n, (ns, key, value) in enumerate(items, 1))
    yield '},"meta":{"1":' + _encode({"format": SNAPSHOT_FORMAT, "seq": seq, "count": len(docs)}) + "}}"


class SnapshotFile:
    """``<path>.tmp`` being written piece by piece, then put in place or
    thrown away.  Not thread-safe: the store's snapshot thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = path + ".tmp"
        self._file: IO[str] | None = None

    def open(self) -> None:
        self._file = open_private(self.tmp, "w", encoding="ascii")

    def write(self, piece: str) -> None:
        assert self._file is not None, "snapshot file not open"
        self._file.write(piece)

    def finish(self) -> None:
        """Flush and fsync ``<path>.tmp`` (not yet in place: :meth:`install`)."""
        f = self._file
        assert f is not None, "snapshot file not open"
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._file = None

    def install(self) -> None:
        """Rename the finished ``<path>.tmp`` over the snapshot, durably."""
        os.replace(self.tmp, self.path)
        fsync_dir(os.path.dirname(self.path))

    def discard(self) -> None:
        """Close and remove ``<path>.tmp`` (after a failure or an undo)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        try:
            os.remove(self.tmp)
        except FileNotFoundError:
            pass


class _ReadStorage(Storage):
    """TinyDB storage that parses the snapshot once and hands the dict back
    *by reference* (TinyDB's JSONStorage would re-read it for every access).
    Read-only: the store writes snapshots with :class:`SnapshotFile`."""

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
        raise NotImplementedError("the snapshot is written by SnapshotFile")


class RawTable(Table):
    """TinyDB table with by-reference bulk access to its raw ``{id: doc}`` dict,
    skipping TinyDB's per-access document wrapping and id conversion."""

    def raw(self) -> dict[str, Doc]:
        return self._read_table()  # type: ignore[return-value]


class SnapshotDB(TinyDB):
    """TinyDB over :class:`_ReadStorage` whose tables are :class:`RawTable`."""

    table_class = RawTable

    def __init__(self, path: str) -> None:
        super().__init__(path, storage=_ReadStorage)

    def raw(self, name: str) -> dict[str, Doc]:
        """Table ``name`` as its raw ``{doc_id: doc}`` dict, by reference."""
        table = self.table(name)
        assert isinstance(table, RawTable)
        return table.raw()


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

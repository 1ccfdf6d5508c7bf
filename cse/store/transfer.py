"""Copy a store's whole content to a file and from a file into another store
(docs/configuration.md "Moving a store between backends").

Why: an operator moves a CSE from the embedded store to PostgreSQL (or
back) without losing a resource, a queued notification (the outbox), a
stored session request or a session with its wrapped key.  The file is
JSON lines: a header, every document in creation order, every KV entry in
insertion order per namespace, and a trailer with the counts, so a cut-off
file is refused rather than half imported.  Import reads and checks the
whole file first, refuses a store that already holds documents, then
writes everything in one commit: it happens completely or not at all.

Session keys stay wrapped under the store key (docs/security.md "Keys at
rest"): the CSE on the target store needs the same key file.  The export
file holds them wrapped and is created 0600, like the store files.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from cse.core.ports import Doc, KvPut, Op, Put, Store
from cse.store.files import open_private
from cse.store.indexed import check_ops
from cse.store.memory import IndexedStore

__all__ = ["FORMAT", "TransferError", "Counts", "export_store", "import_store"]

FORMAT = "cse-store"
VERSION = 1


class TransferError(ValueError):
    """The export file is not one this CSE wrote, is cut off, or the target is not empty."""


@dataclass(frozen=True)
class Counts:
    docs: int
    kv: int


def _lines(docs: Iterable[Doc], kv: dict[str, dict[str, Any]]) -> Iterable[str]:
    yield json.dumps({"t": FORMAT, "v": VERSION})
    n_docs = n_kv = 0
    for doc in docs:
        n_docs += 1
        yield json.dumps({"t": "doc", "d": doc}, ensure_ascii=False)
    for ns, space in kv.items():
        for key, value in space.items():
            n_kv += 1
            yield json.dumps({"t": "kv", "ns": ns, "k": key, "v": value}, ensure_ascii=False)
    yield json.dumps({"t": "end", "docs": n_docs, "kv": n_kv})


def _write(path: str, docs: list[Doc], kv: dict[str, dict[str, Any]]) -> None:
    with open_private(path, "w", exclusive=True, encoding="utf-8") as out:
        for line in _lines(docs, kv):
            out.write(line + "\n")


async def export_store(store: IndexedStore, path: str) -> Counts:
    """Write everything ``store`` holds to ``path`` (a new file, 0600; in a thread)."""
    docs, kv = store.dump()
    await asyncio.to_thread(_write, path, docs, kv)
    return Counts(len(docs), sum(len(space) for space in kv.values()))


def read_export(f: IO[str]) -> list[Op]:
    """The operations recreating an export file's content; raises
    :class:`TransferError` naming the line for anything else."""
    ops: list[Op] = []
    n_docs = n_kv = 0
    ended = False
    for number, raw in enumerate(f, 1):
        try:
            rec = json.loads(raw)
        except ValueError as exc:
            raise TransferError(f"line {number} is not JSON: {exc}") from None
        if not isinstance(rec, dict):
            raise TransferError(f"line {number} is not a JSON object")
        kind = rec.get("t")
        if number == 1:
            if kind != FORMAT or rec.get("v") != VERSION:
                raise TransferError(f"not a {FORMAT} export of version {VERSION} (line 1: {raw[:80]!r})")
            continue
        if ended:
            raise TransferError(f"line {number} follows the end record")
        if kind == "doc":
            ops.append(Put(rec.get("d")))  # type: ignore[arg-type]  # checked below
            n_docs += 1
        elif kind == "kv" and isinstance(rec.get("ns"), str) and isinstance(rec.get("k"), str):
            ops.append(KvPut(rec["ns"], rec["k"], rec.get("v")))
            n_kv += 1
        elif kind == "end":
            if (rec.get("docs"), rec.get("kv")) != (n_docs, n_kv):
                raise TransferError(f"the end record counts {rec.get('docs')} documents and {rec.get('kv')} "
                                    f"KV entries, the file holds {n_docs} and {n_kv}")
            ended = True
        else:
            raise TransferError(f"line {number}: unknown record {raw[:80]!r}")
    if not ended:
        raise TransferError("the file ends without its end record: cut off?")
    try:
        check_ops(ops)
    except (TypeError, ValueError) as exc:
        raise TransferError(f"a document in the file is not valid: {exc}") from None
    return ops


def _read(path: str) -> list[Op]:
    with open(path, encoding="utf-8") as f:
        return read_export(f)


async def import_store(store: Store, path: str) -> Counts:
    """Load an export file into ``store``, which must hold no document."""
    ops = await asyncio.to_thread(_read, path)
    held = await store.count()
    if held:
        raise TransferError(f"the target store already holds {held} documents: import only into an empty store")
    if ops:
        await store.commit(ops)
    return Counts(sum(1 for op in ops if isinstance(op, Put)), sum(1 for op in ops if isinstance(op, KvPut)))

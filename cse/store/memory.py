"""Non-durable store: :class:`IndexedDocs` behind the async Store port.

Why: ``--db :memory:`` and the tests need a store with exactly the durable
backend's semantics minus persistence.  :class:`IndexedStore` holds the read
side both backends share (every read is answered from memory, so the durable
backend inherits it unchanged); :class:`MemoryStore` adds a commit that only
applies the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cse.core.ports import CommitResult, Doc, Op
from cse.store.indexed import IndexedDocs

__all__ = ["IndexedStore", "MemoryStore"]


class IndexedStore:
    """Store reads answered from an :class:`IndexedDocs` (no I/O, never blocks)."""

    def __init__(self) -> None:
        self._idx = IndexedDocs()

    @property
    def writable(self) -> bool:
        """Whether a commit now would be written (readiness, GET /health); memory always is."""
        return True

    async def get(self, ri: str) -> Doc | None:
        return self._idx.docs.get(ri)

    async def get_by_path(self, srn: str) -> Doc | None:
        return self._idx.get_by_path(srn)

    async def child_by_name(self, pi: str, rn: str) -> Doc | None:
        return self._idx.child_by_name(pi, rn)

    async def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        return self._idx.children(pi, ty)

    async def edge_child(self, pi: str, ty: int, newest: bool) -> Doc | None:
        return self._idx.edge_child(pi, ty, newest)

    async def count_children(self, pi: str, ty: int | None = None) -> int:
        return self._idx.count_children(pi, ty)

    async def lookup(self, attr: str, value: Any) -> list[Doc]:
        return self._idx.lookup(attr, value)

    async def count_by(self, attr: str, value: str) -> int:
        return self._idx.count_by(attr, value)

    async def expired(self, now: str, limit: int = 1000) -> list[str]:
        return self._idx.expired(now, limit)

    async def next_expiry(self) -> str | None:
        return self._idx.next_expiry()

    async def kv_get(self, ns: str, key: str) -> Any | None:
        return self._idx.kv_get(ns, key)

    async def kv_items(self, ns: str) -> list[tuple[str, Any]]:
        return self._idx.kv_items(ns)

    async def count(self) -> int:
        return len(self._idx.docs)

    async def select_under(self, root: str, keys: Sequence[tuple[str, Sequence[Any]]], union: bool, cap: int,
                           max_depth: int) -> list[tuple[Doc, int]] | None:
        return self._idx.select_under(root, keys, union, cap, max_depth)

    async def deepest(self) -> int:
        return self._idx.deepest()

    def dump(self) -> tuple[list[Doc], dict[str, dict[str, Any]]]:
        """Every document in creation order and every KV namespace (shallow
        copies; for cse.store.transfer)."""
        return self._idx.snapshot()


class MemoryStore(IndexedStore):
    """The Store port held entirely in memory; nothing survives the process."""

    async def open(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        """Nothing to flush."""

    async def commit(self, ops: Sequence[Op]) -> CommitResult:
        """Apply ``ops`` atomically; "durable" as soon as applied."""
        return self._idx.apply(ops)

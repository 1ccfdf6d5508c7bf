"""In-memory document table and indexes shared by every store backend.

Why this module exists: both backends answer every read from memory and
differ only in durability.  Keeping the table and all its indexes in one
pure, synchronous class (no I/O, no asyncio) means the memory and the TinyDB
backend cannot drift apart, and the cost of every operation is visible in
one place.  Nothing here is O(number of documents) per operation:

* ``docs``: ri -> document, insertion ordered, so its order *is* creation
  order (a replace keeps the slot; the durable backend snapshots in this
  order, which is how creation order survives restarts).
* path (``_srn``) -> ri and (pi, rn) -> ri.
* per-parent children, all types and per type, as insertion-ordered dicts
  ri -> document: oldest is ``next(iter(d))``, newest ``next(reversed(d))``.
* ``aei`` / ``csi`` / ``_own`` -> ordered set of ri (``_own``: what each
  originator owns, counted for its quota).
* expiry: ri -> et plus a heap of (et, ri) with lazy invalidation; stale
  heap entries are dropped when they reach the top, and the heap is rebuilt
  from the ri -> et map once stale entries outnumber live ones (amortised
  O(1)).
* KV namespaces: ns -> insertion-ordered dict.

Resolved ambiguities (see also the store contract in ``cse.core.ports``):

* A ``Put`` that replaces a document keeps its creation-order slot, unless
  it changes ``pi`` or ``ty``: then it counts as a re-creation and moves to
  the end (the only order a snapshot can reproduce).  Its own children stay.
* Unique indexes (path, (pi, rn)) are last-writer-wins; removing a document
  only drops an index entry that still points at that document.
* A KV put of an existing key keeps the key's position (plain dict update).
* Batches are validated before anything is applied, so ``apply`` either
  applies the whole batch or raises without having changed anything.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

from cse.core.ports import CommitResult, Delete, Doc, KvDelete, KvPut, Op, Put

__all__ = ["INDEXED_ATTRS", "IndexedDocs", "check_ops"]

#: Attributes with a secondary index (``lookup`` on others scans).
INDEXED_ATTRS: tuple[str, ...] = ("aei", "csi", "_own")

_STR_KEYS = ("pi", "rn", "_srn")


def _check_doc(doc: Any) -> None:
    """Raise if ``doc`` lacks what the contract says every document has."""
    if not isinstance(doc, dict):
        raise TypeError(f"Put.doc must be a dict, not {type(doc).__name__}")
    ri = doc.get("ri")
    if not isinstance(ri, str) or not ri:
        raise ValueError("document needs a non-empty string 'ri'")
    for key in _STR_KEYS:
        if not isinstance(doc.get(key), str):
            raise ValueError(f"document {ri!r}: {key!r} must be a string")
    ty = doc.get("ty")
    if not isinstance(ty, int) or isinstance(ty, bool):
        raise ValueError(f"document {ri!r}: 'ty' must be an int")
    et = doc.get("et")
    if et is not None and not isinstance(et, str):
        raise ValueError(f"document {ri!r}: 'et' must be a timestamp string")


def check_ops(ops: Sequence[Op]) -> None:
    """Validate a batch without touching any state (raises on the first bad op)."""
    for op in ops:
        if isinstance(op, Put):
            _check_doc(op.doc)
        elif isinstance(op, Delete):
            if not isinstance(op.ri, str):
                raise ValueError("Delete.ri must be a string")
        elif isinstance(op, (KvPut, KvDelete)):
            if not isinstance(op.ns, str) or not isinstance(op.key, str):
                raise ValueError("KV namespace and key must be strings")
        else:
            raise TypeError(f"unknown store operation {op!r}")


class IndexedDocs:
    """Documents by ri plus every index the Store port needs. Synchronous."""

    __slots__ = (
        "docs",
        "kv",
        "_by_path",
        "_by_name",
        "_kids",
        "_kids_ty",
        "_attr",
        "_et",
        "_heap",
    )

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.kv: dict[str, dict[str, Any]] = {}
        self._by_path: dict[str, str] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._kids: dict[str, dict[str, Doc]] = {}
        self._kids_ty: dict[tuple[str, int], dict[str, Doc]] = {}
        self._attr: dict[str, dict[str, dict[str, None]]] = {a: {} for a in INDEXED_ATTRS}
        self._et: dict[str, str] = {}
        self._heap: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ writes

    def apply(self, ops: Sequence[Op]) -> CommitResult:
        """Apply a batch atomically: validate everything, then mutate."""
        if not isinstance(ops, (list, tuple)):
            ops = list(ops)  # iterated twice
        check_ops(ops)
        result = CommitResult()
        for op in ops:
            if isinstance(op, Put):
                self._put(op.doc)
            elif isinstance(op, Delete):
                self._delete(op.ri, result.removed)
            elif isinstance(op, KvPut):
                self.kv_set(op.ns, op.key, op.value)
            else:
                self._kv_delete(op.ns, op.key)
        return result

    def load(self, docs: Iterable[Doc]) -> None:
        """Bulk-insert trusted documents (a snapshot) in creation order."""
        put = self._put
        for doc in docs:
            put(doc)

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        """Set ``key`` in ``ns`` (used by ``apply`` and snapshot loading)."""
        space = self.kv.get(ns)
        if space is None:
            space = self.kv[ns] = {}
        space[key] = value

    def _kv_delete(self, ns: str, key: str) -> None:
        space = self.kv.get(ns)
        if space is not None:
            space.pop(key, None)
            if not space:
                del self.kv[ns]

    def _put(self, doc: Doc) -> None:
        ri = doc["ri"]
        old = self.docs.get(ri)
        if old is not None:
            if old["pi"] == doc["pi"] and old["ty"] == doc["ty"]:
                self._replace(old, doc)
                return
            # Moving between parents/types is a re-creation (see docstring).
            self._unindex(old)
            del self.docs[ri]
        self.docs[ri] = doc
        self._index(doc)

    def _index(self, doc: Doc) -> None:
        ri = doc["ri"]
        pi = doc["pi"]
        self._by_path[doc["_srn"]] = ri
        self._by_name[(pi, doc["rn"])] = ri
        kids = self._kids.get(pi)
        if kids is None:
            kids = self._kids[pi] = {}
        kids[ri] = doc
        key = (pi, doc["ty"])
        kids = self._kids_ty.get(key)
        if kids is None:
            kids = self._kids_ty[key] = {}
        kids[ri] = doc
        for attr, index in self._attr.items():
            value = doc.get(attr)
            if type(value) is str:  # _add_member, inlined: every stored document passes here
                members = index.get(value)
                if members is None:
                    index[value] = {ri: None}
                else:
                    members[ri] = None
        et = doc.get("et")
        if et is not None:
            self._set_et(ri, et)

    def _replace(self, old: Doc, doc: Doc) -> None:
        """Swap ``old`` for ``doc`` (same ri, pi, ty) keeping every position."""
        ri = doc["ri"]
        pi = doc["pi"]
        self.docs[ri] = doc
        self._kids[pi][ri] = doc
        self._kids_ty[(pi, doc["ty"])][ri] = doc
        srn = doc["_srn"]
        if old["_srn"] != srn and self._by_path.get(old["_srn"]) == ri:
            del self._by_path[old["_srn"]]
        self._by_path[srn] = ri
        name = (pi, doc["rn"])
        old_name = (pi, old["rn"])
        if old_name != name and self._by_name.get(old_name) == ri:
            del self._by_name[old_name]
        self._by_name[name] = ri
        for attr, index in self._attr.items():
            before, after = old.get(attr), doc.get(attr)
            if before is after or before == after:
                continue
            if type(before) is str:
                self._drop_member(index, before, ri)
            if type(after) is str:
                self._add_member(index, after, ri)
        et = doc.get("et")
        if et != old.get("et"):
            if et is None:
                self._et.pop(ri, None)
            else:
                self._set_et(ri, et)

    @staticmethod
    def _add_member(index: dict[str, dict[str, None]], value: str, ri: str) -> None:
        members = index.get(value)
        if members is None:
            members = index[value] = {}
        members[ri] = None

    @staticmethod
    def _drop_member(index: dict[str, dict[str, None]], value: str, ri: str) -> None:
        members = index.get(value)
        if members is not None:
            members.pop(ri, None)
            if not members:
                del index[value]

    def _unindex(self, doc: Doc) -> None:
        """Remove ``doc`` from every index (not from ``docs``, not its children)."""
        ri = doc["ri"]
        pi = doc["pi"]
        if self._by_path.get(doc["_srn"]) == ri:
            del self._by_path[doc["_srn"]]
        name = (pi, doc["rn"])
        if self._by_name.get(name) == ri:
            del self._by_name[name]
        kids = self._kids.get(pi)
        if kids is not None:
            kids.pop(ri, None)
            if not kids:
                del self._kids[pi]
        key = (pi, doc["ty"])
        kids = self._kids_ty.get(key)
        if kids is not None:
            kids.pop(ri, None)
            if not kids:
                del self._kids_ty[key]
        for attr, index in self._attr.items():
            value = doc.get(attr)
            if type(value) is str:  # _drop_member, inlined: every removed document passes here
                members = index.get(value)
                if members is not None:
                    members.pop(ri, None)
                    if not members:
                        del index[value]
        self._et.pop(ri, None)

    def _delete(self, ri: str, removed: list[Doc]) -> None:
        """Remove ``ri`` and its subtree, walking the children index."""
        if ri not in self.docs:
            return
        stack = [ri]
        while stack:
            current = stack.pop()
            doc = self.docs.pop(current, None)
            if doc is None:
                continue
            removed.append(doc)
            self._unindex(doc)
            kids = self._kids.pop(current, None)
            if kids:
                stack.extend(kids)

    def _set_et(self, ri: str, et: str) -> None:
        self._et[ri] = et
        heap = self._heap
        heapq.heappush(heap, (et, ri))
        if len(heap) > 2 * len(self._et) + 1024:
            # Mostly stale entries: rebuild from the live map (amortised O(1)).
            self._heap = [(e, r) for r, e in self._et.items()]
            heapq.heapify(self._heap)

    # ------------------------------------------------------------------- reads

    def get(self, ri: str) -> Doc | None:
        return self.docs.get(ri)

    def get_by_path(self, srn: str) -> Doc | None:
        ri = self._by_path.get(srn)
        return None if ri is None else self.docs.get(ri)

    def child_by_name(self, pi: str, rn: str) -> Doc | None:
        ri = self._by_name.get((pi, rn))
        return None if ri is None else self.docs.get(ri)

    def _kids_of(self, pi: str, ty: int | None) -> dict[str, Doc] | None:
        return self._kids.get(pi) if ty is None else self._kids_ty.get((pi, ty))

    def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        kids = self._kids_of(pi, ty)
        return list(kids.values()) if kids else []

    def edge_child(self, pi: str, ty: int, newest: bool) -> Doc | None:
        kids = self._kids_ty.get((pi, ty))
        if not kids:
            return None
        values = kids.values()
        return next(reversed(values)) if newest else next(iter(values))

    def count_children(self, pi: str, ty: int | None = None) -> int:
        kids = self._kids_of(pi, ty)
        return len(kids) if kids else 0

    def lookup(self, attr: str, value: Any) -> list[Doc]:
        index = self._attr.get(attr)
        if index is not None and type(value) is str:
            members = index.get(value)
            return [self.docs[ri] for ri in members] if members else []
        return [d for d in self.docs.values() if attr in d and d[attr] == value]

    def count_by(self, attr: str, value: str) -> int:
        index = self._attr.get(attr)
        if index is not None:
            members = index.get(value)
            return len(members) if members else 0
        return sum(1 for d in self.docs.values() if d.get(attr) == value)

    def expired(self, now: str, limit: int = 1000) -> list[str]:
        """Up to ``limit`` ri with et <= now, oldest et first (read-only)."""
        heap, live = self._heap, self._et
        found: list[str] = []
        keep: list[tuple[str, str]] = []
        seen: set[str] = set()
        while heap and len(found) < limit:
            entry = heap[0]
            if entry[0] > now:
                break
            heapq.heappop(heap)
            ri = entry[1]
            if live.get(ri) != entry[0] or ri in seen:
                continue  # stale or duplicate entry: drop it for good
            seen.add(ri)
            found.append(ri)
            keep.append(entry)
        for entry in keep:
            heapq.heappush(heap, entry)
        return found

    def next_expiry(self) -> str | None:
        heap, live = self._heap, self._et
        while heap:
            et, ri = heap[0]
            if live.get(ri) == et:
                return et
            heapq.heappop(heap)
        return None

    def kv_get(self, ns: str, key: str) -> Any | None:
        space = self.kv.get(ns)
        return None if space is None else space.get(key)

    def kv_items(self, ns: str) -> list[tuple[str, Any]]:
        space = self.kv.get(ns)
        return list(space.items()) if space else []

    def __len__(self) -> int:
        return len(self.docs)

    def snapshot(self) -> tuple[list[Doc], dict[str, dict[str, Any]]]:
        """Shallow copies (documents in creation order, KV) safe to serialise
        in another thread: documents and values are immutable by contract."""
        return list(self.docs.values()), {ns: dict(space) for ns, space in self.kv.items()}

"""In-memory document table and indexes shared by every store backend.

Why this module exists: both backends answer every read from memory and
differ only in durability.  Keeping the table and all its indexes in one
pure, synchronous class (no I/O, no asyncio) means the memory and the TinyDB
backend cannot drift apart, and the cost of every operation is visible in
one place.  Nothing here is O(number of documents) per operation:

* ``docs``: ri -> document, insertion ordered, so its order *is* creation
  order (a replace keeps the slot; the durable backend snapshots in this
  order, which is how creation order survives restarts).
* path (``_srn``) -> ri and pi -> {rn -> ri}.
* per-parent children, all types and per type, as insertion-ordered sets
  (dicts ri -> None): oldest is ``next(iter(d))``, newest
  ``next(reversed(d))``.
* ``aei`` / ``csi`` / ``_own`` -> ordered set of ri (``_own``: what each
  originator owns, counted for its quota).
* expiry: ri -> et plus a heap of (et, ri) with lazy invalidation; stale
  heap entries are dropped when they reach the top, and once they outnumber
  live ones they are purged a few per write (``_purge_step``; O(log n) per
  operation, no pass over the whole heap).
* KV namespaces: ns -> insertion-ordered dict.

Only ``docs`` refers to documents; every other index holds ri strings.
That is for Python's cyclic garbage collector: a dict whose keys and values
are all strings (or None) is never tracked, so however many resources are
resident, a full collection walks ``docs`` and the two expiry heaps at
most, and not even those once the application has frozen them
(``gc.freeze`` in ``cse.app``; the three objects live as long as this
table).  Per-parent dicts of documents would be tracked
and walked entry by entry in every full collection: a pause of tens of
milliseconds at 100k resources, every few seconds under load.

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
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from cse.core.ports import CommitResult, Delete, Doc, KvDelete, KvPut, Op, Put

__all__ = ["EXACT_KEYS", "INDEXED_ATTRS", "SELECT_KEYS", "TIME_ATTRS", "IndexedDocs", "check_ops"]

#: Attributes with a secondary index (``lookup`` on others scans); ``cr``
#: also selects discovery candidates (TS-0004 7.3.3.17.17, creator).
INDEXED_ATTRS: tuple[str, ...] = ("aei", "csi", "_own", "cr")

#: Timestamps with a range index: creation, last modification, expiration
#: (the filter criteria cra/crb, ms/us, exa/exb).
TIME_ATTRS: tuple[str, ...] = ("ct", "lt", "et")

#: Candidate indexes :meth:`IndexedDocs.select_under` takes: the resource type,
#: each label, the string attributes above that are public, and the timestamps.
SELECT_KEYS: frozenset[str] = frozenset({"ty", "lbl", "aei", "csi", "cr", *TIME_ATTRS})

#: The keys whose index holds exactly what the filter criteria ask (a
#: resource type; a label among the ``lbl`` strings): without ``union``,
#: :meth:`IndexedDocs.select_under` returns only resources holding a value
#: of each of them, so discovery need not check them again.
EXACT_KEYS: frozenset[str] = frozenset({"ty", "lbl"})

#: A timestamp's bucket: its first 13 characters, ``YYYYMMDDThhmm`` (one per
#: minute).  Any string's prefix orders as the string does, so the buckets
#: overlapping a range hold every timestamp in it (and a few around it).
_BUCKET = 13

#: How far :meth:`IndexedDocs.select_under` follows ``pi`` up (no tree is deeper).
_MAX_CHAIN = 1024

_STR_KEYS = ("pi", "rn", "_srn")
_DRAIN_STEP = 8  # heap entries moved per write while stale ones are purged (_purge_step)


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


def _holds_each(ri: str, groups: list[list[dict[str, Any]]]) -> bool:
    """Whether ``ri`` is in one member set of every group (loops, not generators: per candidate)."""
    for group in groups:
        for members in group:
            if ri in members:
                break
        else:
            return False
    return True


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
        "_by_ty",
        "_by_lbl",
        "_lbl_kids",
        "_depths",
        "_time",
        "_time_keys",
        "_seq",
        "_et",
        "_heap",
        "_drain",
    )

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.kv: dict[str, dict[str, Any]] = {}
        self._by_path: dict[str, str] = {}
        self._by_name: dict[str, dict[str, str]] = {}
        self._kids: dict[str, dict[str, None]] = {}
        self._kids_ty: dict[tuple[str, int], dict[str, None]] = {}
        self._attr: dict[str, dict[str, dict[str, None]]] = {a: {} for a in INDEXED_ATTRS}
        # Every document by type, each mapped to its creation sequence number:
        # the type index and the sibling order of discovery results in one entry.
        self._by_ty: dict[int, dict[str, int]] = {}
        self._by_lbl: dict[str, dict[str, None]] = {}
        # label -> parent ri -> the children holding it: select_under skips a
        # parent outside the discovery root with all its holders at once
        self._lbl_kids: dict[str, dict[str, dict[str, None]]] = {}
        self._depths: dict[int, int] = {}  # how many documents sit at each depth (``_srn`` levels)
        # per timestamp attribute: bucket -> its documents, and the bucket names in order
        self._time: dict[str, dict[str, dict[str, None]]] = {a: {} for a in TIME_ATTRS}
        self._time_keys: dict[str, list[str]] = {a: [] for a in TIME_ATTRS}
        self._seq = 0
        self._et: dict[str, str] = {}
        self._heap: list[tuple[str, str]] = []
        self._drain: list[tuple[str, str]] = []  # a heap being moved into ``_heap`` (stale entries dropped)

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
        names = self._by_name.get(pi)
        if names is None:
            names = self._by_name[pi] = {}
        names[doc["rn"]] = ri
        kids = self._kids.get(pi)
        if kids is None:
            kids = self._kids[pi] = {}
        kids[ri] = None
        key = (pi, doc["ty"])
        kids = self._kids_ty.get(key)
        if kids is None:
            kids = self._kids_ty[key] = {}
        kids[ri] = None
        for attr, index in self._attr.items():
            value = doc.get(attr)
            if type(value) is str:  # _add_member, inlined: every stored document passes here
                members = index.get(value)
                if members is None:
                    index[value] = {ri: None}
                else:
                    members[ri] = None
        self._seq += 1
        of_ty = self._by_ty.get(doc["ty"])
        if of_ty is None:
            self._by_ty[doc["ty"]] = {ri: self._seq}
        else:
            of_ty[ri] = self._seq
        lbl = doc.get("lbl")
        if lbl:
            self._add_labels(lbl, ri, pi)
        depth = doc["_srn"].count("/")
        self._depths[depth] = self._depths.get(depth, 0) + 1
        for attr in TIME_ATTRS:
            ts = doc.get(attr)
            if type(ts) is str:
                self._add_time(attr, ts, ri)
        et = doc.get("et")
        if et is not None:
            self._set_et(ri, et)

    def _add_time(self, attr: str, ts: str, ri: str) -> None:
        buckets, bucket = self._time[attr], ts[:_BUCKET]
        members = buckets.get(bucket)
        if members is None:
            buckets[bucket] = {ri: None}
            insort(self._time_keys[attr], bucket)
        else:
            members[ri] = None

    def _drop_time(self, attr: str, ts: Any, ri: str) -> None:
        if type(ts) is not str:
            return
        buckets, bucket = self._time[attr], ts[:_BUCKET]
        members = buckets.get(bucket)
        if members is not None:
            members.pop(ri, None)
            if not members:
                del buckets[bucket]
                keys = self._time_keys[attr]
                at = bisect_left(keys, bucket)
                if at < len(keys) and keys[at] == bucket:
                    del keys[at]

    def _add_labels(self, lbl: Any, ri: str, pi: str) -> None:
        if isinstance(lbl, list):
            for item in lbl:
                if type(item) is str:
                    self._add_member(self._by_lbl, item, ri)
                    by_parent = self._lbl_kids.get(item)
                    if by_parent is None:
                        by_parent = self._lbl_kids[item] = {}
                    self._add_member(by_parent, pi, ri)

    def _drop_labels(self, lbl: Any, ri: str, pi: str) -> None:
        if isinstance(lbl, list):
            for item in lbl:
                if type(item) is str:
                    self._drop_member(self._by_lbl, item, ri)
                    by_parent = self._lbl_kids.get(item)
                    if by_parent is not None:
                        self._drop_member(by_parent, pi, ri)
                        if not by_parent:
                            del self._lbl_kids[item]

    def _drop_depth(self, srn: str) -> None:
        depth = srn.count("/")
        left = self._depths.get(depth, 0) - 1
        if left > 0:
            self._depths[depth] = left
        else:
            self._depths.pop(depth, None)

    def _replace(self, old: Doc, doc: Doc) -> None:
        """Swap ``old`` for ``doc`` (same ri, pi, ty) keeping every position."""
        ri = doc["ri"]
        pi = doc["pi"]
        self.docs[ri] = doc
        srn = doc["_srn"]
        if old["_srn"] != srn and self._by_path.get(old["_srn"]) == ri:
            del self._by_path[old["_srn"]]
        self._by_path[srn] = ri
        if srn.count("/") != old["_srn"].count("/"):
            self._drop_depth(old["_srn"])
            self._depths[srn.count("/")] = self._depths.get(srn.count("/"), 0) + 1
        for attr in TIME_ATTRS:
            ts, old_ts = doc.get(attr), old.get(attr)
            if ts != old_ts:
                self._drop_time(attr, old_ts, ri)
                if type(ts) is str:
                    self._add_time(attr, ts, ri)
        lbl, old_lbl = doc.get("lbl"), old.get("lbl")
        if lbl is not old_lbl and lbl != old_lbl:
            self._drop_labels(old_lbl, ri, pi)
            self._add_labels(lbl, ri, pi)
        names = self._by_name[pi]
        rn, old_rn = doc["rn"], old["rn"]
        if old_rn != rn and names.get(old_rn) == ri:
            del names[old_rn]
        names[rn] = ri
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
        names = self._by_name.get(pi)
        if names is not None and names.get(doc["rn"]) == ri:
            del names[doc["rn"]]
            if not names:
                del self._by_name[pi]
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
        of_ty = self._by_ty.get(doc["ty"])
        if of_ty is not None:
            of_ty.pop(ri, None)
            if not of_ty:
                del self._by_ty[doc["ty"]]
        lbl = doc.get("lbl")
        if lbl:
            self._drop_labels(lbl, ri, pi)
        self._drop_depth(doc["_srn"])
        for attr in TIME_ATTRS:
            self._drop_time(attr, doc.get(attr), ri)
        if self._et.pop(ri, None) is not None:
            self._purge_step()

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
        heapq.heappush(self._heap, (et, ri))
        self._purge_step()

    def _purge_step(self) -> None:
        """Drop stale heap entries a few at a time (amortised O(log n) per
        operation, never one O(n) pass: at 100k resources a rebuild held
        the loop for tens of milliseconds, once per ~100k evictions).

        Once stale entries outnumber live ones, the two lists swap roles:
        ``_heap`` starts empty and each later operation moves the next
        ``_DRAIN_STEP`` entries of ``_drain`` (in heap order) into it,
        dropping the stale ones; reads consult both heaps meanwhile.  Both
        lists live as long as this table (frozen with it, module docstring)."""
        drain = self._drain
        if drain:
            heap, live = self._heap, self._et
            for _ in range(min(_DRAIN_STEP, len(drain))):
                entry = heapq.heappop(drain)
                if live.get(entry[1]) == entry[0]:
                    heapq.heappush(heap, entry)
        elif len(self._heap) > 2 * len(self._et) + 1024:
            self._heap, self._drain = drain, self._heap

    # ------------------------------------------------------------------- reads

    def get(self, ri: str) -> Doc | None:
        return self.docs.get(ri)

    def get_by_path(self, srn: str) -> Doc | None:
        ri = self._by_path.get(srn)
        return None if ri is None else self.docs.get(ri)

    def child_by_name(self, pi: str, rn: str) -> Doc | None:
        names = self._by_name.get(pi)
        ri = None if names is None else names.get(rn)
        return None if ri is None else self.docs.get(ri)

    def _kids_of(self, pi: str, ty: int | None) -> dict[str, None] | None:
        return self._kids.get(pi) if ty is None else self._kids_ty.get((pi, ty))

    def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        kids = self._kids_of(pi, ty)
        if not kids:
            return []
        docs = self.docs
        return [docs[ri] for ri in kids]

    def edge_child(self, pi: str, ty: int, newest: bool) -> Doc | None:
        kids = self._kids_ty.get((pi, ty))
        if not kids:
            return None
        return self.docs[next(reversed(kids)) if newest else next(iter(kids))]

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

    def deepest(self) -> int:
        """The most ``_srn`` levels below the CSEBase any document has (0 if none)."""
        return max(self._depths, default=0)

    def _in_range(self, attr: str, bounds: Any, cap: int) -> list[dict[str, None]]:
        """The buckets of ``attr`` that may hold a timestamp in ``[lo, hi)``
        (``bounds``; either may be None: unbounded), in order; no more once
        they hold over ``cap`` documents (too many to look at anyway: a
        range over years costs what ``cap`` does, not one step per minute)."""
        if not (isinstance(bounds, tuple) and len(bounds) == 2
                and all(b is None or type(b) is str for b in bounds)):
            raise ValueError(f"a range of {attr!r} is a (low, high) pair of timestamps or None")
        lo, hi = bounds
        keys, buckets = self._time_keys[attr], self._time[attr]
        start = 0 if lo is None else bisect_left(keys, lo[:_BUCKET])
        end = len(keys) if hi is None else bisect_right(keys, hi[:_BUCKET])
        out: list[dict[str, None]] = []
        held = 0
        for at in range(start, end):
            members = buckets[keys[at]]
            out.append(members)
            held += len(members)
            if held > cap:
                break
        return out

    def _members(self, key: str, value: Any) -> dict[str, Any] | None:
        if key == "ty":
            return self._by_ty.get(value) if type(value) is int else None
        if type(value) is not str:
            return None
        return (self._by_lbl if key == "lbl" else self._attr[key]).get(value)

    def select_under(self, root: str, keys: Sequence[tuple[str, Sequence[Any]]], union: bool, cap: int,
                     max_depth: int) -> list[tuple[Doc, int]] | None:
        """Descendants of ``root`` at most ``max_depth`` levels below it that
        hold one of the values of a key (``union`` False: of the key with the
        fewest holders and of every other key in :data:`EXACT_KEYS`, the rest
        is the caller's to check; True: of any key;
        a value of ``ct``/``lt``/``et`` is a ``(low, high)`` range, low
        inclusive, high exclusive, either None, and what the key yields may
        include timestamps of the same minute outside it),
        as ``(doc, depth)`` in the order a depth-first walk in creation order
        meets them.  None if more than ``cap`` documents would have to be
        looked at (the walk is cheaper then) or a key is not in
        :data:`SELECT_KEYS`.

        Why: discovery costs what it finds, not what the subtree holds
        (docs/onem2m.md "Discovery and filter criteria").  Ancestry is
        followed up ``pi`` with a memo, so candidates sharing a parent cost
        one step each; the sort key is the creation sequence numbers along the
        path from ``root``, which is exactly the walk's order."""
        groups: list[list[dict[str, Any]]] = []
        overlapping: list[bool] = []  # whether a resource may be in two of a group's member sets
        for key, values in keys:
            if key not in SELECT_KEYS:
                return None
            overlapping.append((key == "lbl" or key in self._time) and len(values) > 1)
            if key in self._time:
                groups.append([m for v in values for m in self._in_range(key, v, cap)])
            else:
                groups.append([m for m in (self._members(key, v) for v in values) if m])
        if not groups:
            return None
        sizes = [sum(len(m) for m in g) for g in groups]
        also: list[list[dict[str, Any]]] = []  # exact keys every candidate must hold a value of, too
        if union:
            picked, several = [g for gs in groups for g in gs], True
        else:
            best = sizes.index(min(sizes))
            picked, several = groups[best], overlapping[best]
            also = [g for i, ((key, _), g) in enumerate(zip(keys, groups, strict=True))
                    if i != best and key in EXACT_KEYS]
        if (sum(sizes) if union else min(sizes)) > cap:
            return None
        docs, by_ty = self.docs, self._by_ty
        # ri -> path of sequence numbers from ``root`` (None: not below it)
        paths: dict[str, tuple[int, ...] | None] = {root: ()}
        found: list[tuple[tuple[int, ...], Doc]] = []
        seen: set[str] = set()
        # the common case, one exact key of one value besides the picked one: a plain membership test
        need = also[0][0] if len(also) == 1 and len(also[0]) == 1 else None
        if not several and picked and keys[best][0] == "lbl":
            # one label: its holders by parent, so a parent outside ``root``
            # (or too deep) is skipped with all its holders at once
            for pi, kids in self._lbl_kids[keys[best][1][0]].items():
                base = paths[pi] if pi in paths else self._path(pi, paths, docs, by_ty)
                if base is None or len(base) >= max_depth:
                    continue
                for ri in kids:
                    if need is not None:
                        if ri not in need:
                            continue
                    elif also and not _holds_each(ri, also):
                        continue
                    doc = docs[ri]
                    found.append(((*base, by_ty[doc["ty"]][ri]), doc))
            picked = []
        for members in picked:
            from_ty = any(members is of_ty for of_ty in by_ty.values())  # holds the sequence numbers itself
            for ri in members:
                if several:
                    if ri in seen:
                        continue
                    seen.add(ri)
                if need is not None:
                    if ri not in need:
                        continue
                elif also and not _holds_each(ri, also):
                    continue
                doc = docs[ri]
                pi = doc["pi"]
                base = paths[pi] if pi in paths else self._path(pi, paths, docs, by_ty)
                if base is None or len(base) >= max_depth:
                    continue
                found.append(((*base, members[ri] if from_ty else by_ty[doc["ty"]][ri]), doc))
        found.sort(key=itemgetter(0))
        return [(doc, len(path)) for path, doc in found]

    @staticmethod
    def _path(ri: str, paths: dict[str, tuple[int, ...] | None], docs: dict[str, Doc],
              by_ty: dict[int, dict[str, int]]) -> tuple[int, ...] | None:
        """Sequence numbers from the root of ``paths`` down to ``ri`` (memoised)."""
        chain: list[Doc] = []
        cur: str = ri
        base: tuple[int, ...] | None = None
        for _ in range(_MAX_CHAIN):
            if cur in paths:
                base = paths[cur]
                break
            doc = docs.get(cur)
            if doc is None or not doc["pi"]:
                break
            chain.append(doc)
            cur = doc["pi"]
        for doc in reversed(chain):
            base = None if base is None else (*base, by_ty[doc["ty"]][doc["ri"]])
            paths[doc["ri"]] = base
        return base

    def _top(self) -> list[tuple[str, str]] | None:
        """The heap (``_heap`` or ``_drain``) whose first entry is the
        earliest live one, stale first entries dropped; None if both are empty."""
        live = self._et
        best: list[tuple[str, str]] | None = None
        for heap in (self._heap, self._drain):
            while heap and live.get(heap[0][1]) != heap[0][0]:
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best[0]):
                best = heap
        return best

    def expired(self, now: str, limit: int = 1000) -> list[str]:
        """Up to ``limit`` ri with et <= now, oldest et first (read-only)."""
        found: list[str] = []
        keep: list[tuple[str, str]] = []
        seen: set[str] = set()
        while len(found) < limit:
            heap = self._top()
            if heap is None or heap[0][0] > now:
                break
            entry = heapq.heappop(heap)
            if entry[1] in seen:
                continue  # duplicate entry: drop it for good
            seen.add(entry[1])
            found.append(entry[1])
            keep.append(entry)
        for entry in keep:
            heapq.heappush(self._heap, entry)
        return found

    def next_expiry(self) -> str | None:
        heap = self._top()
        return None if heap is None else heap[0][0]

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

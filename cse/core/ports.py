"""Ports: the narrow interfaces the pure core needs from the outside world.

The pipeline and the CSFs talk to persistence only through :class:`Store` and
read time only through :class:`Clock` (docs/architecture.md "The store", "Timers").
Backends live in ``cse.store``; the composition root picks one.

Store rules every backend honours (the contract test suite in
``tests/store`` checks them):

* A *document* is a ``dict`` holding one resource: at least ``ri`` (unique),
  ``ty``, ``rn``, ``pi`` (``""`` for the CSEBase) and the internal ``_srn``
  (its structured path, e.g. ``cse-in/myae/cnt``). Keys starting with ``_``
  are internal and never leave the CSE. ``et`` (a oneM2M timestamp string,
  which compares correctly as a string) is optional.
* Documents handed to and returned by the store are **immutable by
  convention**: callers build a changed copy and ``Put`` it; nobody mutates a
  document after it has been put. Backends may therefore return their own
  reference without copying.
* :meth:`Store.commit` applies a batch of operations atomically and returns
  only once the batch is durable (would survive ``kill -9``). Reads see the
  batch as soon as ``commit`` has been called (before it returns).
* ``children`` and the ``newest``/``oldest`` lookups follow creation order
  (the order documents were first put), which survives restarts.
* A ``Delete`` removes the document **and its whole subtree** (by ``pi``).
* The KV area holds non-resource durable state (queued requests, counters),
  by namespace; ``kv_items`` follows insertion order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .messages import Request, Response

__all__ = [
    "Doc",
    "Put",
    "Delete",
    "KvPut",
    "KvDelete",
    "Op",
    "CommitResult",
    "Store",
    "SelectIndex",
    "Clock",
    "Outbound",
    "Timer",
]

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Put:
    """Insert or replace the document with ``doc['ri']``."""

    doc: Doc


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the document ``ri`` and all its descendants (missing: no-op)."""

    ri: str


@dataclass(frozen=True, slots=True)
class KvPut:
    """Set ``key`` in namespace ``ns`` to a JSON-serialisable ``value``."""

    ns: str
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class KvDelete:
    """Remove ``key`` from namespace ``ns`` (missing: no-op)."""

    ns: str
    key: str


Op = Put | Delete | KvPut | KvDelete


@dataclass(slots=True)
class CommitResult:
    """What a commit changed that callers may need for events.

    ``removed`` lists every document a ``Delete`` took away (the subtree
    included), in no particular order.
    """

    removed: list[Doc] = field(default_factory=list)


@runtime_checkable
class Store(Protocol):
    """Durable resource tree plus a small KV area. See module docstring."""

    async def open(self) -> None:
        """Load persisted state (snapshot + journal replay) and start writers."""

    async def close(self) -> None:
        """Flush everything pending, write a compact snapshot, stop writers."""

    async def commit(self, ops: Sequence[Op]) -> CommitResult:
        """Apply ``ops`` atomically; return once they are durable."""

    async def get(self, ri: str) -> Doc | None:
        """The document with resource ID ``ri``."""

    async def get_by_path(self, srn: str) -> Doc | None:
        """The document whose structured path ``_srn`` equals ``srn``."""

    async def child_by_name(self, pi: str, rn: str) -> Doc | None:
        """The child of ``pi`` named ``rn``."""

    async def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        """Direct children of ``pi`` (of type ``ty`` if given), oldest first."""

    async def edge_child(self, pi: str, ty: int, newest: bool) -> Doc | None:
        """The newest (or oldest) child of ``pi`` of type ``ty``; O(1)."""

    async def count_children(self, pi: str, ty: int | None = None) -> int:
        """How many direct children ``pi`` has (of type ``ty`` if given)."""

    async def lookup(self, attr: str, value: Any) -> list[Doc]:
        """Documents whose ``attr`` equals ``value``; indexed attributes are
        ``aei``, ``csi`` and ``_own`` (others may scan)."""

    async def count_by(self, attr: str, value: str) -> int:
        """How many documents have ``attr`` equal to ``value``; O(1) for the
        indexed attributes (``aei``, ``csi``, ``_own``: what an originator
        owns, for the per-originator quota)."""

    async def expired(self, now: str, limit: int = 1000) -> list[str]:
        """IDs of up to ``limit`` documents whose ``et`` <= ``now``, oldest first."""

    async def next_expiry(self) -> str | None:
        """The smallest ``et`` of any stored document, or None."""

    async def kv_get(self, ns: str, key: str) -> Any | None:
        """The value stored under ``key`` in ``ns``."""

    async def kv_items(self, ns: str) -> list[tuple[str, Any]]:
        """All ``(key, value)`` pairs of ``ns`` in insertion order."""

    async def count(self) -> int:
        """Number of stored documents."""


@runtime_checkable
class SelectIndex(Protocol):
    """What a store with in-memory candidate indexes adds (the stores that
    answer reads from memory do; a store without it gets walked).

    Discovery asks it for the few resources that can match instead of
    visiting a whole subtree (docs/onem2m.md "Discovery and filter criteria")."""

    async def select_under(self, root: str, keys: Sequence[tuple[str, Sequence[Any]]], union: bool, cap: int,
                           max_depth: int) -> list[tuple[Doc, int]] | None:
        """``(doc, depth)`` of the descendants of ``root`` (at most
        ``max_depth`` levels below), in depth-first creation order, among
        ``keys`` -- ``("ty", types)``, ``("lbl", labels)``, ``(attr, values)``
        for ``cr``, ``aei``, ``csi``, or ``(attr, ranges)`` for ``ct``,
        ``lt``, ``et`` with ``(low, high)`` ranges, low inclusive, high
        exclusive, either None.  ``union`` False: those holding one value of
        the key with the fewest holders and one value of every ``ty`` and
        ``lbl`` key (exactly those); True: of any key.  For the other keys it
        is a superset: the caller checks them.  None when more than ``cap``
        would have to be looked at or a key has no index."""

    async def deepest(self) -> int:
        """The most levels below the CSEBase any stored resource has."""


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch (UTC)."""

    def now(self) -> float: ...


class Timer(Protocol):
    """A timer that runs its job at a deadline (``cse.binding.scheduler``)."""

    @property
    def deadline(self) -> float | None:
        """When the job runs next (None: not armed)."""

    def poke(self, deadline: float) -> None:
        """Bring the next run forward to ``deadline`` if that is sooner."""


class Outbound(Protocol):
    """Sends a request to another oneM2M entity over some binding.

    ``poa`` is the peer's point of access (``http://127.0.0.1:8082`` or a
    full notification URL); the request's To is appended to it unless
    ``exact`` is set (a notification URL is used as it is). Connection
    failures raise ``TargetNotReachable`` (5103), a timeout raises
    ``RequestTimeout`` (4008); any oneM2M answer is returned as a Response.
    ``peer`` is the CSE-ID of the CSE at ``poa`` when it is one (the
    audience of the token sent to it, docs/security.md "Bearer tokens").
    """

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response: ...

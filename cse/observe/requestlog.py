"""The live request log: each answered HTTP request, fanned out to the web console's readers.

The HTTP binding builds one set of fields per request -- the same fields as
the request log line (cse.binding.http_server, docs/configuration.md "[log]")
-- and hands them to the :class:`RequestFeed` it was given at construction.
The feed copies them to every open :class:`Subscription` (docs/webui.md
"Live request log").

Bounded: at most ``max_clients`` readers at once, each with a buffer of
``buffer`` entries. A reader that falls behind (its buffer full when the
next entry comes) is dropped: it is told so and closed, and the CSE never
waits for it or keeps more for it. Publishing is synchronous and never
blocks the request path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

__all__ = ["RequestFeed", "Subscription", "FeedFull"]

Entry = Mapping[str, object]


class FeedFull(Exception):
    """``max_clients`` readers are open already."""


class Subscription:
    """One reader's bounded buffer (module docstring)."""

    def __init__(self, buffer: int) -> None:
        self._items: deque[Entry] = deque()
        self._buffer = buffer
        self._wake = asyncio.Event()
        self.dropped = False  # fell behind: the feed stopped feeding it
        self.closed = False   # the feed or the reader ended it

    def offer(self, entry: Entry) -> bool:
        """Queue ``entry``; False (and dropped) when the buffer is full."""
        if len(self._items) >= self._buffer:
            self.dropped = True
            self._wake.set()
            return False
        self._items.append(entry)
        self._wake.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> list[Entry] | None:
        """Everything buffered, waiting up to ``timeout`` s for something;
        [] on a quiet timeout; None once dropped or closed (after the rest)."""
        if not self._items and not (self.dropped or self.closed):
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        if self._items:
            out = list(self._items)
            self._items.clear()
            return out
        return None if (self.dropped or self.closed) else []


class RequestFeed:
    """The fan-out from the HTTP binding to the console's readers (module docstring)."""

    def __init__(self, *, max_clients: int = 4, buffer: int = 256) -> None:
        self.max_clients = max_clients
        self.buffer = buffer
        self._subs: list[Subscription] = []
        self.published = 0
        self.dropped = 0  # readers dropped for falling behind, in all

    @property
    def readers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> Subscription:
        """A new reader; raises :class:`FeedFull` at ``max_clients``."""
        if len(self._subs) >= self.max_clients:
            raise FeedFull(f"{len(self._subs)} live log readers are open, the limit ([webui] max_log_clients)")
        sub = Subscription(self.buffer)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, entry: Entry) -> None:
        """Copy ``entry`` to every reader; a reader whose buffer is full is dropped."""
        if not self._subs:
            return
        self.published += 1
        for sub in list(self._subs):
            if not sub.offer(entry):
                self.dropped += 1
                self._subs.remove(sub)

    def close(self) -> None:
        """End every reader (the CSE stops)."""
        for sub in self._subs:
            sub.close()
        self._subs.clear()

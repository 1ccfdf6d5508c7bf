"""Wait for Ctrl-C or SIGTERM in an AE's event loop (docs/sdk.md "Running until stopped").

Why not ``asyncio.run`` and ``KeyboardInterrupt``: ``asyncio.run`` turns
SIGINT into a cancellation from a Python-level handler, and Python runs
such a handler in the main thread only once that thread wakes.  An AE that
waits on an event loop with nothing scheduled sleeps in ``epoll_wait``
with no timeout; when the kernel hands the signal to another thread (the
resolver's or a sync client's), the main thread never wakes and the AE
ignores Ctrl-C.  :meth:`asyncio.loop.add_signal_handler` also sets the
loop's wake-up file descriptor, so the loop wakes whichever thread got the
signal.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable

__all__ = ["until_stopped"]


async def until_stopped(signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> signal.Signals:
    """Return the first of ``signals`` this process receives (main thread's loop only).

    The handlers are removed again on return or cancellation, so the
    signals' previous behaviour comes back."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[signal.Signals] = loop.create_future()
    wanted = tuple(signals)

    def stop(sig: signal.Signals) -> None:
        if not got.done():
            got.set_result(sig)

    for sig in wanted:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await got
    finally:
        for sig in wanted:
            loop.remove_signal_handler(sig)

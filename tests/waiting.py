"""Waiting on state that lives in another process.

A CSE subprocess, a peer CSE registering in the background or a
store-and-forward window opening have no event a test can await, so the
only honest wait is to look again until a deadline: :func:`until` polls
``check`` every ``interval`` seconds and fails with what it last saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["until"]


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0,
                interval: float = 0.05) -> Any:
    """Return ``check()``'s first truthy result; an exception (a CSE still
    starting, a refused connection) counts as 'not yet'."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)

"""ae_sdk.until_stopped: a signal stops the wait whichever thread receives it."""

from __future__ import annotations

import asyncio
import signal
import threading

from ae_sdk import until_stopped


async def test_a_signal_delivered_to_another_thread_ends_the_wait() -> None:
    # SIGUSR1, not SIGINT: should the handler fail to catch it, the test
    # fails on the timeout below instead of interrupting pytest.
    previous = signal.getsignal(signal.SIGUSR1)
    waiting = asyncio.ensure_future(until_stopped((signal.SIGUSR1,)))
    await asyncio.sleep(0)  # the handler is registered once the coroutine runs
    sent = threading.Event()

    def from_another_thread() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread, not the loop's
        sent.set()

    thread = threading.Thread(target=from_another_thread)
    thread.start()
    try:
        assert await asyncio.wait_for(waiting, 5.0) == signal.SIGUSR1
    finally:
        thread.join()
    assert sent.is_set()
    assert signal.getsignal(signal.SIGUSR1) == previous  # the handler is gone again


async def test_cancelling_the_wait_removes_the_handlers() -> None:
    previous = signal.getsignal(signal.SIGUSR2)
    waiting = asyncio.ensure_future(until_stopped((signal.SIGUSR2,)))
    await asyncio.sleep(0)
    assert signal.getsignal(signal.SIGUSR2) != previous
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert signal.getsignal(signal.SIGUSR2) == previous

"""How loudly a registree reports a failed registration (docs/troubleshooting.md).

Why: every normal start of a pair races the registree against its
registrar; a registrar that is simply not up yet (nothing listens) is how a
pair starts and is logged at INFO, while a registrar that answers and
refuses is a real problem and stays a WARNING from the first attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from cse.app import CSE
from cse.config import load_config
from cse.store.memory import MemoryStore
from tests.conftest import write_config


class _FirstFailure(logging.Handler):
    """Keeps the first 'registration ... failed' record and wakes the test."""

    def __init__(self) -> None:
        super().__init__()
        self.record: logging.LogRecord | None = None
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.record is None and record.getMessage().startswith("registration with /id-up failed"):
            self.record = record
            self.seen.set()


@contextlib.asynccontextmanager
async def _registree(tmp_path: Path, port: int) -> AsyncIterator[_FirstFailure]:
    extra = (f'[registrar]\ncse_id = "/id-up"\nname = "cse-up"\npoa = "http://127.0.0.1:{port}"\n'
             "timeout_s = 2\n")
    config = load_config(str(write_config(tmp_path / "mn", cse_id="/id-mn", name="cse-mn", db=":memory:",
                                          extra=extra)))
    handler = _FirstFailure()
    logger = logging.getLogger("cse.remote")
    level = logger.level
    logger.setLevel(logging.INFO)  # INFO records must reach the handler to be told apart
    logger.addHandler(handler)
    cse = CSE(config, store=MemoryStore())
    try:
        await cse.start(serve_http=False)
        await asyncio.wait_for(handler.seen.wait(), 10)
        yield handler
    finally:
        await cse.stop()
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_registrar_not_up_yet_is_info(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    async with _registree(tmp_path, dead) as seen:
        assert seen.record is not None
        assert seen.record.levelno == logging.INFO, seen.record.getMessage()
        assert "cannot reach" in seen.record.getMessage()


async def test_a_registrar_that_refuses_is_a_warning(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, headers={"X-M2M-RSC": "4103", "X-M2M-RI": request.headers.get(
            "X-M2M-RI", ""), "Content-Type": "application/json"}, text='{"m2m:dbg": "not you"}')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with _registree(tmp_path, port) as seen:
            assert seen.record is not None
            assert seen.record.levelno == logging.WARNING, seen.record.getMessage()
    finally:
        await runner.cleanup()

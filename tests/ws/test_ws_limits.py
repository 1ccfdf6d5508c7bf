"""The bound on one WebSocket's work (``[websocket] max_pending``, docs/bindings.md "Limits").

A connection with ``max_pending`` requests in progress gets every further
request answered at once with 5207 and an ``m2m:dbg`` naming the limit,
under that request's ``rqi``: not handled, not queued (the CSE's memory for
one connection stays bounded however fast a client sends), not a crash; the
connection goes on, and once answers went out it takes requests again. The
SDK's :class:`ae_sdk.WsTransport` keeps within the bound itself
(``max_in_flight``): more concurrent calls than that wait for a turn and
all succeed. In process, on a free port; the requests are held in progress
by a gate in front of the CSE's handler, released by the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ae_sdk import WsTransport
from cse.app import CSE
from cse.core.messages import Operation, Request, Response
from tests.conftest import served_cse

T = 10.0
MAX_PENDING = 2


class Gate:
    """Wraps the binding's handler: requests are counted and held until :attr:`release` is set."""

    def __init__(self, cse: CSE) -> None:
        assert cse.ws is not None
        self.real = cse.ws.handle
        self.inside = 0
        self.handled = 0
        self.peak = 0
        self.full = asyncio.Event()     # MAX_PENDING requests are held
        self.release = asyncio.Event()
        cse.ws.handle = self

    async def __call__(self, req: Request) -> Response:
        self.handled += 1
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        if self.inside >= MAX_PENDING:
            self.full.set()
        try:
            await asyncio.wait_for(self.release.wait(), T)
            return await self.real(req)
        finally:
            self.inside -= 1


@pytest.fixture
async def cse(tmp_path: Path) -> AsyncIterator[CSE]:
    async with served_cse(tmp_path, f'[cse]\nadmin = "CAdmin"\n\n[websocket]\nmax_pending = {MAX_PENDING}\n') as app:
        yield app


def _retrieve(rqi: str) -> str:
    return json.dumps({"op": 2, "to": "cse-in", "fr": "CAdmin", "rqi": rqi, "rvi": "3"})


async def _answers(ws: aiohttp.ClientWebSocketResponse, n: int) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    while len(got) < n:
        msg = await ws.receive(timeout=T)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        answer = json.loads(msg.data)
        got[answer["rqi"]] = answer
    return got


async def test_past_max_pending_a_request_is_answered_5207_and_not_handled(cse: CSE) -> None:
    gate = Gate(cse)
    assert cse.http is not None
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://127.0.0.1:{cse.http.port}/", protocols=("oneM2M.json",)) as ws:
        for i in range(MAX_PENDING):
            await ws.send_str(_retrieve(f"held{i}"))
        await asyncio.wait_for(gate.full.wait(), T)
        # a burst past the bound: each answered 5207 under its own rqi, none handled or queued
        burst = 50
        for i in range(burst):
            await ws.send_str(_retrieve(f"over{i}"))
        refused = await _answers(ws, burst)
        assert set(refused) == {f"over{i}" for i in range(burst)}
        for answer in refused.values():
            assert answer["rsc"] == 5207, answer
            assert "websocket.max_pending" in answer["pc"]["m2m:dbg"], answer
        assert gate.handled == MAX_PENDING and gate.peak == MAX_PENDING
        # the held ones finish normally, and the connection takes requests again
        gate.release.set()
        held = await _answers(ws, MAX_PENDING)
        assert {k: v["rsc"] for k, v in held.items()} == {f"held{i}": 2000 for i in range(MAX_PENDING)}
        await ws.send_str(_retrieve("after"))
        after = await _answers(ws, 1)
        assert after["after"]["rsc"] == 2000 and after["after"]["pc"]["m2m:cb"]["rn"] == "cse-in"
        assert not ws.closed


async def test_the_sdk_keeps_within_the_bound(cse: CSE) -> None:
    gate = Gate(cse)
    assert cse.http is not None
    async with WsTransport(f"ws://127.0.0.1:{cse.http.port}", timeout=T, max_in_flight=MAX_PENDING) as transport:
        calls = [transport.send(Request(op=Operation.RETRIEVE, to="cse-in", fr="CAdmin", rqi=f"sdk{i}", rvi="3"))
                 for i in range(5 * MAX_PENDING)]
        pending = asyncio.gather(*calls)
        await asyncio.wait_for(gate.full.wait(), T)
        gate.release.set()
        answers = await asyncio.wait_for(pending, T)
    assert [a.rsc for a in answers] == [2000] * (5 * MAX_PENDING)  # none refused 5207: the SDK waited its turn
    assert gate.handled == 5 * MAX_PENDING and gate.peak == MAX_PENDING

"""Bad input over a WebSocket at a live CSE: hundreds of malformed primitives, zero 5000s.

Why (bad input, docs/bindings.md "WebSocket"): anybody who can open a
WebSocket on the CSE's port can send any message. Whatever it is -- not
JSON, JSON that is not an object, primitives with missing, mistyped or
out-of-range fields (the examples of the MQTT fuzz, the same codec), content
of the wrong shape, messages over ``websocket.max_message``, CBOR that does
not decode on ``oneM2M.cbor``, text on ``oneM2M.cbor`` -- each gets exactly
one response primitive with a known RSC (never 5000) and an ``m2m:dbg`` for
every error; bytes that are not WebSocket frames close that connection
(RFC 6455), and the CSE goes on serving and logs no traceback. Past
``websocket.max_connections`` a handshake is refused (HTTP 503, 5207).

An in-process CSE on a free port; each example on a fresh connection (one
connection speaks for one AE). CI: derandomized, 80 examples; ``--long``:
random, 2,000.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import served_cse
from tests.robustness.test_fuzz_mqtt import MAX_PAYLOAD, _check, primitives

T = 10.0


@pytest.fixture
async def ws_url(tmp_path: Path) -> AsyncIterator[str]:
    toml = f'[cse]\nadmin = "CAdmin"\n\n[websocket]\nmax_message = {MAX_PAYLOAD}\nmax_connections = 3\n'
    async with served_cse(tmp_path, toml) as cse:
        assert cse.http is not None
        yield f"ws://127.0.0.1:{cse.http.port}/"


async def _exchange(session: aiohttp.ClientSession, url: str, message: bytes | str, protocol: str) -> dict[str, Any]:
    async with session.ws_connect(url, protocols=(protocol,), max_msg_size=0) as ws:
        if isinstance(message, str):
            await ws.send_str(message)
        else:
            await ws.send_bytes(message)
        msg = await ws.receive(timeout=T)
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        answer = cbor2.loads(msg.data) if protocol == "oneM2M.cbor" else json.loads(msg.data)
        assert isinstance(answer, dict), answer
        return answer


def _examples(long_run: bool) -> list[tuple[bytes, str]]:
    """Drawn once, up front (derandomized in CI): the sends themselves are async."""
    out: list[tuple[bytes, str]] = []

    @settings(max_examples=2000 if long_run else 80, deadline=None, derandomize=not long_run, database=None,
              suppress_health_check=list(HealthCheck))
    @given(primitives(), st.sampled_from(["text"] * 6 + ["binary", "cbor", "cbor-text", "cbor-raw"]))
    def draw(payload: bytes, how: str) -> None:
        out.append((payload, how))

    draw()
    return out


async def test_malformed_messages_get_onem2m_errors(ws_url: str, long_run: bool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    counts: dict[int, int] = {}
    async with aiohttp.ClientSession() as session:
        for payload, how in _examples(long_run):
            if how == "text":
                answer = await _exchange(session, ws_url, payload.decode("utf-8", "replace"), "oneM2M.json")
            elif how == "binary":  # JSON in a binary message is read too
                answer = await _exchange(session, ws_url, payload, "oneM2M.json")
            elif how == "cbor":  # the same value as CBOR, when it is JSON at all
                try:
                    value = json.loads(payload)
                except ValueError:
                    value = payload.decode("latin-1")
                answer = await _exchange(session, ws_url, cbor2.dumps(value), "oneM2M.cbor")
            elif how == "cbor-text":
                answer = await _exchange(session, ws_url, payload.decode("utf-8", "replace"), "oneM2M.cbor")
                assert answer["rsc"] == 4000
            else:  # raw bytes that are rarely CBOR
                answer = await _exchange(session, ws_url, payload, "oneM2M.cbor")
            rsc = _check(answer)
            counts[rsc] = counts.get(rsc, 0) + 1

        # bytes that are not WebSocket frames: that connection is closed (1002), the CSE serves on
        reader, writer = await asyncio.open_connection(*ws_url[5:-1].split(":"))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Protocol: oneM2M.json\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(b"\xff\xff\x00\x00garbage that is no frame")  # reserved bits, opcode 15, unmasked
        rest = await asyncio.wait_for(reader.read(), T)  # the CSE closes (a close frame, then EOF)
        assert rest[:1] == b"\x88"
        writer.close()
        final = await _exchange(session, ws_url, json.dumps({"op": 2, "to": "cse-in", "fr": "CAdmin", "rqi": "final",
                                                             "rvi": "3"}), "oneM2M.json")
        assert final["rsc"] == 2000
        # past websocket.max_connections a handshake is refused with 5207
        async with session.ws_connect(ws_url, protocols=("oneM2M.json",)), \
                session.ws_connect(ws_url, protocols=("oneM2M.json",)), \
                session.ws_connect(ws_url, protocols=("oneM2M.json",)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url, protocols=("oneM2M.json",))
            assert refused.value.status == 503 and refused.value.headers["X-M2M-RSC"] == "5207"
    assert counts.get(4000, 0) > 20 and sum(counts.values()) >= 80, counts
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records
                                                                            if r.levelno >= logging.ERROR][:5]

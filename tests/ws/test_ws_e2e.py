"""The WebSocket binding end to end (docs/bindings.md "WebSocket"): a real
``python -m cse`` process and an AE of the SDK that speaks only WebSocket to it.

Proves: the AE registers (no ``poa``, no open port), creates, retrieves,
updates, discovers and deletes over one WebSocket (TS-0020, JSON
primitives); a subscription naming the AE-ID is verified and notified on
that same connection; when the connection drops, what the CSE has for the
AE meanwhile waits (its mailbox) and arrives once the SDK reconnected; a
CBOR connection works alike; a second connection without a token cannot
take over the AE-ID of a connected AE (4103), and a handshake without a
oneM2M subprotocol is refused (HTTP 400, 4000).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from ae_sdk import AEClient, M2MResponseError, WsTransport

T = 10.0  # upper bound of every wait (not a performance target)


async def test_ae_over_websocket_crud_discovery_notifications_and_reconnect(
        cse_process: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cse = await cse_process()
    url = cse.url.replace("http://", "ws://")
    async with AEClient(url) as client:
        ae = await client.register("wsapp")
        assert ae["aei"].startswith("C") and not ae.get("poa")
        cnt = await client.create_container("wsapp", "data")
        assert cnt["rn"] == "data"
        got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await client.start_notifications()
        sub = await client.subscribe("wsapp/data", got.put_nowait)
        assert sub["nu"] == [ae["aei"]]
        await client.create_content_instance("wsapp/data", "21.5")
        sgn = await asyncio.wait_for(got.get(), T)
        assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "21.5"

        # the connection drops; a notification meanwhile waits and comes after the reconnection
        transport = client.transport
        assert isinstance(transport, WsTransport)
        gate = asyncio.Event()  # the SDK reconnects only once the change below was made
        connect = transport._connect

        async def gated() -> Any:
            await gate.wait()
            return await connect()
        monkeypatch.setattr(transport, "_connect", gated)
        await transport.drop()
        async with AEClient(cse.url, originator="CAdmin") as admin:  # another AE's change, over HTTP
            await admin.create_content_instance(f"{client.cse_name}/wsapp/data", "22.0")
        assert got.empty() and not transport.connected
        gate.set()
        sgn = await asyncio.wait_for(got.get(), T)
        assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "22.0"
        assert transport.connects == 2

        assert (await client.retrieve("wsapp/data"))["cni"] == 2
        assert len(await client.discover("wsapp", ty=4)) == 2
        await client.update("wsapp", {"lbl": ["x"]}, ty=2)
        assert await client.discover("cse-in", lbl="x") == ["cse-in/wsapp"]

        # nobody else can speak for the connected AE without a token
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/", protocols=("oneM2M.json",)) as ws:
                await ws.send_str(json.dumps({"op": 2, "to": "cse-in/wsapp", "fr": ae["aei"], "rqi": "steal",
                                              "rvi": "3"}))
                answer = json.loads((await ws.receive(timeout=T)).data)
                assert (answer["rsc"], answer["rqi"]) == (4103, "steal") and "m2m:dbg" in answer["pc"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url + "/", protocols=("chat",))
            assert refused.value.status == 400

        await client.delete("wsapp/data")
        with pytest.raises(M2MResponseError) as err:
            await client.retrieve("wsapp/data")
        assert err.value.rsc == 4004
        await client.deregister()

    async with AEClient(url, serialization="cbor") as cbor:  # oneM2M.cbor: the same primitives in binary
        assert (await cbor.register("wscbor"))["rn"] == "wscbor"
        assert (await cbor.create_container("wscbor", "c"))["rn"] == "c"
        await cbor.deregister()

"""Who may speak on a WebSocket when ``[auth]`` is on (docs/bindings.md
"WebSocket", docs/security.md): the same bearer-token rules as over HTTP.

A handshake without a token is refused (HTTP 403, 4103); a registration
credential (a token allowing ``C``) registers an AE and the connection may
then act as the new AE-ID; the answer hands the SDK that AE-ID's token
(``atk``), with which it opens its next connection after a drop; a
connection whose token allows another originator cannot claim that AE-ID
(4103), nor can the AE's own connection claim the admin. In process, on a
free port.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ae_sdk import AEClient, WsTransport
from cse.app import CSE
from cse.core.messages import Operation
from cse.security.guard import Guard
from tests.conftest import served_cse
from tests.waiting import until

T = 10.0


@pytest.fixture
async def cse(tmp_path: Path) -> AsyncIterator[CSE]:
    secret = tmp_path / "hs256.secret"
    secret.write_text("s" * 48)
    toml = f'[cse]\nadmin = "CAdmin"\n\n[auth]\nenabled = true\nhs256_secret_file = "{secret}"\n'
    async with served_cse(tmp_path, toml) as app:
        yield app


async def _ask(ws: aiohttp.ClientWebSocketResponse, prim: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(prim))
    answer = json.loads((await ws.receive(timeout=T)).data)
    assert isinstance(answer, dict)
    return answer


async def test_websocket_originators_follow_the_token(cse: CSE) -> None:
    assert cse.http is not None and cse.security.binding is not None
    guard = cse.security.binding.guard
    assert isinstance(guard, Guard)
    url = f"ws://127.0.0.1:{cse.http.port}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "/", protocols=("oneM2M.json",))
        assert refused.value.status == 403

    registration = guard.mint("installer", ["C"])[0]
    async with AEClient(url, token=registration) as client:
        ae = await client.register("tokenapp")
        assert (await client.create_container("tokenapp", "data"))["rn"] == "data"  # as the new AE-ID
        transport = client.transport
        assert isinstance(transport, WsTransport) and transport.token not in (None, registration)
        assert guard.claims(f"Bearer {transport.token}")["orig"] == [ae["aei"]]  # the AE-ID's token (atk)
        # the next connection is made with it: a drop, a reconnection, the AE named again on it
        await client.start_notifications()
        await transport.drop()
        async def reconnected() -> bool:
            return transport.connects == 2 and transport.connected
        await until(reconnected, "the WebSocket reconnected", timeout=T)
        assert (await client.retrieve("tokenapp/data"))["rn"] == "data"
        resp = await client.transport.send(client.build(Operation.RETRIEVE, "cse-in", fr="CAdmin"))
        assert resp.rsc == 4103 and "not allowed by the access token" in resp.pc["m2m:dbg"]

        other = guard.mint("other", ["Cother"])[0]
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/", protocols=("oneM2M.json",),
                                          headers={"Authorization": f"Bearer {other}"}) as ws2:
                answer = await _ask(ws2, {"op": 2, "to": "cse-in/tokenapp", "fr": ae["aei"], "rqi": "steal",
                                          "rvi": "3"})
                assert (answer["rsc"], answer["rqi"]) == (4103, "steal")

"""The SDK speaking CBOR over loopback HTTP (docs/onem2m.md "Serializations").

Why: ``serialization="cbor"`` must put CBOR on the wire (checked at a
recording receiver), work against a real CSE process for the whole AE life
(register, create, retrieve, update, errors), and an AE that lists CBOR in
``csz`` must get its notifications in CBOR at the SDK's notification server
and still hand the same dicts to its callbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import cbor2
import pytest

from ae_sdk import AEClient, HttpTransport, M2MResponseError
from tests.notify_receiver import Receiver

TIMEOUT = 10.0
CBOR = "application/vnd.onem2m-res+cbor"


async def test_cbor_on_the_wire(receiver: Receiver) -> None:
    base = receiver.url.rsplit("/", 1)[0]
    async with HttpTransport(base, timeout=TIMEOUT, serialization="cbor") as transport:
        client = AEClient(transport, originator="Cme")
        await client.create_container("app", "data", mni=3)  # the receiver answers 2000, no content
    item = await receiver.next(TIMEOUT)
    assert item.header("Content-Type") == f"{CBOR};ty=3"
    assert item.header("Accept") == CBOR
    assert cbor2.loads(item.raw) == {"m2m:cnt": {"rn": "data", "mni": 3}}
    with pytest.raises(ValueError):
        HttpTransport(base, serialization="xml")  # type: ignore[arg-type]


async def test_cbor_ae_against_a_cse(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(cse.url, serialization="cbor") as client:
        assert isinstance(client.transport, HttpTransport) and client.transport.serialization == "cbor"
        server = await client.start_notifications()
        await client.register("cborapp", poa=server.url, csz=["application/cbor"])
        await client.create_container("cborapp", "data", lbl=["k:v"])
        cin = await client.create_content_instance("cborapp/data", "21.5", cnf="text/plain:0")
        assert (await client.retrieve(client.ri_path(cin["ri"])))["con"] == "21.5"
        assert (await client.update("cborapp/data", {"mni": 2}))["mni"] == 2
        with pytest.raises(M2MResponseError) as info:
            await client.create_container("cborapp", "data")
        assert info.value.rsc == 4105 and "data" in info.value.dbg  # the error came back in CBOR, decoded

        got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await client.subscribe("cborapp/data", got.put_nowait, net=(3,), via_poa=True)
        await client.create_content_instance("cborapp/data", "22.0")
        sgn = await asyncio.wait_for(got.get(), TIMEOUT)
        assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "22.0"
        # everything the server got (the verification request, the notification) came as CBOR
        seen = [(n.kind, n.request.media) for n in server.received_nowait()]
        assert len(seen) == 2 and {media for _, media in seen} == {CBOR}, seen

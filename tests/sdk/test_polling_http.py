"""An AE behind NAT over real HTTP (docs/sdk.md "Behind NAT: a polling
channel"): registered with rr false, it opens no port, and its
subscription's verification request and notifications reach its callback
through its pollingChannel. A real CSE process on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ae_sdk import AEClient, HttpTransport, notified_resource
from ae_sdk.polling import PollingReceiver
from cse.core.messages import Operation

TIMEOUT = 10.0


async def test_polling_ae_receives_its_notifications_without_a_port(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with AEClient(HttpTransport(cse.url, timeout=TIMEOUT)) as client:
        ae = await client.register("natapp", rr=False)
        assert ae["rr"] is False and "poa" not in ae
        server = await client.start_notifications(polling=True)
        assert isinstance(server, PollingReceiver)
        assert server.url == client.originator  # nu names the AE: the CSE routes to its channel
        await client.create_container("natapp", "data")
        sub = await client.subscribe("natapp/data", got.put_nowait)
        assert sub["nu"] == [client.originator]
        for con in ("1", "2"):
            await client.create_content_instance("natapp/data", con)
        first = await asyncio.wait_for(got.get(), TIMEOUT)
        second = await asyncio.wait_for(got.get(), TIMEOUT)
        assert [notified_resource(first)["con"], notified_resource(second)["con"]] == ["1", "2"]
        kinds = [n.kind for n in server.received_nowait()]
        assert kinds[0] == "verification"
        # the channel answers only its AE
        other = AEClient(HttpTransport(cse.url, timeout=TIMEOUT), originator="CAdmin")
        try:
            r = await other.transport.send(other.build(Operation.RETRIEVE, server.pcu or ""))
            assert r.rsc == 4103, r.pc
        finally:
            await other.close()

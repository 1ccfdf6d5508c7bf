"""M2M service sessions with a target AE on a WebSocket (docs/bindings.md
"WebSocket", docs/sessions.md "The call flows on the wire"): AE1 speaks HTTP
to CSE1, AE2 only a WebSocket to CSE2 (no port, no ``poa``). Real CSE
processes on loopback.

Flow 1: AE1's establishment offer crosses both CSEs and reaches AE2 on its
WebSocket; AE2's answer decides. Flow 2: signed, encrypted session-based
requests from AE1 change AE2's resources, and AE2 hears each change (typ 2)
on its WebSocket; a store-and-forward window holds one until it opens; AE2
uses the session over the WebSocket itself (``sid``/``smac`` in the
primitive, a forged MAC refused with 4103). Flow 3: AE1 terminates, AE2 is
told on its WebSocket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ae_sdk import AEClient, HttpTransport, M2MResponseError, PendingResult, SessionOffer, WsTransport
from ae_sdk.session_crypto import is_token
from cse.core.messages import Operation
from tests.conftest import Http
from tests.sdk.session_pair import CSI1, CSI2, T, start_registered_pair, window_ahead


async def test_session_flows_with_a_target_ae_on_a_websocket(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_registered_pair(cse_process, http)
    ae1 = AEClient(HttpTransport(cse1.url, timeout=T), cse_name="cse1", cse_id=CSI1)
    ae2 = AEClient(WsTransport(cse2.url.replace("http://", "ws://"), timeout=T), cse_name="cse2", cse_id=CSI2)
    offers: list[SessionOffer] = []
    try:
        await ae1.register("ae1", scp=["smg"])
        ae = await ae2.register("ae2", scp=["smg"])
        assert not ae.get("poa")
        await ae2.create_container("ae2", "container1")
        await ae1.enable_sessions(lambda offer: False)
        await ae2.enable_sessions(lambda offer: offers.append(offer) or {"role": "sensor"})

        # flow 1: establishment, the offer delivered on AE2's WebSocket
        s1 = await ae1.establish(f"{CSI2}/{ae2.originator}", epa={"role": "collector"})
        s2 = await ae2.next_session(T)
        assert s1.sid == s2.sid and s1.key == s2.key and s1.peer_epa == {"role": "sensor"}
        assert [o.epa for o in offers] == [{"role": "collector"}]

        # flow 2: signed and encrypted, AE2 told of each change on its WebSocket
        cin = await s1.create("container1", 4, {"con": "21.5", "rn": "r1"})
        assert isinstance(cin, dict) and is_token(cin["con"])
        assert (await s2.next_update(T))["res"] == f"{CSI2}/cse2/ae2/container1/r1"
        assert (await s2.retrieve("cse2/ae2/container1/r1"))["con"] == "21.5"  # AE2's own, over the WebSocket
        req = s2.signed_request(Operation.RETRIEVE, "cse2/ae2/container1")
        forged = req.__class__(**{**{f: getattr(req, f) for f in req.__slots__}, "smac": "A" * 43})
        with pytest.raises(M2MResponseError) as info:
            await ae2.send(forged)
        assert info.value.rsc == 4103 and "SMAC" in info.value.dbg

        # flow 2 with store-and-forward: held at CSE1 until the window opens
        opens, sch = window_ahead(2.0)
        await s1.add_policy(2, sch=sch, rn="later", hop=CSI1)
        pending = await s1.update("container1", {"lbl": ["stored"]}, ty=3)
        assert isinstance(pending, PendingResult) and pending.rsc == 1001
        ors = await pending.result(timeout=T + 5)
        assert time.time() >= opens and ors["rsc"] == 2004
        assert (await s2.next_update(T))["rqi"] == pending.rqi

        # flow 3: AE1 terminates; AE2 hears it on its WebSocket
        await s1.terminate()
        assert await s2.wait_terminated(T) is not None and s2.terminated
    finally:
        await ae1.close()
        await ae2.close()

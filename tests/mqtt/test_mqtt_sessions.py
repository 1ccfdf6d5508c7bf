"""M2M service sessions over MQTT (docs/bindings.md "Sessions over MQTT"): two
SDK AEs that speak only MQTT to one real CSE process establish a session
(the establishment question reaches the target AE as a NOTIFY over MQTT and
its answer decides), then use it for signed, encrypted session-based CRUD:
the ``sid``/``smac`` of the primitive carry the session headers and the MAC
covers the content as compact JSON, so a forged MAC is refused (4103).
"""

from __future__ import annotations

from typing import Any

import pytest

from ae_sdk import AEClient, M2MResponseError
from ae_sdk.session_crypto import is_token
from cse.core.messages import Operation
from tests.mqtt.broker import HOST, PORT, URL, require_broker, unique_cse_id

T = 15.0  # upper bound of every wait (not a performance target)


async def test_session_established_and_used_over_mqtt(cse_process: Any) -> None:
    require_broker()
    cse_id = unique_cse_id()
    await cse_process(cse_id=cse_id, extra=f'\n[mqtt]\nenabled = true\nhost = "{HOST}"\nport = {PORT}\n')
    async with AEClient(URL, cse_id=cse_id) as a1, AEClient(URL, cse_id=cse_id) as a2:
        await a1.register("ae1", scp=["smg"], poa=[URL])
        await a2.register("ae2", scp=["smg"], poa=[URL])
        await a2.create_container("ae2", "container1")
        await a2.enable_sessions(lambda offer: {"role": "sensor"})
        s1 = await a1.establish(f"{cse_id}/{a2.originator}", epa={"role": "collector"})
        s2 = await a2.next_session(T)
        assert s1.sid == s2.sid and s1.key == s2.key and s1.peer_epa == {"role": "sensor"}

        cin = await s1.create("container1", 4, {"con": "21.5", "rn": "r1"})
        assert is_token(cin["con"])  # encrypted end to end, signed over the content sent
        assert (await s2.retrieve("cse-in/ae2/container1/r1"))["con"] == "21.5"
        assert (await s1.update("container1", {"lbl": ["é ✓ \"q\""]}))["lbl"] == ["é ✓ \"q\""]

        req = s1.signed_request(Operation.RETRIEVE, "container1")
        forged = req.__class__(**{**{f: getattr(req, f) for f in req.__slots__}, "smac": "A" * 43})
        with pytest.raises(M2MResponseError) as info:
            await a1.send(forged)
        assert info.value.rsc == 4103 and "SMAC" in info.value.dbg
        assert (await s1.send(req)).rsc == 2000
        await s1.terminate()

"""The MQTT binding end to end (docs/bindings.md "MQTT"): a real ``python -m cse``
process connected to Mosquitto, and AEs of the SDK that speak only MQTT to it.

Proves: an AE registers, creates, retrieves, updates, discovers and deletes
over MQTT (TS-0010 request/response topics, JSON primitives); a subscription
whose ``nu`` is an ``mqtt://`` URL (or the AE-ID with an ``mqtt://`` poa)
is verified and notified over MQTT; malformed primitives are answered 4000
with an ``m2m:dbg`` on the response topic and the CSE keeps serving; an
``mqtt://`` notification target in a denied network is refused by the
outbound policy (4000) like an http one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest

from ae_sdk import AEClient, M2MResponseError
from tests.mqtt.broker import HOST, PORT, URL, require_broker, unique_cse_id

pytestmark = pytest.mark.usefixtures("broker")


@pytest.fixture
def broker() -> None:
    require_broker()


MQTT_ON = f'\n[mqtt]\nenabled = true\nhost = "{HOST}"\nport = {PORT}\n'


async def test_ae_over_mqtt_crud_discovery_and_notifications(cse_process: Any) -> None:
    cse_id = unique_cse_id()
    await cse_process(cse_id=cse_id, extra=MQTT_ON)
    async with AEClient(URL, cse_id=cse_id) as client:
        ae = await client.register("mqttapp", poa=client.transport.poa)  # type: ignore[attr-defined]
        assert ae["poa"] == [URL] and ae["aei"].startswith("C")
        cnt = await client.create_container("mqttapp", "data")
        assert cnt["rn"] == "data"
        got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await client.start_notifications()
        sub = await client.subscribe("mqttapp/data", got.put_nowait)
        assert sub["nu"] == [f"{URL}/{ae['aei']}"]
        await client.create_content_instance("mqttapp/data", "21.5")
        sgn = await asyncio.wait_for(got.get(), 10)
        assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "21.5"
        assert sgn["sur"] == f"{cse_id}/{sub['ri']}"

        # the AE-ID as nu: the CSE finds the AE's mqtt:// poa
        by_poa: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await client.subscribe("mqttapp", by_poa.put_nowait, via_poa=True, rn="viapoa", net=(1,))
        await client.update("mqttapp", {"lbl": ["x"]}, ty=2)
        sgn = await asyncio.wait_for(by_poa.get(), 10)
        assert sgn["nev"]["rep"]["m2m:ae"]["lbl"] == ["x"]

        got_cnt = await client.retrieve("mqttapp/data")
        assert got_cnt["cni"] == 1
        found = await client.discover("mqttapp", ty=4)
        assert len(found) == 1 and found[0].startswith("cse-in/mqttapp/data/")
        labelled = await client.discover("cse-in", lbl="x")
        assert labelled == ["cse-in/mqttapp"]
        await client.delete("mqttapp/data")
        with pytest.raises(M2MResponseError) as err:
            await client.retrieve("mqttapp/data")
        assert err.value.rsc == 4004
        await client.deregister()


async def _exchange(cse_id: str, origin: str, payloads: list[bytes], fmt: str = "json") -> list[dict[str, Any]]:
    own = cse_id.lstrip("/")
    async with aiomqtt.Client(HOST, PORT) as raw:
        await raw.subscribe(f"/oneM2M/resp/{origin}/{own}/+", qos=1)
        for payload in payloads:
            await raw.publish(f"/oneM2M/req/{origin}/{own}/{fmt}", payload, qos=1)
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            async for message in raw.messages:
                assert isinstance(message.payload, bytes)
                out.append(json.loads(message.payload))
                if len(out) == len(payloads):
                    return out
    raise AssertionError("unreachable")


async def test_malformed_primitives_are_answered_4000(cse_process: Any) -> None:
    cse_id = unique_cse_id()
    await cse_process(cse_id=cse_id, extra=MQTT_ON)
    bad = [b"not json", b"[1,2]", json.dumps({"op": 2, "to": "cse-in", "rvi": "3"}).encode(),
           json.dumps({"op": 9, "to": "cse-in", "rqi": "r9", "rvi": "3"}).encode(),
           json.dumps({"op": 1, "to": "cse-in", "rqi": "rc", "rvi": "3", "fr": "C"}).encode(),
           json.dumps({"op": 2, "to": "cse-in", "rqi": "rf", "rvi": "3", "fr": "CAdmin", "fc": 5}).encode()]
    answers = await _exchange(cse_id, "Cfuzz", bad)
    assert [a["rsc"] for a in answers] == [4000] * len(bad)
    assert all(a["pc"]["m2m:dbg"] for a in answers)
    assert {a["rqi"] for a in answers} >= {"r9", "rc", "rf"}
    (xml,) = await _exchange(cse_id, "Cfuzz", [b"<m2m:rqp/>"], fmt="xml")
    assert xml["rsc"] == 4015
    ok = json.dumps({"op": 2, "to": "cse-in", "rqi": "ok", "rvi": "3", "fr": "CAdmin"}).encode()
    (answer,) = await _exchange(cse_id, "CAdmin", [ok])
    assert answer["rsc"] == 2000 and answer["pc"]["m2m:cb"]["csi"] == cse_id


async def test_outbound_policy_applies_to_mqtt_targets(cse_process: Any) -> None:
    cse_id = unique_cse_id()
    await cse_process(cse_id=cse_id, extra=MQTT_ON)
    async with AEClient(URL, cse_id=cse_id) as client:
        await client.register("policyapp")
        with pytest.raises(M2MResponseError) as err:
            await client.create("policyapp", 23, {"nu": ["mqtt://169.254.169.254:1883/Cx"], "enc": {"net": [3]}})
        assert err.value.rsc == 4000
        assert "outbound policy" in str(err.value)

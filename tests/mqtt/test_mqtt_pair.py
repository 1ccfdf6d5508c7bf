"""A CSE pair over MQTT (docs/bindings.md "A CSE pair over MQTT").

CSE2's ``registrar.poa`` is the broker (``mqtt://127.0.0.1:1883``): it
registers with CSE1 over MQTT, and lists the broker first in its own
``poa`` (``mqtt.poa_first``). Two real CSE processes; a raw MQTT client
watches the request topics between the two CSE-IDs. Proves that the
registration, the forwarded requests both ways -- a plain CREATE and
RETRIEVE, the session-based ones of an M2M service session, and a
notification from CSE2 to an AE on CSE1 (its nu is the AE-ID) -- travel over MQTT
and are served correctly there (a session-based request's MAC still
verifies after crossing the broker).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from ae_sdk import AEClient, HttpTransport
from cse.config import ConfigError, load_config
from tests.conftest import Http
from tests.mqtt.broker import HOST, PORT, URL, require_broker, unique_cse_id
from tests.sdk.session_pair import T, start_registered_pair
from tests.waiting import until

MQTT_ON = f'\n[mqtt]\nenabled = true\nhost = "{HOST}"\nport = {PORT}\n'


def test_an_mqtt_registrar_needs_the_binding_and_its_broker(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    reg = '[registrar]\ncse_id = "/id-in"\nname = "cse-in"\npoa = "{poa}"\n[cse]\ncse_id = "/id-mn"\n'
    cfg.write_text(reg.format(poa="mqtt://127.0.0.1:1883") + MQTT_ON + "poa_first = true\n")
    loaded = load_config(str(cfg))
    assert loaded.registrar is not None and loaded.registrar.poa == "mqtt://127.0.0.1:1883"
    assert loaded.mqtt.poa_first is True
    for poa, extra, words in (("mqtt://127.0.0.1:1883", "", "needs [mqtt] enabled"),
                              ("mqtt://127.0.0.1:1884", MQTT_ON, "another broker"),
                              ("ftp://127.0.0.1", MQTT_ON, "http(s) or mqtt(s) URL")):
        cfg.write_text(reg.format(poa=poa) + extra)
        with pytest.raises(ConfigError) as err:
            load_config(str(cfg))
        assert words in str(err.value)


async def _watch(spy: aiomqtt.Client, seen: list[tuple[str, dict[str, Any]]]) -> None:
    async for message in spy.messages:
        if isinstance(message.payload, bytes):
            seen.append((str(message.topic), json.loads(message.payload)))


async def test_pair_registers_and_forwards_over_mqtt(cse_process: Callable[..., Any], http: Http) -> None:
    require_broker()
    csi1, csi2 = unique_cse_id(), unique_cse_id()
    own1, own2 = csi1[1:], csi2[1:]
    to1, to2 = f"/oneM2M/req/{own2}/{own1}/json", f"/oneM2M/req/{own1}/{own2}/json"
    seen: list[tuple[str, dict[str, Any]]] = []

    def sent(topic: str) -> list[dict[str, Any]]:
        return [p for t, p in seen if t == topic]

    async with aiomqtt.Client(HOST, PORT) as spy:
        await spy.subscribe(to1, qos=1)
        await spy.subscribe(to2, qos=1)
        watcher = asyncio.create_task(_watch(spy, seen))
        ae1: AEClient | None = None
        ae2: AEClient | None = None
        try:
            cse1, cse2 = await start_registered_pair(cse_process, http, ids=(csi1, csi2), extra1=MQTT_ON,
                                                     extra2=MQTT_ON + "poa_first = true\n", registrar_poa=URL)
            # the registration went over MQTT (its CREATE of CSE2's remoteCSE), and so did the
            # RETRIEVEs of each other's CSEBase the pair helper waits on (forwarded both ways)
            assert any(p["op"] == 1 and p.get("ty") == 16 for p in sent(to1))
            assert any(p["op"] == 2 and p["to"] == f"{csi1}/cse1" for p in sent(to1))
            assert any(p["op"] == 2 and p["to"] == f"{csi2}/cse2" for p in sent(to2))

            ae1 = AEClient(HttpTransport(cse1.url, timeout=T), cse_name="cse1", cse_id=csi1)
            ae2 = AEClient(HttpTransport(cse2.url, timeout=T), cse_name="cse2", cse_id=csi2)
            heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            server = await ae1.start_notifications(catch_all=heard.put_nowait)
            await ae1.register("ae1", scp=["smg"], poa=[server.url])
            await ae2.register("ae2", scp=["smg"])
            ae1_id = f"{csi1}/{ae1.originator}"
            acp = await ae2.create("ae2", 1, {"pv": {"acr": [{"acor": [ae1_id, ae2.originator], "acop": 63}]},
                                              "pvs": {"acr": [{"acor": [ae2.originator], "acop": 63}]}}, rn="open")
            await ae2.create_container("ae2", "container1")
            await ae2.create("ae2", 3, {"acpi": [acp["ri"]]}, rn="shared")

            # plain CREATE and RETRIEVE from AE1 at CSE1 on AE2's container at CSE2
            shared = f"{csi2}/cse2/ae2/shared"
            await ae1.create_content_instance(shared, "21.5")
            assert ae1.last_response is not None
            created = ae1.last_response.rqi
            assert (await ae1.retrieve(f"{shared}/la"))["con"] == "21.5"
            assert ae1.last_response is not None
            retrieved = ae1.last_response.rqi

            # a notification across: AE1 subscribes with its AE-ID as nu; CSE2 sends to CSE1, which relays
            await ae1.create(shared, 23, {"nu": [ae1_id], "enc": {"net": [3]}}, rn="watch")
            await ae2.create_content_instance("ae2/shared", "23.5")
            async with asyncio.timeout(T):
                while "nev" not in (sgn := await heard.get()):
                    pass
            assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "23.5"

            # a session: its establishment crosses, then session-based CREATE and RETRIEVE
            await ae1.enable_sessions(lambda offer: False)
            await ae2.enable_sessions()
            s1 = await ae1.establish(f"{csi2}/{ae2.originator}", epa={"role": "collector"})
            s2 = await ae2.next_session(T)
            assert s1.sid == s2.sid
            await s1.create("container1", 4, {"con": "22.5", "rn": "r1"})
            assert ae1.last_response is not None
            session_create = ae1.last_response.rqi
            assert (await s1.retrieve("container1/r1"))["con"] == "22.5"  # decrypted by AE1's SDK
            assert ae1.last_response is not None
            session_retrieve = ae1.last_response.rqi

            async def all_seen() -> bool:
                rqis = {p["rqi"]: p for p in sent(to2)}
                return all(r in rqis for r in (created, retrieved, session_create, session_retrieve))
            await until(all_seen, "the forwarded requests on CSE2's request topic", T)
            by_rqi = {p["rqi"]: p for p in sent(to2)}
            assert (by_rqi[created]["op"], by_rqi[created]["fr"]) == (1, ae1_id)
            assert by_rqi[retrieved]["op"] == 2
            assert by_rqi[session_create]["sid"] == s1.sid and by_rqi[session_create]["smac"]
            assert by_rqi[session_retrieve]["sid"] == s1.sid
            assert any(p["op"] == 5 and p["to"] == ae1_id and "nev" in p["pc"]["m2m:sgn"] for p in sent(to1))
        finally:
            watcher.cancel()
            for client in (ae1, ae2):
                if client is not None:
                    await client.close()

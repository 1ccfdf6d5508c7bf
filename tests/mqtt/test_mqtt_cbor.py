"""CBOR over MQTT (TS-0010 6.4 ``<format>`` ``cbor``; docs/bindings.md "CBOR over MQTT").

Proves: a request primitive published on ``/oneM2M/req/<originator>/<CSE-ID>/cbor``
as one CBOR map is served like its JSON twin and answered in CBOR on the
``.../cbor`` response topic; CBOR a JSON body could not carry (tags, byte
strings, trailing bytes, a non-map) is 4000 naming the problem; the CSE sends
a request whose content is CBOR (a notification to a target that prefers CBOR)
on the ``cbor`` topic and reads the CBOR answer; and end to end, an SDK AE
with ``serialization="cbor"`` works over MQTT and is notified in CBOR because
its ``csz`` asks for it. The first tests need no broker; the last one uses the
Mosquitto of the MQTT tests and an in-process CSE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import cbor2
import pytest

from ae_sdk import AEClient
from cse.app import CSE
from cse.binding.mqtt import MqttBinding, MqttSettings
from cse.config import load_config
from cse.core.errors import BadRequest
from cse.core.messages import Operation, Request, Response
from cse.core.mqtt_wire import (
    encode_request,
    encode_response,
    request_from_primitive,
    response_from_primitive,
    rqi_of,
)
from cse.core.serialization import CBOR
from cse.store.memory import MemoryStore
from tests.mqtt.broker import HOST, PORT, URL, require_broker, unique_cse_id

T = 10.0  # upper bound of every wait (not a performance target)


def cprim(**kw: object) -> bytes:
    return cbor2.dumps({"op": 2, "to": "cse-in", "fr": "Cae", "rqi": "r1", "rvi": "3", **kw})


def test_cbor_primitives_round_trip() -> None:
    req = Request(op=Operation.CREATE, to="cse-in/app", fr="Cae", rqi="r7", ty=3, pc={"m2m:cnt": {"rn": "d"}},
                  rcn=1, query={"fu": ("1",)}, sid="s1", smac="m")
    data = encode_request(req, "cbor")
    assert cbor2.loads(data)["pc"] == {"m2m:cnt": {"rn": "d"}}  # one CBOR map of short names
    back = request_from_primitive(data, "cbor")
    assert (back.op, back.to, back.fr, back.rqi, back.ty, back.pc, back.rcn, back.media) == (
        req.op, req.to, req.fr, req.rqi, req.ty, req.pc, req.rcn, CBOR)
    assert back.body == cbor2.dumps(req.pc)  # a session MAC covers the content as CBOR
    resp = Response(rsc=2001, rqi="r7", pc={"m2m:cnt": {"rn": "d"}})
    answer = encode_response(resp, to="Cae", fr="/id-in", now_ts="20300101T000000", fmt="cbor")
    assert cbor2.loads(answer)["rsc"] == 2001
    assert response_from_primitive(answer, "cbor").pc == resp.pc
    assert rqi_of(cprim(rqi="r9"), "cbor") == "r9" and rqi_of(b"\xff", "cbor") == ""


@pytest.mark.parametrize("payload, words", [
    (cbor2.dumps([1]), "CBOR map"), (cprim() + b"\x00", "after the first data item"),
    (cprim(pc=cbor2.CBORTag(1, 0)), "tag 1"), (cprim(pc={"x": b"\x01"}), "byte string"),
    (cprim()[:-2], "ends in the middle"), (cprim(op=9), "out of range"),
])
def test_malformed_cbor_primitives_are_4000(payload: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        request_from_primitive(payload, "cbor")
    assert words in err.value.message


class _Wire:
    """What the binding publishes, instead of a broker connection."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent.put_nowait((topic, payload))


async def test_binding_answers_cbor_in_cbor_and_sends_cbor_content_on_the_cbor_topic() -> None:
    async def handle(req: Request) -> Response:
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:cb": {"csi": "/id-in", "media": req.media}})

    binding = MqttBinding(handle, "/id-in", MqttSettings(host="127.0.0.1", port=1883))
    wire = _Wire()
    binding._client = wire  # type: ignore[assignment]
    async with asyncio.timeout(T):
        await binding._on_message("/oneM2M/req/Cae/id-in/cbor", cprim(rqi="c1"))
        topic, payload = await wire.sent.get()
        assert topic == "/oneM2M/resp/Cae/id-in/cbor"
        assert cbor2.loads(payload)["pc"] == {"m2m:cb": {"csi": "/id-in", "media": CBOR}}
        await binding._on_message("/oneM2M/req/Cae/id-in/cbor", b'{"op": 2}')  # JSON on the cbor topic
        topic, payload = await wire.sent.get()
        assert topic.endswith("/cbor") and cbor2.loads(payload)["rsc"] == 4000

        ntfy = Request(op=Operation.NOTIFY, to="Cae", fr="/id-in", rqi="n1", pc={"m2m:sgn": {"vrq": True}},
                       media=CBOR)
        sending = asyncio.create_task(binding.request("Cae", ntfy, timeout=T))
        topic, payload = await wire.sent.get()
        assert topic == "/oneM2M/req/id-in/Cae/cbor" and cbor2.loads(payload)["op"] == 5
        await binding._on_message("/oneM2M/resp/id-in/Cae/cbor", cbor2.dumps({"rsc": 2000, "rqi": "n1"}))
        assert (await sending).rsc == 2000


@contextlib.asynccontextmanager
async def _cse(tmp_path: Path) -> AsyncIterator[str]:
    cse_id = unique_cse_id()
    cfg = tmp_path / "cse.toml"
    cfg.write_text(f'[cse]\ncse_id = "{cse_id}"\n[mqtt]\nenabled = true\nhost = "{HOST}"\nport = {PORT}\n')
    cse = CSE(load_config(str(cfg), db=":memory:"), store=MemoryStore())
    await cse.start(serve_http=False)
    try:
        assert cse.mqtt is not None and await cse.mqtt.wait_connected(T)
        yield cse_id
    finally:
        await cse.stop()


async def test_sdk_over_mqtt_in_cbor_both_ways(tmp_path: Path) -> None:
    require_broker()
    async with _cse(tmp_path) as cse_id, aiomqtt.Client(HOST, PORT) as spy:
        own = cse_id.lstrip("/")
        await spy.subscribe(f"/oneM2M/req/+/{own}/+", qos=1)  # the AE's requests
        await spy.subscribe(f"/oneM2M/req/{own}/+/+", qos=1)  # the CSE's notifications
        async with AEClient(URL, cse_id=cse_id, serialization="cbor") as client:
            ae = await client.register("cborapp", poa=client.transport.poa,  # type: ignore[attr-defined]
                                       csz=["application/cbor"])
            await client.create_container("cborapp", "data")
            got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            await client.start_notifications()
            await client.subscribe("cborapp/data", got.put_nowait)
            await client.create_content_instance("cborapp/data", {"t": 21.5})
            sgn = await asyncio.wait_for(got.get(), T)
            assert sgn["nev"]["rep"]["m2m:cin"]["con"] == {"t": 21.5}
            assert (await client.retrieve("cborapp/data"))["cni"] == 1

        seen: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(T):
            async for message in spy.messages:
                assert isinstance(message.payload, bytes)
                topic = str(message.topic)
                assert topic.endswith("/cbor"), topic  # nothing went as JSON, either way
                seen.append((topic, cbor2.loads(message.payload)))
                if any(p.get("op") == 5 and "nev" in (p.get("pc") or {}).get("m2m:sgn", {}) for _, p in seen):
                    break
        to_cse = [p["op"] for t, p in seen if t.split("/")[4] == own]
        assert to_cse[0] == 1 and to_cse.count(1) >= 4 and 2 in to_cse  # register, CSEBase, cnt, sub, cin
        assert any(t == f"/oneM2M/req/{own}/{ae['aei']}/cbor" for t, _ in seen)

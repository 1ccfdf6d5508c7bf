"""The pure MQTT binding pieces (TS-0010 topics, JSON primitives), the
``[mqtt]`` configuration, the outbound policy for mqtt:// URLs and the
scheme dispatch of the outbound -- no broker needed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cse.binding.http_client import HttpOutbound
from cse.binding.mqtt import MqttBinding, MqttSettings
from cse.binding.outbound_mux import MqttOutbound, SchemeOutbound
from cse.config import ConfigError, load_config
from cse.core.errors import BadRequest, ReleaseVersionNotSupported, TargetNotReachable
from cse.core.messages import Operation, Request, Response
from cse.core.mqtt_wire import (
    encode_request,
    encode_response,
    parse_topic,
    request_from_primitive,
    response_from_primitive,
    topic_id,
)
from cse.csf.outbound import OutboundPolicy, is_url


def prim(**kw: object) -> bytes:
    return json.dumps({"op": 2, "to": "cse-in", "fr": "Cae", "rqi": "r1", "rvi": "3", **kw}).encode()


def test_topics() -> None:
    assert topic_id("/id-in") == "id-in"
    assert topic_id("/id-in/Cae") == "id-in:Cae"
    assert parse_topic("/oneM2M/req/Cae/id-in/json") == ("req", "Cae", "id-in", "json")
    assert parse_topic("/oneM2M/resp/id-in/Cae/json") == ("resp", "id-in", "Cae", "json")
    for other in ("/oneM2M/req/Cae/id-in", "oneM2M/req/a/b/json", "/oneM2M/x/a/b/json", "/oneM2M/req//b/json"):
        assert parse_topic(other) is None


def test_request_primitive_round_trip() -> None:
    req = Request(op=Operation.CREATE, to="cse-in/app", fr="Cae", rqi="r7", ty=3, pc={"m2m:cnt": {"rn": "d"}},
                  rcn=1, rt=2, rtu=("mqtt://127.0.0.1:1883/Cae",), atrl=("rn",), ot="20300101T000000",
                  query={"fu": ("1",), "ty": ("3", "4")})
    back = request_from_primitive(encode_request(req))
    assert (back.op, back.to, back.fr, back.rqi, back.ty, back.pc, back.rcn, back.rt, back.rtu, back.atrl,
            back.ot) == (req.op, req.to, req.fr, req.rqi, req.ty, req.pc, req.rcn, req.rt, req.rtu, req.atrl, req.ot)
    assert dict(back.query) == {"fu": ("1",), "ty": ("3", "4")}


def test_filter_criteria_become_query_parameters() -> None:
    req = request_from_primitive(prim(fc={"fu": 1, "ty": [2, 3], "lbl": "a", "atr": [{"nm": "rn", "val": "x"}]}))
    assert dict(req.query) == {"fu": ("1",), "ty": ("2", "3"), "lbl": ("a",), "rn": ("x",)}


@pytest.mark.parametrize("payload, words", [
    (b"\xff", "UTF-8"), (b"[]", "JSON object"), (prim(op=7), "out of range"), (prim(op="x"), "integer"),
    (prim(to=5), "'to' must be a string"), (prim(rqi=None), "lacks 'rqi'"), (prim(op=1), "needs 'ty'"),
    (prim(pc=[1]), "'pc' must be a JSON object"), (prim(rt=3), "'rt' must be an object"),
    (prim(atrl="rn"), "'atrl'"), (prim(fc={"atr": [1]}), "'atr'"), (prim(fc={"ty": {"a": 1}}), "ty"),
    (prim(to="x" * 2000), "longer"), (prim(rcn=99), "out of range"),
])
def test_malformed_request_primitives_are_4000(payload: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        request_from_primitive(payload)
    assert words in err.value.message


def test_release_version_is_checked() -> None:
    for payload in (json.dumps({"op": 2, "to": "cse-in", "rqi": "r"}).encode(), prim(rvi="1")):
        with pytest.raises(ReleaseVersionNotSupported):
            request_from_primitive(payload)


def test_response_primitive_round_trip() -> None:
    resp = Response(rsc=2000, rqi="r1", pc={"m2m:cnt": {"rn": "d"}}, cnst=1, cnot=5)
    data = encode_response(resp, to="Cae", fr="/id-in", now_ts="20300101T000000")
    assert json.loads(data)["to"] == "Cae" and json.loads(data)["fr"] == "/id-in"
    back = response_from_primitive(data)
    assert (back.rsc, back.rqi, back.pc, back.ot, back.cnst, back.cnot) == (
        2000, "r1", resp.pc, "20300101T000000", 1, 5)
    with pytest.raises(BadRequest):
        response_from_primitive(b'{"rqi": "r1"}')


def test_mqtt_config(tmp_path: Path) -> None:
    assert load_config(None).mqtt.enabled is False
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nenabled = true\nport = 1884\nqos = 0\nusername = "u"\npassword = "p"\n')
    mqtt = load_config(str(cfg)).mqtt
    assert (mqtt.enabled, mqtt.port, mqtt.qos, mqtt.username) == (True, 1884, 0, "u")
    for bad, words in (("qos = 3", "mqtt.qos"), ("port = 0", "mqtt.port"), ('password = "p"', "username"),
                       ("hots = 1", "unknown key 'mqtt.hots'"), ("reconnect_min_s = 0", "reconnect_min_s")):
        cfg.write_text(f"[mqtt]\n{bad}\n")
        with pytest.raises(ConfigError) as err:
            load_config(str(cfg))
        assert words in str(err.value)


async def _no_resolve(host: str, port: int) -> list[str]:
    raise OSError("no lookups in this test")


async def test_outbound_policy_checks_mqtt_urls() -> None:
    policy = OutboundPolicy(resolve=_no_resolve, allow=("127.0.0.0/8",))
    assert is_url("mqtt://127.0.0.1:1883") and is_url("mqtts://127.0.0.1") and not is_url("Cae")
    dest = await policy.check("mqtt://127.0.0.1/Cae")
    assert dest.lane == "mqtt://127.0.0.1:1883"
    assert (await policy.check("mqtts://127.0.0.1")).lane == "mqtts://127.0.0.1:8883"
    for refused in ("mqtt://169.254.169.254:1883/Cx", "mqtt://10.0.0.1:1883"):
        with pytest.raises(BadRequest) as err:
            await policy.check(refused)
        assert "outbound policy" in err.value.message
    with pytest.raises(BadRequest):
        await policy.check("ftp://127.0.0.1/x")


async def test_scheme_outbound_sends_mqtt_urls_only_through_the_configured_broker() -> None:
    out = SchemeOutbound(HttpOutbound(), MqttOutbound(None))
    req = Request(op=Operation.NOTIFY, to="Cae", fr="/id-in", rqi="n1", pc={"m2m:sgn": {"vrq": True}})
    with pytest.raises(TargetNotReachable) as err:
        await out.send("mqtt://127.0.0.1:1883", req, timeout=1.0, exact=True)
    assert "not enabled" in err.value.message
    with pytest.raises(BadRequest):
        await out.send("mqtt://127.0.0.1:notaport", req, timeout=1.0, exact=True)
    await out.close()


async def test_mqtt_outbound_refuses_other_brokers_and_needs_a_connection() -> None:
    async def handle(req: Request) -> Response:
        return Response(rsc=2000, rqi=req.rqi)

    binding = MqttBinding(handle, "/id-in", MqttSettings(host="127.0.0.1", port=1883))
    out = MqttOutbound(binding)
    req = Request(op=Operation.NOTIFY, to="mqtt://127.0.0.1:1999/Cae", fr="/id-in", rqi="n2", pc={})
    with pytest.raises(TargetNotReachable) as err:
        await out.send("mqtt://127.0.0.1:1999/Cae", req, timeout=1.0, exact=True)
    assert "broker of [mqtt] only" in err.value.message
    with pytest.raises(TargetNotReachable) as err:  # the right broker, but not connected (never started)
        await out.send("mqtt://127.0.0.1:1883/Cae", req, timeout=1.0, exact=True)
    assert "not connected" in err.value.message


async def test_answers_are_read_while_every_turn_is_taken_and_a_flood_is_refused() -> None:
    """All ``max_in_flight`` turns held by requests that wait (as a request
    forwarded over MQTT waits for its answer): the reader still takes the
    answers in, queues a backlog, and answers 5207 beyond it -- it never blocks."""
    release = asyncio.Event()
    served: list[str] = []

    async def handle(req: Request) -> Response:
        await release.wait()
        served.append(req.rqi)
        return Response(rsc=2000, rqi=req.rqi)

    binding = MqttBinding(handle, "/id-in", MqttSettings(host="127.0.0.1", port=1883, max_in_flight=2))
    waiting: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    binding._pending["out1"] = waiting  # a request the CSE sent, waiting for its answer
    topic = "/oneM2M/req/Cae/id-in/json"
    async with asyncio.timeout(5):  # the old reader blocked on the third request
        for i in range(2 * (1 + 4) + 3):
            await binding._on_message(topic, prim(rqi=f"r{i}"))
        await binding._on_message("/oneM2M/resp/id-in/id-mn/json", b'{"rsc": 2000, "rqi": "out1"}')
    assert waiting.done() and waiting.result().rsc == 2000
    assert len(binding._tasks) == 10  # 2 handled + 8 waiting; the last 3 were answered 5207 (not connected: lost)
    release.set()
    await asyncio.wait(set(binding._tasks), timeout=5)
    assert sorted(served) == sorted(f"r{i}" for i in range(10))

"""Bad input over MQTT at a live CSE: hundreds of malformed primitives, zero 5000s.

Why (bad input, docs/bindings.md "MQTT"): anybody who may publish on the
broker can put any bytes on ``/oneM2M/req/<originator>/<CSE-ID>/<format>``.
Whatever they are -- not JSON, JSON that is not an object, primitives with
missing, mistyped or out-of-range ``op``/``to``/``fr``/``rqi``/``rvi``/
``ty``/``rt``/``fc``/``atrl``, content of the wrong shape for any resource
type, payloads over ``mqtt.max_payload``, the same primitives as CBOR on the
``cbor`` topic, JSON bytes there, formats other than json and cbor -- each
gets exactly one response primitive on the matching response topic, with a
known RSC (never 5000), an ``m2m:dbg`` for every error, and the CSE keeps
serving and logs no traceback. Each example publishes under an originator
of its own, so its answer is told apart by topic.

One CSE process and one broker connection serve the whole module. CI:
derandomized, 300 examples; ``--long``: random, 3,000.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import cbor2
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.mqtt.broker import HOST, PORT, require_broker, unique_cse_id
from tests.robustness.rawhttp import ALLOWED_5XXX, VALID_RSC_HTTP, SyncCSE
from tests.robustness.test_fuzz_http import SPECIAL_STRINGS, TYPES, json_values, resource_bodies, text

MAX_PAYLOAD = 65536


class Broker:
    """A paho client that publishes examples and collects answers by originator."""

    def __init__(self, own: str) -> None:
        self.own = own
        self.answers: dict[str, queue.Queue[bytes]] = {}
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(f"/oneM2M/resp/+/{own}/+", qos=0)
        assert subscribed.wait(10), "no SUBACK from the broker"

    def _box(self, originator: str) -> queue.Queue[bytes]:
        with self.lock:
            return self.answers.setdefault(originator, queue.Queue())

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        originator = message.topic.split("/")[3]
        self._box(originator).put(message.payload)

    def exchange(self, originator: str, payload: bytes, fmt: str = "json") -> dict[str, Any]:
        box = self._box(originator)
        self.client.publish(f"/oneM2M/req/{originator}/{self.own}/{fmt}", payload, qos=0).wait_for_publish(10)
        try:
            answer = box.get(timeout=10)
        except queue.Empty:
            raise AssertionError(f"no answer to {payload[:200]!r}") from None
        with self.lock:
            del self.answers[originator]
        parsed = cbor2.loads(answer) if fmt == "cbor" else json.loads(answer)  # answered in the request's format
        assert isinstance(parsed, dict), answer[:200]
        return parsed

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncCSE, Broker]]:
    require_broker()
    cse_id = unique_cse_id()
    cse = SyncCSE(tmp_path_factory.mktemp("fuzz-mqtt"), cse_id=cse_id,
                  extra=f'\n[mqtt]\nenabled = true\nqos = 0\nmax_payload = {MAX_PAYLOAD}\n')
    cse.start()
    broker = Broker(cse_id.lstrip("/"))
    try:
        setup = broker.exchange("Cfuzz", json.dumps({
            "op": 1, "to": "cse-in", "fr": "Cfuzz", "rqi": "setup", "rvi": "3", "ty": 2,
            "pc": {"m2m:ae": {"rn": "fz", "api": "Nfz", "rr": False, "srv": ["3"]}}}).encode())
        assert setup["rsc"] == 2001, setup
        yield cse, broker
        assert cse.alive, "the CSE exited during the fuzz:\n" + "".join(cse.lines[-40:])
        final = broker.exchange("CAdmin", json.dumps({"op": 2, "to": "cse-in", "fr": "CAdmin", "rqi": "final",
                                                      "rvi": "3"}).encode())
        assert final["rsc"] == 2000
    finally:
        broker.close()
        code = cse.stop()
    assert code == 0, "".join(cse.lines[-40:])
    assert not cse.tracebacks(), "internal errors logged:\n" + "".join(cse.lines[-80:])


TARGETS = st.sampled_from(["cse-in", "cse-in/fz", "cse-in/fz/x", "/id-other/cse-x", "//sp/id-in/cse-in", "", "-",
                           "cse-in/fz/la"]) | SPECIAL_STRINGS


@st.composite
def primitives(draw: Any) -> bytes:
    """A request primitive, right or wrong in any field, or not one at all."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return bytes(draw(st.binary(max_size=200)))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind == 2:  # over the payload limit
        return b'{"op":2,"to":"cse-in","rqi":"big","rvi":"3","pc":{"x":"' + b"x" * MAX_PAYLOAD + b'"}}'
    ty, body = draw(resource_bodies())
    try:
        pc: Any = json.loads(body)
    except (ValueError, RecursionError):  # kept as text: the primitive carries it as a string
        pc = body.decode(errors="replace")
    fields = {
        "op": st.integers(0, 6) | json_values, "to": TARGETS, "fr": st.sampled_from(["CAdmin", "Cfuzz", "C"]) | text,
        "rqi": text | json_values, "rvi": st.sampled_from(["3", "2a", "4", "5", "1", ""]) | json_values,
        "ty": st.just(ty) | st.sampled_from(sorted(TYPES)) | json_values, "pc": st.just(pc) | json_values,
        "rcn": st.integers(-1, 14) | json_values, "rt": st.fixed_dictionaries({"rtv": st.integers(0, 6)}) | json_values,
        "fc": st.dictionaries(st.sampled_from(["fu", "ty", "lbl", "lim", "cra", "atr"]) | text, json_values,
                              max_size=3) | json_values,
        "atrl": st.lists(text, max_size=3) | json_values, "drt": json_values, "ot": json_values, "rqet": json_values,
    }
    required = ("op", "to", "fr", "rqi", "rvi")
    prim: dict[str, Any] = {}
    for name, strategy in fields.items():
        if name in required and draw(st.integers(0, 9)) > 0:
            prim[name] = draw(strategy)
        elif name not in required and draw(st.booleans()):
            prim[name] = draw(strategy)
    return json.dumps(prim).encode()


_originators = (f"Cf{i}" for i in itertools.count())


def _check(answer: dict[str, Any]) -> int:
    rsc = answer.get("rsc")
    assert isinstance(rsc, int), answer
    assert rsc in VALID_RSC_HTTP, answer
    assert rsc < 5000 or rsc in ALLOWED_5XXX, answer
    if rsc >= 4000:
        pc = answer.get("pc")
        assert isinstance(pc, dict) and isinstance(pc.get("m2m:dbg"), str) and pc["m2m:dbg"], answer
    return rsc


def test_malformed_primitives_get_onem2m_errors(live: tuple[SyncCSE, Broker], long_run: bool) -> None:
    cse, broker = live

    @settings(max_examples=3000 if long_run else 300, deadline=None, derandomize=not long_run, database=None,
              suppress_health_check=list(HealthCheck))
    @given(primitives(), st.sampled_from(["json"] * 7 + ["cbor"] * 2 + ["xml"]), st.booleans())
    def run(payload: bytes, fmt: str, as_cbor: bool) -> None:
        if fmt == "cbor" and as_cbor:  # the same primitive as a CBOR map (else the bytes as they are)
            try:
                payload = cbor2.dumps(json.loads(payload))
            except (ValueError, RecursionError):
                pass  # not JSON at all: sent as it is
        rsc = _check(broker.exchange(next(_originators), payload, fmt))
        if fmt == "xml":
            assert rsc == 4015
        assert not cse.tracebacks(), "".join(cse.lines[-30:])

    run()

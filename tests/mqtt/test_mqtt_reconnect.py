"""The MQTT binding survives its broker going away (docs/bindings.md "MQTT", "Reconnecting").

A Mosquitto of the test's own, on a free loopback port, is stopped under a
running CSE and started again on the same port: the CSE notices
(``connected`` goes false, a request it sends meanwhile fails 5103 at once
instead of hanging), connects again by itself with its backoff, subscribes
again, and answers requests over MQTT as before.

No request is lost silently while the broker is down (docs/bindings.md
"Reconnecting"): a request the CSE sent and an SDK request to the CSE, both
waiting for answers when the broker goes away, fail at once (5103, and the
SDK's TransportError) instead of waiting out their 30 s timeouts; an SDK
request made while the broker is down fails at once too; the same SDK
transport connects again by itself on its next request once the broker is
back; and a request no one answers ends in the originator's timeout error.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from ae_sdk import MqttTransport
from ae_sdk.errors import TransportError
from cse.app import CSE
from cse.config import load_config
from cse.core.errors import TargetNotReachable
from cse.core.messages import Operation, Request
from cse.store.memory import MemoryStore
from tests.mqtt.broker import unique_cse_id
from tests.waiting import until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process on ``port``, started and stopped by the test."""

    def __init__(self, directory: Path, port: int) -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            why = "the mosquitto binary is not installed (.ci/run installs it in CI)"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)
        self.binary = binary
        self.port = port
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path, _free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def _retrieve_cb(port: int, cse_id: str) -> int:
    own = cse_id.lstrip("/")
    async with aiomqtt.Client("127.0.0.1", port) as raw:
        await raw.subscribe(f"/oneM2M/resp/CAdmin/{own}/json", qos=1)
        prim = {"op": 2, "to": "cse-in", "fr": "CAdmin", "rqi": "r1", "rvi": "3"}
        await raw.publish(f"/oneM2M/req/CAdmin/{own}/json", json.dumps(prim), qos=1)
        async with asyncio.timeout(5):
            async for message in raw.messages:
                assert isinstance(message.payload, bytes)
                return int(json.loads(message.payload)["rsc"])
    raise AssertionError("unreachable")


async def test_cse_reconnects_after_the_broker_restarts(broker: Broker, tmp_path: Path) -> None:
    cse_id = unique_cse_id()
    cfg = tmp_path / "cse.toml"
    cfg.write_text(f'[cse]\ncse_id = "{cse_id}"\nadmin = "CAdmin"\n[mqtt]\nenabled = true\nport = {broker.port}\n'
                   "reconnect_min_s = 0.1\nreconnect_max_s = 0.4\ntimeout_s = 2\n")
    cse = CSE(load_config(str(cfg), db=":memory:"), store=MemoryStore())
    await cse.start(serve_http=False)
    mqtt = cse.mqtt
    assert mqtt is not None
    url = f"mqtt://127.0.0.1:{broker.port}"
    nobody = MqttTransport(url, cse_id="/id-nobody", timeout=30.0)  # the SDK, to a CSE that is not there
    sdk = MqttTransport(url, cse_id=cse_id, timeout=30.0)  # the SDK, to this CSE
    try:
        assert await mqtt.wait_connected(10)
        assert await _retrieve_cb(broker.port, cse_id) == 2000

        async def gone() -> bool:
            return not mqtt.connected

        async def back() -> bool:
            return mqtt.connected and mqtt.connects >= 2

        # in flight when the broker goes: a request of the CSE to an AE that never answers, and an
        # SDK request to a CSE that is not there; each would wait 30 s for its answer
        silent = Request(op=Operation.NOTIFY, to="Csilent", fr=cse_id, rqi="n0", pc={"m2m:sgn": {"vrq": True}})
        sent = asyncio.create_task(cse.outbound.send(url, silent, timeout=30.0, exact=True))
        asked = asyncio.create_task(nobody.send(Request(op=Operation.RETRIEVE, to="cse-x", fr="Cq", rqi="q0")))

        async def published() -> bool:
            return "n0" in mqtt._pending and "q0" in nobody._pending
        await until(published, "both requests published")

        broker.stop()
        await until(gone, "the CSE to notice the broker is gone")
        async with asyncio.timeout(5):  # failed when the connection went, not at their 30 s timeouts
            with pytest.raises(TargetNotReachable):
                await sent
            with pytest.raises(TransportError):
                await asked
        req = Request(op=Operation.NOTIFY, to="Cgone", fr=cse_id, rqi="n1", pc={"m2m:sgn": {"vrq": True}})
        with pytest.raises(TargetNotReachable):
            await cse.outbound.send(url, req, timeout=5.0, exact=True)
        cb = Request(op=Operation.RETRIEVE, to="cse-in", fr="CAdmin", rqi="q1")
        async with asyncio.timeout(5):
            with pytest.raises(TransportError):  # no broker to publish to: an error now, not a wait
                await sdk.send(cb)

        broker.start()
        await until(back, "the CSE to reconnect")
        assert await until(lambda: _retrieve_cb(broker.port, cse_id), "an answer over MQTT again") == 2000
        assert (await sdk.send(cb)).rsc == 2000  # the same transport connects again by itself
        # a request nobody answers (its receiver is not subscribed, so the broker drops it): the
        # originator's own timeout ends the wait with an error
        brief = MqttTransport(url, cse_id="/id-nobody", timeout=0.3)
        try:
            with pytest.raises(TransportError) as err:
                await brief.send(Request(op=Operation.RETRIEVE, to="cse-x", fr="Cq", rqi="q2"))
            assert "no answer" in str(err.value)
        finally:
            await brief.close()
    finally:
        await nobody.close()
        await sdk.close()
        await cse.stop()

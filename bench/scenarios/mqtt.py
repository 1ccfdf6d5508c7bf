"""RETRIEVE and CREATE over MQTT as ratios to HTTP, in the same run (docs/bindings.md "Throughput").

One CSE process (durable store; bench/scenarios/bindings.py starts it, the
``ws`` group uses it too) with the MQTT binding on the broker at
127.0.0.1:1883 (QoS 1, the default). One SDK client per binding
(:class:`ae_sdk.HttpTransport`, :class:`ae_sdk.MqttTransport`) drives the
same request with the same asyncio workers for the same time, so the ratio
compares the bindings, not two load generators (wrk speaks no MQTT):

* ``mqtt_http_retrieve`` / ``mqtt_retrieve``: RETRIEVE of a container;
* ``mqtt_http_create`` / ``mqtt_create``: CREATE of a contentInstance.

The targets (bench/report.py) are the MQTT figures over the HTTP ones.
Without a broker there the group does not run and the run says so in a note (bindings.py).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from ae_sdk import AEClient, HttpTransport, MqttTransport

from ..asyncload import run_workers
from ..common import LoadResult
from ..measure import Bench
from ..procs import Proc

NAMES = ("mqtt_http_retrieve", "mqtt_retrieve", "mqtt_http_create", "mqtt_create")
HOST, PORT = "127.0.0.1", 1883


def broker_up() -> bool:
    """Whether something accepts connections where the broker should be."""
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0):
            return True
    except OSError:
        return False


def _calls(client: AEClient, ae: str) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def retrieve() -> bool:
        await client.retrieve(f"{ae}/data")
        return True

    async def create() -> bool:
        await client.create_content_instance(f"{ae}/data", "21.5")
        return True
    return {"retrieve": retrieve, "create": create}


def _timed(call: Callable[[], Awaitable[bool]], workers: int, secs: float) -> Callable[[], Awaitable[LoadResult]]:
    return lambda: run_workers(call, workers, duration=secs)


async def measure(bench: Bench, want: set[str], p: Proc, csi: str) -> None:
    """The group's scenarios against ``p``, a CSE ``csi`` with ``[mqtt]`` on the broker (bindings.py starts it)."""
    o = bench.opts
    secs = 0.3 if o.quick else o.duration
    async with AEClient(HttpTransport(p.url, timeout=30), cse_id=csi) as http, \
            AEClient(MqttTransport(f"mqtt://{HOST}:{PORT}", cse_id=csi, timeout=30), cse_id=csi) as mqtt:
        calls: dict[str, dict[str, Callable[[], Awaitable[bool]]]] = {}
        for label, client in (("http", http), ("mqtt", mqtt)):
            await client.register(f"bench{label}")
            await client.create_container(f"bench{label}", "data")
            calls[label] = _calls(client, f"bench{label}")
        for op in ("retrieve", "create"):
            for label in ("http", "mqtt"):
                name = f"mqtt_http_{op}" if label == "http" else f"mqtt_{op}"
                if name not in want:
                    continue
                call = calls[label][op]
                if not o.quick:  # the smoke run measures without warm-up (its minute holds every group)
                    await run_workers(call, o.workers, duration=o.warmup)
                await bench.measure(name, {"cse": p}, _timed(call, o.workers, secs),
                                    binding=label, broker=f"{HOST}:{PORT}", qos=1)

"""RETRIEVE and CREATE over MQTT against HTTP, in one run on one CSE (docs/bindings.md "Throughput").

Starts ``python -m cse`` (durable store in a temp dir) with the MQTT binding
on the broker at 127.0.0.1:1883, registers one AE per binding through the
SDK (:class:`ae_sdk.HttpTransport`, :class:`ae_sdk.MqttTransport`), and runs
the same request with ``--workers`` concurrent loops for ``--count``
requests per binding and operation: RETRIEVE of a container, CREATE of a
contentInstance. Prints requests/s, p50 and p99 per row. ``--qos`` sets
the QoS of the CSE and the SDK (Mosquitto's default of not setting
TCP_NODELAY makes QoS 1 acknowledgements wait for delayed ACKs: see the doc).

    python -m bench.mqtt_vs_http --count 1000 --workers 8 --qos 1 [--broker-port 1883]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from ae_sdk import AEClient, HttpTransport, MqttTransport

from .asyncload import run_workers
from .procs import ProcSet, cse_toml


async def _bench(client: AEClient, name: str, count: int, workers: int) -> list[str]:
    await client.register(f"bench{name}")
    await client.create_container(f"bench{name}", "data")
    rows = []

    async def retrieve() -> bool:
        await client.retrieve(f"bench{name}/data")
        return True

    async def create() -> bool:
        await client.create_content_instance(f"bench{name}/data", "21.5")
        return True

    for op, call in (("RETRIEVE", retrieve), ("CREATE", create)):
        await run_workers(call, workers, total=min(50, count))  # warm-up
        r = await run_workers(call, workers, total=count)
        rows.append(f"{name:5} {op:8} {r.requests / r.duration_s:8.0f}/s  p50 {r.p50_ms:6.1f} ms  "
                    f"p99 {r.p99_ms:6.1f} ms  errors {r.errors}")
    return rows


async def main(count: int, workers: int, qos: int, port: int) -> None:
    procs = ProcSet()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cse.toml"
        cfg.write_text(cse_toml("/id-bench", "cse-in", Path(tmp) / "cse.db",
                                extra=f"\n[mqtt]\nenabled = true\nqos = {qos}\nport = {port}\n"))
        try:
            cse = await procs.cse("cse", cfg)
            rows: list[str] = []
            async with AEClient(HttpTransport(cse.url), cse_id="/id-bench") as http:
                rows += await _bench(http, "http", count, workers)
            mqtt_transport = MqttTransport(f"mqtt://127.0.0.1:{port}", cse_id="/id-bench", qos=qos)
            async with AEClient(mqtt_transport, cse_id="/id-bench") as mqtt:
                rows += await _bench(mqtt, "mqtt", count, workers)
        finally:
            await procs.stop_all()
    print(f"{count} requests per row, {workers} concurrent, MQTT QoS {qos} via 127.0.0.1:{port}, durable store")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--broker-port", type=int, default=1883, help="the broker on 127.0.0.1 (default 1883)")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.workers, args.qos, args.broker_port))

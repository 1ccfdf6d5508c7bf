"""The binding groups ``mqtt`` and ``ws`` on one CSE process (docs/bindings.md "Throughput").

One CSE (durable store) serves HTTP, WebSockets on its HTTP port (on by
default) and, when the ``mqtt`` group runs and a broker answers on
127.0.0.1:1883, MQTT. Each group then measures its binding against the SDK
over HTTP on that same CSE, right before (bench/scenarios/mqtt.py, ws.py),
so every figure is a ratio within one run. Sharing the process spares a
CSE start-up (seconds in the quick smoke run, tests/bench/test_bench_smoke.py).
Without a broker the ``mqtt`` group does not run and the run says so in a
note; ``ws`` needs nothing but the CSE.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

from ..measure import Bench
from ..procs import cse_toml
from . import mqtt, ws

NAMES = mqtt.NAMES + ws.NAMES


async def run(bench: Bench, want: set[str]) -> None:
    with_mqtt = bool(want & set(mqtt.NAMES))
    if with_mqtt and not mqtt.broker_up():
        bench.notes.append(f"no MQTT broker on {mqtt.HOST}:{mqtt.PORT}: the mqtt scenarios did not run "
                           "(start Mosquitto)")
        with_mqtt = False
    with_ws = bool(want & set(ws.NAMES))
    if not (with_mqtt or with_ws):
        return
    # a CSE-ID of this run: another run on the same broker (parallel work on one machine) has other topics
    csi = "/id-bench" + secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-bindings-"))
    try:
        extra = f'\n[mqtt]\nenabled = true\nhost = "{mqtt.HOST}"\nport = {mqtt.PORT}\n' if with_mqtt else ""
        cfg = tmp / "cse.toml"
        cfg.write_text(cse_toml(csi, "cse-in", tmp / "cse.db", extra=extra))
        p = await bench.procs.cse("cse-bindings", cfg)
        if with_mqtt:
            await mqtt.measure(bench, want, p, csi)
        if with_ws:
            await ws.measure(bench, want, p, csi)
    finally:
        await bench.procs.stop_all_named(("cse-bindings",))
        shutil.rmtree(tmp, ignore_errors=True)

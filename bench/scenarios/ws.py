"""WebSocket against HTTP, both through the SDK, on one CSE in one run (docs/bindings.md "WebSocket").

``ws_retrieve`` / ``ws_create``: RETRIEVE of a container and CREATE of a
contentInstance by an AE on a WebSocket (:class:`ae_sdk.WsTransport`), each
recorded with ``ratio_to_http``: its requests/s over those of the same
operation by an AE of the same SDK over HTTP (:class:`ae_sdk.HttpTransport`,
``sdk_http_retrieve`` / ``sdk_http_create``), measured right before on the
same CSE. Both sides use one client connection pool of the SDK and
``workers`` concurrent loops, so the ratio compares the bindings, not the
load tools (wrk's HTTP figures elsewhere are not comparable to these).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from ae_sdk import AEClient, HttpTransport, WsTransport

from ..asyncload import run_workers
from ..measure import Bench
from ..procs import cse_toml

NAMES = ("sdk_http_retrieve", "ws_retrieve", "sdk_http_create", "ws_create")


def _calls(client: AEClient, rn: str) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def retrieve() -> bool:
        await client.retrieve(f"{rn}/data")
        return True

    async def create() -> bool:
        await client.create_content_instance(f"{rn}/data", "21.5")
        return True
    return {"retrieve": retrieve, "create": create}


async def run(bench: Bench, want: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-ws-"))
    o = bench.opts
    try:
        cfg = tmp / "cse.toml"
        cfg.write_text(cse_toml("/id-in", "cse-in", tmp / "cse.db"))
        p = await bench.procs.cse("cse-ws", cfg)
        procs = {"cse": p}
        http = AEClient(HttpTransport(p.url, timeout=30.0))
        ws = AEClient(WsTransport(p.url.replace("http://", "ws://"), timeout=30.0))
        try:
            clients = {"sdk_http": (http, "benchhttp"), "ws": (ws, "benchws")}
            for client, rn in clients.values():
                await client.register(rn)
                await client.create_container(rn, "data")
            for op in ("retrieve", "create"):
                if f"ws_{op}" not in want:
                    continue
                rates: dict[str, float] = {}
                for side, (client, rn) in clients.items():
                    call = _calls(client, rn)[op]
                    await run_workers(call, o.workers, duration=o.warmup)
                    duration = o.duration if op == "retrieve" else o.create_duration
                    rec = await bench.measure(f"{side}_{op}", procs,
                                              lambda call=call, d=duration: run_workers(call, o.workers, duration=d))
                    rates[side] = rec["req_per_s"]
                ratio = rates["ws"] / rates["sdk_http"] if rates["sdk_http"] else 0.0
                bench.results[f"ws_{op}"]["ratio_to_http"] = round(ratio, 3)
                print(f"  ws_{op} / sdk_http_{op} = {ratio:.2f}", flush=True)
        finally:
            await http.close()
            await ws.close()
    finally:
        await bench.procs.stop_all_named(("cse-ws",))
        shutil.rmtree(tmp, ignore_errors=True)

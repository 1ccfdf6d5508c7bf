"""WebSocket against HTTP, both through the SDK, on one CSE in one run (docs/bindings.md "WebSocket").

``ws_retrieve`` / ``ws_create``: RETRIEVE of a container and CREATE of a
contentInstance by an AE on a WebSocket (:class:`ae_sdk.WsTransport`), each
recorded with ``ratio_to_http``: its requests/s over those of the same
operation by an AE of the same SDK over HTTP (:class:`ae_sdk.HttpTransport`,
``sdk_http_retrieve`` / ``sdk_http_create``), measured right before on the
same CSE (bench/scenarios/bindings.py starts it; the ``mqtt`` group uses it
too). Both sides use one client connection pool of the SDK and ``workers``
concurrent loops, so the ratio compares the bindings, not the load tools
(wrk's HTTP figures elsewhere are not comparable to these). The targets
(bench/report.py) are these ratios.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ae_sdk import AEClient, HttpTransport, WsTransport

from ..asyncload import run_workers
from ..measure import Bench
from ..procs import Proc

NAMES = ("sdk_http_retrieve", "ws_retrieve", "sdk_http_create", "ws_create")


def _calls(client: AEClient, rn: str) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def retrieve() -> bool:
        await client.retrieve(f"{rn}/data")
        return True

    async def create() -> bool:
        await client.create_content_instance(f"{rn}/data", "21.5")
        return True
    return {"retrieve": retrieve, "create": create}


async def measure(bench: Bench, want: set[str], p: Proc, csi: str) -> None:
    """The group's scenarios against ``p``, the CSE ``csi`` (bindings.py starts it)."""
    o = bench.opts
    http = AEClient(HttpTransport(p.url, timeout=30.0), cse_id=csi)
    ws = AEClient(WsTransport(p.url.replace("http://", "ws://"), timeout=30.0), cse_id=csi)
    try:
        clients = {"sdk_http": (http, "benchsdkhttp"), "ws": (ws, "benchws")}  # not the mqtt group's names
        for client, rn in clients.values():
            await client.register(rn)
            await client.create_container(rn, "data")
        for op in ("retrieve", "create"):
            if f"ws_{op}" not in want:
                continue
            rates: dict[str, float] = {}
            for side, (client, rn) in clients.items():
                call = _calls(client, rn)[op]
                # quick (the smoke run): windows as short as the mqtt group's and no warm-up, the figures
                # only have to exist (the smoke test's minute)
                duration = 0.3 if o.quick else (o.duration if op == "retrieve" else o.create_duration)
                if not o.quick:
                    await run_workers(call, o.workers, duration=o.warmup)
                rec = await bench.measure(f"{side}_{op}", {"cse": p},
                                          lambda call=call, d=duration: run_workers(call, o.workers, duration=d),
                                          binding="http" if side == "sdk_http" else "ws")
                rates[side] = rec["req_per_s"]
            ratio = rates["ws"] / rates["sdk_http"] if rates["sdk_http"] else 0.0
            bench.results[f"ws_{op}"]["ratio_to_http"] = round(ratio, 3)
            print(f"  ws_{op} / sdk_http_{op} = {ratio:.2f}", flush=True)
    finally:
        await http.close()
        await ws.close()

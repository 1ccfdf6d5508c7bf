"""Scenarios across a pair (CSE1 ``/id-cse1`` registrar, CSE2 ``/id-cse2``),
AE1 at CSE1 acting on AE2's ``container1`` at CSE2, with the SDK
(asyncio, ``opts.workers`` concurrent loops, each request built fresh):

* ``plain_update``: UPDATE of ``container1`` without a session, forwarded
  CSE1 -> CSE2 (an ACP on the container grants AE1 UPDATE);
* ``session_update``: the same UPDATE through a session with an immediate
  policy (``spt`` 1): fresh request ID, ``X-M2M-OT`` and ``X-M2M-SMAC`` per
  request, verified at CSE1 and at CSE2;
* ``client_ceiling_session_update``: the very same client work (signing,
  encoding, one SDK transport) against the bare aiohttp server: what the
  client alone can do;
* ``sf_store`` / ``sf_flush``: a second session with a store-and-forward
  policy whose window is closed; ``sf_requests`` session-based CREATE
  contentInstance (each answered 1001) are stored at CSE1, then the window
  is opened (policy update) and the time until CSE2's container holds all of
  them is measured (``cni`` polled): req/s of delivery, ``lost`` = sent -
  delivered.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ae_sdk import AEClient
from ae_sdk.transport import HttpTransport
from cse.core.messages import Operation

from ..asyncload import client_session, run_workers
from ..common import LoadResult
from ..m2m import M2M
from ..measure import Bench
from ..procs import Proc, cpu_seconds, cse_toml
from .ceiling import ensure_ceiling

NAMES = ("plain_update", "session_update", "client_ceiling_session_update", "sf_store", "sf_flush")
NEVER = ["* * * * * * 2099"]
ALWAYS = ["* * * * * * *"]
UPDATE = {"m2m:cnt": {"lbl": ["bench:updated"]}}


async def start_pair(bench: Bench, tmp: Path) -> tuple[Proc, Proc]:
    """CSE1, then CSE2 registered with it; waits until each reaches the other."""
    c1, c2 = tmp / "cse1.toml", tmp / "cse2.toml"
    c1.write_text(cse_toml("/id-cse1", "cse1", tmp / "cse1.db"))
    p1 = await bench.procs.cse("cse1", c1)
    c2.write_text(cse_toml("/id-cse2", "cse2", tmp / "cse2.db", cse_type="MN",
                           registrar=("/id-cse1", "cse1", p1.url)))
    p2 = await bench.procs.cse("cse2", c2)
    async with client_session(2) as s:
        for url, path in ((p2.url, "/~/id-cse1/cse1"), (p1.url, "/~/id-cse2/cse2")):
            m = M2M(s, url, "")
            deadline = time.monotonic() + 30
            while (await m.call("GET", path, "CAdmin"))[0] != 2000:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the pair did not register ({url}{path})")
                await asyncio.sleep(0.1)
    return p1, p2


async def run(bench: Bench, want: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-pair-"))
    ae1 = ae2 = None
    try:
        p1, p2 = await start_pair(bench, tmp)
        ae1 = AEClient(p1.url, cse_name="cse1", cse_id="/id-cse1")
        ae2 = AEClient(p2.url, cse_name="cse2", cse_id="/id-cse2")
        await ae1.register("bench1", scp=["smg"])
        await ae2.register("bench2", scp=["smg"])
        remote_ae1 = f"/id-cse1/{ae1.originator}"
        acp = await ae2.create("bench2", 1, {"pv": {"acr": [{"acor": [ae2.originator, remote_ae1], "acop": 63}]},
                                             "pvs": {"acr": [{"acor": [ae2.originator], "acop": 63}]}}, rn="acp")
        await ae2.create_container("bench2", "container1", acpi=[acp["ri"]])
        await ae2.create_container("bench2", "sfbox")
        await ae1.enable_sessions(lambda offer: False)
        await ae2.enable_sessions(lambda offer: True)
        procs = {"cse1": p1, "cse2": p2}
        if want & {"plain_update", "session_update", "client_ceiling_session_update"}:
            await _updates(bench, ae1, ae2, procs, want)
        if want & {"sf_store", "sf_flush"}:
            await _store_and_forward(bench, ae1, ae2, procs)
    finally:
        for c in (ae1, ae2):
            if c is not None:
                await c.close()
        await bench.procs.stop_all_named(("cse1", "cse2"))
        shutil.rmtree(tmp, ignore_errors=True)


async def _updates(bench: Bench, ae1: AEClient, ae2: AEClient, procs: dict[str, Proc], want: set[str]) -> None:
    o = bench.opts
    s1 = await ae1.establish(f"/id-cse2/{ae2.originator}")
    await ae2.next_session(15)
    s1.peer_ae_path = "/id-cse2/cse2/bench2"       # the plain UPDATE's target, structured, for both
    await s1.add_policy(1, rn="now")               # immediate
    to = "/id-cse2/cse2/bench2/container1"

    async def plain() -> bool:
        resp = await ae1.transport.send(ae1.build(Operation.UPDATE, to, pc=UPDATE))
        return resp.rsc == 2004

    async def session() -> bool:
        resp = await ae1.transport.send(s1.signed_request(Operation.UPDATE, "container1", pc=UPDATE))
        return resp.rsc == 2004

    def measured(call: Any) -> Any:
        async def go() -> LoadResult:
            await run_workers(call, o.workers, duration=o.warmup)
            return await run_workers(call, o.workers, duration=o.duration, tool="asyncio+sdk")
        return go

    if "plain_update" in want:
        await bench.measure("plain_update", procs, measured(plain), workers=o.workers)
    if "session_update" in want:
        await bench.measure("session_update", procs, measured(session), workers=o.workers)
    if "client_ceiling_session_update" in want:
        url = await ensure_ceiling(bench)
        server = next(p for p in bench.procs.procs if p.name == "ceiling")
        transport = HttpTransport(url)

        async def ceiling() -> bool:
            resp = await transport.send(s1.signed_request(Operation.UPDATE, "container1", pc=UPDATE))
            return resp.rsc == 2000
        try:
            await bench.measure("client_ceiling_session_update", {"server": server}, measured(ceiling),
                                workers=o.workers)
        finally:
            await transport.close()


async def _store_and_forward(bench: Bench, ae1: AEClient, ae2: AEClient, procs: dict[str, Proc]) -> None:
    o = bench.opts
    n = o.sf_requests
    s = await ae1.establish(f"/id-cse2/{ae2.originator}")
    await ae2.next_session(15)
    s.peer_ae_path = "/id-cse2/cse2/bench2"
    await s.add_policy(2, sch=NEVER, rn="sf", hop="/id-cse1")
    cin = {"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}}

    async def store() -> bool:
        resp = await ae1.transport.send(s.signed_request(Operation.CREATE, "sfbox", ty=4, pc=cin))
        return resp.rsc == 1001

    rec = await bench.measure("sf_store", procs, lambda: run_workers(store, o.workers, total=n,
                                                                      tool="asyncio+sdk"))
    stored_ok = rec["requests"] - rec["errors"]
    async with client_session(2) as http:
        m = M2M(http, procs["cse2"].url, "cse2")
        box = ["cse2/bench2/sfbox"]
        origin = str(ae2.originator)
        cpu0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
        t0 = time.perf_counter()
        await s.update_policy("sf", sch=ALWAYS)
        opened = time.perf_counter() - t0
        delivered, last_change, last = 0, time.perf_counter(), -1
        while delivered < stored_ok and time.perf_counter() - last_change < 30:
            await asyncio.sleep(0.02)
            delivered = await m.cni(box, origin)
            if delivered != last:
                last, last_change = delivered, time.perf_counter()
        elapsed = last_change - t0
        await asyncio.sleep(0.5)                      # anything late or duplicated?
        final = await m.cni(box, origin)
        cpu = {k: round(cpu_seconds(p.pid) - cpu0[k], 2) for k, p in procs.items()}
    rate = final / elapsed if elapsed > 0 else 0.0
    lost = n - final
    bench.results["sf_flush"] = {
        "req_per_s": round(rate, 1), "requests": final, "errors": abs(lost),
        "stored": stored_ok, "sent": n, "delivered": final, "lost": lost, "duration_s": round(elapsed, 3),
        "policy_update_s": round(opened, 3), "p50_ms": 0.0, "p99_ms": 0.0,
        "cpu": {k: {"cpu_s": v, "pct_core": round(100 * v / elapsed, 1) if elapsed else 0.0,
                    "ms_per_req": round(1000 * v / final, 4) if final else 0.0} for k, v in cpu.items()},
    }
    print(f"  {'sf_flush':<30} {rate:>9.1f} req/s  delivered {final}/{n} in {elapsed:.2f} s", flush=True)

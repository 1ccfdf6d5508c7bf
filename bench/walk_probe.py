"""What long tree walks cost the other clients of a CSE (docs/security.md "Limits").

Not a test and not part of ``bench.run``: a probe that starts one CSE (memory
store, loopback, free port), fills it with ``--resources`` resources (one AE,
containers of contentInstances), and measures

* an unrelated RETRIEVE alone, then while ``--clients`` clients run
  unrestricted discovery (``fu=1``) of the whole AE in a loop,
* one RETRIEVE with ``rcn=4`` of the AE,
* one discovery by an originator without any rights,

and prints the medians (and the number of results the answers carried).
``--checkout DIR`` runs the CSE from another checkout, so the same probe
measures before and after a change; ``--limits`` adds a ``[limits]``
section (e.g. ``"max_result = 10000"`` to see the loop yields alone)::

    python -m bench.walk_probe                      # this checkout
    python -m bench.walk_probe --checkout ../main   # another one
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
_rqi = itertools.count(1)


def _headers(origin: str, ty: int | None = None) -> dict[str, str]:
    h = {"X-M2M-Origin": origin, "X-M2M-RI": f"p{next(_rqi)}", "X-M2M-RVI": "3", "Accept": "application/json"}
    if ty is not None:
        h["Content-Type"] = f"application/json;ty={ty}"
    return h


async def _call(s: aiohttp.ClientSession, method: str, url: str, origin: str, ty: int | None = None,
                body: Any = None) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    async with s.request(method, url, data=data, headers=_headers(origin, ty)) as r:
        raw = await r.read()
        return int(r.headers.get("X-M2M-RSC", "0")), (json.loads(raw) if raw else None), dict(r.headers)


async def _fill(s: aiohttp.ClientSession, url: str, total: int) -> str:
    rsc, pc, _ = await _call(s, "POST", f"{url}/cse-in", "Cprobe", 2,
                             {"m2m:ae": {"rn": "probe", "api": "Nprobe", "rr": False, "srv": ["3"]}})
    assert rsc == 2001, pc
    aei = str(pc["m2m:ae"]["aei"])
    n_cnt = max(1, total // 1000)
    per = max(1, (total - 1 - n_cnt) // n_cnt)
    for c in range(n_cnt):
        rsc, pc, _ = await _call(s, "POST", f"{url}/cse-in/probe", aei, 3, {"m2m:cnt": {"rn": f"c{c}"}})
        assert rsc == 2001, pc
    jobs = [(c, i) for c in range(n_cnt) for i in range(per)]
    sem = asyncio.Semaphore(16)

    async def one(c: int, i: int) -> None:
        async with sem:
            rsc, pc, _ = await _call(s, "POST", f"{url}/cse-in/probe/c{c}", aei, 4, {"m2m:cin": {"con": str(i)}})
            assert rsc == 2001, pc

    await asyncio.gather(*(one(c, i) for c, i in jobs))
    return aei


async def _latencies(s: aiohttp.ClientSession, url: str, origin: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        rsc, _, _ = await _call(s, "GET", url, origin)
        out.append((time.perf_counter() - t0) * 1000)
        assert rsc == 2000, rsc
    return out


def _fmt(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20) if len(ms) >= 20 else [max(ms)] * 19
    return f"median {statistics.median(ms):7.1f} ms   p95 {q[18]:7.1f} ms   (n={len(ms)})"


def _count(pc: Any) -> int:
    if not isinstance(pc, dict):
        return 0
    if "m2m:uril" in pc:
        return len(pc["m2m:uril"])
    stack, n = [pc], -1
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            n += sum(1 for k in cur if k.startswith("m2m:") and isinstance(cur[k], dict))
            stack.extend(v for v in cur.values() if isinstance(v, (dict, list)))
        elif isinstance(cur, list):
            n += sum(1 for v in cur if isinstance(v, dict))
            stack.extend(cur)
    return n


async def main(checkout: Path, total: int, clients: int, samples: int, limits: str | None) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    with cfg:
        cfg.write(f"[limits]\n{limits}\n" if limits else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse", "--config", cfg.name, "--http-port", "0", "--db", ":memory:",
        "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(checkout))
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("READY "), line
        url = line.split()[2]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
            t0 = time.perf_counter()
            aei = await _fill(s, url, total)
            print(f"checkout {checkout}: {total} resources in {time.perf_counter() - t0:.1f} s")
            target = f"{url}/cse-in/probe/c0?atrl=cni"
            print("unrelated RETRIEVE alone:         ", _fmt(await _latencies(s, target, aei, samples)))
            stop = asyncio.Event()
            found: list[int] = []

            async def discover() -> None:
                while not stop.is_set():
                    _, pc, _ = await _call(s, "GET", f"{url}/cse-in/probe?fu=1", aei)
                    found.append(_count(pc))

            loops = [asyncio.create_task(discover()) for _ in range(clients)]
            await asyncio.sleep(0.5)
            during = await _latencies(s, target, aei, samples)
            stop.set()
            await asyncio.gather(*loops)
            print(f"... while {clients} clients discover:", _fmt(during),
                  f" [{len(found)} discoveries, {max(found)} URIs each]")
            t_rcn4 = []
            for _ in range(5):
                t0 = time.perf_counter()
                rsc, pc, hdr = await _call(s, "GET", f"{url}/cse-in/probe?rcn=4", aei)
                t_rcn4.append((time.perf_counter() - t0) * 1000)
            print(f"rcn=4 of the AE:                  median {statistics.median(t_rcn4):7.1f} ms   "
                  f"[{_count(pc)} resources, rsc {rsc}, X-M2M-CTS {hdr.get('X-M2M-CTS', '-')}]")
            t_none = []
            for _ in range(5):
                t0 = time.perf_counter()
                rsc, pc, _ = await _call(s, "GET", f"{url}/cse-in?fu=1", "Cnobody")
                t_none.append((time.perf_counter() - t0) * 1000)
            print(f"discovery, originator w/o rights: median {statistics.median(t_none):7.1f} ms   "
                  f"[{_count(pc)} URIs, rsc {rsc}]")
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        os.unlink(cfg.name)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose CSE to run (default: this one)")
    p.add_argument("--resources", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--limits", help='a [limits] section body for the CSE, e.g. "max_result = 10000"')
    a = p.parse_args()
    asyncio.run(main(a.checkout.resolve(), a.resources, a.clients, a.samples, a.limits))

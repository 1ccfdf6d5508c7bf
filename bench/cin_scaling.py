"""CREATE contentInstance cost as the tree grows (it must stay flat with the resident count).

Starts a real CSE process on a free loopback port with the durable TinyDB
store in a temp dir, registers an AE with one container (no limits), then
creates contentInstances over HTTP with a fixed number of concurrent
connections. Reports the per-request cost (mean latency at that
concurrency and throughput) in windows around given resident counts, so the
cost at 1k and at 50k resident resources can be compared. Loopback only;
stops the CSE it started.

    python bench/cin_scaling.py --total 50000 --window 1000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


async def start_cse(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    cfg = workdir / "bench.toml"
    cfg.write_text('[cse]\ncse_id = "/id-in"\nname = "cse-in"\n\n'
                   f'[http]\nhost = "127.0.0.1"\nport = 0\n\n[store]\npath = "{workdir / "bench.db"}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse", "--config", str(cfg), "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise SystemExit("CSE exited before READY")
        if line.startswith("READY "):
            return proc, line.split()[2]


async def run(total: int, window: int, concurrency: int, marks: list[int]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cse-bench-") as tmp:
        proc, url = await start_cse(Path(tmp))
        try:
            conn = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=conn) as s:
                h = {"X-M2M-Origin": "C", "X-M2M-RI": "r", "X-M2M-RVI": "3",
                     "Content-Type": "application/json;ty=2"}
                async with s.post(f"{url}/cse-in", headers=h, data=json.dumps(
                        {"m2m:ae": {"rn": "bench", "api": "Nbench", "rr": False, "srv": ["3"]}})) as r:
                    aei = (await r.json())["m2m:ae"]["aei"]
                h = {"X-M2M-Origin": aei, "X-M2M-RI": "r", "X-M2M-RVI": "3",
                     "Content-Type": "application/json;ty=3"}
                async with s.post(f"{url}/cse-in/bench", headers=h,
                                  data=json.dumps({"m2m:cnt": {"rn": "data"}})) as r:
                    assert r.status == 201
                h["Content-Type"] = "application/json;ty=4"
                body = json.dumps({"m2m:cin": {"con": "21.5", "cnf": "text/plain:0"}}).encode()
                target = f"{url}/cse-in/bench/data"
                created = 0
                results: dict[str, object] = {}
                errors = 0

                async def create_n(n: int) -> list[float]:
                    lat: list[float] = []
                    per = n // concurrency

                    async def worker(k: int) -> None:
                        nonlocal errors
                        for _ in range(k):
                            t0 = time.perf_counter()
                            async with s.post(target, headers=h, data=body) as r:
                                await r.read()
                                if r.status != 201:
                                    errors += 1
                            lat.append(time.perf_counter() - t0)

                    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
                    return lat

                for mark in marks:
                    fill = mark - created
                    if fill > 0:
                        await create_n(fill)
                        created += fill
                    t0 = time.perf_counter()
                    lat = await create_n(window)
                    elapsed = time.perf_counter() - t0
                    created += len(lat)
                    lat.sort()
                    results[str(mark)] = {
                        "resident_before": mark + 3,
                        "requests": len(lat),
                        "req_per_s": round(len(lat) / elapsed, 1),
                        "mean_ms": round(sum(lat) / len(lat) * 1000, 3),
                        "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
                        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
                    }
                    print(f"at {mark:>7} resident: {results[str(mark)]}", flush=True)
                results["errors"] = errors
                results["concurrency"] = concurrency
                return results
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--total", type=int, default=50_000, help="largest resident count to measure at")
    p.add_argument("--window", type=int, default=1000, help="requests measured at each mark")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args()
    marks = sorted({1000, a.total // 2, a.total} - {0})
    res = asyncio.run(run(a.total, a.window, a.concurrency, marks))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""Run ``wrk`` with ``bench/lua/onem2m.lua`` and parse the JSON its ``done()``
hook prints. :func:`ensure_wrk` finds wrk, or installs Debian's package
(``apt-get install -y wrk``) when allowed (never in CI or quick mode)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import LoadResult, LoadSpec

__all__ = ["ensure_wrk", "run_wrk"]

LUA = Path(__file__).with_name("lua") / "onem2m.lua"


def ensure_wrk(install: bool) -> str | None:
    """The path of wrk; if missing and ``install``, try ``apt-get install -y wrk``."""
    path = shutil.which("wrk")
    if path or not install:
        return path
    cmd = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            return None
        cmd = ["sudo", "-n", *cmd]
    print("bench: wrk not found, installing it: " + " ".join(cmd), file=sys.stderr)
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"bench: could not install wrk ({exc}); using the asyncio client", file=sys.stderr)
        return None
    return shutil.which("wrk")


async def run_wrk(wrk: str, base_url: str, spec: LoadSpec, duration: float, connections: int,
                  threads: int = 2) -> LoadResult:
    """``wrk -t<threads> -c<connections> -d<duration>s --latency -s onem2m.lua`` against ``base_url``."""
    env = {**os.environ, "BENCH_METHOD": spec.method, "BENCH_PATHS": ",".join(spec.paths),
           "BENCH_BODY": spec.body, "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in spec.headers.items())}
    secs = max(1, round(duration))
    proc = await asyncio.create_subprocess_exec(
        wrk, f"-t{threads}", f"-c{connections}", f"-d{secs}s", "--timeout", "10s", "--latency",
        "-s", str(LUA), base_url, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), secs + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}\n{text}")
    d = json.loads(line[len("BENCHJSON "):])
    errs = {k: int(v) for k, v in d["errors"].items()}
    lat = d["latency_us"]
    return LoadResult(tool="wrk", connections=connections, requests=int(d["requests"]), errors=sum(errs.values()),
                      duration_s=d["duration_us"] / 1e6, p50_ms=lat["p50"] / 1000, p99_ms=lat["p99"] / 1000,
                      mean_ms=lat["mean"] / 1000, error_detail={k: v for k, v in errs.items() if v})

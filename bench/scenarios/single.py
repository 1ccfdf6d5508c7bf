"""Scenarios on one CSE with the durable (TinyDB) store, in one growing store:

1. ``retrieve_csebase``, ``retrieve_container`` (at ``start_at`` resident);
2. ``create_cin``: CREATE contentInstance starting at ``start_at`` resident
   (the "1k" figure; the window adds what it creates, recorded as
   ``resident_before``/``resident_after``);
3. ``discovery_10k``: ``fu=1`` discovery over a subtree of ``discovery``
   resources (10 labelled containers, the rest contentInstances);
4. bulk fill to ``resident`` contentInstances, then ``create_cin_100k``;
5. ``rss_per_10k_cin``: (VmRSS now - VmRSS after READY on the empty store)
   per 10k contentInstances resident;
6. ``startup_100k``: SIGTERM (flush + compaction), restart on the same store,
   seconds from spawn to READY; the restarted CSE must hold every instance.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..asyncload import client_session, run_spec
from ..common import LoadSpec, m2m_headers
from ..m2m import M2M
from ..measure import Bench
from ..procs import Proc, cse_toml, rss_mb

CB = "cse-in"
N_CNT = 10  # containers the CREATE load rotates over (no mni: nothing is evicted)
CIN_BODY = json.dumps({"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}})
FILL_NAMES = ("create_cin_100k", "rss_per_10k_cin", "startup_100k")
NAMES = ("retrieve_csebase", "retrieve_container", "create_cin", "discovery_10k", *FILL_NAMES)


def post_spec(paths: list[str], origin: str) -> LoadSpec:
    return LoadSpec("POST", tuple("/" + p for p in paths), m2m_headers(origin, 4), CIN_BODY, (201,))


async def fill(bench: Bench, m: M2M, url: str, paths: list[str], origin: str, target: int,
               rate_hint: float) -> dict[str, Any]:
    """Create contentInstances into ``paths`` until their total ``cni`` is ``target``:
    wrk in slices for the bulk (when available), the asyncio client for the exact rest."""
    spec = post_spec(paths, origin)
    t0 = time.perf_counter()
    have = await m.cni(paths, origin)
    start = have
    rate = max(rate_hint, 500.0)
    while bench.opts.wrk and target - have > 2 * rate:
        secs = min(15.0, max(1.0, (target - have) / rate - 1))
        r = await bench.load(url, spec, secs)
        rate = max(r.rps, 500.0)
        have = await m.cni(paths, origin)
    if target > have:
        r = await run_spec(url, spec, 16, total=target - have)
        if r.errors:
            raise RuntimeError(f"bulk fill: {r.errors} errors ({r.error_detail})")
        have = await m.cni(paths, origin)
    secs = time.perf_counter() - t0
    print(f"  (filled {have - start} contentInstances in {secs:.1f} s, {have} resident)", flush=True)
    return {"filled": have - start, "fill_s": round(secs, 1), "resident": have}


async def run(bench: Bench, want: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-"))
    try:
        cfg = tmp / "cse.toml"
        cfg.write_text(cse_toml("/id-in", CB, tmp / "cse.db"))
        p = await bench.procs.cse("cse", cfg)
        base_rss = rss_mb(p.pid)
        total = await _measure(bench, p, want, base_rss)
        if "startup_100k" in want:
            code, stop_s = await bench.procs.stop(p)
            p2 = await bench.procs.cse("cse-restart", cfg)
            async with client_session(4) as s:
                m = M2M(s, p2.url, CB)
                after = await m.cni([f"{CB}/bench/c{i}" for i in range(N_CNT)], "CAdmin")
            lost = total - after
            disc = bench.results.get("discovery_10k", {}).get("subtree_resources", 0)
            bench.record("startup_100k", p2.ready_s, "s", resident=total, resources_in_store=total + disc + N_CNT,
                         store_bytes=_size(tmp),
                         shutdown_s=round(stop_s, 2), shutdown_exit=code, resident_after_restart=after,
                         rss_after_start_mb=round(rss_mb(p2.pid), 1), errors=abs(lost) + (1 if code else 0))
            await bench.procs.stop(p2)
    finally:
        await bench.procs.stop_all_named(("cse", "cse-restart"))
        shutil.rmtree(tmp, ignore_errors=True)


def _size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


async def _measure(bench: Bench, p: Proc, want: set[str], base_rss: float) -> int:
    """Steps 1-5 on the running CSE ``p``; returns the contentInstances resident."""
    o = bench.opts
    url, procs = p.url, {"cse": p}
    async with client_session(32) as s:
        m = M2M(s, url, CB)
        aei = await m.register("bench")
        cnts = [await m.container(f"{CB}/bench", f"c{i}", aei) for i in range(N_CNT)]
        await fill(bench, m, url, cnts, aei, o.start_at, 0)
        for name, path in (("retrieve_csebase", f"/{CB}"), ("retrieve_container", f"/{CB}/bench/c0")):
            if name in want:
                spec = LoadSpec("GET", (path,), m2m_headers(aei), ok_status=(200,))
                await bench.warm(url, spec)
                await bench.measure(name, procs, lambda spec=spec: bench.load(url, spec))
        rate = 0.0
        if "create_cin" in want:
            n0 = await m.cni(cnts, aei)
            rec = await bench.measure("create_cin", procs,
                                      lambda: bench.load(url, post_spec(cnts, aei), o.create_duration))
            n1 = await m.cni(cnts, aei)
            rec.update(resident_before=n0, resident_after=n1, created=n1 - n0)
            rate = rec["req_per_s"]
        if "discovery_10k" in want:
            await _discovery(bench, m, p, rate)
        if not want & set(FILL_NAMES):
            return await m.cni(cnts, aei)
        info = await fill(bench, m, url, cnts, aei, o.resident, rate)
        if "create_cin_100k" in want:
            n0 = info["resident"]
            rec = await bench.measure("create_cin_100k", procs,
                                      lambda: bench.load(url, post_spec(cnts, aei), o.create_duration))
            n1 = await m.cni(cnts, aei)
            rec.update(resident_before=n0, resident_after=n1, created=n1 - n0, fill_s=info["fill_s"])
        total = await m.cni(cnts, aei)
        disc = bench.results.get("discovery_10k", {}).get("subtree_cin", 0)
        cin = total + disc
        rss = rss_mb(p.pid)
        per10k = (rss - base_rss) / (cin / 10_000) if cin else 0.0
        bench.record("rss_per_10k_cin", per10k, "MB", rss_baseline_mb=round(base_rss, 1), rss_mb=round(rss, 1),
                     cin_resident=cin, rss_delta_mb=round(rss - base_rss, 1),
                     delta_for_100k_cin_mb=round(per10k * 10, 1))
        return total


async def _discovery(bench: Bench, m: M2M, p: Proc, rate: float) -> None:
    """A subtree of ``opts.discovery`` resources under AE ``disc``; 10 labelled
    containers are what the query finds, every resource is walked."""
    o = bench.opts
    aei = await m.register("disc")
    cnts = [await m.container(f"{CB}/disc", f"d{i}", aei, lbl=["bench:disc"]) for i in range(10)]
    n_cin = o.discovery - 11
    info = await fill(bench, m, p.url, cnts, aei, n_cin, rate)
    spec = LoadSpec("GET", (f"/{CB}/disc?fu=1&ty=3&lbl=bench:disc&drt=2",), m2m_headers(aei), ok_status=(200,))
    rsc, pc = await m.call("GET", spec.paths[0], aei)
    found = len((pc or {}).get("m2m:uril", []))
    await bench.warm(p.url, spec)
    rec = await bench.measure("discovery_10k", {"cse": p}, lambda: bench.load(p.url, spec))
    rec.update(subtree_resources=info["resident"] + 11, subtree_cin=info["resident"], found=found,
               query=spec.paths[0])
    if rsc != 2000 or found != 10:
        rec["errors"] += 1
        bench.notes.append(f"discovery_10k: the query answered {rsc} with {found} matches (10 expected)")

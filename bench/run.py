"""Benchmark runner: ``python bench/run.py [--quick] [--only NAME ...] [--out FILE]``.

Starts the CSE(s) itself on loopback (free ports, temp dirs, durable store),
warms up, measures, stops everything it started (also on Ctrl-C), writes
the results as JSON (``bench/results/<timestamp>.json`` or ``--out``) and
prints a one-screen summary with the targets as ratios to the bare aiohttp
ceiling measured in the same run (PASS/MISS is information: the exit code
is 0 unless a scenario could not run).

Groups and scenarios (``--only`` takes either):

* ``ceiling``: ceiling_get, ceiling_post, client_ceiling_get
* ``single``: retrieve_csebase, retrieve_container, create_cin, discovery_10k,
  create_cin_100k, rss_per_10k_cin, startup_100k
* ``pair``: plain_update, session_update, client_ceiling_session_update,
  sf_store, sf_flush
* ``mqtt``: mqtt_http_retrieve, mqtt_retrieve, mqtt_http_create, mqtt_create
  (bench/scenarios/mqtt.py: the SDK over both bindings, MQTT as ratios to
  HTTP; needs a broker on 127.0.0.1:1883, else skipped with a note)
* ``ws``: sdk_http_retrieve, ws_retrieve, sdk_http_create, ws_create (the
  WebSocket binding, each ``ws_*`` with ``ratio_to_http`` of the same run);
  ``mqtt`` and ``ws`` share one CSE process (bench/scenarios/bindings.py)
* ``pg`` (only when asked for: it needs PostgreSQL at 127.0.0.1:5432 or
  ``CSE_BENCH_PG_DSN``): pg_retrieve_<cfg>, pg_create_<cfg> for cfg embedded, pg (one
  process), shared1 (one worker of several), workers2 (``--workers 2``):
  server CPU per request with the PostgreSQL backends, and the scaling of
  two workers; pg_create_100k (one process, 100k contentInstances
  resident) (bench/scenarios/pg.py, docs/scaling.md)
* ``discovery``: disc_retrieve, disc_tylbl_10k, disc_tylbl_100k,
  disc_unrestricted_100k, disc_retrieve_during_unrestricted

Load: wrk (``--tool wrk``, installed with apt-get when missing, except in
quick mode or under CI) for the HTTP scenarios, the asyncio client where every
request must be signed; ``--tool asyncio`` uses the asyncio client everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/run.py``
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root, not bench/
    __package__ = "bench"

from bench.measure import Bench, Options
from bench.procs import ProcSet
from bench.report import PG_TARGETS, evaluate, summary
from bench.scenarios import bindings, ceiling, discovery, mqtt, pair, pg, single, ws
from bench.wrk import ensure_wrk

GROUPS: dict[str, tuple[str, ...]] = {
    "ceiling": ("ceiling_get", "ceiling_post", "client_ceiling_get"),
    "single": single.NAMES,
    "pair": pair.NAMES,
    "discovery": discovery.NAMES,
    "mqtt": mqtt.NAMES,
    "ws": ws.NAMES,
    "pg": pg.NAMES,
}
# groups run only when --only names them: pg needs PostgreSQL
OPT_IN = ("pg",)
ALL = tuple(n for g, names in GROUPS.items() if g not in OPT_IN for n in names)
KNOWN = tuple(n for names in GROUPS.values() for n in names)


def selected(only: list[str] | None) -> set[str]:
    """The scenario names ``--only`` asks for (groups expanded); the ceiling always runs."""
    if not only:
        return set(ALL)
    want: set[str] = set(GROUPS["ceiling"])
    for item in only:
        for part in item.split(","):
            if part in GROUPS:
                want |= set(GROUPS[part])
            elif part in KNOWN:
                want.add(part)
            else:
                raise SystemExit(f"bench: unknown scenario or group '{part}' (known: "
                                 f"{', '.join(list(GROUPS) + list(KNOWN))})")
    return want


async def run(opts: Options, want: set[str]) -> Bench:
    bench = Bench(opts, ProcSet())
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # stop like Ctrl-C
    try:
        print(f"ceiling (bare aiohttp, {bench.tool}, {opts.connections} connections)", flush=True)
        await ceiling.run(bench)
        if want & set(single.NAMES):
            print("single CSE (durable store)", flush=True)
            await single.run(bench, want)
        if want & set(pair.NAMES):
            print("pair CSE1 -> CSE2", flush=True)
            await pair.run(bench, want)
        if want & set(bindings.NAMES):
            print("MQTT (broker 127.0.0.1:1883) and WebSocket against HTTP, all through the SDK, one CSE",
                  flush=True)
            await bindings.run(bench, want)
        if want & set(pg.NAMES):
            print("PostgreSQL store: embedded, one process, one worker, two workers", flush=True)
            await pg.run(bench, want)
        if want & set(discovery.NAMES):
            print("discovery at scale (durable store, bulk-built tree)", flush=True)
            await discovery.run(bench, want)
    finally:
        await bench.procs.stop_all()
    return bench


def bottleneck_notes(bench: Bench) -> list[str]:
    """Warnings where the load generator, not the CSE, may set the figure."""
    res, notes = bench.results, []
    if bench.tool == "asyncio":
        notes.append("no wrk: the asyncio client drives the HTTP scenarios and the ceiling, so those figures "
                     "and their ratios are bounded by the client (see client_ceiling_get); install wrk")
    cap = res.get("client_ceiling_session_update", {}).get("req_per_s")
    for name in ("plain_update", "session_update"):
        rate = res.get(name, {}).get("req_per_s")
        if cap and rate and rate > 0.7 * cap:
            notes.append(f"{name} ({rate:.0f} req/s) is above 70% of what the client alone does "
                         f"({cap:.0f} req/s): the client may be the bottleneck")
    for name, rec in res.items():  # e.g. a binding's bound answered 5207: the req/s counts refusals too
        if rec.get("errors"):
            notes.append(f"{name}: {rec['errors']} requests failed, its figure is not a throughput")
    return notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny counts, ~1 s per scenario (the CI smoke test)")
    p.add_argument("--only", action="append", metavar="NAME", help="scenario or group (repeatable, or a,b)")
    p.add_argument("--out", help="JSON results file (default bench/results/<timestamp>.json)")
    p.add_argument("--tool", choices=["auto", "wrk", "asyncio"], default="auto",
                   help="HTTP load generator (auto: wrk if present or installable, else asyncio)")
    p.add_argument("--connections", type=int, help="connections (wrk and asyncio; default 32, quick 16)")
    p.add_argument("--duration", type=float, help="measured seconds per scenario (default 5, quick 1)")
    a = p.parse_args(argv)

    in_ci = bool(os.environ.get("CI"))
    wrk = None if a.tool == "asyncio" else ensure_wrk(install=not a.quick and not in_ci)
    if a.tool == "wrk" and wrk is None:
        raise SystemExit("bench: --tool wrk but wrk is not available")
    opts = Options.make(a.quick, wrk)
    if a.connections:
        opts.connections = opts.workers = a.connections
    if a.duration:
        opts.duration = a.duration
    want = selected(a.only)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.perf_counter()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C works even if started with SIGINT ignored
    try:
        bench = asyncio.run(run(opts, want))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    bench.notes.extend(bottleneck_notes(bench))
    doc: dict[str, Any] = {
        "started": started, "mode": "quick" if a.quick else "full", "tool": bench.tool,
        "wall_s": round(time.perf_counter() - t0, 1),
        "options": dict(vars(opts)),
        "machine": {"cpus": os.cpu_count(), "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "python": platform.python_version(), "platform": platform.platform()},
        "results": bench.results, "notes": bench.notes,
        "targets": evaluate(bench.results) + (evaluate(bench.results, PG_TARGETS) if want & set(pg.NAMES) else []),
    }
    out = Path(a.out) if a.out else Path(__file__).resolve().parent / "results" / (
        started.replace(":", "") + ("-quick" if a.quick else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(summary(doc))
    print(f"\nresults: {out}  ({doc['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The bare aiohttp ceiling (bench/ceiling_server.py) measured with the same
tool and connection count as the CSE scenarios: ``ceiling_get``,
``ceiling_post``; and the asyncio client's own ceiling (``client_ceiling_get``)."""

from __future__ import annotations

import json

from ..asyncload import run_spec
from ..common import LoadSpec, m2m_headers
from ..measure import Bench

CIN_BODY = json.dumps({"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}})


def get_spec(path: str = "/cse-in") -> LoadSpec:
    return LoadSpec("GET", (path,), m2m_headers("CAdmin"))


def post_spec(path: str = "/cse-in/data") -> LoadSpec:
    return LoadSpec("POST", (path,), m2m_headers("CAdmin", 4), CIN_BODY)


async def ensure_ceiling(bench: Bench) -> str:
    """The URL of the run's ceiling server, started once."""
    p = next((p for p in bench.procs.procs if p.name == "ceiling" and p.alive), None)
    if p is None:
        p = await bench.procs.ceiling()
    return p.url


async def run(bench: Bench) -> None:
    url = await ensure_ceiling(bench)
    proc = next(p for p in bench.procs.procs if p.name == "ceiling")
    for name, spec in (("ceiling_get", get_spec()), ("ceiling_post", post_spec())):
        await bench.warm(url, spec)
        await bench.measure(name, {"server": proc}, lambda spec=spec: bench.load(url, spec))
    o = bench.opts
    await bench.measure("client_ceiling_get", {"server": proc},
                        lambda: run_spec(url, get_spec(), o.workers, duration=o.duration))

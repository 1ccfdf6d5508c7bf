"""Discovery at scale on one CSE with the durable (TinyDB) store
(docs/onem2m.md "Discovery and filter criteria"):

* ``disc_retrieve``: RETRIEVE of a container of the 100k AE (the reference);
* ``disc_tylbl_10k`` / ``disc_tylbl_100k``: ``fu=1&ty=4&lbl=bench:hit``
  matching 100 contentInstances of an AE holding 10,000 / 100,000
  resources (containers of 999 instances; the hits spread over 10 containers
  at both sizes, so only the size differs; the same label under both AEs,
  so the other AE's holders are candidates the subtree check drops);
* ``disc_unrestricted_100k``: ``fu=1`` with no condition from the 100k AE,
  one client (answered within ``limits.max_result``, partial content);
* ``disc_retrieve_during_unrestricted``: an unrelated RETRIEVE (another
  AE's container), one client, while 4 clients run the unrestricted
  discovery (``alone_p50_ms``/``alone_p99_ms``: the same client just before,
  without them: what the machine gives).

Building 110,000 resources through HTTP would take minutes: the AEs, their
containers and one instance each are created through HTTP, the CSE is
stopped, the instances are added to its store in bulk in this process
(copies of the instance the CSE made, counters of the containers set to
match) and the CSE is started again on it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cse.core.ports import Doc, Put
from cse.store.tinydb_store import TinyDBStore

from ..asyncload import client_session, run_spec
from ..common import LoadResult, LoadSpec, m2m_headers
from ..m2m import M2M
from ..measure import Bench
from ..procs import Proc, cse_toml

CB = "cse-in"
LABEL = "bench:hit"
PER_CNT = 999  # instances per container: a container and its instances are 1,000 resources
HITS = 100
NAMES = ("disc_retrieve", "disc_tylbl_10k", "disc_tylbl_100k", "disc_unrestricted_100k",
         "disc_retrieve_during_unrestricted")
_BATCH = 5_000


def _get(path: str, origin: str) -> LoadSpec:
    return LoadSpec("GET", (path,), m2m_headers(origin), ok_status=(200,))


async def run(bench: Bench, want: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-disc-"))
    try:
        cfg = tmp / "cse.toml"
        cfg.write_text(cse_toml("/id-in", CB, tmp / "cse.db"))
        sizes = {"small": bench.opts.discovery, "big": bench.opts.resident}
        p = await bench.procs.cse("cse-disc", cfg)
        async with client_session(4) as s:
            m = M2M(s, p.url, CB)
            aes = {k: await _skeleton(m, f"d{k}", n) for k, n in sizes.items()}
            other = await m.register("other")
            await m.container(f"{CB}/other", "cnt", other)
        await bench.procs.stop(p)
        t0 = time.perf_counter()
        built = await _bulk(tmp / "cse.db", {k: (aes[k], n) for k, n in sizes.items()})
        print(f"  (bulk-built {built} contentInstances in {time.perf_counter() - t0:.1f} s)", flush=True)
        p = await bench.procs.cse("cse-disc", cfg)
        await _measure(bench, p, want, aes, other, sizes)
    finally:
        await bench.procs.stop_all_named(("cse-disc",))
        shutil.rmtree(tmp, ignore_errors=True)


async def _skeleton(m: M2M, rn: str, resources: int) -> dict[str, Any]:
    """AE ``rn`` with its containers and one instance each (the template)."""
    aei = await m.register(rn)
    n_cnt = max(1, resources // (PER_CNT + 1))
    for i in range(n_cnt):
        path = await m.container(f"{CB}/{rn}", f"c{i}", aei)
        await m.ok("POST", f"/{path}", aei, ty=4, body={"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}})
    return {"rn": rn, "aei": aei, "containers": n_cnt}


async def _bulk(db: Path, plan: dict[str, tuple[dict[str, Any], int]]) -> int:
    """Fill each AE's containers with instances up to its size (module docstring);
    records in each AE's plan how many instances carry the label (``hits``)."""
    store = TinyDBStore(str(db))
    await store.open()
    built = 0
    try:
        for ae, resources in plan.values():
            n_cnt = ae["containers"]
            per = max(1, resources // n_cnt - 1)
            # the same shape of result at every size: the hits in (up to) 10
            # containers spread over the AE, spread within each container
            hit_cnts = set(range(0, n_cnt, max(1, n_cnt // 10))[:10])
            per_hit_cnt = -(-HITS // len(hit_cnts))
            hits_every = max(1, (per - 1) // per_hit_cnt)
            k = 0
            ops: list[Any] = []
            for i in range(n_cnt):
                cnt = await store.get_by_path(f"{CB}/{ae['rn']}/c{i}")
                assert cnt is not None
                kids = await store.children(cnt["ri"])
                tmpl = kids[0]
                for j in range(1, per):  # the template is the first
                    rn = f"i{j}"
                    doc: Doc = {**tmpl, "ri": f"cin{ae['rn']}x{i}x{j}", "rn": rn, "_srn": f"{cnt['_srn']}/{rn}"}
                    if i in hit_cnts and (j - 1) % hits_every == 0 and ae.get("hits", 0) < HITS:
                        doc["lbl"] = [LABEL]
                        ae["hits"] = ae.get("hits", 0) + 1
                    k += 1
                    ops.append(Put(doc))
                ops.append(Put({**cnt, "cni": per, "cbs": per * tmpl.get("cs", 0), "st": per}))
                if len(ops) >= _BATCH:
                    await store.commit(ops)
                    ops = []
            if ops:
                await store.commit(ops)
            built += k
    finally:
        await store.close()
    return built


async def _measure(bench: Bench, p: Proc, want: set[str], aes: dict[str, dict[str, Any]], other: str,
                   sizes: dict[str, int]) -> None:
    url, procs = p.url, {"cse": p}
    big = aes["big"]
    # quick mode (the CI smoke test) only shows the scenarios run: half a second each, no warm-up
    d = min(bench.opts.duration, 0.5) if bench.opts.quick else bench.opts.duration

    async def warm(spec: LoadSpec) -> None:
        if not bench.opts.quick:
            await bench.warm(url, spec)

    async with client_session(4) as s:
        m = M2M(s, url, CB)
        if "disc_retrieve" in want:
            spec = _get(f"/{CB}/{big['rn']}/c0", big["aei"])
            await warm(spec)
            await bench.measure("disc_retrieve", procs, lambda: bench.load(url, spec, d))
        for key, name in (("small", "disc_tylbl_10k"), ("big", "disc_tylbl_100k")):
            if name not in want:
                continue
            ae = aes[key]
            spec = _get(f"/{CB}/{ae['rn']}?fu=1&ty=4&lbl={LABEL}", ae["aei"])
            rsc, pc = await m.call("GET", spec.paths[0], ae["aei"])
            found = len((pc or {}).get("m2m:uril", []))
            await warm(spec)
            rec = await bench.measure(name, procs, lambda spec=spec: bench.load(url, spec, d))
            rec.update(subtree_resources=sizes[key], found=found, query=spec.paths[0])
            if rsc != 2000 or found != ae.get("hits"):
                rec["errors"] += 1
                bench.notes.append(f"{name}: the query answered {rsc} with {found} matches")
        unrestricted = _get(f"/{CB}/{big['rn']}?fu=1", big["aei"])
        if "disc_unrestricted_100k" in want:
            rsc, pc = await m.call("GET", unrestricted.paths[0], big["aei"])
            found = len((pc or {}).get("m2m:uril", []))
            if not bench.opts.quick:
                await run_spec(url, unrestricted, 1, duration=bench.opts.warmup)
            rec = await bench.measure("disc_unrestricted_100k", procs,
                                      lambda: run_spec(url, unrestricted, 1, duration=d))
            rec.update(subtree_resources=sizes["big"], found=found, query=unrestricted.paths[0])
            if rsc != 2000 or not found:
                rec["errors"] += 1
                bench.notes.append(f"disc_unrestricted_100k: the query answered {rsc} with {found} results")
        if "disc_retrieve_during_unrestricted" in want:
            retrieve = _get(f"/{CB}/other/cnt", other)
            alone = await run_spec(url, retrieve, 1, duration=d)  # the same client, no discovery
            side: dict[str, Any] = {"alone_p50_ms": round(alone.p50_ms, 2), "alone_p99_ms": round(alone.p99_ms, 2)}

            async def both() -> LoadResult:
                disc, ret = await asyncio.gather(run_spec(url, unrestricted, 4, duration=d),
                                                 run_spec(url, retrieve, 1, duration=d))
                side.update(discovery_req_per_s=round(disc.rps, 1), discovery_p50_ms=round(disc.p50_ms, 2),
                            discovery_p99_ms=round(disc.p99_ms, 2), discovery_errors=disc.errors)
                return ret

            rec = await bench.measure("disc_retrieve_during_unrestricted", procs, both)
            rec.update(side)

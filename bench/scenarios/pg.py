"""RETRIEVE and CREATE on the PostgreSQL store, 1 and 2 workers, beside the embedded store (docs/scaling.md).

For each configuration, one CSE with an AE and ``N_CNT`` containers, then
``pg_retrieve_<cfg>`` (RETRIEVE container) and ``pg_create_<cfg>`` (CREATE
contentInstance, rotating over the containers, every one committed before
its answer):

* ``embedded``: the durable TinyDB store (the reference);
* ``pg``: ``[store] backend = "postgresql"``, one process, reads from memory;
* ``shared1``: one worker in multi-worker mode (``--shared``: the change
  log, the write gate), what each of N workers does;
* ``workers2``: ``--workers 2`` on one port;
* ``pg_create_100k``: ``pg`` again with 100,000 contentInstances resident
  (bulk-loaded with COPY and vacuumed before the CSE starts), beside ``pg_create_pg``.

Server CPU is every CSE process (the workers, not the supervisor, which only
waits) plus the PostgreSQL backends of their connections (found from
/proc/net/tcp and ``pg_stat_activity``, so only with the database on the
same machine), as ``cpu_ms_per_req``.  The targets (bench/report.py): CPU
per RETRIEVE and per CREATE on PostgreSQL at most 3x embedded; 2 workers
at least 1.3x one (``shared1``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ..asyncload import client_session
from ..common import LoadSpec, m2m_headers
from ..m2m import M2M
from ..measure import Bench
from ..procs import Proc, cse_toml
from .single import CB, N_CNT, post_spec

DSN = os.environ.get("CSE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CONFIGS = ("embedded", "pg", "shared1", "workers2")
#: CREATE contentInstance on PostgreSQL (one process) with this many contentInstances resident
RESIDENT = 100_000
NAMES = (*(f"pg_{op}_{cfg}" for cfg in CONFIGS for op in ("retrieve", "create")), "pg_create_100k")


@dataclass
class Pid:
    """A process to count the CPU of (bench.measure reads ``pid``)."""

    pid: int


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def _ports_to(pids: list[int], remote_port: int) -> list[int]:
    """The local ports of the TCP connections of ``pids`` to ``remote_port``."""
    inodes = set().union(*(_socket_inodes(p) for p in pids))
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == remote_port and cols[9] in inodes:
                    ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def pg_backends(pids: list[int]) -> list[int]:
    """The PostgreSQL server processes serving the connections of ``pids``."""
    ports = _ports_to(pids, 5432)
    if not ports:
        return []
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports)
    finally:
        await conn.close()
    return [r[0] for r in rows]


def _config(tmp: Path, cfg: str, schema: str) -> Path:
    db = tmp / f"{cfg}.db"
    text = cse_toml("/id-in", CB, db)
    if cfg != "embedded":
        text = text.replace(f'[store]\npath = "{db}"\n',
                            f'[store]\npath = "{db}"\nbackend = "postgresql"\ndsn = "{DSN}"\nschema = "{schema}"\n')
    path = tmp / f"{cfg}.toml"
    path.write_text(text)
    return path


async def _start(bench: Bench, cfg: str, path: Path) -> tuple[Proc, list[int]]:
    argv = [sys.executable, "-m", "cse", "--config", str(path), "--log-level", "warning"]
    if cfg == "shared1":
        argv.append("--shared")
    elif cfg == "workers2":
        argv += ["--workers", "2"]
    p = Proc(f"pg-{cfg}", argv)
    bench.procs.procs.append(p)
    await p.start(120)
    workers = [int(x) for line in p.output if line.startswith("WORKERS ") for x in line.split()[1:]]
    return p, workers or [p.pid]


async def _one(bench: Bench, cfg: str, tmp: Path, want: set[str]) -> None:
    schema = "bench_" + uuid.uuid4().hex[:12]
    p, workers = await _start(bench, cfg, _config(tmp, cfg, schema))
    try:
        async with client_session(8) as s:
            m = M2M(s, p.url, CB)
            aei = await m.register("bench")
            cnts = [await m.container(f"{CB}/bench", f"c{i}", aei) for i in range(N_CNT)]
        get = LoadSpec("GET", (f"/{CB}/bench/c0",), m2m_headers(aei), ok_status=(200,))
        post = post_spec(cnts, aei)
        await bench.warm(p.url, get)
        await bench.warm(p.url, post)
        procs: dict[str, Any] = {f"cse{i}": Pid(w) for i, w in enumerate(workers)}
        if cfg != "embedded":
            procs.update({f"pg{i}": Pid(b) for i, b in enumerate(await pg_backends(workers))})
        for name, spec, secs in ((f"pg_retrieve_{cfg}", get, None), (f"pg_create_{cfg}", post,
                                                                     bench.opts.create_duration)):
            if name not in want:
                continue
            rec = await bench.measure(name, procs, lambda spec=spec, secs=secs: bench.load(p.url, spec, secs))
            rec["cpu_ms_per_req"] = round(sum(v.get("ms_per_req", 0.0) for k, v in rec["cpu"].items()
                                              if k != "bench_client"), 4)
            rec["workers"] = len(workers)
            print(f"    {cfg}: {rec['cpu_ms_per_req']:.3f} ms server CPU/request "
                  f"({len(workers)} CSE process(es), {len(procs) - len(workers)} PostgreSQL backend(s))", flush=True)
    finally:
        await bench.procs.stop(p)
        if cfg != "embedded":
            conn = await asyncpg.connect(DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


async def _bulk(schema: str, under: str, n: int) -> None:
    """``n`` contentInstances under container ``under``, copied from one the
    CSE stored (same shape), written with COPY while no CSE runs: a fill over
    HTTP would take minutes.  The container's ``cni`` is not updated (no
    scenario reads it)."""
    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        row = await conn.fetchrow("SELECT doc::text, srn FROM doc WHERE ty = 4 AND pi = $1 LIMIT 1", under)
        tmpl, srn = json.loads(row[0]), row[1]
        parent = srn.rsplit("/", 1)[0]
        seq0 = int(await conn.fetchval("SELECT nextval('doc_seq')"))
        records = []
        for i in range(n):
            ri, rn = f"cinbulk{i:07d}", f"bulk{i:07d}"
            doc = {**tmpl, "ri": ri, "rn": rn, "_srn": f"{parent}/{rn}"}
            records.append((ri, under, rn, 4, doc["_srn"], seq0 + 1 + i, doc.get("et"), None, None,
                            doc.get("_own"), json.dumps(doc)))
        await conn.copy_records_to_table(
            "doc", records=records, columns=["ri", "pi", "rn", "ty", "srn", "seq", "et", "aei", "csi", "own", "doc"])
        await conn.execute("SELECT setval('doc_seq', $1)", seq0 + n + 1)
        # What autovacuum would do soon after such a load, done now: else its
        # vacuum and analyze of the new rows run during the measurement, on
        # the same two cores (a steady database has them behind it).
        await conn.execute("VACUUM ANALYZE doc")
    finally:
        await conn.close()


async def _resident(bench: Bench, tmp: Path) -> None:
    """``pg_create_100k``: CREATE on PostgreSQL (one process) with :data:`RESIDENT`
    contentInstances in the store, beside ``pg_create_pg`` (the same with a few)."""
    schema = "bench_" + uuid.uuid4().hex[:12]
    path = _config(tmp, "pg", schema)
    try:
        p, _ = await _start(bench, "pg", path)
        try:
            async with client_session(8) as s:
                m = M2M(s, p.url, CB)
                aei = await m.register("bench")
                cnts = [await m.container(f"{CB}/bench", f"c{i}", aei) for i in range(N_CNT)]
                bulk = await m.container(f"{CB}/bench", "bulk", aei)
                await bench.warm(p.url, post_spec([bulk], aei))
        finally:
            await bench.procs.stop(p)
        conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
        try:
            under = await conn.fetchval("SELECT ri FROM doc WHERE srn = $1", bulk)
        finally:
            await conn.close()
        await _bulk(schema, under, RESIDENT)
        p, workers = await _start(bench, "pg", path)
        try:
            post = post_spec(cnts, aei)
            await bench.warm(p.url, post)
            procs: dict[str, Any] = {"cse0": Pid(workers[0])}
            procs.update({f"pg{i}": Pid(b) for i, b in enumerate(await pg_backends(workers))})
            rec = await bench.measure("pg_create_100k", procs,
                                      lambda: bench.load(p.url, post, bench.opts.create_duration))
            rec["cpu_ms_per_req"] = round(sum(v.get("ms_per_req", 0.0) for k, v in rec["cpu"].items()
                                              if k != "bench_client"), 4)
            rec["resident"] = RESIDENT
            print(f"    pg with {RESIDENT} resident: {rec['cpu_ms_per_req']:.3f} ms server CPU/request", flush=True)
        finally:
            await bench.procs.stop(p)
    finally:
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def run(bench: Bench, want: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-pg-"))
    try:
        for cfg in CONFIGS:
            if {f"pg_retrieve_{cfg}", f"pg_create_{cfg}"} & want:
                await _one(bench, cfg, tmp, want)
        if "pg_create_100k" in want:
            await _resident(bench, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

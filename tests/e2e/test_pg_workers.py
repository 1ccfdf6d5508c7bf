"""One CSE served by two worker processes on one PostgreSQL store (docs/scaling.md).

Why: ``python -m cse --workers 2`` runs two processes on one port
(SO_REUSEPORT) with PostgreSQL as their only coordination point
(cse.store.pg_coord).  Without the write gate two workers creating into one
container would both read the same ``cni`` (a lost update, instances beyond
``mni`` never evicted); without the job leaderships both would expire the
same resources and both would send every notification; without the outbox
relay's single sender a notification would go out twice or out of order.
And the jobs must not die with the worker that ran them.

Real processes, a real PostgreSQL schema per test, a real receiver on
loopback; no sleeping for events (tests.waiting.until polls with a deadline).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from cse.core.timestamps import format_ts
from tests.conftest import CSEProcess, Http
from tests.e2e.test_http_durability import register
from tests.e2e.test_intercse_helpers import registrar_toml, wait_csr, wait_registered
from tests.flow2_helpers import CB1, CB2, CNT_TO, COMPLETED, CSI1, CSI2, PENDING, Flow2, rqi, smg_toml, window_ahead
from tests.notify_receiver import Received, Receiver
from tests.pg import PG_DSN, pg_schema, store_toml
from tests.waiting import until


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with pg_schema() as name:
        yield name


async def two_workers(cse_process: Any, schema: str) -> tuple[CSEProcess, list[int]]:
    cse: CSEProcess = await cse_process(extra=store_toml(schema), start=False)
    cse.extra_args = ["--workers", "2", "--log-level", "info"]
    await cse.start(timeout=40.0)
    pids = [int(p) for line in cse.lines if line.startswith("WORKERS ") for p in line.split()[1:]]
    assert len(pids) == 2, "".join(cse.lines)
    return cse, pids


def tcp_sockets(pid: int, port: int, state: str) -> int:
    """How many TCP sockets of process ``pid`` on local ``port`` are in ``state`` (0A listen, 01 established)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == state and cols[9] in inodes:
                    n += 1
    return n


async def db(schema: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(PG_DSN)
    try:
        return await conn.fetchval(sql.replace("S.", f'"{schema}".'), *args)
    finally:
        await conn.close()


def cin_con(item: Received) -> str | None:
    rep = ((item.sgn or {}).get("nev") or {}).get("rep") or {}
    cin = rep.get("m2m:cin")
    return str(cin["con"]) if isinstance(cin, dict) else None


async def test_two_workers_exact_counters_unique_names_one_delivery_one_expiry_and_takeover(
        cse_process: Any, http: Http, schema: str) -> None:
    """One pair of workers for all of it: starting two costs seconds."""
    cse, pids = await two_workers(cse_process, schema)
    assert all(tcp_sockets(pid, cse.port, "0A") == 1 for pid in pids), "both workers listen on the one port"
    url = cse.url
    aei = (await register(http, url))["aei"]
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data", "mni": 7}})
    assert r.rsc == 2001, r.body
    async with Receiver() as rcv:
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=23,
                            body={"m2m:sub": {"rn": "s", "nu": [rcv.url], "enc": {"net": [3]}}})
        assert r.rsc == 2001, r.body
        n = 60
        # many connections at once: the kernel spreads them over both workers
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as session:
            many = Http(session)

            async def one(i: int) -> dict[str, Any]:
                r = await many.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4,
                                    body={"m2m:cin": {"con": f"{i:02d}" + "x" * i}})
                assert (r.status, r.rsc) == (201, 2001), r.body
                return dict(r.body["m2m:cin"])

            created = await asyncio.gather(*(one(i) for i in range(n)))
            assert all(tcp_sockets(pid, cse.port, "01") > 0 for pid in pids), "both workers served creates"

            async def dup(_: int) -> int:
                return (await many.send("POST", f"{url}/cse-in/app", fr=aei, ty=3,
                                        body={"m2m:cnt": {"rn": "twin"}})).rsc

            codes = await asyncio.gather(*(dup(i) for i in range(20)))
        assert sorted(codes) == [2001] + [4105] * 19, codes  # one name, one resource (TS-0004 6.6.3.3)

        # every create got its own stateTag, and the container kept exactly mni of them: no lost update
        assert sorted(c["st"] for c in created) == list(range(1, n + 1))
        newest = sorted(created, key=lambda c: c["st"])[-7:]
        cnt = (await http.send("GET", f"{url}/cse-in/app/data", fr=aei)).body["m2m:cnt"]
        assert (cnt["cni"], cnt["cbs"], cnt["st"]) == (7, sum(len(c["con"]) for c in newest), n)
        data_ri = cnt["ri"]
        assert await db(schema, "SELECT count(*) FROM S.doc WHERE pi = $1 AND ty = 4", data_ri) == 7
        assert await db(schema, "SELECT (doc->>'cni')::int FROM S.doc WHERE ri = $1", data_ri) == 7

        # each notification once, in commit (stateTag) order, sent by one worker only
        got: list[str] = []
        while len(got) < n:
            item = await rcv.next_notification(timeout=15.0)
            con = cin_con(item)
            if con is not None:
                got.append(con)
        by_st = [c["con"] for c in sorted(created, key=lambda c: c["st"])]
        assert got == by_st
        # nothing after them but the marker's notification: no second copy of any
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4, body={"m2m:cin": {"con": "marker"}})
        assert r.rsc == 2001
        assert cin_con(await rcv.next_notification(timeout=15.0)) == "marker"
        await until(lambda: db(schema, "SELECT count(*) = 0 FROM S.kv WHERE ns = 'outbox'"), "outbox drained")
    await expiry_once_then_takeover(cse, pids, http, schema, aei)
    assert await cse.stop(signal.SIGTERM) == 0
    assert not [line for line in cse.lines if "Traceback" in line], "".join(cse.lines)


def worker_pids(cse: CSEProcess) -> list[int]:
    """Every worker the supervisor has named (``WORKERS`` lines: at start and after each restart)."""
    return sorted({int(p) for line in cse.lines if line.startswith("WORKERS ") for p in line.split()[1:]})


def leader(cse: CSEProcess, kind: str, pids: list[int]) -> int | None:
    """The worker that last said it runs ``kind``."""
    found = None
    for line in cse.lines:
        m = re.search(r"this worker \(pid (\d+)\) now runs (\w+)", line)
        if m and m.group(2) == kind and int(m.group(1)) in pids:
            found = int(m.group(1))
    return found


async def expiry_once_then_takeover(cse: CSEProcess, pids: list[int], http: Http, schema: str, aei: str) -> None:
    """Each expired resource is removed (and notified) once; SIGKILL the
    worker leading expiry, flushing and delivery: the survivor (or the worker
    the supervisor starts in its place) takes them over."""
    url = cse.url
    async with Receiver() as rcv:
        r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=23,
                            body={"m2m:sub": {"rn": "s", "nu": [rcv.url], "enc": {"net": [4]}}})
        assert r.rsc == 2001, r.body

        async def expiring(rn: str) -> None:
            r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3,
                                body={"m2m:cnt": {"rn": rn, "et": format_ts(time.time() + 2)}})
            assert r.rsc == 2001, r.body

        await asyncio.gather(*(expiring(f"e{i}") for i in range(6)))
        gone: list[str] = []
        while len(gone) < 6:  # one deletion notification per expired container
            rep = ((await rcv.next_notification(timeout=15.0)).sgn or {}).get("nev", {}).get("rep", {})
            gone.append(rep["m2m:cnt"]["rn"])
        assert sorted(gone) == [f"e{i}" for i in range(6)]
        # settled and deleted: a notification still pending at a crash is sent again (at least once)
        await until(lambda: db(schema, "SELECT count(*) = 0 FROM S.kv WHERE ns = 'outbox'"), "outbox drained")

        first = leader(cse, "expiry", pids)
        assert first is not None, "".join(cse.lines)
        assert leader(cse, "store_and_forward", pids) is not None and leader(cse, "outbox", pids) is not None
        os.kill(first, signal.SIGKILL)  # holding the expiry, flush and (maybe) outbox leaderships
        other = next(p for p in pids if p != first)

        async def reaped() -> bool:
            return not os.path.exists(f"/proc/{first}")

        await until(reaped, "the killed worker gone", timeout=10.0)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            fresh = Http(session)  # new connections: not to the killed worker
            r = await fresh.send("POST", f"{url}/cse-in/app", fr=aei, ty=3,
                                 body={"m2m:cnt": {"rn": "late", "et": format_ts(time.time() + 1)}})
            assert r.rsc == 2001, r.body
            rep = ((await rcv.next_notification(timeout=15.0)).sgn or {}).get("nev", {}).get("rep", {})
            assert rep["m2m:cnt"]["rn"] == "late"  # expired and notified by the survivor
            assert (await fresh.send("GET", f"{url}/cse-in/app/late", fr=aei)).rsc == 4004
        # the jobs moved off the killed worker: to the survivor, or to the worker the
        # supervisor started in its place (cse/workers.py), whichever claimed them first
        for kind in ("expiry", "store_and_forward", "outbox"):
            async def moved(kind: str = kind) -> bool:
                who = leader(cse, kind, worker_pids(cse))
                return who is not None and who != first
            await until(moved, f"{kind} taken over from the killed worker", timeout=15.0)

        async def replaced() -> bool:  # the supervisor names the survivor and the killed one's replacement
            return len(worker_pids(cse)) == 3
        await until(replaced, "a worker started in place of the killed one", timeout=40.0)
        assert other in worker_pids(cse), "".join(cse.lines)
        assert rcv.pending() == [], "each expiry notified once"


async def test_stored_session_requests_are_delivered_once_each_by_two_workers(
        cse_process: Any, http: Http, schema: str) -> None:
    """CSE1 of the flow-2 pair (docs/sessions.md "Store-and-forward") on two
    workers: requests stored by either are flushed by the one leader, each
    delivered once."""
    cse1: CSEProcess = await cse_process(cse_id=CSI1, name=CB1, subdir="cse1", start=False,
                                         extra=store_toml(schema) + smg_toml())
    cse1.extra_args = ["--workers", "2"]
    await cse1.start(timeout=40.0)
    cse2 = await cse_process(cse_id=CSI2, name=CB2, subdir="cse2",
                             extra=registrar_toml(CSI1, CB1, cse1.url) + smg_toml())
    await wait_registered(http, cse2, CSI1, CB1)
    await wait_csr(http, cse1, f"{CB1}/id-cse2")
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        _, sch = window_ahead(1.5)
        await f.policy(sch, hop=CSI1)
        sent = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            f.http = Http(session)  # a connection per request: both workers store some
            for i in range(6):
                rq = rqi(f"w{i}")
                r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc(f"#{i}")}},
                                 rq=rq)
                assert r.rsc == 1001, (i, r.rsc, r.body)
                sent.append((rq, r.body["m2m:uri"]))
        f.http = http
        done = [await f.poll_request(ri, lambda q: q["rs"] != PENDING, f"stored request {rq}") for rq, ri in sent]
        assert all(d["rs"] == COMPLETED and d["ors"]["rsc"] == 2001 for d in done), done
        # CREATEs into one parent may overlap in flight (cse.csf.smg.queue.may_overlap): each once, any order
        assert sorted(f.dec(c["con"]) for c in await f.instances()) == [f"#{i}" for i in range(6)]
        assert sorted(h["rqi"] for h in (await f.session_at(cse2))["hst"]) == sorted(rq for rq, _ in sent)
        assert (await f.container())["cni"] == 6
    assert await cse1.stop(signal.SIGTERM) == 0

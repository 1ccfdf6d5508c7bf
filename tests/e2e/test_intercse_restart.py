"""Registration across start order and restarts, with real processes.

Why: CSEs of a deployment start in any order and restart independently.
A registree whose registrar is not up yet must still start and serve its
own AEs, then register as soon as the registrar appears; a registree that
restarts (same or new port, kept or lost store) must end up registered with
forwarding working again; a registrar that restarts with an empty store
must be re-taught by its registrees within a few check intervals -- without
anyone restarting anything by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import (
    free_port,
    register_ae,
    registrar_toml,
    start_pair,
    until,
    wait_csr,
    wait_registered,
)


async def _forwarded_ok(http: Http, url: str) -> bool:
    return (await http.send("GET", url, fr=ADMIN)).rsc == 2000


# -- 6. registrar down at start, then up --------------------------------------------------

async def test_registrar_down_at_start_then_up(cse_process: Callable[..., Any], http: Http) -> None:
    port = free_port()
    registrar_url = f"http://127.0.0.1:{port}"
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=registrar_toml("/id-cse1", "cse1", registrar_url))
    # READY and serving locally while not registered
    assert (await http.send("GET", f"{cse2.url}/cse2", fr=ADMIN)).rsc == 2000
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    assert (await http.send("GET", f"{cse2.url}/cse2/ae2", fr=aei2)).rsc == 2000
    none_yet = await http.send("GET", f"{cse2.url}/cse2?fu=1&ty=16", fr=ADMIN)
    assert none_yet.rsc == 2000 and none_yet.body["m2m:uril"] == []
    unrouted = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)
    assert unrouted.rsc != 2000, unrouted.body

    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1", start=False)
    cse1.port = port
    await cse1.start()
    assert cse1.url == registrar_url
    await wait_registered(http, cse2, "/id-cse1", "cse1", timeout=20)
    at1 = await wait_csr(http, cse1, "cse1/id-cse2")
    assert at1["poa"] == [cse2.url]
    assert await until(lambda: _forwarded_ok(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2")
    found = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2", fr=ADMIN)
    assert found.rsc == 2000 and found.body["m2m:uril"] == ["/id-cse2/cse2/ae2"], found.body


# -- 7. peer restarts ------------------------------------------------------------------------

async def test_registree_restart_on_the_same_port(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    await register_ae(http, cse2, "cse2", "ae2")
    port = cse2.port
    assert await cse2.stop() == 0
    cse2.port = port
    await cse2.start()
    assert cse2.port == port
    await wait_registered(http, cse2, "/id-cse1", "cse1")
    # forwarding works at once (the stale pooled connection to the old process is not reused)
    first = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)
    assert first.rsc == 2000, first.body
    # the AE registered before the restart is still there, reachable through CSE1
    found = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2", fr=ADMIN)
    assert found.rsc == 2000 and found.body["m2m:uril"] == ["/id-cse2/cse2/ae2"], found.body
    csrs = await http.send("GET", f"{cse1.url}/cse1?fu=1&ty=16", fr=ADMIN)
    assert csrs.body["m2m:uril"] == ["cse1/id-cse2"]


async def test_registree_restart_on_a_new_port_updates_the_registrar(cse_process: Callable[..., Any],
                                                                      http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    old = cse2.url
    assert await cse2.stop() == 0
    cse2.port = 0
    await cse2.start()
    assert cse2.url != old

    async def moved() -> bool:
        r = await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)
        return r.rsc == 2000 and r.body["m2m:csr"]["poa"] == [cse2.url]
    await until(moved, "CSE1's remoteCSE for CSE2 to carry the new poa")
    assert await until(lambda: _forwarded_ok(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2 on the new port")


async def test_registree_restart_with_a_fresh_store(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    assert await cse2.stop() == 0
    cse2.extra_args = ["--db", ":memory:"]
    await cse2.start()
    await wait_registered(http, cse2, "/id-cse1", "cse1")
    at2 = await wait_csr(http, cse2, "cse2/id-cse1")
    assert at2["csi"] == "/id-cse1" and at2["poa"] == [cse1.url]
    at1 = await wait_csr(http, cse1, "cse1/id-cse2")
    assert at1["poa"] == [cse2.url]
    assert (await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)).rsc == 2000


async def test_registrar_restart_with_a_fresh_store_is_re_registered(cse_process: Callable[..., Any],
                                                                     http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http, cse2_registrar={"check_interval_s": 0.5})
    await wait_csr(http, cse1, "cse1/id-cse2")
    port = cse1.port
    assert await cse1.stop() == 0
    cse1.extra_args = ["--db", ":memory:"]
    cse1.port = port
    await cse1.start()
    assert cse1.port == port
    # a few check intervals (0.5 s) plus the retry backoff, not minutes
    at1 = await wait_csr(http, cse1, "cse1/id-cse2", timeout=10)
    assert at1["csi"] == "/id-cse2" and at1["poa"] == [cse2.url]
    assert await until(lambda: _forwarded_ok(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2", timeout=5)
    assert (await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)).rsc == 2000


async def test_registrar_restart_keeping_its_store(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    port = cse1.port
    assert await cse1.stop() == 0
    cse1.port = port
    await cse1.start()
    at1 = await wait_csr(http, cse1, "cse1/id-cse2")
    assert at1["poa"] == [cse2.url]
    assert await until(lambda: _forwarded_ok(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2", timeout=5)
    assert await until(lambda: _forwarded_ok(http, f"{cse2.url}/~/id-cse1/cse1"), "CSE2 -> CSE1", timeout=5)

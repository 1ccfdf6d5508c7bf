"""Peer faults: next hop down, silent, slow, resetting, talking garbage, coming back;
registrar down for a long time; store-and-forward across an outage; bounded resources.

Why (peer faults): a CSE's peers fail in every way a network
allows. Whatever they do, a request must fail fast with the right code (5103
unreachable, 4008 when the peer says nothing within ``[forwarding]
timeout_s`` -- not later) or be stored as the session policy says, nothing
may hang, the CSE must recover by itself when the peer is back, and
thousands of failures must not leave tasks, connections or memory behind.

Real CSE processes on loopback; the faulty peers are small asyncio servers
written here (:class:`FakePeer`), registered at the CSE as a ``<remoteCSE>``
(``/id-fake``) so requests for ``/~/id-fake/...`` are forwarded to them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import free_port, registrar_toml, wait_registered
from tests.flow2_helpers import CNT_TO, COMPLETED, PENDING, Flow2, rqi, start_pair as start_flow2_pair
from tests.notify_receiver import Receiver
from tests.waiting import until

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)

TIMEOUT_S = 1.0  # the CSE's [forwarding] timeout_s in these tests
FAST = 2.0       # "fails fast": well under the forwarding timeout plus slack
FAKE = "/id-fake"


class FakePeer:
    """A TCP server on a fixed loopback port that misbehaves as told.

    Modes: ``ok`` (answers a valid oneM2M 2000), ``silent`` (reads, never
    answers), ``slow`` (answers ``ok`` after ``delay`` seconds), ``reset``
    (aborts the TCP connection on the first bytes), ``garbage`` (writes
    bytes that are not HTTP and closes).
    """

    def __init__(self, mode: str, *, port: int = 0, delay: float = 0.0) -> None:
        self.mode = mode
        self.port = port
        self.delay = delay
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakePeer:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if self.mode == "reset":
                    writer.transport.abort()
                    return
                if self.mode == "garbage":
                    writer.write(b"\x00\x01 this is not HTTP\r\n\r\n")
                    await writer.drain()
                    writer.close()
                    return
                if self.mode == "silent":
                    await asyncio.Event().wait()  # until the CSE gives up and closes
                if self.mode == "slow":
                    await asyncio.sleep(self.delay)
                rqi = next((ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                            if ln.lower().startswith(b"x-m2m-ri:")), b"")
                body = json.dumps({"m2m:cb": {"ri": "fake", "rn": "fk", "csi": FAKE, "ty": 5}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nX-M2M-RSC: 2000\r\nX-M2M-RI: " + rqi
                             + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> FakePeer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def cse_with_fake_peer(cse_process: Callable[..., Any], http: Http, peer_url: str) -> Any:
    """A CSE (forwarding timeout 1 s) holding a <remoteCSE> /id-fake at ``peer_url``."""
    cse = await cse_process(extra=f"\n[forwarding]\ntimeout_s = {TIMEOUT_S}\n")
    r = await http.send("POST", f"{cse.url}/cse-in", fr=FAKE, ty=16, body={"m2m:csr": {
        "cb": f"{FAKE}/fk", "csi": FAKE, "rr": True, "poa": [peer_url], "srv": ["3"]}})
    assert r.rsc == 2001, r.body
    return cse


async def timed(http: Http, url: str) -> tuple[int, float, Any]:
    start = time.monotonic()
    r = await http.send("GET", url, fr=ADMIN)
    return r.rsc, time.monotonic() - start, r.body


def assert_error(rsc: int, body: Any, want: int) -> None:
    assert rsc == want, (rsc, body)
    assert isinstance(body, dict) and body.get("m2m:dbg"), body


# -- forwarding to a faulty next hop ----------------------------------------------------

async def test_next_hop_down_is_5103_at_once(cse_process: Callable[..., Any], http: Http) -> None:
    cse = await cse_with_fake_peer(cse_process, http, f"http://127.0.0.1:{free_port()}")
    rsc, took, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
    assert_error(rsc, body, 5103)
    assert took < FAST, took


@pytest.mark.parametrize("mode", ["silent", "slow"])
async def test_silent_or_slow_next_hop_is_4008_after_the_timeout_not_later(
        cse_process: Callable[..., Any], http: Http, mode: str) -> None:
    async with FakePeer(mode, delay=3 * TIMEOUT_S) as peer:
        cse = await cse_with_fake_peer(cse_process, http, peer.url)
        rsc, took, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
        assert_error(rsc, body, 4008)
        assert 0.9 * TIMEOUT_S <= took < TIMEOUT_S + 1.5, took
        assert peer.requests == 1


@pytest.mark.parametrize("mode", ["reset", "garbage"])
async def test_resetting_or_garbage_next_hop_is_a_clean_5103(
        cse_process: Callable[..., Any], http: Http, mode: str) -> None:
    async with FakePeer(mode) as peer:
        cse = await cse_with_fake_peer(cse_process, http, peer.url)
        for _ in range(3):
            rsc, took, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
            assert_error(rsc, body, 5103)
            assert took < FAST, took
        assert peer.requests >= 1
        ok = await http.send("GET", f"{cse.url}/cse-in", fr=ADMIN)
        assert ok.rsc == 2000


async def test_next_hop_comes_back_without_a_restart(cse_process: Callable[..., Any], http: Http) -> None:
    port = free_port()
    cse = await cse_with_fake_peer(cse_process, http, f"http://127.0.0.1:{port}")
    rsc, _, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
    assert_error(rsc, body, 5103)
    async with FakePeer("silent", port=port):
        rsc, _, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
        assert_error(rsc, body, 4008)
    async with FakePeer("ok", port=port) as peer:
        rsc, took, body = await timed(http, f"{cse.url}/~{FAKE}/fk")
        assert rsc == 2000 and body["m2m:cb"]["csi"] == FAKE, (rsc, body)
        assert peer.requests == 1
    rsc, _, body = await timed(http, f"{cse.url}/~{FAKE}/fk")  # down again
    assert_error(rsc, body, 5103)


# -- the registrar down at start-up, for a long time --------------------------------------

async def test_registrar_down_at_start_then_up(cse_process: Callable[..., Any], http: Http,
                                                long_run: bool) -> None:
    """CSE2 starts and serves while its registrar is down; registers once it is up.

    CI: down for ~3 s; ``--long``: down for 2 minutes. The registrar link
    backs off up to 30 s between attempts, so registration follows within
    that plus the check."""
    port = free_port()
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=registrar_toml("/id-cse1", "cse1", f"http://127.0.0.1:{port}",
                                                  check_interval_s=0.2, timeout_s=0.5))
    down_for = 120.0 if long_run else 3.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + down_for
    served = 0
    while loop.time() < deadline:  # local requests are served the whole time
        r = await http.send("GET", f"{cse2.url}/cse2", fr=ADMIN)
        assert r.rsc == 2000, r.body
        served += 1
        aei = await http.send("POST", f"{cse2.url}/cse2", fr="C", ty=2, body={"m2m:ae": {
            "rn": f"ae{served}", "api": "Nx", "rr": False, "srv": ["3"]}})
        assert aei.rsc == 2001, aei.body
        far = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)
        assert far.rsc in (4004, 5103), far.body  # no route yet / registrar unreachable: never a hang
        await asyncio.sleep(0.25)  # pacing of the load, not a wait for an event
    assert served >= 5
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1", start=False)
    cse1.port = port
    await cse1.start()
    await wait_registered(http, cse2, "/id-cse1", "cse1", timeout=45.0)
    r = await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)
    assert r.rsc == 2000 and r.body["m2m:csr"]["poa"] == [cse2.url], r.body


# -- store-and-forward while the next hop is down ----------------------------------------

async def test_session_request_stored_while_next_hop_down_and_delivered_when_back(
        cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_flow2_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        await f.policy(["* * * * * * *"])  # store-and-forward, window always open
        await cse2.stop()
        rq = rqi("down")
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("kept")}}, rq=rq)
        assert r.rsc == 1001, (r.rsc, r.body)
        ri = r.body["m2m:uri"]
        assert (await f.request_res(ri))["rs"] == PENDING
        await cse2.start()  # same port
        done = await f.poll_request(ri, lambda q: q["rs"] != PENDING, "delivery once CSE2 is back", 30)
        assert done["rs"] == COMPLETED and done["ors"]["rsc"] == 2001, done
        assert (await f.container())["cni"] == 1


# -- resources stay bounded -----------------------------------------------------------------

def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_thousands_of_failures_leave_nothing_behind(cse_process: Callable[..., Any], http: Http,
                                                          long_run: bool) -> None:
    """2,000 requests at a dead peer (20,000 with --long) and 200 at a silent one,
    50 at a time: RSS grows by less than 20 MB, open FDs return to within 10
    of the start, and the CSE still answers at once."""
    dead = await cse_with_fake_peer(cse_process, http, f"http://127.0.0.1:{free_port()}")
    assert dead.proc is not None
    pid = dead.proc.pid
    sem = asyncio.Semaphore(50)

    async def one(url: str, want: int) -> None:
        async with sem:
            r = await http.send("GET", url, fr=ADMIN)
            assert r.rsc == want, r.body

    warm = [one(f"{dead.url}/~{FAKE}/fk", 5103) for _ in range(100)]
    await asyncio.gather(*warm)
    rss0, fd0 = _rss_kb(pid), _fds(pid)
    n = 20_000 if long_run else 2_000
    await asyncio.gather(*(one(f"{dead.url}/~{FAKE}/fk", 5103) for _ in range(n)))
    async with FakePeer("silent") as peer:
        r = await http.send("PUT", f"{dead.url}/cse-in/id-fake", fr=FAKE,
                            body={"m2m:csr": {"poa": [peer.url]}})
        assert r.rsc == 2004, r.body
        await asyncio.gather(*(one(f"{dead.url}/~{FAKE}/fk", 4008) for _ in range(200)))
    grown_mb = (_rss_kb(pid) - rss0) / 1024
    assert grown_mb < 20, f"RSS grew by {grown_mb:.1f} MB"
    assert await until(lambda: _fds_settled(pid, fd0 + 10), "open FDs back near the start", 10)
    rsc, took, _ = await timed(http, f"{dead.url}/cse-in")
    assert rsc == 2000 and took < FAST


async def _fds_settled(pid: int, bound: int) -> bool:
    return _fds(pid) <= bound

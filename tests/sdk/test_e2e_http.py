"""The SDK against real CSE processes over loopback HTTP.

HttpTransport CRUD and errors, TransportError, then subscriptions end to end
(verification, ``nev.net`` 3 with the contentInstance in ``rep``, ``nu`` as
URL and as AE-ID via ``poa``, deletion notification), non-blocking rt=1/rt=2,
and the ``samples/monitor.py`` AE. Waits are on queues/lines with timeouts.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ae_sdk import AEClient, HttpTransport, M2MResponseError, TransportError, notified_resource
from tests.childenv import checkout_first

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


class Inbox:
    """A subscription callback collecting notifications on a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __call__(self, sgn: dict[str, Any]) -> None:  # async on purpose: both kinds work
        self.queue.put_nowait(sgn)

    async def get(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def test_http_transport_crud_and_errors(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(HttpTransport(cse.url, timeout=TIMEOUT)) as client:
        ae = await client.register("httpapp")
        await client.create_container("httpapp", "data", lbl=["room:kitchen"])
        cin = await client.create_content_instance("httpapp/data", "21.5", cnf="text/plain:0")
        assert (await client.retrieve("/id-in/cse-in/httpapp/data/la"))["con"] == "21.5"
        assert (await client.retrieve(client.ri_path(cin["ri"])))["cs"] == 4
        assert await client.discover("httpapp", ty=3, lbl=["room:kitchen", "room:x"]) == ["cse-in/httpapp/data"]
        assert (await client.update("httpapp/data", {"mni": 1}))["mni"] == 1
        assert (await client.retrieve("httpapp", atrl="api"))["api"] == "Nsdk-app"
        with pytest.raises(M2MResponseError) as info:
            await client.create_container("httpapp", "data")
        assert info.value.rsc == 4105 and "data" in info.value.dbg
        assert client.last_response is not None and client.last_response.rsc == 4105
        await client.delete("httpapp/data")
        with pytest.raises(M2MResponseError) as info:
            await client.retrieve("httpapp/data")
        assert info.value.rsc == 4004
        await client.deregister()
    again = AEClient(cse.url, originator="CAdmin")
    with pytest.raises(M2MResponseError) as info:
        await again.retrieve(again.ri_path(ae["ri"]))
    assert info.value.rsc == 4004
    await again.close()


async def test_transport_error_when_nobody_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AEClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(TransportError) as info:
            await client.register("x")
    assert f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(ValueError):
        HttpTransport("127.0.0.1:8080")


async def test_subscription_end_to_end(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(cse.url) as client:
        server = await client.start_notifications()
        await client.register("subapp")
        await client.create_container("subapp", "data")
        inbox = Inbox()
        sub = await client.subscribe("subapp/data", inbox, net=(3,), rn="sub1")
        assert sub["nu"] == [server.url] and sub["enc"]["net"] == [3] and sub["nct"] == 1
        verification = await server.next(TIMEOUT)  # sent by the CSE while creating the subscription
        assert verification.kind == "verification"
        assert verification.content["vrq"] is True
        assert verification.sur is not None and verification.sur.endswith(sub["ri"])
        cin = await client.create_content_instance("subapp/data", "21.5")
        sgn = await inbox.get()
        assert sgn["nev"]["net"] == 3
        assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "21.5"
        assert sgn["nev"]["rep"]["m2m:cin"]["ri"] == cin["ri"]
        assert notified_resource(sgn) == sgn["nev"]["rep"]["m2m:cin"]
        await client.create_content_instance("subapp/data", "22.0")
        assert notified_resource(await inbox.get())["con"] == "22.0"  # type: ignore[index]


async def test_subscription_via_poa(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(cse.url) as client:
        server = await client.start_notifications()
        await client.register("poaapp", poa=server.url)
        await client.create_container("poaapp", "data")
        inbox = Inbox()
        sub = await client.subscribe("poaapp/data", inbox, via_poa=True)
        assert sub["nu"] == [client.originator]
        await client.create_content_instance("poaapp/data", "via-poa")
        sgn = await inbox.get()
        assert sgn["nev"]["net"] == 3 and sgn["nev"]["rep"]["m2m:cin"]["con"] == "via-poa"


async def test_unsubscribe_sends_deletion_notification(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(cse.url) as client:
        await client.start_notifications()
        await client.register("delapp")
        await client.create_container("delapp", "data")
        inbox, deleted = Inbox(), Inbox()
        sub = await client.subscribe("delapp/data", inbox, on_deleted=deleted)
        assert sub["su"] == client.notifications.url  # type: ignore[union-attr]
        await client.unsubscribe(sub)
        sud = await deleted.get()
        assert sud["sud"] is True and sud["sur"].endswith(sub["ri"])
        assert inbox.queue.empty()


async def test_non_blocking_requests_over_http(cse_process: Callable[..., Any]) -> None:
    cse = await cse_process()
    async with AEClient(cse.url) as client:
        await client.start_notifications()
        await client.register("nbapp")
        ref = await client.create("nbapp", 3, {}, rn="sync", rt=1)
        ors = await client.wait_request(ref, TIMEOUT)
        assert ors["rsc"] == 2001 and ors["pc"]["m2m:cnt"]["rn"] == "sync"
        results = Inbox()
        ref = await client.create("nbapp", 3, {}, rn="async", rt=2, on_result=results)
        rsp = await results.get()
        assert rsp["rsc"] == 2001 and rsp["pc"]["m2m:cnt"]["rn"] == "async"
        assert ref


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    assert raw, "monitor.py exited early"
    return raw.decode().strip()


async def _run_monitor(url: str) -> asyncio.subprocess.Process:
    # PYTHONPATH: the sample must work whether or not ae_sdk is installed
    env = {**checkout_first(), "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "samples" / "monitor.py"), url, cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def _run_sensor(url: str, count: int) -> list[str]:
    """``samples/sensor.py --count N``; the readings it posted."""
    env = {**checkout_first(), "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "samples" / "sensor.py"), url, "--count", str(count), "--interval", "0",
        cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, out.decode()
    return [ln.split(": ", 1)[1].split(" ", 1)[0] for ln in out.decode().splitlines() if ln.startswith("reading ")]


async def test_monitor_sample_shows_what_the_sensor_sample_posts(cse_process: Callable[..., Any]) -> None:
    """The two samples work together: the monitor watches the sensor's readings."""
    cse = await cse_process()
    await _run_sensor(cse.url, 1)  # the sensor's AE and container, readable by Cmonitor
    for run in range(2):  # the second run re-uses the AE and replaces the subscription
        proc = await _run_monitor(cse.url)
        try:
            assert (await _line(proc)).startswith("monitoring")
            posted = await _run_sensor(cse.url, 2)
            assert [await _line(proc), await _line(proc)] == posted
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(proc.wait(), TIMEOUT)
        assert code == 0, f"run {run}: exit code {code}"


def test_monitor_sample_is_short() -> None:
    lines = (ROOT / "samples" / "monitor.py").read_text().splitlines()
    code = [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    assert len(code) < 20

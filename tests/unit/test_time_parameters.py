"""Request time parameters through the pipeline (TS-0001 8.1.2 Request
Expiration Timestamp, Result Expiration Timestamp, Operation Execution Time;
docs/onem2m.md "Time parameters").

The CSE runs on a fake clock; its ``wait_until`` records the time it is
asked to wait for and moves the clock there, so an operation held until its
OET is seen to run at the OET without the test sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation
from cse.core.timestamps import format_ts, parse_ts
from cse.store.memory import MemoryStore
from tests.conftest import FakeClock, InProc
from tests.unit.pipeline import dbg

CREATE, RETRIEVE = Operation.CREATE, Operation.RETRIEVE
ADMIN = "CAdmin"


@dataclass
class Timed:
    ip: InProc
    aei: str
    waits: list[float] = field(default_factory=list)


@pytest.fixture
async def timed() -> AsyncIterator[Timed]:
    clock = FakeClock()
    waits: list[float] = []

    async def wait_until(t: float) -> None:
        waits.append(t)
        clock.t = max(clock.t, t)

    config = load_config(None, db=":memory:")
    config = replace(config, limits=replace(config.limits, max_oet_delay_s=10.0))
    cse = CSE(config, store=MemoryStore(), clock=clock, wait_until=wait_until)
    await cse.start(serve_http=False)
    try:
        ip = InProc(cse, clock)
        yield Timed(ip, await ip.register("app"), waits)
    finally:
        await cse.stop()


async def mk(t: Timed, rn: str, **kw: Any) -> Any:
    return await t.ip.call(CREATE, "cse-in/app", t.aei, ty=3, pc={"m2m:cnt": {"rn": rn}}, **kw)


async def exists(t: Timed, rn: str) -> bool:
    return (await t.ip.call(RETRIEVE, f"cse-in/app/{rn}", ADMIN)).rsc == 2000


@pytest.mark.parametrize("relative", [True, False])
async def test_operation_runs_at_its_execution_time(timed: Timed, relative: bool) -> None:
    """OET 2 s ahead: the CREATE is held until then and the container is
    created at the OET (its ct), not when the request arrived."""
    now = timed.ip.clock.now()
    oet = "2000" if relative else format_ts(now + 2)
    r = await mk(timed, "later", oet=oet)
    assert r.rsc == 2001, r.pc
    assert timed.waits == [now + 2]
    assert parse_ts(r.pc["m2m:cnt"]["ct"]) == now + 2


async def test_oet_already_passed_runs_at_once(timed: Timed) -> None:
    now = timed.ip.clock.now()
    r = await mk(timed, "now", oet=format_ts(now - 5))
    assert r.rsc == 2001, r.pc
    assert timed.waits == []


async def test_oet_beyond_the_limit_is_refused(timed: Timed) -> None:
    r = await mk(timed, "far", oet="60000")  # 60 s ahead, the CSE holds at most 10 s
    assert r.rsc == 5207, r.pc
    assert "max_oet_delay_s" in dbg(r)
    assert timed.waits == []
    assert not await exists(timed, "far")


@pytest.mark.parametrize("kw,names", [
    ({"rqet": "10000", "rset": "5000"}, ("RST", "RET")),          # the result would expire first
    ({"rqet": "5000", "oet": "8000"}, ("OET", "RET")),            # executed after the request expired
    ({"rset": "5000", "oet": "8000"}, ("OET", "RST")),            # executed after its result expired
    ({"rqet": "9000", "rset": "9000", "oet": "9500"}, ("OET", "RET")),
])
async def test_time_parameters_out_of_order(timed: Timed, kw: dict[str, str], names: tuple[str, ...]) -> None:
    """TS-0001 8.1.2: OET <= RET <= RST; anything else cannot be honoured: 4000."""
    r = await mk(timed, "bad", **kw)
    assert r.rsc == 4000, (kw, r.pc)
    text = dbg(r)
    assert all(n in text for n in names), text
    assert timed.waits == []
    assert not await exists(timed, "bad")


async def test_time_parameters_in_order(timed: Timed) -> None:
    now = timed.ip.clock.now()
    r = await mk(timed, "ok", rqet="5000", rset="9000", oet="1000")
    assert r.rsc == 2001, r.pc
    assert timed.waits == [now + 1]


async def test_oet_of_a_request_for_another_cse_is_not_waited_for(timed: Timed) -> None:
    """The hosting CSE executes at the OET; a transit CSE passes it on at once
    (here: no route, 4004 without waiting)."""
    r = await timed.ip.call(RETRIEVE, "/id-far/cse-far", timed.aei, oet="5000")
    assert r.rsc == 4004, r.pc
    assert timed.waits == []


async def test_non_blocking_request_is_held_in_the_background(timed: Timed) -> None:
    """rt=1: accepted at once (1001), executed at the OET; an OET beyond the
    limit is refused before anything is accepted or stored."""
    ip, now = timed.ip, timed.ip.clock.now()
    r = await mk(timed, "far", oet="60000", rt=1)
    assert r.rsc == 5207, r.pc
    assert "max_oet_delay_s" in dbg(r)
    r = await ip.call(RETRIEVE, "cse-in", ADMIN, query={"fu": ("1",), "ty": ("17",)})
    assert r.pc["m2m:uril"] == []  # no <request> was stored for it
    r = await mk(timed, "later", oet="3000", rt=1)
    assert r.rsc == 1001, r.pc
    await asyncio.wait_for(ip.cse.nonblocking.stop(), 5)  # the background request has run
    assert timed.waits == [now + 3]
    r = await ip.call(RETRIEVE, "cse-in/app/later", ADMIN)
    assert r.rsc == 2000 and parse_ts(r.pc["m2m:cnt"]["ct"]) == now + 3

"""Response types 4 (flexBlocking) and 5 (noResponse) (docs/onem2m.md
"Non-blocking requests"): a quick operation under rt 4 is answered blocking,
a slow one becomes a <request> (1001, or 1002 with RTU); rt 5 is an empty
1001 at once, the operation still runs, and the number of them running is
bounded. A slow operation is one held by its X-M2M-OET behind a gate the
test opens (no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from cse.store.memory import MemoryStore
from tests.conftest import FakeClock, InProc
from tests.notify_receiver import Receiver

CREATE, RETRIEVE = Operation.CREATE, Operation.RETRIEVE


@dataclass
class Gated:
    ip: InProc
    aei: str
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def gated() -> AsyncIterator[Gated]:
    """A CSE whose operations held by an OET wait until ``gate`` is set."""
    clock = FakeClock()
    gate, held = asyncio.Event(), asyncio.Event()

    async def wait_until(t: float) -> None:
        held.set()
        await gate.wait()
        clock.t = max(clock.t, t)

    config = load_config(None, db=":memory:")
    config = replace(config, limits=replace(config.limits, max_oet_delay_s=10.0, flex_blocking_s=0.05,
                                            max_unanswered=1))
    cse = CSE(config, store=MemoryStore(), clock=clock, wait_until=wait_until)
    await cse.start(serve_http=False)
    try:
        ip = InProc(cse, clock)
        yield Gated(ip, await ip.register("app"), gate, held)
    finally:
        gate.set()
        await cse.stop()


def later(g: Gated) -> str:
    return format_ts(g.ip.clock.now() + 5)


async def cnt(g: Gated, rn: str, **kw: Any) -> Any:
    return await g.ip.call(CREATE, "cse-in/app", g.aei, ty=3, pc={"m2m:cnt": {"rn": rn}}, **kw)


async def test_rt4_quick_operation_is_answered_blocking(gated: Gated) -> None:
    r = await cnt(gated, "quick", rt=4)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:cnt"]["rn"] == "quick"
    reqs = await gated.ip.cse.ctx.store.children(gated.ip.cse.ctx.identity.cb_ri, 17)
    assert reqs == []  # no <request> was kept for it


async def test_rt4_slow_operation_becomes_non_blocking(gated: Gated) -> None:
    r = await cnt(gated, "slow", rt=4, oet=later(gated))
    assert r.rsc == 1001, r.pc
    ri = r.pc["m2m:uri"]
    pending = await gated.ip.call(RETRIEVE, ri, gated.aei)
    assert pending.rsc == 2000 and pending.pc["m2m:req"]["rs"] == 3  # PENDING
    gated.gate.set()
    await asyncio.wait_for(gated.ip.cse.nonblocking.stop(), 5)
    done = (await gated.ip.call(RETRIEVE, ri, gated.aei)).pc["m2m:req"]
    assert done["rs"] == 1 and done["ors"]["rsc"] == 2001
    assert done["ors"]["pc"]["m2m:cnt"]["rn"] == "slow"


async def test_rt4_bad_rset_is_refused_before_the_operation_runs(gated: Gated) -> None:
    r = await cnt(gated, "never", rt=4, rset="not-a-time")
    assert r.rsc == 4000, r.pc
    assert (await gated.ip.call(RETRIEVE, "cse-in/app/never", gated.aei)).rsc == 4004


async def test_rt5_answers_empty_at_once_and_still_performs(gated: Gated) -> None:
    r = await cnt(gated, "quiet", rt=5, oet=later(gated))
    assert r.rsc == 1001 and r.pc is None
    await asyncio.wait_for(gated.held.wait(), 5)
    assert (await gated.ip.call(RETRIEVE, "cse-in/app/quiet", gated.aei)).rsc == 4004  # not yet
    reqs = await gated.ip.cse.ctx.store.children(gated.ip.cse.ctx.identity.cb_ri, 17)
    assert reqs == []  # nothing stored to report a result
    gated.gate.set()
    await asyncio.wait_for(gated.ip.cse.nonblocking.stop(), 5)
    assert (await gated.ip.call(RETRIEVE, "cse-in/app/quiet", gated.aei)).rsc == 2000


async def test_rt5_running_requests_are_bounded(gated: Gated) -> None:
    assert (await cnt(gated, "one", rt=5, oet=later(gated))).rsc == 1001
    r = await cnt(gated, "two", rt=5, oet=later(gated))
    assert r.rsc == 5207 and "noResponse" in r.pc["m2m:dbg"], r.pc
    gated.gate.set()
    await asyncio.wait_for(gated.ip.cse.nonblocking.stop(), 5)
    assert (await cnt(gated, "three", rt=5)).rsc == 1001
    await asyncio.wait_for(gated.ip.cse.nonblocking.stop(), 5)
    assert (await gated.ip.call(RETRIEVE, "cse-in/app/three", gated.aei)).rsc == 2000


async def test_rt4_turned_non_blocking_with_rtu_notifies_the_result(gated: Gated, receiver: Receiver) -> None:
    r = await cnt(gated, "told", rt=4, rtu=(receiver.url,), oet=later(gated))
    assert r.rsc == 1002, r.pc
    gated.gate.set()
    assert (await receiver.next()).is_verification
    rsp = (await receiver.next()).body["m2m:rsp"]
    assert rsp["rsc"] == 2001 and rsp["pc"]["m2m:cnt"]["rn"] == "told"

"""Clock jumps (docs/troubleshooting.md "Clock jumps"), on an injected wall
clock and an injected monotonic clock, with a durable store in a temp dir
so the CSE can be restarted: a restart far ahead holds expiry (WARNING
naming both times) until it is accepted or the clock has been consistent
for ``clock_settle_s``; a backward step is logged and deletes nothing; the
expiry and store-and-forward timers notice a wall-clock step within one
slice; a stored session request whose ``<request>`` expires ends with a
recorded failure (4008), never silently."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cse.app import CSE
from cse.binding.scheduler import DeadlineTimer
from cse.config import Config, load_config
from cse.core.ids import Target
from cse.core.messages import Operation, Request
from cse.store.tinydb_store import TinyDBStore
from tests.conftest import ADMIN, FakeClock
from tests.flow2_helpers import FAILED, PENDING, LocalSession, rqi, window_sch
from tests.notify_receiver import Receiver

CREATE, RETRIEVE = Operation.CREATE, Operation.RETRIEVE
YEAR = 365 * 86400.0


class FakeMonotonic:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Node:
    """A CSE on a durable store under ``tmp``, restartable with the same clocks."""

    def __init__(self, tmp: Path) -> None:
        self.db = str(tmp / "cse.db")
        self.clock = FakeClock()
        self.mono = FakeMonotonic()
        self._n = 0

    def config(self, **cse: Any) -> Config:
        cfg = load_config(None, db=self.db)
        return replace(cfg, cse=replace(cfg.cse, **cse),
                       store=replace(cfg.store, key_file=str(Path(self.db).parent / "store.key")))

    @asynccontextmanager
    async def running(self, **cse: Any) -> AsyncIterator[CSE]:
        app = CSE(self.config(**cse), store=TinyDBStore(self.db), clock=self.clock, monotonic=self.mono)
        await app.start(serve_http=False)
        await app.expiry.stop()  # the tests run the start-up expiry themselves, when they choose
        await app._expire(self.clock.now())
        try:
            yield app
        finally:
            await app.stop()

    async def call(self, app: CSE, op: Operation, to: str, fr: str = ADMIN, **kw: Any) -> Any:
        self._n += 1
        return await app.handle(Request(op=op, to=to, fr=fr, rqi=f"clk{self._n}", **kw))

    async def populate(self, app: CSE) -> str:
        """An AE, a container and 20 instances, all expiring in a year."""
        r = await self.call(app, CREATE, "cse-in", "Capp", ty=2,
                            pc={"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}})
        assert r.rsc == 2001, r.pc
        aei = str(r.pc["m2m:ae"]["aei"])
        r = await self.call(app, CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})
        assert r.rsc == 2001, r.pc
        for i in range(20):
            r = await self.call(app, CREATE, "cse-in/app/cnt", aei, ty=4, pc={"m2m:cin": {"con": str(i)}})
            assert r.rsc == 2001, r.pc
        return aei

    async def instances(self, app: CSE, aei: str) -> int | None:
        r = await self.call(app, RETRIEVE, "cse-in/app/cnt", aei)
        return int(r.pc["m2m:cnt"]["cni"]) if r.rsc == 2000 else None


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "cse.clock"]


async def test_restart_far_ahead_holds_expiry_until_accepted(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node.running() as app:
        aei = await node.populate(app)
    before = node.clock.now()
    node.clock.advance(11 * YEAR)
    async with node.running() as app:
        await app._expire(node.clock.now())  # the start-up run, and one more: nothing goes
        assert await node.instances(app, aei) == 20
        assert app.clock_guard.held
    logged = warnings(caplog)
    assert any("ahead of the newest time" in m and "held" in m for m in logged), logged
    from cse.core.timestamps import format_ts
    assert any(format_ts(before) in m and format_ts(node.clock.now()) in m for m in logged), logged
    # a restart that still sees the jump still holds (the record did not move)
    async with node.running() as app:
        assert await node.instances(app, aei) == 20
    # the operator accepts it: everything past its et goes
    async with node.running(accept_clock_jump=True) as app:
        await app._expire(node.clock.now())
        assert await node.instances(app, aei) is None


async def test_held_expiry_resumes_after_the_clock_settles(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node.running() as app:
        aei = await node.populate(app)
    node.clock.advance(11 * YEAR)
    async with node.running(clock_settle_s=600.0) as app:
        for _ in range(9):  # 540 s consistent: still held
            node.clock.advance(60)
            node.mono.t += 60
            await app._expire(node.clock.now())
        assert await node.instances(app, aei) == 20
        node.clock.advance(60)
        node.mono.t += 60
        await app._expire(node.clock.now())
        assert await node.instances(app, aei) is None
    assert any("consistent for 600 s" in m for m in warnings(caplog))


async def test_clock_corrected_back_releases_the_hold(node: Node) -> None:
    async with node.running() as app:
        aei = await node.populate(app)
    node.clock.advance(11 * YEAR)
    async with node.running() as app:
        assert app.clock_guard.held
        node.clock.advance(-11 * YEAR + 10)  # NTP puts it right
        node.mono.t += 10
        await app._expire(node.clock.now())
        assert not app.clock_guard.held
        assert await node.instances(app, aei) == 20  # nothing was due at the right time


async def test_jump_while_running_is_held(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node.running() as app:
        aei = await node.populate(app)
        node.mono.t += 5
        node.clock.advance(2 * YEAR)  # a wall-clock step, 5 s of real time
        await app._expire(node.clock.now())
        assert app.clock_guard.held
        assert await node.instances(app, aei) == 20
    assert any("jumped forward" in m for m in warnings(caplog)), warnings(caplog)


async def test_backward_jump_is_logged_and_deletes_nothing(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node.running() as app:
        aei = await node.populate(app)
    node.clock.advance(-3 * YEAR)
    async with node.running() as app:
        await app._expire(node.clock.now())
        assert await node.instances(app, aei) == 20
        assert not app.clock_guard.held
        node.mono.t += 1
        node.clock.advance(-2 * YEAR)
        await app._expire(node.clock.now())
        assert await node.instances(app, aei) == 20
    logged = warnings(caplog)
    assert any("behind the newest time" in m for m in logged), logged
    assert any("jumped backward" in m for m in logged), logged


async def test_deadline_timer_notices_a_wall_clock_step_within_a_slice() -> None:
    clock = FakeClock()
    ran = asyncio.Event()

    async def job(now: float) -> float | None:
        ran.set()
        return None

    timer = DeadlineTimer("t", job, clock.now, slice_s=0.02)
    timer.start(first=clock.now() + 3600)  # a window an hour away on the wall clock
    try:
        await asyncio.sleep(0.05)
        assert not ran.is_set()
        clock.advance(7200)  # the wall clock steps two hours forward
        await asyncio.wait_for(ran.wait(), 1.0)
    finally:
        await timer.stop()


def test_deadline_timer_slice_must_be_positive() -> None:
    async def job(now: float) -> float | None:
        return None

    with pytest.raises(ValueError):
        DeadlineTimer("t", job, lambda: 0.0, slice_s=0)



async def test_stored_request_expiring_is_recorded_failed_not_lost(ls: LocalSession) -> None:
    """Restart at +2 h (the start-up expiry run): the <request> of an accepted
    stored request would expire (request lifetime 1 h); instead it records
    4008 "expired before delivery", stays readable, tells the rt 2 originator,
    and the stored copy goes with it."""
    ip = ls.ip
    t0 = ip.clock.now()
    r = await ip.call(CREATE, f"{ls.ses_path}/sessionPolicies", ls.aei1, ty=9006,
                      pc={"m2m:spo": {"rn": "sf", "spt": 2, "sch": window_sch(t0 + 86400, t0 + 86700)}})
    assert r.rsc == 2001, r.pc
    policy = await ip.cse.store.get(r.pc["m2m:spo"]["ri"])
    assert policy is not None
    queue = ip.cse.smg.queue
    async with Receiver() as rtu:
        ris = []
        for i in range(5):
            pc = {"m2m:cin": {"con": f"s{i}"}}
            req = Request(op=CREATE, to="/id-cse2/cse2/AE9/container1", fr=ls.aei1, rqi=rqi("exp"), ty=4, pc=pc,
                          sid=ls.sid, body=json.dumps(pc).encode(), rt=2, rtu=(rtu.url,))
            resp = await queue.store(req, await ls.doc(), "/id-cse2", dict(policy),
                                     Target(False, "/id-cse2", (), True))
            assert resp.rsc == 1002, resp.pc
            ris.append(str(resp.pc["m2m:uri"]))
        assert (await ip.cse.store.get(ris[0]) or {}).get("rs") == PENDING
        ip.clock.advance(2 * 3600)
        await ip.cse._expire(ip.clock.now())
        for ri in ris:
            doc = await ip.cse.store.get(ri)
            assert doc is not None, "the <request> vanished"
            assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008, doc
            assert "expired before delivery" in doc["ors"]["pc"]["m2m:dbg"]
        assert await queue.count() == 0
        seen = []
        while len(seen) < 5:
            item = await rtu.next(5)
            if not item.is_verification:
                seen.append(item.body["m2m:rsp"]["rsc"])
        assert seen == [4008] * 5


async def test_startup_names_the_trusted_time_only_for_an_unaccepted_jump(node: Node) -> None:
    """What the store-and-forward queue counts buffered time up to after a
    restart (docs/sessions.md "Store-and-forward")."""
    from cse.csf.clock_guard import ClockGuard
    async with node.running() as app:
        await node.populate(app)
    seen = node.clock.now()
    node.clock.advance(11 * YEAR)
    async with node.running() as app:
        def guard(accept: bool) -> ClockGuard:
            return ClockGuard(app.ctx, node.mono, jump_s=86400, settle_s=3600, accept=accept)
        assert await guard(False).startup(node.clock.now()) == seen
        assert await guard(True).startup(node.clock.now()) is None
        assert await guard(False).startup(seen + 10) is None  # within clock_jump_s: no jump

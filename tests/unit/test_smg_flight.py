"""The flush pass's in-flight bookkeeping (cse.csf.smg.flight) waits for
exactly the deliveries the ordering contract (may_overlap) names, and the
window answer memo agrees with the schedule."""

from __future__ import annotations

import asyncio
import random

from cse.core.messages import Operation, Request
from cse.core.schedule import Schedule
from cse.csf.smg.flight import Flying, may_overlap, window_open

TARGETS = ("/id-in/cb/ae/a", "/id-in/cb/ae/a/x", "/id-in/cb/ae/b", "/id-in/cb/ae", "RI-1", "/id-in/cb/ae/b/y/z")
OPS = (Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE, Operation.DELETE)


def test_conflicting_is_the_may_overlap_rule_over_unanswered_deliveries() -> None:
    async def scenario() -> None:
        rnd = random.Random(21)
        for _ in range(40):
            flying = Flying()
            sent: list[tuple[Request, asyncio.Future[None]]] = []
            for i in range(rnd.randint(1, 120)):
                req = Request(op=rnd.choice(OPS), to=rnd.choice(TARGETS), fr="Cae", rqi=f"r{i}")
                want = [t for r, t in sent if not t.done() and not may_overlap(r, req)]
                got = flying.conflicting(req)
                assert len(got) == len(want) and {id(t) for t in got} == {id(t) for t in want}
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                if rnd.random() < 0.5:
                    fut.set_result(None)  # answered at once
                for _, t in sent:
                    if not t.done() and rnd.random() < 0.2:
                        t.set_result(None)
                flying.add(req, fut)  # type: ignore[arg-type]
                sent.append((req, fut))

    asyncio.run(scenario())


def test_creates_into_one_parent_never_wait_for_each_other() -> None:
    async def scenario() -> None:
        flying = Flying()
        loop = asyncio.get_running_loop()
        for i in range(100):
            req = Request(op=Operation.CREATE, to="/id-in/cb/ae/box", fr="Cae", rqi=f"r{i}")
            assert flying.conflicting(req) == []
            flying.add(req, loop.create_future())  # type: ignore[arg-type]
        update = Request(op=Operation.UPDATE, to="/id-in/cb/ae/box", fr="Cae", rqi="u")
        assert len(flying.conflicting(update)) == 100  # every unanswered CREATE below it

    asyncio.run(scenario())


def test_window_open_memo_agrees_with_the_schedule_each_second() -> None:
    sched = Schedule(["0-29 * * * * * *"])  # open in the first half of each minute
    memo: dict[tuple[str, int], bool] = {}
    t0 = 1_790_000_000.0
    for k in range(240):
        now = t0 + k * 0.5
        assert window_open(memo, "pol", sched, now) == sched.is_open(now)

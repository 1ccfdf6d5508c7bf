"""Exactly-once at the receiving hop across a crash (docs/sessions.md "Store-and-forward").

Why: a store-and-forward request is redelivered after a crash with the same
request ID, and the hop that serves it must answer from its memory of the
session instead of executing it again. That memory is only as good as its
atomicity with the effect: the effect (the created contentInstance) and the
remembered answer are one commit, so a CSE that dies right after that
commit, before its answer left, must answer the redelivery from memory and
not create a second one. The crash is reproduced exactly: the store is
abandoned (what ``kill -9`` leaves on disk) right after the commit that
holds the effect, and a new CSE is opened on the same files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cse.app import CSE
from cse.config import load_config
from cse.core.ids import Target
from cse.core.messages import Operation, Request, Response
from cse.core.ports import CommitResult, KvDelete, Op, Put
from cse.csf.smg.queue import QUEUE_NS
from tests.conftest import FakeClock, InProc
from tests.flow2_helpers import COMPLETED, local_session, rqi
from tests.notify_receiver import Receiver
from tests.unit.test_flow2_queue import add_policy, store


class Crash(Exception):
    """The process 'died' here."""


async def _count_cins(ip: InProc, aei2: str) -> int:
    r = await ip.call(Operation.RETRIEVE, "cse-in/AE2/container1", aei2)
    assert r.rsc == 2000, r.pc
    return int(r.pc["m2m:cnt"]["cni"])


async def test_redelivery_after_a_crash_between_effect_and_answer_executes_once(
        tmp_path: Path, receiver: Receiver) -> None:
    clock = FakeClock()
    config = load_config(None, db=str(tmp_path / "cse.db"))
    first = CSE(config, clock=clock)
    await first.start(serve_http=False)
    second: CSE | None = None
    try:
        ls = await local_session(InProc(first, clock), receiver)
        body = {"m2m:cin": {"con": "once", "lbl": ["exactly-once"]}}
        rq = rqi("crash")
        signed = ls.signed(Operation.CREATE, "cse-in/AE2/container1", rq, body)

        def request() -> Request:  # the same bytes, rqi and signature each time (a redelivery)
            return Request(op=Operation.CREATE, to="cse-in/AE2/container1", fr=ls.aei1, rqi=rq, ty=4, pc=body,
                           **signed)

        commit = first.store.commit
        crashed: list[int] = []

        async def die_after_the_effect(ops: Sequence[Any]) -> Any:  # the commit lands, then the 'kill -9'
            result = await commit(ops)
            if any(isinstance(op, Put) and op.doc.get("ty") == 4 for op in ops):
                crashed.append(len(ops))
                await first.store.abort()  # type: ignore[attr-defined]
                raise Crash()
            return result

        first.store.commit = die_after_the_effect  # type: ignore[method-assign]
        try:
            await first.handle(request())
        except Crash:
            pass
        assert crashed, "no commit held the effect: the crash never happened"
        await first.stop()

        second = CSE(config, clock=clock)
        await second.start(serve_http=False)
        ip2 = InProc(second, clock)
        assert await _count_cins(ip2, ls.aei2) == 1, "the effect was durable before the 'crash'"
        again = await second.handle(request())
        assert again.rsc == 2001, again.pc
        assert await _count_cins(ip2, ls.aei2) == 1, "the redelivery executed the request a second time"
        assert again.location and again.location.startswith("cse-in/AE2/container1/"), again.location
    finally:
        if second is not None:
            await second.stop()
        await first.stop()


# -- a batched flush cut by a crash ---------------------------------------------------------------

class NextHop:
    """The next hop as the queue sees it: executes a request ID once and
    answers a redelivery from its memory (what the gate does, :mod:`cse.csf.smg.gate`)."""

    def __init__(self) -> None:
        self.executed: dict[str, int] = {}
        self.sent: list[str] = []

    async def __call__(self, req: Request, target: Target) -> Response:
        self.sent.append(req.rqi)
        self.executed.setdefault(req.rqi, len(self.executed))
        return Response(rsc=2001, rqi=req.rqi, pc={"m2m:cin": {"con": json.loads(req.body)["m2m:cin"]["con"]}})


async def test_a_batched_flush_cut_by_a_crash_loses_nothing_and_records_each_answer_once(
        tmp_path: Path, receiver: Receiver) -> None:
    """Answers of several deliveries are recorded in one commit; the CSE
    'dies' as such a commit is written. After the restart every stored
    request is delivered, recorded once in its ``<request>`` and in the
    session context, and those of the lost batch were simply sent again."""
    clock = FakeClock()
    config = load_config(None, db=str(tmp_path / "cse.db"))
    first = CSE(config, clock=clock)
    await first.start(serve_http=False)
    second: CSE | None = None
    try:
        ls = await local_session(InProc(first, clock), receiver)
        policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
        hop = NextHop()
        first.smg.queue.forward = hop
        stored = [await store(ls, policy, f"#{i}") for i in range(40)]
        lost: list[str] = []
        commit = first.store.commit

        async def dying_commit(ops: Sequence[Op]) -> CommitResult:
            gone = [op.key for op in ops if isinstance(op, KvDelete) and op.ns == QUEUE_NS]
            if len(gone) > 1 and not lost:  # the first batch of several answers: the process dies
                lost.extend(gone)
                await first.store.abort()  # type: ignore[attr-defined]
                raise Crash()
            return await commit(ops)

        first.store.commit = dying_commit  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await first.smg.queue.flush(clock.now())
        assert len(lost) > 1, "no commit recorded several answers"
        await first.stop()

        second = CSE(config, clock=clock)
        again = NextHop()
        again.executed = hop.executed  # the next hop's memory outlives this CSE
        second.smg.queue.forward = again
        await second.start(serve_http=False)
        await second.sf_timer.stop()
        await second.smg.queue.flush(clock.now())
        assert await second.smg.queue.count() == 0
        rqis = [rq for rq, _ in stored]
        assert sorted(hop.executed) == sorted(rqis)  # each executed (once: the memory answered the rest)
        assert len(again.sent) >= len(lost)  # the lost batch went again
        for rq, ri in stored:
            doc = await second.store.get(ri)
            assert doc is not None and doc["rs"] == COMPLETED, (rq, doc)
            assert doc["ors"]["rsc"] == 2001 and doc["ors"]["rqi"] == rq, doc
        session = await second.store.get(f"ses{ls.sid}")
        assert session is not None
        hst = [h["rqi"] for h in session["hst"] if h["rqi"] in set(rqis)]
        assert sorted(hst) == sorted(rqis), "an answer recorded twice or not at all in the session context"
    finally:
        if second is not None:
            await second.stop()
        await first.stop()

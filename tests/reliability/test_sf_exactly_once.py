"""Exactly-once at the receiving hop across a crash (docs/sessions.md "Store-and-forward").

Why: a store-and-forward request is redelivered after a crash with the same
request ID, and the hop that serves it must answer from its memory of the
session instead of executing it again. That memory is only as good as its
atomicity with the effect: if the CSE dies after the effect (the created
contentInstance) is durable but before the answer is remembered, the
redelivery must still not create a second one. The crash is reproduced
exactly: the store is abandoned (what ``kill -9`` leaves on disk) right
after the serving commit, and a new CSE is opened on the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation, Request
from tests.conftest import FakeClock, InProc
from tests.flow2_helpers import local_session, rqi
from tests.notify_receiver import Receiver


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

        async def die(*args: Any, **kw: Any) -> None:  # after the effect's commit, before the answer's
            await first.store.abort()  # type: ignore[attr-defined]
            raise Crash()

        first.smg.gate.record = die  # type: ignore[method-assign]
        try:
            await first.handle(request())
        except Crash:
            pass
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

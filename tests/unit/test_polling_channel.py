"""pollingChannel (ty 15) and its pcu (docs/onem2m.md "pollingChannel"): an
AE with rr false that has a channel gets its subscription's verification
request and notifications by RETRIEVE of pcu and answers by NOTIFY to pcu;
only that AE may use it; polls and queues are bounded; a request nobody
fetches fails after its timeout. In-process CSE, no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from cse.app import CSE
from cse.config import Config, load_config
from cse.core.errors import NotAcceptable, RequestTimeout, TargetNotReachable
from cse.core.messages import Operation, Request, Response
from cse.csf.polling import Mailboxes
from cse.store.memory import MemoryStore
from tests.conftest import FakeClock, InProc, started_inproc
from tests.waiting import until

CREATE, RETRIEVE, NOTIFY = Operation.CREATE, Operation.RETRIEVE, Operation.NOTIFY
PCU = "cse-in/nat/pch/pcu"


def _config() -> Config:
    config = load_config(None, db=":memory:")
    return replace(config, limits=replace(config.limits, poll_wait_s=2.0))


@pytest.fixture
async def ip() -> AsyncIterator[InProc]:
    async with started_inproc(_config()) as inproc:
        yield inproc


async def start_on(store: MemoryStore) -> InProc:
    """A started CSE on ``store`` (a restart when the store was used before)."""
    clock = FakeClock()
    cse = CSE(_config(), store=store, clock=clock)
    await cse.start(serve_http=False)
    return InProc(cse, clock)


async def nat_ae(ip: InProc) -> str:
    """An AE without poa and with rr false, with its pollingChannel ``pch``."""
    aei = await ip.register("nat", rr=False)
    r = await ip.call(CREATE, "cse-in/nat", aei, ty=15, pc={"m2m:pch": {"rn": "pch"}})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:pch"]["ty"] == 15
    return aei


async def fetch(ip: InProc, aei: str) -> dict[str, Any]:
    """One poll that got a request: its primitive."""
    r = await ip.call(RETRIEVE, PCU, aei)
    assert r.rsc == 2000, r.pc
    return dict(r.pc["m2m:rqp"])


async def answer(ip: InProc, aei: str, rqp: dict[str, Any], rsc: int = 2000) -> Response:
    return await ip.call(NOTIFY, PCU, aei, pc={"m2m:rsp": {"rsc": rsc, "rqi": rqp["rqi"]}})


async def test_subscription_and_notifications_through_the_channel(ip: InProc) -> None:
    aei = await nat_ae(ip)
    assert (await ip.call(CREATE, "cse-in/nat", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    sub = asyncio.create_task(ip.call(CREATE, "cse-in/nat/data", aei, ty=23,
                                      pc={"m2m:sub": {"rn": "s", "nu": [aei], "nct": 1,
                                                      "enc": {"net": [3]}}}))
    vrq = await fetch(ip, aei)  # the verification request comes through the channel
    assert vrq["op"] == 5 and vrq["fr"] == "/id-in"
    assert vrq["pc"]["m2m:sgn"]["vrq"] is True and vrq["pc"]["m2m:sgn"]["cr"] == aei
    assert (await answer(ip, aei, vrq)).rsc == 2000
    r = await asyncio.wait_for(sub, 5)
    assert r.rsc == 2001, r.pc
    assert (await ip.call(CREATE, "cse-in/nat/data", aei, ty=4, pc={"m2m:cin": {"con": "hello"}})).rsc == 2001
    ntf = await fetch(ip, aei)
    assert ntf["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] == "hello"
    assert len(await ip.cse.outbox.open()) == 1  # fetched, not answered: still owed after a restart
    assert (await answer(ip, aei, ntf)).rsc == 2000
    await ip.cse.notifier.drained(5)
    assert ip.cse.notifier.sent == 1 and ip.cse.notifier.failed == 0

    async def settled() -> bool:
        return not await ip.cse.outbox.open()
    await until(settled, "the answered notification's outbox entry settled", timeout=5)
    # the answer was taken: a second one for the same request is 4004
    assert (await answer(ip, aei, ntf)).rsc == 4004


async def test_a_notify_relayed_to_the_ae_goes_through_the_channel(ip: InProc) -> None:
    aei = await nat_ae(ip)
    sent = asyncio.create_task(ip.call(NOTIFY, "cse-in/nat", "CAdmin", pc={"m2m:sgn": {"sur": "/id-in/x"}}))
    got = await fetch(ip, aei)
    assert got["pc"] == {"m2m:sgn": {"sur": "/id-in/x"}}
    await ip.call(NOTIFY, PCU, aei, pc={"m2m:rsp": {"rsc": 2000, "rqi": got["rqi"], "pc": {"m2m:dbg": "ok"}}})
    r = await asyncio.wait_for(sent, 5)
    assert r.rsc == 2000 and r.pc == {"m2m:dbg": "ok"}


async def test_only_the_ae_itself_may_use_its_pcu(ip: InProc) -> None:
    await nat_ae(ip)
    other = await ip.register("other")
    for fr in (other, "CAdmin"):
        r = await ip.call(RETRIEVE, PCU, fr)
        assert r.rsc == 4103, r.pc
        r = await ip.call(NOTIFY, PCU, fr, pc={"m2m:rsp": {"rsc": 2000, "rqi": "x"}})
        assert r.rsc == 4103, r.pc


async def test_a_poll_with_nothing_to_fetch_ends_4008(ip: InProc) -> None:
    aei = await nat_ae(ip)
    r = await ip.call(RETRIEVE, PCU, aei)  # waits poll_wait_s (2 s), then gives up
    assert r.rsc == 4008 and "poll again" in r.pc["m2m:dbg"], r.pc


async def test_bad_answers(ip: InProc) -> None:
    aei = await nat_ae(ip)
    r = await ip.call(NOTIFY, PCU, aei, pc={"m2m:sgn": {}})
    assert r.rsc == 4000, r.pc
    r = await ip.call(NOTIFY, PCU, aei, pc={"m2m:rsp": {"rsc": 2000, "rqi": "never-sent"}})
    assert r.rsc == 4004, r.pc
    r = await ip.call(Operation.UPDATE, PCU, aei, pc={"m2m:pch": {}})
    assert r.rsc == 4005, r.pc


async def test_without_a_channel_rr_false_is_still_unreachable(ip: InProc) -> None:
    aei = await ip.register("lonely", rr=False)
    assert (await ip.call(CREATE, "cse-in/lonely", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    r = await ip.call(CREATE, "cse-in/lonely/data", aei, ty=23, pc={"m2m:sub": {"nu": [aei]}})
    assert r.rsc == 5204 and "rr is false" in r.pc["m2m:dbg"], r.pc


async def test_the_channel_lives_under_an_ae_only(ip: InProc) -> None:
    aei = await ip.register("app")
    assert (await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=15, pc={"m2m:pch": {}})
    assert r.rsc == 4108, r.pc


# -- the mailbox on its own ---------------------------------------------------------------

def _req(rqi: str) -> Request:
    return Request(op=Operation.NOTIFY, to="Cae", fr="/id-in", rqi=rqi, pc={"m2m:sgn": {}})


async def test_a_request_nobody_fetches_fails_after_its_timeout() -> None:
    boxes = Mailboxes()
    with pytest.raises(RequestTimeout):
        await boxes.exchange("Cae", _req("a"), timeout=0.05)
    assert boxes.pending("Cae") == 0
    assert await boxes.poll("Cae", 0.0) is None  # withdrawn: a later poll does not get it


async def test_the_queue_per_ae_is_bounded() -> None:
    boxes = Mailboxes(max_pending=1)
    first = asyncio.create_task(boxes.exchange("Cae", _req("a"), timeout=5))
    got = await boxes.poll("Cae", 5)
    assert got is not None and got.rqi == "a"
    with pytest.raises(TargetNotReachable):
        await boxes.exchange("Cae", _req("b"), timeout=5)
    assert boxes.answer("Cae", Response(rsc=2000, rqi="a"))
    assert (await first).rsc == 2000
    assert boxes.pending("Cae") == 0


async def test_waiting_polls_per_ae_are_bounded() -> None:
    boxes = Mailboxes(max_pollers=1)
    first = asyncio.create_task(boxes.poll("Cae", 5))
    await asyncio.sleep(0)  # let it start waiting
    with pytest.raises(NotAcceptable):
        await boxes.poll("Cae", 5)
    sent = asyncio.create_task(boxes.exchange("Cae", _req("a"), timeout=5))
    got = await asyncio.wait_for(first, 5)
    assert got is not None and got.rqi == "a"
    boxes.answer("Cae", Response(rsc=2000, rqi="a"))
    assert (await sent).rsc == 2000


async def test_a_fetched_but_unanswered_notification_comes_again_after_a_restart() -> None:
    store = MemoryStore()
    first = await start_on(store)
    try:
        aei = await nat_ae(first)
        assert (await first.call(CREATE, "cse-in/nat", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
        sub = asyncio.create_task(first.call(CREATE, "cse-in/nat/data", aei, ty=23,
                                             pc={"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}}))
        assert (await answer(first, aei, await fetch(first, aei))).rsc == 2000  # the verification
        assert (await asyncio.wait_for(sub, 5)).rsc == 2001
        await first.call(CREATE, "cse-in/nat/data", aei, ty=4, pc={"m2m:cin": {"con": "kept"}})
        fetched = await fetch(first, aei)
        assert fetched["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] == "kept"
    finally:
        await first.cse.stop()  # the AE never answered
    again = await start_on(store)
    try:
        while True:  # after a restart the CSE asks for a verification again first
            rqp = await fetch(again, aei)
            assert (await answer(again, aei, rqp)).rsc == 2000
            if not rqp["pc"]["m2m:sgn"].get("vrq"):
                break
        assert rqp["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] == "kept"

        async def settled() -> bool:
            return not await again.cse.outbox.open()
        await until(settled, "the outbox entry settled once answered", timeout=5)
    finally:
        await again.cse.stop()


async def test_a_poll_that_may_not_wait_still_takes_what_is_there() -> None:
    boxes = Mailboxes()
    sent = asyncio.create_task(boxes.exchange("Cae", _req("a"), timeout=5))
    await asyncio.sleep(0)  # let it queue
    got = await boxes.poll("Cae", 0.0)
    assert got is not None and got.rqi == "a"
    boxes.answer("Cae", Response(rsc=2000, rqi="a"))
    assert (await sent).rsc == 2000


async def test_a_notification_nobody_polls_for_fails_after_the_timeout(ip: InProc) -> None:
    aei = await nat_ae(ip)
    assert (await ip.call(CREATE, "cse-in/nat", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})).rsc == 2001
    sub = asyncio.create_task(ip.call(CREATE, "cse-in/nat/data", aei, ty=23,
                                      pc={"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}}))
    assert (await answer(ip, aei, await fetch(ip, aei))).rsc == 2000
    assert (await asyncio.wait_for(sub, 5)).rsc == 2001
    await ip.call(CREATE, "cse-in/nat/data", aei, ty=4, pc={"m2m:cin": {"con": "lost"}})
    # the AE has stopped polling: after the notification timeout (5 s) it counts as failed
    await ip.cse.notifier.drained(15)
    assert ip.cse.notifier.failed == 1 and ip.cse.notifier.sent == 0
    assert ip.cse.mailboxes.pending(aei) == 0  # withdrawn from the AE's mailbox (its ri is its AE-ID)

"""Notification delivery (TS-0004 7.5.1.2.2; cse/csf/notification.py):
ordering, slow and dead receivers, ``ln`` and ``bn``. In-process CSE, real
HTTP receivers on loopback. Nothing here sleeps to wait: it waits for the
receiver, for the notifier to drain, or polls with a deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cse.core.messages import Operation
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` with containers ``data`` and ``other``."""
    aei = await inproc.register("app")
    for rn in ("data", "other"):
        r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": rn}})
        assert r.rsc == 2001, r.pc
    return {"ip": inproc, "aei": aei}


async def subscribe(ip: Any, fr: str, to: str, rcv: Receiver, **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("nu", [rcv.url])
    attrs.setdefault("enc", {"net": [3]})
    r = await ip.call(CREATE, to, fr, ty=23, pc={"m2m:sub": attrs})
    assert r.rsc == 2001, r.pc
    assert (await rcv.next(timeout=1)).is_verification
    return dict(r.pc["m2m:sub"])


async def add_cin(ip: Any, fr: str, con: Any, to: str = "cse-in/app/data") -> dict[str, Any]:
    r = await ip.call(CREATE, to, fr, ty=4, pc={"m2m:cin": {"con": con}})
    assert r.rsc == 2001, r.pc
    return dict(r.pc["m2m:cin"])


# -- ordering --------------------------------------------------------------------------

async def test_fifty_quick_creates_arrive_in_order(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver)
    created = await asyncio.gather(*(add_cin(ip, aei, f"v{i}") for i in range(50)))
    # gather starts them in order; the CSE commits them in that order too
    order = sorted(created, key=lambda c: c["st"])
    got = [(await receiver.next()).sgn["nev"]["rep"]["m2m:cin"] for _ in range(50)]
    assert [c["ri"] for c in got] == [c["ri"] for c in order]
    assert [c["st"] for c in got] == sorted(c["st"] for c in got)
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []
    assert ip.cse.notifier.sent >= 50


async def test_fifty_sequential_creates_arrive_in_order(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver)
    cons = [f"n{i}" for i in range(50)]
    for con in cons:
        await add_cin(ip, aei, con)
    got = [(await receiver.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] for _ in range(50)]
    assert got == cons


# -- slow and dead receivers ---------------------------------------------------------------

async def test_slow_receiver_does_not_block_others(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as slow:
        await subscribe(ip, aei, "cse-in/app/data", slow)
        await subscribe(ip, aei, "cse-in/app/other", receiver)
        slow.gate()
        await add_cin(ip, aei, "stuck-1")
        first = await slow.next()  # it arrived; its answer is held back
        assert first.sgn["nev"]["rep"]["m2m:cin"]["con"] == "stuck-1"
        assert slow.in_flight == 1
        # while it is stuck: requests complete, with their own notifications queued behind it
        for i in range(5):
            await add_cin(ip, aei, f"queued-{i}")
        r = await ip.call(RETRIEVE, "cse-in/app/data", aei)
        assert r.rsc == 2000 and r.pc["m2m:cnt"]["cni"] == 6
        # and another subscription's notifications reach a healthy receiver
        for i in range(3):
            await add_cin(ip, aei, f"healthy-{i}", to="cse-in/app/other")
        got = [(await receiver.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] for _ in range(3)]
        assert got == ["healthy-0", "healthy-1", "healthy-2"]
        assert slow.in_flight == 1 and slow.pending() == []  # still stuck on the first one
        slow.release()
        rest = [(await slow.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] for _ in range(5)]
        assert rest == [f"queued-{i}" for i in range(5)]
        await ip.cse.notifier.drained(5)


async def test_many_slow_subscriptions_do_not_starve_a_healthy_one(
        app: dict[str, Any], receiver: Receiver) -> None:
    """Many stuck subscriptions (more than the sends allowed in flight at
    once): a healthy subscription's notification must still go out while
    they are stuck (a slow target "delays only its own queue")."""
    ip, aei = app["ip"], app["aei"]
    slots = ip.cse.notifier.slots
    n_slow = slots.total + 4
    async with Receiver() as slow:
        for _ in range(n_slow):  # (chty: not notified of each other's creation)
            await subscribe(ip, aei, "cse-in/app/data", slow, enc={"net": [3], "chty": [4]})
        await subscribe(ip, aei, "cse-in/app/other", receiver)
        slow.gate()
        await add_cin(ip, aei, "to-the-slow-ones")
        await slow.wait_in_flight(slots.per_target)
        await add_cin(ip, aei, "healthy", to="cse-in/app/other")
        # well within the notifier's own send timeout, while the slow answers are still held
        got = await receiver.next(timeout=ip.cse.notifier.timeout / 2)
        assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "healthy"
        slow.release()


async def test_dead_receiver_does_not_block_others(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    notifier = ip.cse.notifier
    dead = Receiver()
    await dead.start()
    await subscribe(ip, aei, "cse-in/app/data", dead)
    await subscribe(ip, aei, "cse-in/app/other", receiver)
    await dead.stop()  # its port is closed now
    failed_before = notifier.failed
    for i in range(3):
        await add_cin(ip, aei, f"lost-{i}")
    r = await ip.call(RETRIEVE, "cse-in/app/data", aei)
    assert r.rsc == 2000 and r.pc["m2m:cnt"]["cni"] == 3
    await add_cin(ip, aei, "healthy", to="cse-in/app/other")
    got = await receiver.next()
    assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "healthy"
    await notifier.drained(15)
    assert notifier.failed - failed_before == 3
    assert receiver.pending() == []


async def test_failure_answer_counts_as_failed(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    notifier = ip.cse.notifier
    async with Receiver() as rcv:
        await subscribe(ip, aei, "cse-in/app/data", rcv)
        rcv.rsc = 4004  # the verification passed; now the receiver refuses
        sent, failed = notifier.sent, notifier.failed
        await add_cin(ip, aei, "x")
        item = await rcv.next()
        assert item.sgn["nev"]["net"] == 3
        await notifier.drained(5)
        assert notifier.failed == failed + 1
        assert notifier.sent == sent
        # one answer, no retries: the receiver saw it exactly once
        assert rcv.pending() == []


async def test_success_counts_as_sent(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    notifier = ip.cse.notifier
    await subscribe(ip, aei, "cse-in/app/data", receiver)
    sent, failed = notifier.sent, notifier.failed
    await add_cin(ip, aei, "x")
    await add_cin(ip, aei, "y")
    await notifier.drained(5)
    assert notifier.sent == sent + 2 and notifier.failed == failed
    assert len(receiver.pending()) == 2


async def test_slow_verification_target_does_not_block_other_requests(
        app: dict[str, Any], receiver: Receiver) -> None:
    """A subscription CREATE waiting for its verification answer holds only itself."""
    ip, aei = app["ip"], app["aei"]
    async with Receiver(delay_verification=True) as slow:
        gate = slow.gate()
        creating = asyncio.ensure_future(ip.call(CREATE, "cse-in/app/data", aei, ty=23,
                                                 pc={"m2m:sub": {"rn": "s1", "nu": [slow.url]}}))
        vrq = await slow.next()
        assert vrq.is_verification and not creating.done()
        r = await ip.call(RETRIEVE, "cse-in/app/data", aei)
        assert r.rsc == 2000
        await add_cin(ip, aei, "meanwhile")
        gate.set()
        r = await asyncio.wait_for(creating, 5)
        assert r.rsc == 2001, r.pc


# -- ln and bn ------------------------------------------------------------------------------

async def test_latest_notify_collapses_queue(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as rcv:
        sub = await subscribe(ip, aei, "cse-in/app/data", rcv, ln=True)
        assert sub["ln"] is True
        rcv.gate()
        await add_cin(ip, aei, "first")
        first = await rcv.next()
        assert first.sgn["nev"]["rep"]["m2m:cin"]["con"] == "first"
        for i in range(2, 6):
            await add_cin(ip, aei, f"c{i}")
        rcv.release()
        latest = await rcv.next()
        assert latest.sgn["nev"]["rep"]["m2m:cin"]["con"] == "c5"
        assert latest.sgn["sur"] == f"/id-in/{sub['ri']}"
        await ip.cse.notifier.drained(5)
        assert rcv.pending() == []


async def test_without_ln_every_queued_notification_is_sent(app: dict[str, Any]) -> None:
    ip, aei = app["ip"], app["aei"]
    async with Receiver() as rcv:
        await subscribe(ip, aei, "cse-in/app/data", rcv)
        rcv.gate()
        await add_cin(ip, aei, "first")
        await rcv.next()
        for i in range(2, 6):
            await add_cin(ip, aei, f"c{i}")
        rcv.release()
        got = [(await rcv.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] for _ in range(4)]
        assert got == ["c2", "c3", "c4", "c5"]


async def test_batch_notify_num(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    sub = await subscribe(ip, aei, "cse-in/app/data", receiver, bn={"num": 3})
    cins = [await add_cin(ip, aei, f"b{i}") for i in range(3)]
    item = await receiver.next()
    assert list(item.body) == ["m2m:agn"], item.body
    sgns = item.body["m2m:agn"]["m2m:sgn"]
    assert isinstance(sgns, list) and len(sgns) == 3
    assert [s["nev"]["rep"]["m2m:cin"]["ri"] for s in sgns] == [c["ri"] for c in cins]
    assert all(s["nev"]["net"] == 3 and s["sur"] == f"/id-in/{sub['ri']}" for s in sgns)
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []


async def test_batch_notify_six_gives_two_batches(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver, bn={"num": 3})
    for i in range(6):
        await add_cin(ip, aei, f"b{i}")
    batches = [(await receiver.next()).body["m2m:agn"]["m2m:sgn"] for _ in range(2)]
    cons = [[s["nev"]["rep"]["m2m:cin"]["con"] for s in b] for b in batches]
    assert cons == [["b0", "b1", "b2"], ["b3", "b4", "b5"]]


async def test_batch_notify_dur_flushes_partial_batch(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver, bn={"num": 10, "dur": "PT0.2S"})
    await add_cin(ip, aei, "only")
    item = await receiver.next(timeout=5)
    body = item.body
    sgns = body["m2m:agn"]["m2m:sgn"] if "m2m:agn" in body else [body["m2m:sgn"]]
    assert [s["nev"]["rep"]["m2m:cin"]["con"] for s in sgns] == ["only"]


async def test_batch_notify_with_latest_sends_the_latest_of_each_num_events(
        app: dict[str, Any], receiver: Receiver) -> None:
    """TS-0001 9.6.8: with ``ln`` and ``bn`` both set, each batch of ``num``
    events sends only the latest one -- at once, not after ``dur``."""
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver, ln=True, bn={"num": 5, "dur": "PT1H"})
    for i in range(10):
        await add_cin(ip, aei, f"c{i}")
    got = [await receiver.next(timeout=5) for _ in range(2)]
    assert [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got] == ["c4", "c9"], [g.body for g in got]
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []
    assert ip.cse.notifier.coalesced == 8


async def test_batch_notify_with_latest_sends_a_partial_batch_after_dur(
        app: dict[str, Any], receiver: Receiver) -> None:
    """A batch that has not reached ``num`` events goes out ``dur`` after
    its first one, still only its latest; a full one went out before it."""
    ip, aei = app["ip"], app["aei"]
    await subscribe(ip, aei, "cse-in/app/data", receiver, ln=True, bn={"num": 5, "dur": "PT0.2S"})
    for i in range(7):
        await add_cin(ip, aei, f"c{i}")
    got = [await receiver.next(timeout=5) for _ in range(2)]
    assert [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got] == ["c4", "c6"], [g.body for g in got]
    await ip.cse.notifier.drained(5)
    assert receiver.pending() == []


async def test_bad_batch_duration_is_4000(app: dict[str, Any], receiver: Receiver) -> None:
    ip, aei = app["ip"], app["aei"]
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=23,
                      pc={"m2m:sub": {"nu": [receiver.url], "bn": {"num": 2, "dur": "soon"}}})
    assert r.rsc == 4000, r.pc
    assert receiver.pending() == []

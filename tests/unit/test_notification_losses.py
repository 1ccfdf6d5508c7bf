"""Notifications that are not delivered are counted, logged and reported.

Why (docs/onem2m.md "Subscriptions and notifications"): under load a
bounded queue dropped the oldest pending notification with one log line per
drop and told nobody -- an endpoint AE received 8,500 of 15,500 session
update events without knowing. Now every loss is counted per key, a WARNING
with the counts is logged at most once per interval, and the next
notification that reaches the target carries ``"dropped": N`` in its
``m2m:sgn`` (docs/onem2m.md "Choices").

A Notifier with a small per-key bound, sending to a real loopback receiver
whose answers are held back (a slow receiver) until the test releases them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cse.core.messages import Response
from cse.core.outcome import Batching
from cse.csf.notification import Notifier
from tests.conftest import InProc
from tests.notify_receiver import Receiver

SUB = "sub1"


def sgn(i: int) -> dict[str, Any]:
    return {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": str(i)}}, "net": 3}, "sur": f"/id-in/{SUB}"}}


async def no_forward(_req: Any) -> Response:
    raise AssertionError("nothing here goes through the CSEs")


@pytest.fixture
async def notifier(inproc: InProc) -> AsyncIterator[Notifier]:
    cse = inproc.cse
    n = Notifier(cse.ctx, cse.outbound, no_forward, policy=cse.policy, max_per_key=3, warn_interval=60.0)
    n.start()
    try:
        yield n
    finally:
        await n.stop()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cse.notify" and r.levelno == logging.WARNING]


async def test_drops_are_counted_logged_once_per_interval_and_reported(
        inproc: InProc, notifier: Notifier, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cse.notify")
    receiver.gate()
    notifier.enqueue(SUB, receiver.url, sgn(0), owner="Cae1", sur=f"/id-in/{SUB}")
    await receiver.wait_in_flight(1)  # #0 is held by the slow receiver
    for i in range(1, 7):  # the queue keeps 3: #1-#3 are dropped, #4-#6 kept
        notifier.enqueue(SUB, receiver.url, sgn(i), owner="Cae1", sur=f"/id-in/{SUB}")

    assert notifier.dropped == 3
    assert notifier.dropped_by_key == {SUB: 3}
    assert notifier.stats()["droppedByKey"] == {SUB: 3}
    first = warnings(caplog)
    assert len(first) == 1, first  # one line for the interval, not one per drop
    assert "1 notification(s) not delivered" in first[0] and receiver.url in first[0]

    inproc.clock.advance(61)  # the next interval: the rest is logged with the next send
    receiver.release()
    got = [await receiver.next_notification() for _ in range(4)]
    await notifier.drained(5.0)
    cons = [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got]
    assert cons == ["0", "4", "5", "6"]
    assert [g.sgn.get("dropped") for g in got] == [None, 3, None, None]
    later = warnings(caplog)
    assert len(later) == 2 and "2 notification(s) not delivered" in later[1], later
    assert notifier.sent == 4


async def test_failed_sends_are_reported_with_the_next_delivered_one(
        notifier: Notifier, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    notifier.enqueue(SUB, receiver.url, sgn(0), owner="Cae1")
    await notifier.drained(5.0)
    receiver.rsc = 5000  # answers, but refuses: not delivered
    notifier.enqueue(SUB, receiver.url, sgn(1), owner="Cae1")
    await notifier.drained(5.0)
    assert notifier.failed_by_key == {SUB: 1}
    receiver.rsc = 2000
    notifier.enqueue(SUB, receiver.url, sgn(2), owner="Cae1")
    got = [await receiver.next_notification() for _ in range(3)]
    await notifier.drained(5.0)
    assert [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got] == ["0", "1", "2"]
    assert [g.sgn.get("dropped") for g in got] == [None, None, 1]
    assert len(warnings(caplog)) == 1


async def test_latest_only_replacement_is_not_a_loss(notifier: Notifier, receiver: Receiver) -> None:
    receiver.gate()
    notifier.enqueue(SUB, receiver.url, sgn(0), owner="Cae1", latest=True)
    await receiver.wait_in_flight(1)
    for i in range(1, 6):
        notifier.enqueue(SUB, receiver.url, sgn(i), owner="Cae1", latest=True)
    receiver.release()
    got = [await receiver.next_notification() for _ in range(2)]
    await notifier.drained(5.0)
    assert [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got] == ["0", "5"]
    assert [g.sgn.get("dropped") for g in got] == [None, None]
    assert (notifier.coalesced, notifier.dropped) == (4, 0)


async def test_unsent_notifications_at_stop_are_counted_and_logged(
        inproc: InProc, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cse.notify")
    cse = inproc.cse
    n = Notifier(cse.ctx, cse.outbound, no_forward, policy=cse.policy, max_per_key=3)
    n.enqueue(SUB, receiver.url, sgn(0), owner="Cae1")  # never started: nothing is sent
    n.enqueue(SUB, receiver.url, sgn(1), owner="Cae1")
    await n.stop()
    assert n.dropped_by_key == {SUB: 2}
    assert any("2 notification(s) not delivered" in w for w in warnings(caplog))
    assert any(r.getMessage().startswith("notifier stopped: 0 sent, 0 failed, 2 dropped")
               for r in caplog.records if r.name == "cse.notify")


async def test_a_batch_carries_the_count_in_its_first_notification(notifier: Notifier, receiver: Receiver) -> None:
    receiver.gate()
    bn = Batching(num=2, dur=60.0)
    notifier.enqueue(SUB, receiver.url, sgn(0), owner="Cae1")
    await receiver.wait_in_flight(1)
    for i in range(1, 6):  # the queue keeps 3 (#3-#5): #1 and #2 are dropped
        notifier.enqueue(SUB, receiver.url, sgn(i), owner="Cae1", batching=bn)
    receiver.release()
    first, batch = await receiver.next_notification(), await receiver.next_notification()
    assert first.sgn.get("dropped") is None
    members = batch.body["m2m:agn"]["m2m:sgn"]
    assert [m["nev"]["rep"]["m2m:cin"]["con"] for m in members] == ["3", "4"]
    assert [m.get("dropped") for m in members] == [2, None]
    assert notifier.dropped_by_key == {SUB: 2}

"""SendSlots (cse/csf/send_slots.py): the three bounds, the tables emptied
once nobody holds or waits, and a send cancelled while it waits gives back
the slots it already took."""

from __future__ import annotations

import asyncio

from cse.csf.send_slots import SendSlots

T = 5.0  # upper bound of every wait (not a performance target)


async def _holding(slots: SendSlots, target: str, owner: str | None, entered: asyncio.Event,
                   release: asyncio.Event) -> None:
    async with slots.hold(target, owner):
        entered.set()
        await release.wait()


def _empty(slots: SendSlots) -> bool:
    return not (slots._targets._sems or slots._targets._users
                or slots._originators._sems or slots._originators._users)


async def test_a_target_gets_at_most_its_slots_and_the_tables_empty_afterwards() -> None:
    slots = SendSlots(total=8, per_target=2, per_originator=8)
    release = asyncio.Event()
    entered = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(_holding(slots, "t", "o", e, release)) for e in entered]
    await asyncio.wait_for(asyncio.gather(entered[0].wait(), entered[1].wait()), T)
    assert not entered[2].is_set()  # the third send to "t" waits for a slot of "t"
    free = asyncio.Event()
    done = asyncio.Event()
    done.set()
    await asyncio.wait_for(_holding(slots, "u", "o", free, done), T)  # another target is not held up
    assert free.is_set()
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), T)
    assert entered[2].is_set()
    assert _empty(slots)
    assert slots._pool._value == 8


async def test_a_send_cancelled_while_waiting_for_the_pool_gives_back_its_other_slots() -> None:
    slots = SendSlots(total=1, per_target=4, per_originator=4)
    release = asyncio.Event()
    first = asyncio.Event()
    holder = asyncio.create_task(_holding(slots, "t1", "o1", first, release))
    await asyncio.wait_for(first.wait(), T)
    waiting = asyncio.create_task(_holding(slots, "t2", "o2", asyncio.Event(), asyncio.Event()))
    for _ in range(100):  # a few loop turns: it takes its target and originator slots, then queues for the pool
        if "t2" in slots._targets._users and "o2" in slots._originators._users:
            break
        await asyncio.sleep(0)
    assert "t2" in slots._targets._users and "o2" in slots._originators._users
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert "t2" not in slots._targets._sems and "o2" not in slots._originators._sems
    release.set()
    await asyncio.wait_for(holder, T)
    assert _empty(slots)
    assert slots._pool._value == 1


async def test_an_originator_bound_spans_targets_and_no_originator_takes_none() -> None:
    slots = SendSlots(total=8, per_target=8, per_originator=1)
    release = asyncio.Event()
    a, b, c = asyncio.Event(), asyncio.Event(), asyncio.Event()
    ta = asyncio.create_task(_holding(slots, "t1", "o", a, release))
    tb = asyncio.create_task(_holding(slots, "t2", "o", b, release))
    tc = asyncio.create_task(_holding(slots, "t3", None, c, release))
    await asyncio.wait_for(asyncio.gather(a.wait(), c.wait()), T)
    assert not b.is_set()  # "o" has one slot, whichever the target
    assert "o" in slots._originators._users and None not in slots._originators._users
    release.set()
    await asyncio.wait_for(asyncio.gather(ta, tb, tc), T)
    assert b.is_set() and _empty(slots)

"""The executor: events, then one commit with the outbox, then sends, then timers -- for any outcome.

Pure unit tests against the in-memory store with recording listeners and
timers, so each step's order and input is visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cse.core.events import Event, EventKind
from cse.core.executor import Executor
from cse.core.outbox import OUTBOX_NS, Outbox
from cse.core.outcome import EXPIRY, STORE_AND_FORWARD, Batching, Deadline, Notification, Outcome, Removal
from cse.core.ports import Delete, KvPut, Put
from cse.core.timestamps import format_ts, parse_ts
from cse.store.memory import MemoryStore

T0 = 1_800_000_000.0


class RecordingStore(MemoryStore):
    """A memory store that keeps the operations of every commit, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[list[object]] = []

    async def commit(self, ops):  # type: ignore[no-untyped-def]
        self.commits.append(list(ops))
        return await super().commit(ops)


class RecordingTimer:
    """A timer that records pokes and moves its deadline like DeadlineTimer."""

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline
        self.pokes: list[float] = []

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def poke(self, deadline: float) -> None:
        self.pokes.append(deadline)
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline


def doc(ri: str, pi: str = "", et: float | None = None) -> dict[str, object]:
    d: dict[str, object] = {"ri": ri, "ty": 3, "rn": ri, "pi": pi, "_srn": ri if not pi else f"{pi}/{ri}"}
    if et is not None:
        d["et"] = format_ts(et)
    return d


async def test_listeners_hear_before_the_commit_and_their_sends_are_in_it() -> None:
    delivered: list[tuple[Notification, int]] = []
    store = RecordingStore()
    commits = store.commits
    seen: list[tuple[int, bool]] = []

    async def listener(events: Sequence[Event]) -> Outcome | None:
        # the store is as before the change: the event carries the changed document
        for ev in events:
            seen.append((ev.kind, await store.get(ev.doc["ri"]) is not None))
        return Outcome(sends=[Notification("sub", "http://127.0.0.1:1/n", {"m2m:sgn": {}})])

    def deliver(n: Notification) -> None:  # handed out only once its entry is committed
        delivered.append((n, len(commits)))

    ex = Executor(store, listeners=[listener], deliver=deliver, outbox=Outbox(store))
    a = doc("a")
    await ex.run(Outcome(ops=[Put(a)], events=[Event(EventKind.CREATE_CHILD, a, None)]))
    assert seen == [(EventKind.CREATE_CHILD, False)]
    [(n, commits_before)] = delivered
    assert n.key == "sub" and commits_before == 1
    assert n.entry is not None and await store.kv_get(OUTBOX_NS, n.entry) is not None
    # one commit: the change and the notification's outbox entry together
    [ops] = commits
    assert ops[0] == Put(a) and isinstance(ops[1], KvPut) and ops[1].ns == OUTBOX_NS and ops[1].key == n.entry


async def test_a_failed_commit_hands_out_nothing_and_leaves_no_entry() -> None:
    class FullStore(MemoryStore):
        async def commit(self, ops):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    store = FullStore()
    delivered: list[Notification] = []

    async def listener(events: Sequence[Event]) -> Outcome | None:
        return Outcome(sends=[Notification("sub", "http://127.0.0.1:1/n", {"m2m:sgn": {}})])

    ex = Executor(store, listeners=[listener], deliver=delivered.append, outbox=Outbox(store))
    a = doc("a")
    with pytest.raises(OSError):
        await ex.run(Outcome(ops=[Put(a)], events=[Event(EventKind.CREATE_CHILD, a, None)]))
    assert delivered == [] and await store.kv_items(OUTBOX_NS) == []


async def test_outbox_entries_are_named_in_commit_order_and_read_back_in_it() -> None:
    store = MemoryStore()
    delivered: list[Notification] = []
    ex = Executor(store, deliver=delivered.append, outbox=Outbox(store))
    for i in range(12):  # past 9 and 10: names sort as numbers
        await ex.run(Outcome(sends=[Notification(f"s{i % 2}", "http://127.0.0.1:1/n", {"i": i}, exc=f"s{i % 2}",
                                                 event=f"e{i}", batching=Batching(3, 1.5), latest=i == 11)]))
    again = await Outbox(store).open()
    assert again == delivered  # every field survives, in the same order
    assert [n.payload["i"] for n in again] == list(range(12))
    # a restarted outbox names new entries after the old ones
    later = Outbox(store)
    await later.open()
    [n], _ = later.stage([Notification("s", "t", {})])
    assert n.entry is not None and n.entry > max(str(m.entry) for m in again)


async def test_a_subtree_removal_is_read_before_the_commit_and_its_sends_committed_with_it() -> None:
    store = RecordingStore()
    commits = store.commits

    async def listener(events: Sequence[Event]) -> Outcome | None:
        return Outcome(sends=[Notification(ev.doc["ri"], "http://127.0.0.1:1/n", {"net": ev.kind})
                              for ev in events if ev.kind == EventKind.DELETE])

    delivered: list[Notification] = []
    ex = Executor(store, listeners=[listener], deliver=delivered.append, outbox=Outbox(store))
    parent, child, grandchild = doc("p"), doc("c", "p"), doc("g", "c")
    await ex.run(Outcome(ops=[Put(parent), Put(child), Put(grandchild)]))
    commits.clear()
    await ex.run(Outcome(ops=[Delete("c")]).with_removal(Removal(child, parent, None)))
    assert sorted(n.key for n in delivered) == ["c", "g"]
    [ops] = commits
    assert ops[0] == Delete("c") and sum(isinstance(op, KvPut) for op in ops) == 2


async def test_a_removal_reports_every_removed_document_and_the_child_deletion() -> None:
    store = MemoryStore()
    events: list[Event] = []

    async def listener(evs: Sequence[Event]) -> Outcome | None:
        events.extend(evs)
        return None

    ex = Executor(store, listeners=[listener])
    parent, child, grandchild = doc("p"), doc("c", "p"), doc("g", "c")
    await ex.run(Outcome(ops=[Put(parent), Put(child), Put(grandchild)]))
    assert events == []  # no events were stated, none are invented
    await ex.run(Outcome(ops=[Delete("c")]).with_removal(Removal(child, parent, "Cae")))
    deleted = sorted(ev.doc["ri"] for ev in events if ev.kind == EventKind.DELETE)
    assert deleted == ["c", "g"]
    [child_event] = [ev for ev in events if ev.kind == EventKind.DELETE_CHILD]
    assert child_event.doc["ri"] == "c" and child_event.parent is not None and child_event.parent["ri"] == "p"
    assert {ev.originator for ev in events} == {"Cae"}
    assert await store.get("g") is None


async def test_any_stored_et_sooner_than_the_armed_expiry_brings_the_timer_forward() -> None:
    store = MemoryStore()
    expiry = RecordingTimer(T0 + 10 * 365 * 86400)
    ex = Executor(store, timers={EXPIRY: expiry})
    # a later et does not move it; a sooner one does, whatever outcome carries it
    await ex.run(Outcome(ops=[Put(doc("late", et=T0 + 20 * 365 * 86400))]))
    assert expiry.pokes == []
    await ex.run(Outcome(ops=[Put(doc("req", et=T0 + 3600))]))
    assert expiry.pokes == [parse_ts(format_ts(T0 + 3600))]
    await ex.run(Outcome(ops=[Put(doc("req2", et=T0 + 7200))]))
    assert len(expiry.pokes) == 1  # not sooner than what is armed now


async def test_an_unarmed_expiry_timer_is_armed_by_the_first_et() -> None:
    expiry = RecordingTimer(None)
    ex = Executor(MemoryStore(), timers={EXPIRY: expiry})
    await ex.run(Outcome(ops=[Put(doc("x", et=T0 + 5))]))
    assert expiry.deadline == parse_ts(format_ts(T0 + 5))


async def test_deadlines_poke_the_timer_they_name() -> None:
    sf = RecordingTimer(None)
    ex = Executor(MemoryStore(), timers={STORE_AND_FORWARD: sf})
    await ex.run(Outcome(deadlines=[Deadline(STORE_AND_FORWARD, T0 + 1)]))
    assert sf.pokes == [T0 + 1]


async def test_an_outcome_is_one_commit() -> None:
    commits: list[int] = []

    class CountingStore(MemoryStore):
        async def commit(self, ops):  # type: ignore[no-untyped-def]
            commits.append(len(ops))
            return await super().commit(ops)

    ex = Executor(CountingStore())
    await ex.run(Outcome(ops=[Put(doc("a")), Put(doc("b", "a"))]).adding(ops=[Put(doc("c", "a"))]))
    await ex.run(Outcome())  # nothing to commit: no commit
    assert commits == [3]


async def test_what_a_removal_took_beyond_what_was_read_is_still_heard_and_notified() -> None:
    store = MemoryStore()
    hold = asyncio.Event()
    heard: list[str] = []

    async def listener(events: Sequence[Event]) -> Outcome | None:
        heard.extend(ev.doc["ri"] for ev in events if ev.kind == EventKind.DELETE)
        if not hold.is_set():
            await hold.wait()  # a listener that suspends: another change gets in before the commit
        return Outcome(sends=[Notification(ev.doc["ri"], "http://127.0.0.1:1/n", {})
                              for ev in events if ev.kind == EventKind.DELETE])

    delivered: list[Notification] = []
    ex = Executor(store, listeners=[listener], deliver=delivered.append, outbox=Outbox(store))
    parent, child = doc("p"), doc("c", "p")
    await store.commit([Put(parent), Put(child)])
    removing = asyncio.ensure_future(ex.run(Outcome(ops=[Delete("c")]).with_removal(Removal(child, parent, None))))
    await asyncio.sleep(0)  # into the listener's wait (a turn of the loop, not a wait for time)
    await store.commit([Put(doc("late", "c"))])
    hold.set()
    await removing
    assert heard == ["c", "late"]
    assert sorted(n.key for n in delivered) == ["c", "late"]
    assert len(await store.kv_items(OUTBOX_NS)) == 2


async def test_events_a_listener_answers_with_are_heard_by_every_listener_and_committed_once() -> None:
    """A listener's own deletion (cse/csf/group.py: a group's member
    subscriptions) joins the commit, and every listener hears it in a
    further round -- once, even beside a subtree removal."""
    store = RecordingStore()
    commits = store.commits
    heard: list[tuple[str, int, str]] = []
    elsewhere = doc("x")

    async def cascading(events: Sequence[Event]) -> Outcome | None:
        heard.extend(("cascading", ev.kind, ev.doc["ri"]) for ev in events)
        if any(ev.kind == EventKind.DELETE and ev.doc["ri"] == "c" for ev in events):
            return Outcome(ops=[Delete("x")], events=[Event(EventKind.DELETE, elsewhere)])
        return None

    async def other(events: Sequence[Event]) -> Outcome | None:
        heard.extend(("other", ev.kind, ev.doc["ri"]) for ev in events)
        return None

    ex = Executor(store, listeners=[cascading, other])
    parent, child = doc("p"), doc("c", "p")
    await ex.run(Outcome(ops=[Put(parent), Put(child), Put(elsewhere)]))
    commits.clear()
    await ex.run(Outcome(ops=[Delete("c")]).with_removal(Removal(child, parent, None)))
    assert commits == [[Delete("c"), Delete("x")]]  # one commit, nothing "late"
    assert [h for h in heard if h[2] == "x"] == [("cascading", EventKind.DELETE, "x"), ("other", EventKind.DELETE, "x")]
    assert await store.get("x") is None


async def test_listeners_answering_events_without_end_are_a_bug_not_a_loop() -> None:
    store = MemoryStore()

    async def endless(events: Sequence[Event]) -> Outcome | None:
        return Outcome(events=[Event(EventKind.UPDATE, ev.doc) for ev in events])

    ex = Executor(store, listeners=[endless])
    with pytest.raises(RuntimeError, match="rounds"):
        await ex.run(Outcome(ops=[Put(doc("a"))], events=[Event(EventKind.UPDATE, doc("a"))]))
    assert await store.get("a") is None  # nothing committed

"""The executor: commit, then events, then sends, then timers -- for any outcome.

Pure unit tests against the in-memory store with recording listeners and
timers, so each step's order and input is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from cse.core.events import Event, EventKind
from cse.core.executor import Executor
from cse.core.outcome import EXPIRY, STORE_AND_FORWARD, Deadline, Notification, Outcome, Removal
from cse.core.ports import Delete, Put
from cse.core.timestamps import format_ts, parse_ts
from cse.store.memory import MemoryStore

T0 = 1_800_000_000.0


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


async def test_listeners_see_the_change_committed_and_their_sends_follow() -> None:
    store = MemoryStore()
    seen: list[tuple[int, bool]] = []
    delivered: list[Notification] = []

    async def listener(events: Sequence[Event]) -> Outcome | None:
        # the change is already in the store when a listener hears of it
        for ev in events:
            seen.append((ev.kind, await store.get(ev.doc["ri"]) is not None))
        return Outcome(sends=[Notification("sub", "http://127.0.0.1:1/n", {"m2m:sgn": {}})])

    ex = Executor(store, listeners=[listener], deliver=delivered.append)
    a = doc("a")
    await ex.run(Outcome(ops=[Put(a)], events=[Event(EventKind.CREATE_CHILD, a, None)]))
    assert seen == [(EventKind.CREATE_CHILD, True)]
    assert [n.key for n in delivered] == ["sub"]


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

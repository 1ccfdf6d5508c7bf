"""The bounded request-ID memory and its low-water marks (docs/security.md "Replay protection").

In-process, at the CSE both endpoints are registered with (the ingress hop,
whose freshness window is 300 s): more requests than the memory keeps
arrive within the window, then an early one is replayed inside it. The
memory has forgotten it, the mark refuses it (it used to be executed
again). The pure eviction rule is checked on its own too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from cse.config import ConfigError, load_config
from cse.core.messages import Operation, Request
from cse.core.timestamps import format_ts
from cse.csf.smg.history import MARKS_NS, _evicted, replay_ns
from tests.conftest import InProc, started_inproc
from tests.flow2_helpers import LocalSession, local_session, rqi
from tests.notify_receiver import Receiver

KEEP = 8
CREATE, RETRIEVE = Operation.CREATE, Operation.RETRIEVE


@pytest.fixture
async def small() -> AsyncIterator[InProc]:
    """An in-process CSE whose session memory keeps 8 answers."""
    config = load_config(None, db=":memory:")
    async with started_inproc(replace(config, smg=replace(config.smg, replay_keep=KEEP))) as ip:
        yield ip


@pytest.fixture
async def ls(small: InProc) -> AsyncIterator[LocalSession]:
    async with Receiver() as rcv2:
        yield await local_session(small, rcv2)


def _to(ls: LocalSession) -> str:
    return f"{ls.cb}/AE2/container1"


async def _cni(ls: LocalSession) -> int:
    r = await ls.ip.call(RETRIEVE, _to(ls), ls.aei2)
    assert r.rsc == 2000, r.pc
    return int(r.pc["m2m:cnt"]["cni"])


async def _fill(ls: LocalSession, n: int, step: float = 0.5) -> None:
    for _ in range(n):
        ls.ip.clock.advance(step)
        r = await ls.call(RETRIEVE, _to(ls), ls.aei1)
        assert r.rsc == 2000, r.pc


async def test_an_early_request_replayed_inside_the_window_is_refused(ls: LocalSession) -> None:
    to, rq, pc = _to(ls), rqi("early"), {"m2m:cin": {"con": "once"}}
    t0 = ls.ip.clock.now()
    kw = ls.signed(CREATE, to, rq, pc)
    first = await ls.ip.cse.handle(Request(op=CREATE, to=to, fr=ls.aei1, rqi=rq, ty=4, pc=pc, **kw))
    assert first.rsc == 2001, first.pc
    await _fill(ls, 3 * KEEP)
    assert await ls.ip.cse.store.kv_get(replay_ns(ls.sid), rq) is None  # the memory forgot it
    assert ls.ip.clock.now() - t0 < 300  # still inside the ingress hop's freshness window
    again = await ls.ip.cse.handle(Request(op=CREATE, to=to, fr=ls.aei1, rqi=rq, ty=4, pc=pc, **kw))
    assert again.rsc == 4103, again.pc
    assert "no longer remembers" in again.pc["m2m:dbg"], again.pc
    assert await _cni(ls) == 1


async def test_the_memory_keeps_the_newest_ots_and_refuses_only_below_its_mark(ls: LocalSession) -> None:
    """Requests may arrive out of OT order (store-and-forward): one the memory
    never saw is served as long as its OT is above the mark, whatever
    newer requests were served before it."""
    t0 = ls.ip.clock.now()
    await _fill(ls, 2 * KEEP, step=1.0)  # OTs t0+1 .. t0+16; the memory keeps the newest
    marks = await ls.ip.cse.store.kv_get(MARKS_NS, ls.sid)
    assert marks is not None
    [mark] = marks.values()
    assert t0 < mark < t0 + 2 * KEEP, (mark - t0)
    kept = await ls.ip.cse.store.kv_items(replay_ns(ls.sid))
    assert all(v["ot"] > mark for _, v in kept)
    late_ok = await ls.call(CREATE, _to(ls), ls.aei1, ty=4, pc={"m2m:cin": {"con": "late"}},
                            ot=format_ts(mark + 0.25))
    assert late_ok.rsc == 2001, late_ok.pc
    overtaken = await ls.call(CREATE, _to(ls), ls.aei1, ty=4, pc={"m2m:cin": {"con": "old"}}, ot=format_ts(mark))
    assert overtaken.rsc == 4103, overtaken.pc
    assert await _cni(ls) == 1


async def test_termination_drops_the_marks(ls: LocalSession) -> None:
    await _fill(ls, 2 * KEEP)
    assert await ls.ip.cse.store.kv_get(MARKS_NS, ls.sid) is not None
    r = await ls.ip.call(Operation.DELETE, ls.ses_path, ls.aei1)
    assert r.rsc == 2002, r.pc
    assert await ls.ip.cse.store.kv_get(MARKS_NS, ls.sid) is None
    assert await ls.ip.cse.store.kv_items(replay_ns(ls.sid)) == []


def test_eviction_takes_the_oldest_ots_ties_included_and_marks_each_direction() -> None:
    items: list[tuple[str, Any]] = [
        ("legacy", {"rsc": 2000}),                       # no OT (sec 0, or an earlier version): first to go
        ("a", {"rsc": 2000, "ot": 5.0, "ep": "/id-2/B"}),
        ("b", {"rsc": 2000, "ot": 3.0, "ep": "/id-1/A"}),
        ("c", {"rsc": 2000, "ot": 3.0, "ep": "/id-2/B"}),  # ties with b: both go or neither
        ("d", {"rsc": 2000, "ot": 9.0, "ep": "/id-2/B"}),
        ("e", {"rsc": 2000, "ot": 1.0, "ep": "/id-2/B"}),
    ]
    gone, marks = _evicted(items, keep=3)
    assert sorted(gone) == ["b", "c", "e", "legacy"]
    assert marks == {"/id-1/A": 3.0, "/id-2/B": 3.0}
    assert _evicted(items, keep=6) == ([], {})
    assert _evicted(items, keep=5) == (["legacy"], {})


def test_replay_keep_must_be_positive(tmp_path: Any) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[smg]\nreplay_keep = 0\n")
    with pytest.raises(ConfigError, match=r"smg\.replay_keep"):
        load_config(str(cfg))
    cfg.write_text("[smg]\nreplay_keep = 16\n")
    assert load_config(str(cfg)).smg.replay_keep == 16

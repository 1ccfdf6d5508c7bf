"""Flow 2 store-and-forward logic at one CSE, with the FakeClock and a fake
forward function (two AEs on one CSE never forward, so the queue is driven
directly): which policy applies (hop/aep/ops), what a flush sends and when
it wants to run again (closed window: nothing, deadline = opening; open: in
order), ``mbd`` expiry, ``mbr``, backoff on an unreachable next hop, and
what a termination does to stored requests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import cbor2
import pytest

from cse.core.errors import M2MError, NotAcceptable, TargetNotReachable
from cse.core.ids import Target
from cse.core.messages import Operation, Request, Response
from cse.core.outcome import STORE_AND_FORWARD
from cse.csf.smg.queue import _deserialize, _serialize
from tests.flow2_helpers import COMPLETED, FAILED, PENDING, LocalSession, local_session, rqi, window_sch
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, DELETE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE, Operation.DELETE
REMOTE = "/id-cse2"
TO = f"{REMOTE}/cse2/AE9/container1"



class FakeForward:
    """Records what the queue forwards; fails the first ``fail`` calls."""

    def __init__(self, fail: int = 0, rsc: int = 2001) -> None:
        self.calls: list[tuple[str, str, int, Any]] = []
        self.fail = fail
        self.rsc = rsc
        self.called = asyncio.Event()

    async def __call__(self, req: Request, target: Target) -> Response:
        self.calls.append((req.rqi, target.csi, req.rt, req.sid))
        self.called.set()
        if self.fail > 0:
            self.fail -= 1
            raise TargetNotReachable(f"next hop {target.csi} is down (fake)")
        return Response(rsc=self.rsc, rqi=req.rqi, pc={"m2m:cin": {"con": json.loads(req.body)["m2m:cin"]["con"]}})

    @property
    def rqis(self) -> list[str]:
        return [c[0] for c in self.calls]


async def add_policy(ls: LocalSession, rn: str, **attrs: Any) -> dict[str, Any]:
    r = await ls.ip.call(CREATE, f"{ls.ses_path}/sessionPolicies", ls.aei1, ty=9006,
                         pc={"m2m:spo": {"rn": rn, **attrs}})
    assert r.rsc == 2001, r.pc
    doc = await ls.ip.cse.store.get(r.pc["m2m:spo"]["ri"])
    assert doc is not None
    return dict(doc)


async def store(ls: LocalSession, policy: dict[str, Any], con: str, *, rt: int = 3) -> tuple[str, str]:
    """Put one session request toward REMOTE in the queue; (rqi, <request> ri)."""
    rq = rqi("q")
    pc = {"m2m:cin": {"con": con}}
    req = Request(op=CREATE, to=TO, fr=ls.aei1, rqi=rq, ty=4, pc=pc, sid=ls.sid, body=json.dumps(pc).encode(),
                  rt=rt, ot="20270115T080000", smac="x")
    resp = await ls.ip.cse.smg.queue.store(req, await ls.doc(), REMOTE, policy, Target(False, REMOTE, (), True))
    assert resp.rsc == (1002 if rt == 2 else 1001), resp.pc
    return rq, str(resp.pc["m2m:uri"])


async def request_doc(ls: LocalSession, ri: str) -> dict[str, Any]:
    doc = await ls.ip.cse.store.get(ri)
    assert doc is not None
    return dict(doc)


def queue(ls: LocalSession) -> Any:
    return ls.ip.cse.smg.queue


# -- policy selection -------------------------------------------------------------------------

async def test_policy_selection_by_hop_aep_and_ops(ls: LocalSession) -> None:
    gate = ls.ip.cse.smg.gate
    sess = await ls.doc()
    iep, tep = sess["iep"], sess["tep"]
    assert await gate.policy(sess, UPDATE, tep) is None  # no policy: immediate
    await add_policy(ls, "elsewhere", spt=2, sch=["* * * * * * *"], hop="/id-other")
    for op in (CREATE, RETRIEVE, UPDATE, DELETE):
        assert await gate.policy(sess, op, tep) is None  # another CSE's policy
    await add_policy(ls, "to-ae1", spt=2, sch=["* * * * * * *"], aep=iep)
    assert await gate.policy(sess, UPDATE, tep) is None  # only toward AE1
    assert (await gate.policy(sess, UPDATE, iep))["rn"] == "to-ae1"
    await add_policy(ls, "creates", spt=2, sch=["* * * * * * *"], ops=1)  # every hop, both endpoints
    assert (await gate.policy(sess, CREATE, tep))["rn"] == "creates"
    for op in (RETRIEVE, UPDATE, DELETE):
        assert await gate.policy(sess, op, tep) is None, op
    await add_policy(ls, "here", spt=1, hop=ls.csi, ops=4 | 8)
    assert (await gate.policy(sess, UPDATE, tep))["rn"] == "here"
    assert (await gate.policy(sess, DELETE, tep))["rn"] == "here"
    assert await gate.policy(sess, RETRIEVE, tep) is None


async def test_store_and_forward_policy_needs_a_valid_window(ls: LocalSession) -> None:
    for attrs in ({"spt": 2}, {"spt": 2, "sch": ["not a schedule"]}, {"spt": 2, "sch": ["* * * * *"]}):
        r = await ls.ip.call(CREATE, f"{ls.ses_path}/sessionPolicies", ls.aei1, ty=9006,
                             pc={"m2m:spo": {"rn": "bad", **attrs}})
        assert r.rsc == 4000, (attrs, r.rsc, r.pc)


# -- flush decisions ------------------------------------------------------------------------------

async def test_closed_window_sends_nothing_and_wakes_at_the_opening(ls: LocalSession) -> None:
    t0 = ls.ip.clock.now()
    opens = t0 + 600
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(opens, opens + 300))
    fwd = FakeForward()
    queue(ls).forward = fwd
    stored = [await store(ls, policy, f"#{i}") for i in range(3)]
    assert await queue(ls).count(ls.sid) == 3
    assert await queue(ls).flush(t0) == opens
    assert fwd.calls == []
    ls.ip.clock.advance(599.5)  # the last half second before the window
    assert await queue(ls).flush(ls.ip.clock.now()) == opens
    assert fwd.calls == []
    for _, ri in stored:
        assert (await request_doc(ls, ri))["rs"] == PENDING
    # the window opens: everything goes, oldest first, as blocking requests with the same sid and rqi
    ls.ip.clock.advance(0.5)
    assert await queue(ls).flush(ls.ip.clock.now()) is None
    assert fwd.rqis == [rq for rq, _ in stored]
    assert {c[1] for c in fwd.calls} == {REMOTE} and {c[2] for c in fwd.calls} == {3}  # rt blocking
    assert {c[3] for c in fwd.calls} == {ls.sid}
    for i, (rq, ri) in enumerate(stored):
        doc = await request_doc(ls, ri)
        assert doc["rs"] == COMPLETED and doc["ors"]["rsc"] == 2001 and doc["ors"]["rqi"] == rq, doc
        assert doc["ors"]["pc"]["m2m:cin"]["con"] == f"#{i}"
    assert await queue(ls).count() == 0
    hst = (await ls.doc())["hst"]
    assert [h["rqi"] for h in hst] == [rq for rq, _ in stored]
    assert {h["hop"] for h in hst} == {REMOTE} and {h["rsc"] for h in hst} == {2001}
    # nothing left: a second flush sends nothing more
    assert await queue(ls).flush(ls.ip.clock.now()) is None
    assert len(fwd.calls) == 3


async def test_window_that_closed_waits_for_the_next_one(ls: LocalSession) -> None:
    t0 = ls.ip.clock.now()
    # two windows: [t0+10, t0+20] and [t0+3600, t0+3610]
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(t0 + 10, t0 + 20) + window_sch(t0 + 3600, t0 + 3610))
    fwd = FakeForward()
    queue(ls).forward = fwd
    ls.ip.clock.advance(21)
    await store(ls, policy, "late")
    assert await queue(ls).flush(ls.ip.clock.now()) == t0 + 3600
    assert fwd.calls == []


async def test_mbd_expiry_fails_the_request_with_4008(ls: LocalSession) -> None:
    t0 = ls.ip.clock.now()
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(t0 + 600, t0 + 900), mbd=30)
    fwd = FakeForward()
    queue(ls).forward = fwd
    rq, ri = await store(ls, policy, "too late")
    # the next look is when the request would exceed mbd, sooner than the window
    assert await queue(ls).flush(t0) == t0 + 30
    ls.ip.clock.advance(30)
    await queue(ls).flush(ls.ip.clock.now())
    assert (await request_doc(ls, ri))["rs"] == PENDING  # exactly mbd old: not yet
    ls.ip.clock.advance(1)
    assert await queue(ls).flush(ls.ip.clock.now()) is None
    doc = await request_doc(ls, ri)
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 4008 and doc["ors"]["rqi"] == rq, doc
    assert "mbd" in doc["ors"]["pc"]["m2m:dbg"]
    assert fwd.calls == [] and await queue(ls).count() == 0


async def test_mbr_refuses_beyond_the_buffer(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * 2099"], mbr=2)
    await store(ls, policy, "a")
    await store(ls, policy, "b")
    with pytest.raises(NotAcceptable) as exc:
        await store(ls, policy, "c")
    assert int(exc.value.rsc) == 5207
    assert "buffer" in exc.value.message and "mbr" in exc.value.message
    assert await queue(ls).count(ls.sid) == 2


async def test_backoff_on_unreachable_next_hop_then_success_in_order(ls: LocalSession) -> None:
    t0 = ls.ip.clock.now()
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])  # always open
    fwd = FakeForward(fail=2)
    queue(ls).forward = fwd
    (a, ri_a), (b, ri_b) = await store(ls, policy, "A"), await store(ls, policy, "B")
    # first attempt fails: B waits behind A (per-session order), retry in 1 s
    assert await queue(ls).flush(t0) == t0 + 1.0
    assert fwd.rqis == [a]
    # not before the retry time
    ls.ip.clock.advance(0.5)
    assert await queue(ls).flush(ls.ip.clock.now()) == t0 + 1.0
    assert fwd.rqis == [a]
    # second attempt fails: the delay doubles
    ls.ip.clock.advance(0.5)
    assert await queue(ls).flush(ls.ip.clock.now()) == t0 + 1.0 + 2.0
    assert fwd.rqis == [a, a]
    assert (await request_doc(ls, ri_a))["rs"] == PENDING and (await request_doc(ls, ri_b))["rs"] == PENDING
    assert await queue(ls).count() == 2
    # third attempt succeeds: A, then B
    ls.ip.clock.advance(2.0)
    assert await queue(ls).flush(ls.ip.clock.now()) is None
    assert fwd.rqis == [a, a, a, b]
    assert (await request_doc(ls, ri_a))["rs"] == COMPLETED and (await request_doc(ls, ri_b))["rs"] == COMPLETED
    # the backoff was reset: a new failure retries after 1 s again
    fwd.fail = 1
    await store(ls, policy, "C")
    now = ls.ip.clock.now()
    assert await queue(ls).flush(now) == now + 1.0


async def test_a_refusal_is_an_outcome_not_a_retry(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])

    async def refuse(req: Request, target: Target) -> Response:
        raise M2MError("peer says no")  # a 5000-class error that is not 'unreachable'

    queue(ls).forward = refuse
    rq, ri = await store(ls, policy, "x")
    assert await queue(ls).flush(ls.ip.clock.now()) is None
    doc = await request_doc(ls, ri)
    assert doc["rs"] == FAILED and doc["ors"]["rsc"] == 5000, doc
    assert await queue(ls).count() == 0


async def test_sessions_are_independent(inproc: Any, rcv2: Receiver) -> None:
    """A session whose next hop is down does not hold up another session's requests."""
    ls1 = await local_session(inproc, rcv2)
    r = await inproc.call(CREATE, f"{ls1.cb}/AE1/sessions", ls1.aei1, ty=9002,
                          pc={"m2m:sess": {"tep": ls1.sess["tep"]}})
    assert r.rsc == 2001, r.pc
    sid2 = r.pc["m2m:sess"]["sid"]
    p1 = await add_policy(ls1, "sf", spt=2, sch=["* * * * * * *"])
    ls2 = LocalSession(inproc, ls1.aei1, ls1.aei2, dict(r.pc["m2m:sess"]), sid2, "", b"", b"")
    p2 = await add_policy(ls2, "sf", spt=2, sch=["* * * * * * *"])
    calls: list[str | None] = []

    async def fwd(req: Request, target: Target) -> Response:
        calls.append(req.sid)
        if req.sid == ls1.sid:
            raise TargetNotReachable("down")
        return Response(rsc=2001, rqi=req.rqi)

    queue(ls1).forward = fwd
    await store(ls1, p1, "1")
    await store(ls2, p2, "2")
    await queue(ls1).flush(inproc.clock.now())
    assert calls == [ls1.sid, sid2]
    assert await queue(ls1).count(ls1.sid) == 1 and await queue(ls1).count(sid2) == 0


async def test_rt2_result_goes_to_the_originator_when_delivered(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
    queue(ls).forward = FakeForward()
    async with Receiver() as rtu:
        rq = rqi("rt2")
        pc = {"m2m:cin": {"con": "async"}}
        req = Request(op=CREATE, to=TO, fr=ls.aei1, rqi=rq, ty=4, pc=pc, sid=ls.sid, body=json.dumps(pc).encode(),
                      rt=2, rtu=(rtu.url,))
        resp = await queue(ls).store(req, await ls.doc(), REMOTE, policy, Target(False, REMOTE, (), True))
        assert resp.rsc == 1002
        await queue(ls).flush(ls.ip.clock.now())
        assert (await rtu.next(5)).is_verification  # an RTU target is asked first
        item = await rtu.next(5)
        assert item.body["m2m:rsp"]["rsc"] == 2001 and item.body["m2m:rsp"]["rqi"] == rq, item.body


async def test_termination_drops_stored_requests(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * 2099"])
    fwd = FakeForward()
    queue(ls).forward = fwd
    await store(ls, policy, "never")
    assert await queue(ls).count(ls.sid) == 1
    r = await ls.ip.call(DELETE, ls.ses_path, ls.aei1)
    assert r.rsc == 2002, r.pc
    assert await queue(ls).count(ls.sid) == 0
    ls.ip.clock.advance(10)
    await queue(ls).flush(ls.ip.clock.now())
    assert fwd.calls == []


async def test_termination_fails_the_stored_requests_visibly(ls: LocalSession) -> None:
    """A stored request that will never be delivered must not stay PENDING:
    its <request> ends FAILED with 4004 (and an rt=2 originator is told)."""
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * 2099"])
    _, ri = await store(ls, policy, "never")
    assert (await request_doc(ls, ri))["rs"] == 3
    r = await ls.ip.call(DELETE, ls.ses_path, ls.aei1)
    assert r.rsc == 2002, r.pc
    done = await request_doc(ls, ri)
    assert done["rs"] == 2 and done["ors"]["rsc"] == 4004, done
    assert "terminated" in done["ors"]["pc"]["m2m:dbg"]


async def test_load_continues_the_sequence(ls: LocalSession) -> None:
    """After a restart the keys continue, so new requests go after the old ones."""
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * 2099"])
    first = [await store(ls, policy, f"{i}") for i in range(2)]
    q = queue(ls)
    q._seq = 0  # what a fresh process starts with
    assert await q.load() == 2
    later, _ = await store(ls, policy, "after")
    items = await ls.ip.cse.store.kv_items("smg-queue")
    assert [v["req"]["rqi"] for _, v in items] == [rq for rq, _ in first] + [later]


@pytest.mark.parametrize("change", ["update", "delete"])
async def test_a_policy_change_re_evaluates_the_stored_requests(inproc: Any, rcv2: Receiver, change: str) -> None:
    """With the CSE's own store-and-forward timer running: a request stored
    under a window that does not come goes as soon as the endpoint opens the
    window now (update) or removes the policy (delete: immediate)."""
    ls = await local_session(inproc, rcv2, stop_sf_timer=False)
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * 2099"])
    fwd = FakeForward()
    queue(ls).forward = fwd
    rq, ri = await store(ls, policy, "waiting")
    await asyncio.sleep(0)  # let the poked timer run its flush: window closed, nothing to do
    assert fwd.calls == []
    path = f"{ls.ses_path}/sessionPolicies/sf"
    if change == "update":
        r = await inproc.call(UPDATE, path, ls.aei1, pc={"m2m:spo": {"sch": ["* * * * * * *"]}})
        assert r.rsc == 2004, r.pc
    else:
        r = await inproc.call(DELETE, path, ls.aei1)
        assert r.rsc == 2002, r.pc
    try:  # the poked store-and-forward timer runs its flush
        await asyncio.wait_for(fwd.called.wait(), 2.0)
    except TimeoutError:
        pass  # reported by the assertion below
    assert fwd.rqis == [rq], (
        f"policy {change}d, but the stored request was not re-evaluated "
        f"(store-and-forward timer deadline: {inproc.cse.sf_timer.deadline})")
    assert (await request_doc(ls, ri))["rs"] == COMPLETED


def test_a_stored_request_keeps_its_body_serialization() -> None:
    """A CBOR session request stored for later forwarding is sent on labelled CBOR
    (its MAC is over exactly these bytes); records stored before CBOR read as JSON."""
    body = cbor2.dumps({"m2m:cin": {"con": "1"}})
    req = Request(op=Operation.CREATE, to="/id-in/cse-in/app/data", fr="Cae", rqi="r1", ty=4,
                  pc={"m2m:cin": {"con": "1"}}, body=body, media="application/vnd.onem2m-res+cbor")
    back = _deserialize(json.loads(json.dumps(_serialize(req))))
    assert (back.body, back.media) == (body, "application/vnd.onem2m-res+cbor")
    old = _serialize(req)
    del old["media"]
    assert _deserialize(old).media == "application/json"


# -- when storing pokes the flush timer -------------------------------------------------------------

class FlushTimer:
    """Stands in for the CSE's store-and-forward timer in its executor: armed
    by the deadlines outcomes carry, it runs the flush job, as
    cse.binding.scheduler.DeadlineTimer would, whenever its deadline is due
    on the fake clock, and counts the passes (each reads the whole queue)."""

    def __init__(self, ls: LocalSession) -> None:
        self.ls = ls
        self.deadline: float | None = None
        self.passes = 0
        ls.ip.cse.executor._timers[STORE_AND_FORWARD] = self

    def poke(self, deadline: float) -> None:
        if self.deadline is None or deadline < self.deadline:
            self.deadline = deadline

    async def run_due(self) -> None:
        now = self.ls.ip.clock.now()
        while self.deadline is not None and self.deadline <= now:
            self.deadline = None
            self.passes += 1
            nxt = await queue(self.ls).flush(now)
            if nxt is not None:
                self.poke(nxt)


async def test_storing_while_the_window_is_closed_runs_no_flush_pass(ls: LocalSession) -> None:
    """Each stored request arms the flush timer for the moment it can go,
    not for now: buffering K requests costs no pass over the queue, and the
    window's opening sends them all in one."""
    t0 = ls.ip.clock.now()
    opens = t0 + 600
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(opens, opens + 300))
    timer = FlushTimer(ls)  # from here (creating the policy had the timer look at once)
    fwd = FakeForward()
    queue(ls).forward = fwd
    stored = []
    for i in range(20):
        stored.append(await store(ls, policy, f"#{i}"))
        await timer.run_due()
        ls.ip.clock.advance(1.0)
    assert timer.passes == 0 and fwd.calls == []
    assert timer.deadline == opens
    ls.ip.clock.advance(opens - ls.ip.clock.now())
    await timer.run_due()
    assert timer.passes == 1
    assert fwd.rqis == [rq for rq, _ in stored]
    assert await queue(ls).count() == 0 and timer.deadline is None


async def test_a_stored_request_arms_the_timer_for_its_mbd(ls: LocalSession) -> None:
    """Closed window with ``mbd``: the timer is armed for the moment the
    request would fail, as a flush would arm it; still no pass."""
    t0 = ls.ip.clock.now()
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(t0 + 600, t0 + 900), mbd=30)
    timer = FlushTimer(ls)
    await store(ls, policy, "fails at mbd")
    await timer.run_due()
    assert timer.deadline == t0 + 30 and timer.passes == 0
    assert await queue(ls).flush(t0) == t0 + 30  # what the flush itself answers


async def test_stored_while_its_hop_is_retried_it_waits_for_the_retry(ls: LocalSession) -> None:
    """Open window, but the session's next hop is being retried: the timer
    is armed for the retry (a pass now would send nothing)."""
    t0 = ls.ip.clock.now()
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
    timer = FlushTimer(ls)
    fwd = FakeForward()
    queue(ls).forward = fwd
    queue(ls)._retry_at[ls.sid] = queue(ls).monotonic() + 7.0  # as a failed delivery leaves it
    rq, _ = await store(ls, policy, "after the retry")
    await timer.run_due()
    assert timer.deadline == t0 + 7.0 and timer.passes == 0 and fwd.calls == []
    ls.ip.clock.advance(7.0)
    await timer.run_due()
    assert timer.passes == 1 and fwd.rqis == [rq]


async def test_storing_while_the_window_is_open_sends_promptly(ls: LocalSession) -> None:
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
    timer = FlushTimer(ls)
    fwd = FakeForward()
    queue(ls).forward = fwd
    for i in range(3):
        rq, ri = await store(ls, policy, f"#{i}")
        assert timer.deadline == ls.ip.clock.now()  # now: no wait for a timer slice
        await timer.run_due()
        assert fwd.rqis[-1] == rq and (await request_doc(ls, ri))["rs"] == COMPLETED
    assert timer.passes == 3


async def test_storing_while_the_window_is_open_sends_with_the_running_timer(inproc: Any, rcv2: Receiver) -> None:
    """The CSE's own timer, poked by the store, sends at once."""
    ls = await local_session(inproc, rcv2, stop_sf_timer=False)
    policy = await add_policy(ls, "sf", spt=2, sch=["* * * * * * *"])
    fwd = FakeForward()
    queue(ls).forward = fwd
    rq, ri = await store(ls, policy, "now")
    await asyncio.wait_for(fwd.called.wait(), 5.0)
    assert fwd.rqis == [rq]


# -- the mbr count ----------------------------------------------------------------------------------

async def test_mbr_is_checked_without_reading_the_queue_below_the_limit(ls: LocalSession) -> None:
    """One process knows what it stored: below ``mbr`` no store reads the
    whole queue; at the limit it counts the queue; deliveries free the
    buffer, and a termination's removals are forgotten at the next pass."""
    q = queue(ls)
    scans = 0
    count = q.count

    async def counting(sid: str | None = None) -> int:
        nonlocal scans
        scans += 1
        return await count(sid)

    q.count = counting
    t0 = ls.ip.clock.now()
    policy = await add_policy(ls, "sf", spt=2, sch=window_sch(t0 + 600, t0 + 900), mbr=3)
    fwd = FakeForward()
    q.forward = fwd
    for i in range(3):
        await store(ls, policy, f"#{i}")
    assert scans == 0
    with pytest.raises(NotAcceptable):
        await store(ls, policy, "full")
    assert scans == 1
    ls.ip.clock.advance(600)
    assert await q.flush(ls.ip.clock.now()) is None
    assert len(fwd.calls) == 3
    for i in range(3):  # delivered: the buffer is free again, and known to be
        await store(ls, policy, f"again #{i}")
    assert scans == 1
    with pytest.raises(NotAcceptable):
        await store(ls, policy, "full again")
    # a shared queue (several workers) never trusts its own count
    q._shared = True
    with pytest.raises(NotAcceptable):
        await store(ls, policy, "full, shared")
    assert scans == 3
    # a termination removes them in its own commit: the next pass forgets them here too
    r = await ls.ip.call(DELETE, ls.ses_path, ls.aei1)
    assert r.rsc == 2002, r.pc
    assert ls.sid in q._held
    await q.flush(ls.ip.clock.now())
    assert ls.sid not in q._held

"""Flow 2 at one CSE: the SMG gate's checks with a local session (both AEs on
the in-process CSE, so establishment is local and session-based requests to
the other AE's container are served here). FakeClock drives freshness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cse.core.messages import Operation, Request
from cse.core.session_crypto import derive_keys, encrypt
from cse.core.timestamps import format_ts
from tests.flow2_helpers import LocalSession, local_session, next_sevt, rqi, sevts
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, DELETE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE, Operation.DELETE
UPD = {"m2m:cnt": {"lbl": ["changed"]}}



def cnt_to(ls: LocalSession) -> str:
    return f"{ls.cb}/AE2/container1"


async def lbl(ls: LocalSession) -> list[str]:
    r = await ls.ip.call(RETRIEVE, cnt_to(ls), ls.aei2)
    assert r.rsc == 2000
    return list(r.pc["m2m:cnt"].get("lbl") or [])


async def test_local_session_has_no_next_hop(ls: LocalSession) -> None:
    r = await ls.ip.call(RETRIEVE, ls.ses_path, ls.aei1, rcn=4)
    assert r.rsc == 2000, r.pc
    assert "m2m:nhp" not in r.pc["m2m:sess"], r.pc
    assert ls.sess["iep"] == f"{ls.csi}/{ls.aei1}" and ls.sess["tep"] == f"{ls.csi}/{ls.aei2}"


async def test_signed_update_is_served_locally_and_recorded(ls: LocalSession, rcv2: Receiver) -> None:
    token = encrypt(ls.k_enc, ls.sid, ls.kid, "s")
    rq = rqi("ok")
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc={"m2m:cnt": {"lbl": [token]}}, rq=rq)
    assert r.rsc == 2004, r.pc
    assert await lbl(ls) == [token]  # stored unchanged
    doc = await ls.doc()
    assert doc["rqn"] == 1
    [h] = doc["hst"]
    assert h["rqi"] == rq and h["op"] == 3 and h["rsc"] == 2004 and h["hop"] == ls.csi, h
    assert h["to"] == cnt_to(ls)
    ev = await next_sevt(rcv2, 2)
    assert ev["res"] == f"{ls.csi}/{ls.cb}/AE2/container1" and ev["op"] == 3 and ev["rqi"] == rq, ev
    # the SP-relative form of the same target is the same resource and the same MAC line
    r = await ls.call(UPDATE, f"{ls.csi}/{ls.cb}/AE2/container1", ls.aei1, pc=UPD)
    assert r.rsc == 2004, r.pc


async def test_the_session_overrides_acps_only_with_the_sid(ls: LocalSession) -> None:
    # without the session ID, AE1 has no access to AE2's container (AE2 owns it)
    r = await ls.ip.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD)
    assert r.rsc == 4103, r.pc
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD)
    assert r.rsc == 2004, r.pc
    # CREATE and DELETE below AE2 too
    r = await ls.call(CREATE, cnt_to(ls), ls.aei1, ty=4, pc={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001, r.pc
    r = await ls.call(DELETE, cnt_to(ls), ls.aei1)
    assert r.rsc == 2002, r.pc


_MAC_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # case: (how it is signed, what is changed in the request afterwards)
    "bad-mac": ({}, {"smac": "A" * 43}),
    "no-smac": ({}, {"smac": None}),
    "no-ot": ({}, {"ot": None}),
    "bad-ot": ({"ot": "not-a-time"}, {}),
    "wrong-key": ({"k_mac": derive_keys(b"\x02" * 32, "x")[0]}, {}),
    "body-tampered": ({"body": b'{"m2m:cnt":{"lbl":["what was signed"]}}'}, {"body": None}),
    "cse-relative-line": ({"target_line": "cse-in/AE2/container1"}, {}),  # the line must be SP-relative
    "other-target-line": ({"target_line": "/id-in/cse-in/AE2"}, {}),
    "other-op": ({"op": RETRIEVE}, {}),
    "other-rqi": ({"rq": "not-this-one"}, {}),
    "other-sid": ({"sid": "another-session-id-000000"}, {}),
}


@pytest.mark.parametrize("case", sorted(_MAC_CASES))
async def test_mac_failures_are_4103(ls: LocalSession, case: str) -> None:
    to = cnt_to(ls)
    how, after = _MAC_CASES[case]
    how = dict(how)
    rq = rqi()
    op = how.pop("op", UPDATE)
    kw = ls.signed(op, to, how.pop("rq", rq), UPD, **how)
    kw["sid"] = ls.sid
    kw.update(after)
    if kw.get("body") is None:
        kw["body"] = json.dumps(UPD).encode()
    r = await ls.ip.cse.handle(Request(op=UPDATE, to=to, fr=ls.aei1, rqi=rq, pc=UPD, **kw))
    assert r.rsc == 4103, (case, r.rsc, r.pc)
    assert "m2m:dbg" in r.pc
    assert await lbl(ls) == []
    assert (await ls.doc())["hst"] == []


async def test_freshness_window_with_the_fake_clock(ls: LocalSession) -> None:
    now = ls.ip.clock.now()
    fresh = ls.ip.cse.smg.gate.freshness
    assert fresh == 300
    to = cnt_to(ls)
    # exactly at the edges: accepted
    for ot in (now - fresh, now + fresh):
        r = await ls.call(UPDATE, to, ls.aei1, pc=UPD, ot=format_ts(ot))
        assert r.rsc == 2004, (ot - now, r.pc)
    # one second beyond: refused
    for ot in (now - fresh - 1, now + fresh + 1):
        r = await ls.call(UPDATE, to, ls.aei1, pc=UPD, ot=format_ts(ot))
        assert r.rsc == 4103, (ot - now, r.pc)
        assert "X-M2M-OT" in r.pc["m2m:dbg"]
    # a request signed now and presented after the window has passed
    rq = rqi("late")
    kw = ls.signed(UPDATE, to, rq, UPD)
    ls.ip.clock.advance(fresh + 1)
    r = await ls.ip.cse.handle(Request(op=UPDATE, to=to, fr=ls.aei1, rqi=rq, pc=UPD, **kw))
    assert r.rsc == 4103, r.pc


async def test_replay_gets_the_first_answer_and_is_not_executed(ls: LocalSession, rcv2: Receiver) -> None:
    to = cnt_to(ls)
    rq = rqi("rep")
    pc = {"m2m:cin": {"con": "once"}}
    kw = ls.signed(CREATE, to, rq, pc)
    first = await ls.ip.cse.handle(Request(op=CREATE, to=to, fr=ls.aei1, rqi=rq, ty=4, pc=pc, **kw))
    assert first.rsc == 2001, first.pc
    again = await ls.ip.cse.handle(Request(op=CREATE, to=to, fr=ls.aei1, rqi=rq, ty=4, pc=pc, **kw))
    assert again.rsc == 2001 and again.pc == first.pc
    r = await ls.ip.call(RETRIEVE, to, ls.aei2)
    assert r.pc["m2m:cnt"]["cni"] == 1
    doc = await ls.doc()
    assert doc["rqn"] == 1 and len(doc["hst"]) == 1
    await ls.ip.cse.notifier.drained(5)
    assert len(sevts(rcv2, 2)) == 1
    # a replayed request ID is still checked first: a bad MAC under it is refused, not answered
    bad = {**kw, "smac": "B" * 43}
    r = await ls.ip.cse.handle(Request(op=CREATE, to=to, fr=ls.aei1, rqi=rq, ty=4, pc=pc, **bad))
    assert r.rsc == 4103, r.pc


async def test_targets_outside_the_session_and_protected_deletes(ls: LocalSession) -> None:
    ip = ls.ip
    aei3 = await ip.register("AE3")
    r = await ip.call(CREATE, f"{ls.cb}/AE3", aei3, ty=3, pc={"m2m:cnt": {"rn": "c3"}})
    assert r.rsc == 2001
    for op, to, pc in ((UPDATE, f"{ls.cb}/AE3/c3", UPD), (RETRIEVE, f"{ls.cb}/AE3", None),
                       (RETRIEVE, ls.cb, None), (DELETE, f"{ls.cb}/AE3/c3", None)):
        r = await ls.call(op, to, ls.aei1, pc=pc)
        assert r.rsc == 4103, (op, to, r.rsc, r.pc)
    for to in (f"{ls.cb}/AE2", f"{ls.cb}/AE2/sessions", ls.aei2):
        r = await ls.call(DELETE, to, ls.aei1)
        assert r.rsc == 4103, (to, r.rsc, r.pc)
    # a target on another CSE hosting no endpoint
    r = await ls.call(RETRIEVE, "/id-elsewhere/x/y", ls.aei1)
    assert r.rsc == 4103, r.pc
    assert (await ip.call(RETRIEVE, f"{ls.cb}/AE2", ls.aei2)).rsc == 2000
    assert (await ip.call(RETRIEVE, f"{ls.cb}/AE2/sessions", ls.aei2)).rsc == 2000


async def test_originator_must_be_an_endpoint(ls: LocalSession) -> None:
    aei3 = await ls.ip.register("AE3")
    r = await ls.call(UPDATE, cnt_to(ls), aei3, pc=UPD)
    assert r.rsc == 4103, r.pc
    assert "endpoint" in r.pc["m2m:dbg"]
    assert await lbl(ls) == []


async def test_unknown_sid_is_4004(ls: LocalSession) -> None:
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD, sid="nosuchsession0123456789ab")
    assert r.rsc == 4004, r.pc
    assert "nosuchsession" in r.pc["m2m:dbg"]


async def test_terminated_session_is_4004(ls: LocalSession) -> None:
    r = await ls.ip.call(DELETE, ls.ses_path, ls.aei1)
    assert r.rsc == 2002, r.pc
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD)
    assert r.rsc == 4004, r.pc


async def test_sec0_needs_no_mac(inproc: Any, rcv2: Receiver) -> None:
    ls = await local_session(inproc, rcv2, sec=0)
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD, sign_it=False)
    assert r.rsc == 2004, r.pc
    # the session's limits still apply
    r = await ls.call(DELETE, f"{ls.cb}/AE2", ls.aei1, sign_it=False)
    assert r.rsc == 4103, r.pc


async def test_local_target_is_served_at_once_despite_a_store_and_forward_policy(ls: LocalSession) -> None:
    r = await ls.ip.call(CREATE, f"{ls.ses_path}/sessionPolicies", ls.aei1, ty=9006,
                         pc={"m2m:spo": {"rn": "sf", "spt": 2, "sch": ["* * * * * * 2099"]}})
    assert r.rsc == 2001, r.pc
    r = await ls.call(UPDATE, cnt_to(ls), ls.aei1, pc=UPD)
    assert r.rsc == 2004, r.pc
    assert await ls.ip.cse.smg.queue.count() == 0

"""Flow 2 store-and-forward limits on a real pair: ``mbd`` (a request stored
too long fails with 4008 in its ``<request>``), ``mbr`` (a full buffer refuses
the next request with 5207 and a dbg about the buffer), and the order of
delivery (stored requests reach CSE2 in the order they were stored)."""

from __future__ import annotations

import time
from typing import Any

from tests.flow2_helpers import (
    CNT_TO,
    COMPLETED,
    CSI1,
    FAILED,
    NEVER,
    PENDING,
    Flow2,
    dbg,
    next_rsp,
    rqi,
    smg_toml,
    start_pair,
    window_ahead,
)
from tests.notify_receiver import Receiver


async def test_flow2_mbd_expiry_fails_the_request(cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2, Receiver() as rtu:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        await f.policy(NEVER, mbd=1)
        rq = rqi("mbd")
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("late")}}, rq=rq,
                         query="rt=2", headers={"X-M2M-RTU": rtu.url})
        assert r.rsc == 1002, (r.rsc, r.body)
        ri = r.body["m2m:uri"]
        assert (await f.request_res(ri))["rs"] == PENDING
        done = await f.poll_request(ri, lambda q: q["rs"] != PENDING, "the stored request to exceed mbd", 10)
        assert done["rs"] == FAILED, done
        assert done["ors"]["rsc"] == 4008 and done["ors"]["rqi"] == rq, done["ors"]
        assert "mbd" in str(done["ors"].get("pc", "")), done["ors"]
        # the originator asked for asynchronous results: it is told
        rsp = await next_rsp(rtu, 5)
        assert rsp["rsc"] == 4008 and rsp["rqi"] == rq, rsp
        # never delivered
        assert (await f.container())["cni"] == 0
        assert [h for h in (await f.session_at(cse2)).get("hst", []) if h["rqi"] == rq] == []


async def test_flow2_full_buffer_refuses_with_5207(cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        await f.policy(NEVER, mbr=2)
        refs = []
        for i in range(2):
            r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f"n{i}"}})
            assert r.rsc == 1001, (i, r.rsc, r.body)
            refs.append(r.body["m2m:uri"])
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": "n2"}})
        assert r.rsc == 5207, (r.rsc, r.body)
        assert "buffer" in dbg(r) and "mbr" in dbg(r), dbg(r)
        assert "m2m:uri" not in (r.body or {})
        # the two stored ones are untouched
        for ri in refs:
            assert (await f.request_res(ri))["rs"] == PENDING
        # the policy has no ops: a RETRIEVE would be stored too, so it is refused as well
        r = await f.send("GET", cse1, CNT_TO, f.aei1)
        assert r.rsc == 5207, (r.rsc, r.body)


async def test_flow2_stored_requests_are_delivered_in_order(cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        opens, sch = window_ahead(2.5)
        await f.policy(sch, hop=CSI1)
        sent = []
        for i in range(5):
            rq = rqi(f"ord{i}")
            r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc(f"#{i}")}}, rq=rq)
            assert r.rsc == 1001, (i, r.rsc, r.body)
            sent.append((rq, r.body["m2m:uri"]))
        # a replay of a stored request's rqi gets its first answer (the same <request>), not a 6th copy
        rq0, ri0 = sent[0]
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("#0")}}, rq=rq0)
        assert r.rsc == 1001 and r.body == {"m2m:uri": ri0}, (r.rsc, r.body)
        done = [await f.poll_request(ri, lambda q: q["rs"] != PENDING, f"stored request {rq}") for rq, ri in sent]
        assert all(d["rs"] == COMPLETED and d["ors"]["rsc"] == 2001 for d in done), done
        cins = await f.instances()
        assert [f.dec(c["con"]) for c in cins] == [f"#{i}" for i in range(5)]
        # creation order at CSE2 (its context and the instances' ct agree)
        hst2 = [h["rqi"] for h in (await f.session_at(cse2))["hst"]]
        assert hst2 == [rq for rq, _ in sent], hst2
        cts = [c["ct"] for c in cins]
        assert cts == sorted(cts)
        assert [d["ors"]["pc"]["m2m:cin"]["ri"] for d in done] == [c["ri"] for c in cins]


async def test_flow2_stored_longer_than_the_freshness_window_is_still_delivered(cse_process: Any, http: Any) -> None:
    """Freshness is checked where the AE's request enters (CSE1); CSE2 accepts
    a stored request whose X-M2M-OT is older than its freshness window."""
    fresh = smg_toml(freshness_s=2, forwarding_timeout_s=None)
    cse1, cse2 = await start_pair(cse_process, http, cse1_extra=fresh, cse2_extra=fresh)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        opens, sch = window_ahead(3.5)
        await f.policy(sch, hop=CSI1)
        rq = rqi("old")
        signed_at = time.time()
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("kept")}}, rq=rq)
        assert r.rsc == 1001, (r.rsc, r.body)
        done = await f.poll_request(r.body["m2m:uri"], lambda q: q["rs"] != PENDING, "delivery in the window")
        assert time.time() - signed_at > 2, "delivered before the OT became stale: the test proves nothing"
        assert done["rs"] == COMPLETED and done["ors"]["rsc"] == 2001, done
        assert (await f.container())["cni"] == 1

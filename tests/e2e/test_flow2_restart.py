"""Flow 2 store-and-forward across failures, with real processes.

* CSE1 restarts (SIGKILL: a crash; SIGTERM: a clean stop) while requests are
  stored: they stay stored and PENDING, and are delivered in the next window,
  each exactly once (docs/sessions.md "Store-and-forward": "Stored requests survive
  restarts and are delivered once").
* The next hop (CSE2) is down when the window opens: the request stays stored
  with the nextHop showing ``nst`` 2, and is delivered once CSE2 is back
  (same port), the nextHop back to ``nst`` 1.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.flow2_helpers import (
    CNT_TO,
    COMPLETED,
    CSI1,
    PENDING,
    Flow2,
    rqi,
    start_pair,
    until,
    window_ahead,
)
from tests.notify_receiver import Receiver

N_STORED = 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_flow2_cse1_restart_with_stored_requests(cse_process: Any, http: Any, sig: int) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        # 8 s: three stores and a CSE restart must fit before the window, also while the
        # suite's other xdist worker loads the machine (4 s was too short there)
        opens, sch = window_ahead(8.0)
        await f.policy(sch, hop=CSI1)
        sent = []
        for i in range(N_STORED):
            rq = rqi(f"rs{i}")
            r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc(f"#{i}")}}, rq=rq)
            assert r.rsc == 1001, (i, r.rsc, r.body)
            sent.append((rq, r.body["m2m:uri"]))
        await cse1.stop(sig)
        await cse1.start()  # same store, same port
        assert time.time() < opens - 0.3, "test set-up too slow: the window opened during the restart"
        # what the originator sees between the restart and the window (checked at the end,
        # so the delivery below is exercised whatever it is)
        after_restart = {ri: await f.request_res(ri) for _, ri in sent}
        assert (await f.container())["cni"] == 0
        # the window opens: each delivered, once
        for rq, ri in sent:
            done = await f.poll_request(ri, lambda q: q["rs"] == COMPLETED, f"stored request {rq} to complete")
            assert done["ors"]["rsc"] == 2001 and done["ors"]["rqi"] == rq, done["ors"]
        cins = await f.instances()
        assert [f.dec(c["con"]) for c in cins] == [f"#{i}" for i in range(N_STORED)]
        assert (await f.container())["cni"] == N_STORED
        hst2 = [h["rqi"] for h in (await f.session_at(cse2))["hst"]]
        assert hst2 == [rq for rq, _ in sent], hst2
        hst1 = [h for h in (await f.session_at(cse1))["hst"] if h["rqi"] in {rq for rq, _ in sent}]
        assert sorted(h["rqi"] for h in hst1) == sorted(rq for rq, _ in sent), hst1
        # nothing left to send: a later store goes on its own and the count stays exact
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": "after"}})
        assert r.rsc == 1001
        await f.poll_request(r.body["m2m:uri"], lambda q: q["rs"] == COMPLETED, "the later request")
        assert (await f.container())["cni"] == N_STORED + 1
        # still stored and pending after the restart: the CSE neither lost them nor told the
        # originator they failed (a FAILED <request> invites a resend: a second execution)
        for ri, req in after_restart.items():
            assert req["rs"] == PENDING, (
                f"<request> {ri} of a stored session request was rs {req['rs']} ({req.get('ors')}) "
                "after the restart, before its window")


async def test_flow2_next_hop_down_when_the_window_opens(cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        opens, sch = window_ahead(2.0)
        await f.policy(sch, hop=CSI1)
        await cse2.stop()
        rq = rqi("down")
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("later")}}, rq=rq)
        assert r.rsc == 1001, (r.rsc, r.body)
        ri = r.body["m2m:uri"]
        assert time.time() < opens, "test set-up too slow: the window opened before the request was stored"
        # the window opens, CSE2 cannot be reached: the nextHop says so, the request stays stored
        assert await until(lambda: _nst_is(f, 2), "nextHop nst 2 at CSE1", 15)
        assert time.time() >= opens
        req = await f.request_res(ri)
        assert req["rs"] == PENDING, req
        # CSE2 comes back on the same port: delivered, once
        await cse2.start()
        done = await f.poll_request(ri, lambda q: q["rs"] != PENDING, "delivery after CSE2 came back", 30)
        assert done["rs"] == COMPLETED and done["ors"]["rsc"] == 2001, done
        assert await until(lambda: _nst_is(f, 1), "nextHop nst 1 again", 10)
        assert (await f.container())["cni"] == 1
        assert [h["rqi"] for h in (await f.session_at(cse2))["hst"]] == [rq]
        assert f.dec((await f.instances())[0]["con"]) == "later"


async def _nst_is(f: Flow2, nst: int) -> bool:
    return await f.hop_nst() == nst



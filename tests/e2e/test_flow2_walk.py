"""Flow 2 (docs/sessions.md, 27 steps) across a real pair of CSE processes.

AE1 (at CSE1) works on AE2's ``container1`` (at CSE2) inside an established
session: a store-and-forward policy at CSE1 keeps the requests until its
window opens (steps 1-7), CSE2 verifies and serves them (8-13), the answers
come back into the ``<request>`` resources and the session context at CSE1
(14-16), AE2 hears of the change (17-19) and reads the still encrypted
content back with the session (20-27). The immediate variant (no policy, or
an ``spt`` 1 policy) answers AE1 itself.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cse.core.timestamps import parse_ts
from tests.flow2_helpers import (
    CB2,
    CNT_TO,
    COMPLETED,
    CSI1,
    CSI2,
    PENDING,
    Flow2,
    next_rsp,
    next_sevt,
    rqi,
    sevts,
    start_pair,
    window_ahead,
)
from tests.notify_receiver import Receiver


def hst_by_rqi(sess: dict[str, Any], rq: str) -> list[dict[str, Any]]:
    return [h for h in sess.get("hst", []) if h["rqi"] == rq]


@pytest.mark.parametrize("sid_in", ["header", "query"])
async def test_flow2_store_and_forward_walk(cse_process: Any, http: Any, sid_in: str) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2, Receiver() as rtu:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        assert f.sess["sec"] == 1
        # policy at CSE1: store-and-forward, the window opens a few seconds from now
        opens, sch = window_ahead(3.0)
        spo = await f.policy(sch, hop=CSI1)
        assert spo["spt"] == 2 and spo["hop"] == CSI1
        # the policy was replicated to CSE2's copy of the session (flow 1 steps 18-23)
        r = await http.send("GET", f"{cse2.url}/{CB2}/AE2/sessions/{f.rn}/sessionPolicies/sf", fr=f.aei2)
        assert r.rsc == 2000 and r.body["m2m:spo"]["spt"] == 2 and r.body["m2m:spo"]["hop"] == CSI1
        before1 = (await f.session_at(cse1)).get("rqn", 0)

        # -- step 1: AE1 UPDATEs AE2's container through CSE1, signed, content encrypted
        secret_lbl = f.enc("the label is secret")
        rq_upd = rqi("upd")
        r_upd = await f.send("PUT", cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": [secret_lbl]}}, rq=rq_upd,
                             sid_in=sid_in)
        # a CREATE of a contentInstance with an encrypted con, asking for asynchronous results
        secret_con = f.enc("the content is secret")
        rq_cin = rqi("cin")
        r_cin = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": secret_con}},
                             rq=rq_cin, sid_in=sid_in, query="rt=2", headers={"X-M2M-RTU": rtu.url})
        sent_at = time.time()
        assert sent_at < opens, "test set-up too slow: the window opened before the requests were stored"

        # -- steps 2-6: session found, target below AE2, next hop CSE2, policy store-and-forward:
        # stored, 1001 (1002 for rt 2) with the <request> reference
        assert r_upd.rsc == 1001, (r_upd.rsc, r_upd.body)
        assert list(r_upd.body) == ["m2m:uri"], r_upd.body
        assert r_cin.rsc == 1002, (r_cin.rsc, r_cin.body)
        req_upd = await f.request_res(r_upd.body["m2m:uri"])
        req_cin = await f.request_res(r_cin.body["m2m:uri"])
        for req, rq, op in ((req_upd, rq_upd, 3), (req_cin, rq_cin, 1)):
            assert req["ty"] == 17 and req["rs"] == PENDING, req
            assert req["rid"] == rq and req["op"] == op, req
            assert req["tg"] == CNT_TO, req
            assert req["org"] in (f.aei1, f"{CSI1}/{f.aei1}"), req
        r = await http.send("GET", f"{cse1.url}/{f.ses1}/nhp-id-cse2", fr=f.aei1)
        assert r.rsc == 2000, r.body
        nhp = r.body["m2m:nhp"]
        assert nhp["csi"] == CSI2 and nhp["aei"] == f"{CSI2}/{f.aei2}" and nhp["nst"] == 1, nhp
        # nothing reached CSE2 while the window is closed
        cnt = await f.container()
        assert "lbl" not in cnt or secret_lbl not in cnt["lbl"], cnt
        assert cnt["cni"] == 0
        assert hst_by_rqi(await f.session_at(cse2), rq_upd) == []
        assert hst_by_rqi(await f.session_at(cse1), rq_upd) == []
        assert sevts(rcv2, 2) == []

        # -- step 7: the window opens; CSE1 forwards (same sid and rqi), in order
        done_upd = await f.poll_request(r_upd.body["m2m:uri"], lambda q: q["rs"] != PENDING,
                                        "the stored UPDATE to be forwarded in its window")
        done_cin = await f.poll_request(r_cin.body["m2m:uri"], lambda q: q["rs"] != PENDING,
                                        "the stored CREATE to be forwarded in its window")
        # -- steps 14-16: the <request> resources hold the outcome
        assert done_upd["rs"] == COMPLETED, done_upd
        assert done_upd["ors"]["rsc"] == 2004 and done_upd["ors"]["rqi"] == rq_upd, done_upd["ors"]
        assert done_upd["ors"]["pc"]["m2m:cnt"]["lbl"] == [secret_lbl]
        assert parse_ts(done_upd["ors"]["ot"]) >= opens, "forwarded before the window opened"
        assert done_cin["rs"] == COMPLETED and done_cin["ors"]["rsc"] == 2001, done_cin
        assert done_cin["ors"]["pc"]["m2m:cin"]["con"] == secret_con
        # rt 2 + X-M2M-RTU: the result notification
        rsp = await next_rsp(rtu, 10)
        assert rsp["rsc"] == 2001 and rsp["rqi"] == rq_cin, rsp
        assert rsp["pc"]["m2m:cin"]["con"] == secret_con

        # -- steps 8-13: CSE2 verified and served them; its session context has them (same rqi)
        s2 = await f.session_at(cse2)
        [h2] = hst_by_rqi(s2, rq_upd)
        assert h2["rsc"] == 2004 and h2["op"] == 3 and h2["hop"] == CSI2, h2
        assert h2["to"] == CNT_TO, h2
        [h2c] = hst_by_rqi(s2, rq_cin)
        assert h2c["rsc"] == 2001 and h2c["op"] == 1, h2c
        assert [h["rqi"] for h in s2["hst"]].index(rq_upd) < [h["rqi"] for h in s2["hst"]].index(rq_cin)
        # CSE1's context too (step 16), and rqn counted both
        s1 = await f.session_at(cse1)
        [h1] = hst_by_rqi(s1, rq_upd)
        assert h1["rsc"] == 2004 and h1["hop"] == CSI2 and h1["op"] == 3, h1
        [h1c] = hst_by_rqi(s1, rq_cin)
        assert h1c["rsc"] == 2001 and h1c["hop"] == CSI2, h1c
        assert s1["rqn"] == before1 + 2, s1["rqn"]
        # CSE2 stores the encrypted values unchanged
        cnt = await f.container()
        assert cnt["lbl"] == [secret_lbl] and cnt["cni"] == 1, cnt

        # -- steps 17-19: AE2 is told (typ 2) with res = the container's SP-relative path
        ev = await next_sevt(rcv2, 2, 5)
        assert ev["sid"] == f.sid and ev["iep"] == f"{CSI1}/{f.aei1}" and ev["tep"] == f"{CSI2}/{f.aei2}", ev
        assert ev["res"] == f"{CSI2}/{CB2}/AE2/container1" and ev["op"] == 3 and ev["rqi"] == rq_upd, ev
        ev2 = await next_sevt(rcv2, 2, 5)
        assert ev2["op"] == 1 and ev2["rqi"] == rq_cin, ev2
        cin_rn = done_cin["ors"]["pc"]["m2m:cin"]["rn"]
        assert ev2["res"] == f"{CSI2}/{CB2}/AE2/container1/{cin_rn}", ev2

        # -- steps 20-27: AE2 reads the container and its latest instance with the session
        rn2 = (await f.session_at(cse2)).get("rqn", 0)
        rq_get = rqi("get")
        got = await f.send("GET", cse2, f"{CB2}/AE2/container1", f.aei2, rq=rq_get, sid_in="query")
        assert got.rsc == 2000, (got.rsc, got.body)
        assert got.body["m2m:cnt"]["lbl"] == [secret_lbl]
        assert f.dec(got.body["m2m:cnt"]["lbl"][0]) == "the label is secret"
        rq_la = rqi("la")
        la = await f.send("GET", cse2, f"{CB2}/AE2/container1/la", f.aei2, rq=rq_la, sid_in=sid_in)
        assert la.rsc == 2000, (la.rsc, la.body)
        assert la.body["m2m:cin"]["con"] == secret_con
        assert f.dec(la.body["m2m:cin"]["con"]) == "the content is secret"
        s2 = await f.session_at(cse2)
        [hg] = hst_by_rqi(s2, rq_get)
        assert hg["op"] == 2 and hg["rsc"] == 2000 and hg["hop"] == CSI2, hg
        [hl] = hst_by_rqi(s2, rq_la)
        assert hl["rsc"] == 2000, hl
        assert s2["rqn"] == rn2 + 2
        # AE2 reading its own resources is not a change made by the other endpoint: no event
        assert len(sevts(rcv2, 2)) == 2


@pytest.mark.parametrize("sid_in", ["header", "query"])
async def test_flow2_immediate_without_policy(cse_process: Any, http: Any, sid_in: str) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        secret = f.enc("immediately")
        rq = rqi("imm")
        r = await f.send("PUT", cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": [secret]}}, rq=rq, sid_in=sid_in)
        # step 6 skipped: AE1 gets CSE2's 2004 itself
        assert r.rsc == 2004, (r.rsc, r.body)
        assert r.body["m2m:cnt"]["lbl"] == [secret]
        assert (await f.container())["lbl"] == [secret]
        for cse, hop in ((cse1, CSI2), (cse2, CSI2)):
            [h] = hst_by_rqi(await f.session_at(cse), rq)
            assert h["rsc"] == 2004 and h["hop"] == hop and h["op"] == 3, (cse.url, h)
        ev = await next_sevt(rcv2, 2, 5)
        assert ev["res"] == f"{CSI2}/{CB2}/AE2/container1" and ev["rqi"] == rq and ev["op"] == 3, ev
        # AE2's SDK decrypts what it reads
        got = await f.send("GET", cse2, f"{CB2}/AE2/container1", f.aei2, sid_in=sid_in)
        assert got.rsc == 2000 and f.dec(got.body["m2m:cnt"]["lbl"][0]) == "immediately"


async def test_flow2_immediate_policy_spt1(cse_process: Any, http: Any) -> None:
    """An explicit immediate policy behaves as no policy; a store-and-forward
    policy for another operation does not apply to this one."""
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        await f.policy(None, spt=1, rn="imm", hop=CSI1, ops=4)            # UPDATE: immediate
        await f.policy(["* * * * * * 2099"], spt=2, rn="sfc", hop=CSI1, ops=1)  # CREATE: stored
        r = await f.send("PUT", cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": ["x"]}})
        assert r.rsc == 2004, (r.rsc, r.body)
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("c")}})
        assert r.rsc == 1001, (r.rsc, r.body)
        # a retrieve is covered by neither: immediate
        r = await f.send("GET", cse1, CNT_TO, f.aei1)
        assert r.rsc == 2000 and r.body["m2m:cnt"]["cni"] == 0, (r.rsc, r.body)
        # the policy is CSE1's (hop): at CSE2, AE2 is served at once
        r = await f.send("POST", cse2, f"{CB2}/AE2/container1", f.aei2, ty=4, body={"m2m:cin": {"con": "own"}})
        assert r.rsc == 2001, (r.rsc, r.body)

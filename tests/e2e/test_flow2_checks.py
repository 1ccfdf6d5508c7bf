"""Flow 2, the SMG's checks (docs/sessions.md "Marking a request as session-based",
"Request MAC", "What a session authorizes") on a real pair of CSEs: bad or
missing MAC, stale or future ``X-M2M-OT``, replays, targets outside the
session, deleting an endpoint AE, unknown and terminated sessions, an
originator that is not an endpoint, ``sec`` 0 sessions."""

from __future__ import annotations

import json
import time
from typing import Any

from cse.core.session_crypto import b64u, derive_keys
from cse.core.timestamps import format_ts
from tests.e2e.test_intercse_helpers import register_ae
from tests.flow2_helpers import CB1, CB2, CNT_TO, CSI1, CSI2, Flow2, dbg, next_sevt, rqi, smg_toml, start_pair
from tests.notify_receiver import Receiver

UPD = {"m2m:cnt": {"lbl": ["changed"]}}


async def _flow(cse_process: Any, http: Any, rcv1: Receiver, rcv2: Receiver, *, freshness_s: float | None = None,
                sec: int | None = None) -> Flow2:
    extra = smg_toml(freshness_s=freshness_s, forwarding_timeout_s=None) if freshness_s is not None else ""
    cse1, cse2 = await start_pair(cse_process, http, cse1_extra=extra, cse2_extra=extra)
    return await Flow2(http, cse1, cse2, rcv1, rcv2).setup(sec=sec)


async def _unchanged(f: Flow2) -> None:
    cnt = await f.container()
    assert "changed" not in (cnt.get("lbl") or []), cnt
    assert cnt["cni"] == 0, cnt


async def test_flow2_bad_or_missing_mac_is_4103(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        # a MAC that does not verify (last characters changed)
        def corrupt(h: dict[str, str]) -> None:
            h["X-M2M-SMAC"] = h["X-M2M-SMAC"][:-2] + ("AA" if not h["X-M2M-SMAC"].endswith("AA") else "BB")
        cases = {
            "bad mac": {"mutate": corrupt},
            "missing smac": {"mutate": lambda h: h.pop("X-M2M-SMAC")},
            "missing ot": {"mutate": lambda h: h.pop("X-M2M-OT")},
            "unsigned": {"signed": False},
            "wrong key": {"k_mac": derive_keys(b"\x01" * 32, f.sid)[0]},
            "garbage ot": {"ot": "yesterday"},
        }
        for what, kw in cases.items():
            r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD, **kw)
            assert r.rsc == 4103, (what, r.rsc, r.body)
            assert dbg(r), what
        # the MAC covers the body: a body other than the signed one fails
        rq = rqi()
        h = f.sign_headers("UPDATE", CNT_TO, rq, b'{"m2m:cnt":{"lbl":["signed"]}}', receiving_csi=CSI1)
        r = await http.send("PUT", f"{f.cse1.url}/~{CNT_TO}", fr=f.aei1, rqi=rq, headers=h, body=UPD)
        assert r.rsc == 4103, (r.rsc, r.body)
        # ... and the target: a MAC for another resource fails
        rq = rqi()
        raw = json.dumps(UPD).encode()
        h = f.sign_headers("UPDATE", f"{CSI2}/{CB2}/AE2", rq, raw, receiving_csi=CSI1)
        r = await http.send("PUT", f"{f.cse1.url}/~{CNT_TO}", fr=f.aei1, rqi=rq, headers=h, raw=raw)
        assert r.rsc == 4103, (r.rsc, r.body)
        # the same checks hold at CSE2 for AE2's own session-based requests
        r = await f.send("PUT", f.cse2, f"{CB2}/AE2/container1", f.aei2, body=UPD, mutate=corrupt)
        assert r.rsc == 4103, (r.rsc, r.body)
        r = await f.send("PUT", f.cse2, f"{CB2}/AE2/container1", f.aei2, body=UPD, signed=False)
        assert r.rsc == 4103, (r.rsc, r.body)
        await _unchanged(f)
        # nothing of this was recorded as an exchange
        assert (await f.session_at(f.cse1)).get("hst", []) == []
        assert (await f.session_at(f.cse2)).get("hst", []) == []
        # and a correct one still works
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD)
        assert r.rsc == 2004, (r.rsc, r.body)


async def test_flow2_stale_and_future_ot_are_4103(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2, freshness_s=5)
        stale = format_ts(time.time() - 60)
        future = format_ts(time.time() + 60)
        for cse, to, fr in ((f.cse1, CNT_TO, f.aei1), (f.cse2, f"{CB2}/AE2/container1", f.aei2)):
            for what, ot in (("stale", stale), ("future", future)):
                r = await f.send("PUT", cse, to, fr, body=UPD, ot=ot)  # correctly signed, OT included
                assert r.rsc == 4103, (cse.url, what, r.rsc, r.body)
                assert "X-M2M-OT" in dbg(r) or "OT" in dbg(r), dbg(r)
        await _unchanged(f)
        # an OT inside the window is fine
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD, ot=format_ts(time.time() - 2))
        assert r.rsc == 2004, (r.rsc, r.body)


async def test_flow2_replayed_rqi_answers_again_without_executing(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        rq = rqi("replay")
        ot = format_ts(time.time())
        body = {"m2m:cin": {"con": f.enc("once")}}
        first = await f.send("POST", f.cse1, CNT_TO, f.aei1, ty=4, body=body, rq=rq, ot=ot)
        assert first.rsc == 2001, (first.rsc, first.body)
        again = await f.send("POST", f.cse1, CNT_TO, f.aei1, ty=4, body=body, rq=rq, ot=ot)
        assert again.rsc == 2001, (again.rsc, again.body)
        assert again.body == first.body  # the first answer, the same instance
        cnt = await f.container()
        assert cnt["cni"] == 1, cnt
        assert len(await f.instances()) == 1
        # the replay straight at CSE2 (as if CSE1 delivered it again) is not executed either
        h = f.sign_headers("CREATE", CNT_TO, rq, json.dumps(body).encode(), receiving_csi=CSI1, ot=ot)
        r = await http.send("POST", f"{f.cse2.url}/~{CNT_TO}", fr=f"{CSI1}/{f.aei1}", ty=4, body=body, rqi=rq,
                            headers=h)
        assert r.rsc == 2001 and r.body == first.body, (r.rsc, r.body)
        assert (await f.container())["cni"] == 1
        # the replayed update of a label is not applied again after a later change either
        rq2 = rqi("replay-upd")
        ot2 = format_ts(time.time())
        assert (await f.send("PUT", f.cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": ["v1"]}}, rq=rq2,
                             ot=ot2)).rsc == 2004
        assert (await f.send("PUT", f.cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": ["v2"]}})).rsc == 2004
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": ["v1"]}}, rq=rq2, ot=ot2)
        assert r.rsc == 2004, (r.rsc, r.body)
        assert (await f.container())["lbl"] == ["v2"]
        # one typ 2 event per execution: the create and the two updates
        evs = [await next_sevt(rcv2, 2, 5) for _ in range(3)]
        assert evs[0]["rqi"] == rq
        assert [e["op"] for e in evs] == [1, 3, 3]


async def test_flow2_targets_outside_the_session_are_4103(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        # a third AE at CSE2 with a container, and one at CSE1
        aei3 = await register_ae(http, f.cse2, CB2, "AE3")
        r = await http.send("POST", f"{f.cse2.url}/{CB2}/AE3", fr=aei3, ty=3, body={"m2m:cnt": {"rn": "c3"}})
        assert r.rsc == 2001
        aei4 = await register_ae(http, f.cse1, CB1, "AE4")
        r = await http.send("POST", f"{f.cse1.url}/{CB1}/AE4", fr=aei4, ty=3, body={"m2m:cnt": {"rn": "c4"}})
        assert r.rsc == 2001
        for method, to, body in (
                ("PUT", f"{CSI2}/{CB2}/AE3/c3", UPD),                # another AE's container at CSE2
                ("GET", f"{CSI2}/{CB2}/AE3/c3", None),
                ("PUT", f"{CSI2}/{CB2}/AE3", {"m2m:ae": {"lbl": ["x"]}}),
                ("GET", f"{CSI2}/{CB2}", None),                       # the CSEBase above AE2
                ("PUT", f"{CSI1}/{CB1}/AE4/c4", UPD),                # a third AE next to AE1
        ):
            r = await f.send(method, f.cse1, to, f.aei1, body=body)
            assert r.rsc == 4103, (method, to, r.rsc, r.body)
            assert "session" in dbg(r), dbg(r)
        # the session gave AE2 nothing on AE3 either
        r = await f.send("PUT", f.cse2, f"{CB2}/AE3/c3", f.aei2, body=UPD)
        assert r.rsc == 4103, (r.rsc, r.body)
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE3/c3", fr=aei3)
        assert "changed" not in (r.body["m2m:cnt"].get("lbl") or [])


async def test_flow2_deleting_the_endpoint_ae_or_its_sessions_is_4103(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        for to in (f"{CSI2}/{CB2}/AE2", f"{CSI2}/{CB2}/AE2/sessions", f"{CSI2}/{f.aei2}"):
            r = await f.send("DELETE", f.cse1, to, f.aei1)
            assert r.rsc == 4103, (to, r.rsc, r.body)
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2)
        assert r.rsc == 2000
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE2/sessions", fr=f.aei2)
        assert r.rsc == 2000
        # the session still works; deleting something below AE2 is allowed
        r = await f.send("DELETE", f.cse1, CNT_TO, f.aei1)
        assert r.rsc == 2002, (r.rsc, r.body)
        ev = await next_sevt(rcv2, 2, 5)
        assert ev["op"] == 4 and ev["res"] == f"{CSI2}/{CB2}/AE2/container1", ev


async def test_flow2_unknown_and_terminated_sessions_are_4004(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        bogus = b64u(b"\x07" * 24)
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD, sid=bogus)
        assert r.rsc == 4004, (r.rsc, r.body)
        assert bogus[:16] in dbg(r) and "session" in dbg(r), dbg(r)
        r = await f.send("GET", f.cse2, f"{CB2}/AE2/container1", f.aei2, sid=bogus, sid_in="query")
        assert r.rsc == 4004, (r.rsc, r.body)
        # a working request first, then flow 3
        assert (await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD)).rsc == 2004
        r = await http.send("DELETE", f"{f.cse1.url}/{f.ses1}", fr=f.aei1)
        assert r.rsc == 2002, (r.rsc, r.body)
        await next_sevt(rcv2, 3, 5)
        for cse, to, fr in ((f.cse1, CNT_TO, f.aei1), (f.cse2, f"{CB2}/AE2/container1", f.aei2)):
            for sid_in in ("header", "query"):
                r = await f.send("GET", cse, to, fr, sid_in=sid_in)
                assert r.rsc == 4004, (cse.url, sid_in, r.rsc, r.body)
                assert "session" in dbg(r)


async def test_flow2_originator_not_an_endpoint_is_4103(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        aei3 = await register_ae(http, f.cse1, CB1, "AE3")
        aei4 = await register_ae(http, f.cse2, CB2, "AE4")
        # even with the sid and a valid MAC (a leaked key), a third AE is refused
        r = await f.send("PUT", f.cse1, CNT_TO, aei3, body=UPD)
        assert r.rsc == 4103, (r.rsc, r.body)
        assert "endpoint" in dbg(r), dbg(r)
        r = await f.send("PUT", f.cse2, f"{CB2}/AE2/container1", aei4, body=UPD)
        assert r.rsc == 4103, (r.rsc, r.body)
        # nor may it pose as AE1 relayed by CSE1 to CSE2 with its own (wrong) AE-ID
        r = await f.send("PUT", f.cse2, CNT_TO, f"{CSI1}/{aei3}", body=UPD)
        assert r.rsc == 4103, (r.rsc, r.body)
        await _unchanged(f)


async def test_flow2_sec0_session_needs_no_mac(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2, sec=0)
        assert f.sess["sec"] == 0
        rq = rqi("sec0")
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD, signed=False, rq=rq)
        assert r.rsc == 2004, (r.rsc, r.body)
        r = await f.send("GET", f.cse2, f"{CB2}/AE2/container1", f.aei2, signed=False, sid_in="query")
        assert r.rsc == 2000 and r.body["m2m:cnt"]["lbl"] == ["changed"], (r.rsc, r.body)
        ev = await next_sevt(rcv2, 2, 5)
        assert ev["rqi"] == rq
        # the session still marks the request: its limits apply
        r = await f.send("DELETE", f.cse1, f"{CSI2}/{CB2}/AE2", f.aei1, signed=False)
        assert r.rsc == 4103, (r.rsc, r.body)


async def test_flow2_sid_header_and_query_must_agree(cse_process: Any, http: Any) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        other = b64u(b"\x05" * 24)
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body=UPD, query=f"sessionID={other}")
        assert r.rsc == 4000, (r.rsc, r.body)
        await _unchanged(f)

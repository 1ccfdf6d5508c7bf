"""Call flows 1 (establishment, policies) and 3 (termination) on a real pair.

Why: a session is only useful if every CSE on its path holds the same
picture of it -- same sid, both endpoints with their attributes, a nextHop
toward the neighbour, the same policies -- and if tearing it down (by either
endpoint, the admin, or expiry) removes it everywhere and tells the endpoint
AEs. These tests walk docs/sessions.md's call flows step by step over raw HTTP and check the
resources on both hops after every step.

CSE1 = /id-cse1 (cse1) is the registrar of CSE2 = /id-cse2 (cse2).
AE1 is registered to CSE1, AE2 to CSE2; their notification endpoints are
loopback receivers (:class:`SessionAE`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cse.core.timestamps import format_ts
from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import dbg, register_ae, until, wait_csr
from tests.e2e.test_smg_helpers import (
    KEY_RE,
    SID_RE,
    SessionAE,
    check_established_copy,
    establish,
    get,
    hop_view,
    sessions_in,
    smg_ae,
    smg_resources,
    start_smg_pair,
    wait_gone,
)

EPA1 = {"app": "meter-reader", "v": 1}
EPA2 = {"app": "meter", "codec": "cbor"}


async def test_flow1_establishment_and_policies_then_flow3_by_ae1(
        cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http)

    # -- step 1: capability exchange -------------------------------------------------------
    for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
        base = await get(http, f"{cse.url}/{cb}")
        assert base.rsc == 2000 and base.body["m2m:cb"]["scp"] == ["smg"], base.body
        coll = await get(http, f"{cse.url}/{cb}/sessions")
        assert coll.rsc == 2000 and coll.body["m2m:sesc"]["ty"] == 9001, coll.body
    csr_at1 = await wait_csr(http, cse1, "cse1/id-cse2")
    csr_at2 = await wait_csr(http, cse2, "cse2/id-cse1")
    assert csr_at1["scp"] == ["smg"] and csr_at1["poa"] == [cse2.url], csr_at1
    assert csr_at2["scp"] == ["smg"] and csr_at2["poa"] == [cse1.url], csr_at2

    # -- step 2: AEs; only a session-capable one gets a sessions collection ------------------
    async with SessionAE(epa=EPA2) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1, subscribe=False)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2, subscribe=False)
        await register_ae(http, cse1, "cse1", "plain1")
        await register_ae(http, cse2, "cse2", "plain2", scp=["other"])
        for cse, path, fr in ((cse1, "cse1/ae1", aei1), (cse2, "cse2/ae2", aei2)):
            ae = await get(http, f"{cse.url}/{path}", fr=fr)
            assert ae.body["m2m:ae"]["scp"] == ["smg"], ae.body
            coll = await get(http, f"{cse.url}/{path}/sessions", fr=fr)
            assert coll.rsc == 2000, coll.body
            assert coll.body["m2m:sesc"]["ty"] == 9001 and coll.body["m2m:sesc"]["rn"] == "sessions"
            assert coll.body["m2m:sesc"]["pi"] == fr, coll.body
        assert (await get(http, f"{cse1.url}/cse1/plain1/sessions")).rsc == 4004
        assert (await get(http, f"{cse2.url}/cse2/plain2/sessions")).rsc == 4004
        assert await smg_resources(http, cse1, "cse1") == [] and await smg_resources(http, cse2, "cse2") == []

        # -- steps 3-5: AE2 subscribes under its sessions collection (verified) --------------
        sub = await http.send("POST", f"{cse2.url}/cse2/ae2/sessions", fr=aei2, ty=23,
                              body={"m2m:sub": {"rn": "sesSub", "nu": [rcv2.url]}})
        assert sub.rsc == 2001, sub.body
        ver = await rcv2.next(5)
        assert ver.is_verification and ver.sgn["sur"] == f"/id-cse2/{sub.body['m2m:sub']['ri']}", ver.body
        sub1 = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=23,
                               body={"m2m:sub": {"rn": "sesSub", "nu": [rcv1.url]}})
        assert sub1.rsc == 2001 and (await rcv1.next(5)).is_verification
        listed = await get(http, f"{cse2.url}/cse2/ae2/sessions?rcn=6", fr=aei2)
        assert [c["typ"] for c in listed.body["m2m:rrl"]["rrf"]] == [23], listed.body

        # -- step 6: forwarded discovery of session-capable AEs ------------------------------
        found = await get(http, f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2&scp=smg", fr=aei1)
        assert found.rsc == 2000 and found.body["m2m:uril"] == ["/id-cse2/cse2/ae2"], found.body

        # -- steps 7-17: establishment -----------------------------------------------------
        tep = f"/id-cse2/{aei2}"
        iep = f"/id-cse1/{aei1}"
        r = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=9002,
                            body={"m2m:sess": {"tep": tep, "epa": EPA1}})
        assert r.rsc == 2001, r.body
        sess = r.body["m2m:sess"]
        sid = sess["sid"]
        assert SID_RE.match(sid), sid
        assert sess["ri"] == f"ses{sid}" and sess["sst"] == 2, sess
        assert sess["iep"] == iep and sess["tep"] == tep, sess
        scr = sess["scr"]
        assert set(scr) == {"kid", "key", "alg"} and scr["alg"] == "A256GCM" and scr["kid"], scr
        assert KEY_RE.match(scr["key"]), scr
        answered_seps = sorted(sess["m2m:sep"], key=lambda s: s["rol"])
        assert [(s["rol"], s["aei"], s["epa"]) for s in answered_seps] == [(1, iep, EPA1), (2, tep, EPA2)], sess
        assert r.body["m2m:sess"]["sst"] == 2

        # steps 10-13: AE2 was asked, with the credentials AE1 got
        item, ev = await rcv2.event(1)
        assert item.sgn["nev"]["net"] == 3, item.body
        assert item.sgn["sur"] == f"/id-cse2/{sub.body['m2m:sub']['ri']}", item.body
        assert ev["sid"] == sid and ev["iep"] == iep and ev["tep"] == tep, ev
        assert ev["scr"] == scr and ev["epa"] == EPA1, ev

        # steps 14 and 16: both hops hold the same session
        for cse, hops, path in ((cse1, {"/id-cse2": [cse2.url]}, "cse1/ae1/sessions"),
                                (cse2, {"/id-cse1": [cse1.url]}, "cse2/ae2/sessions")):
            view = await hop_view(http, cse, sid)
            check_established_copy(view, sid=sid, iep=iep, tep=tep, epa1=EPA1, epa2=EPA2, hops=hops)
            coll = await get(http, f"{cse.url}/{path}")
            assert view["pi"] == coll.body["m2m:sesc"]["ri"], (view["pi"], coll.body)
            assert len(await sessions_in(http, cse, path)) == 1
        # the transit collections hold nothing in a pair
        assert await sessions_in(http, cse1, "cse1/sessions") == []
        assert await sessions_in(http, cse2, "cse2/sessions") == []
        # the endpoint AEs read their own copy (structured path, rn = ri)
        own1 = await get(http, f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)
        assert own1.rsc == 2000 and own1.body["m2m:sess"]["sid"] == sid, own1.body
        own2 = await get(http, f"{cse2.url}/cse2/ae2/sessions/ses{sid}", fr=aei2)
        assert own2.rsc == 2000 and own2.body["m2m:sess"]["sid"] == sid, own2.body
        assert not rcv1.events(), rcv1.events()  # the initiator is not asked

        # -- steps 18-23: sessionPolicy replication ------------------------------------------
        spc1 = f"{cse1.url}/cse1/ae1/sessions/ses{sid}/sessionPolicies"
        spc2 = f"{cse2.url}/cse2/ae2/sessions/ses{sid}/sessionPolicies"
        pol = {"rn": "night", "spt": 2, "sch": ["* * 0-5 * * * *"], "hop": "/id-cse1", "aep": tep,
               "ops": 4, "mbd": 3600, "mbr": 10}
        made = await http.send("POST", spc1, fr=aei1, ty=9006, body={"m2m:spo": pol})
        assert made.rsc == 2001, made.body
        for url, fr in ((spc1, aei1), (spc2, aei2)):
            got = await get(http, f"{url}/night", fr=fr)
            assert got.rsc == 2000, (url, got.body)
            spo = got.body["m2m:spo"]
            assert spo["ty"] == 9006 and spo["rn"] == "night", spo
            assert {k: spo.get(k) for k in pol if k != "rn"} == {k: v for k, v in pol.items() if k != "rn"}, spo

        upd = await http.send("PUT", f"{spc1}/night", fr=aei1,
                              body={"m2m:spo": {"mbr": 20, "sch": ["* * 1-4 * * * *"]}})
        assert upd.rsc == 2004, upd.body
        for url in (spc1, spc2):
            spo = (await get(http, f"{url}/night")).body["m2m:spo"]
            assert spo["mbr"] == 20 and spo["sch"] == ["* * 1-4 * * * *"] and spo["mbd"] == 3600, (url, spo)

        # refused policies leave nothing on either hop
        no_sch = await http.send("POST", spc1, fr=aei1, ty=9006, body={"m2m:spo": {"rn": "bad1", "spt": 2}})
        assert no_sch.rsc == 4000 and "sch" in dbg(no_sch), no_sch.body
        bad_sch = await http.send("POST", spc1, fr=aei1, ty=9006,
                                  body={"m2m:spo": {"rn": "bad2", "spt": 2, "sch": ["every night please"]}})
        assert bad_sch.rsc == 4000, bad_sch.body
        bad_upd = await http.send("PUT", f"{spc1}/night", fr=aei1, body={"m2m:spo": {"sch": ["nope"]}})
        assert bad_upd.rsc == 4000, bad_upd.body
        for url in (spc1, spc2):
            for rn in ("bad1", "bad2"):
                assert (await get(http, f"{url}/{rn}")).rsc == 4004, (url, rn)
            assert (await get(http, f"{url}/night")).body["m2m:spo"]["sch"] == ["* * 1-4 * * * *"]

        # AE2 creates one at its CSE: it reaches CSE1
        made2 = await http.send("POST", spc2, fr=aei2, ty=9006, body={"m2m:spo": {"rn": "now", "spt": 1, "ops": 2}})
        assert made2.rsc == 2001, made2.body
        for url in (spc1, spc2):
            spo = await get(http, f"{url}/now")
            assert spo.rsc == 2000 and spo.body["m2m:spo"]["spt"] == 1 and spo.body["m2m:spo"]["ops"] == 2, spo.body

        # delete propagates (from either side)
        assert (await http.send("DELETE", f"{spc1}/night", fr=aei1)).rsc == 2002
        assert (await http.send("DELETE", f"{spc2}/now", fr=aei2)).rsc == 2002
        for url in (spc1, spc2):
            left = await get(http, f"{url}?rcn=6")
            assert left.rsc == 2000 and left.body["m2m:rrl"].get("rrf", []) == [], (url, left.body)

        # a session-based request is known to both hops before the termination
        # (refused for its missing MAC, not for an unknown session) ...
        for cse, path, fr in ((cse1, "cse1/ae1", aei1), (cse2, "cse2/ae2", aei2)):
            before = await http.send("GET", f"{cse.url}/{path}", fr=fr, headers={"X-M2M-SID": sid})
            assert before.rsc == 4103, (cse.url, before.rsc, before.body)

        # -- flow 3: AE1 terminates ----------------------------------------------------------
        gone = await http.send("DELETE", f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)
        assert gone.rsc == 2002, gone.body
        assert "not reached" not in dbg(gone), gone.body
        item, ev = await rcv2.event(3)
        assert item.sgn["nev"]["net"] == 4, item.body
        assert ev["sid"] == sid and ev["iep"] == iep and ev["tep"] == tep and ev["why"] == 1, ev
        assert "scr" not in ev
        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004
            assert await smg_resources(http, cse, cb) == [], cse.url
        assert (await get(http, f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)).rsc == 4004
        assert (await get(http, f"{cse2.url}/cse2/ae2/sessions/ses{sid}", fr=aei2)).rsc == 4004
        # ... and unknown to both after it (docs/sessions.md flow 3: 4004 at both CSEs)
        for cse, path, fr in ((cse1, "cse1/ae1", aei1), (cse2, "cse2/ae2", aei2)):
            after = await http.send("GET", f"{cse.url}/{path}", fr=fr, headers={"X-M2M-SID": sid})
            assert after.rsc == 4004, (cse.url, after.rsc, after.body)
            after_q = await http.send("GET", f"{cse.url}/{path}?sessionID={sid}", fr=fr)
            assert after_q.rsc == 4004, (cse.url, after_q.rsc, after_q.body)
        # the collections and the subscriptions stay
        assert (await get(http, f"{cse2.url}/cse2/ae2/sessions/sesSub", fr=aei2)).rsc == 2000
        assert (await get(http, f"{cse1.url}/cse1/ae1/sessions", fr=aei1)).rsc == 2000


async def test_flow3_termination_by_ae2_and_by_the_admin(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http)
    async with SessionAE(epa=EPA2) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        iep, tep = f"/id-cse1/{aei1}", f"/id-cse2/{aei2}"

        # AE2 (the target) terminates at its own CSE: AE1 is told, both hops clean
        sid = (await establish(http, cse1, "cse1", "ae1", aei1, tep, epa=EPA1))["sid"]
        await rcv2.event(1)
        by2 = await http.send("DELETE", f"{cse2.url}/cse2/ae2/sessions/ses{sid}", fr=aei2)
        assert by2.rsc == 2002, by2.body
        assert "not reached" not in dbg(by2), by2.body
        item, ev = await rcv1.event(3)
        assert item.sgn["nev"]["net"] == 4
        assert ev == {"typ": 3, "sid": sid, "iep": iep, "tep": tep, "why": 1}, ev
        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004
            assert await smg_resources(http, cse, cb) == []

        # the admin terminates at CSE1: both endpoint AEs are told
        sid = (await establish(http, cse1, "cse1", "ae1", aei1, tep, epa=EPA1))["sid"]
        await rcv2.event(1)
        adm = await http.send("DELETE", f"{cse1.url}/ses{sid}", fr=ADMIN)
        assert adm.rsc == 2002, adm.body
        _, ev2 = await rcv2.event(3)
        _, ev1 = await rcv1.event(3)
        assert ev1["sid"] == ev2["sid"] == sid, (ev1, ev2)
        assert ev1["why"] == ev2["why"] == 1, (ev1, ev2)
        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004
            assert await smg_resources(http, cse, cb) == []

        # the admin of CSE2 terminates at CSE2
        sid = (await establish(http, cse1, "cse1", "ae1", aei1, tep))["sid"]
        await rcv2.event(1)
        adm2 = await http.send("DELETE", f"{cse2.url}/cse2/ae2/sessions/ses{sid}", fr=ADMIN)
        assert adm2.rsc == 2002, adm2.body
        _, ev2 = await rcv2.event(3)
        _, ev1 = await rcv1.event(3)
        assert ev1["sid"] == ev2["sid"] == sid and ev1["why"] == ev2["why"] == 1, (ev1, ev2)
        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004
            assert await smg_resources(http, cse, cb) == []


async def test_flow3_expiry_terminates_everywhere_and_tells_both(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http)
    async with SessionAE(epa=EPA2) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        iep, tep = f"/id-cse1/{aei1}", f"/id-cse2/{aei2}"
        et = format_ts(time.time() + 2.5)
        sess = await establish(http, cse1, "cse1", "ae1", aei1, tep, et=et)
        sid = sess["sid"]
        await rcv2.event(1)
        # both copies carry the expiration
        for cse in (cse1, cse2):
            assert (await hop_view(http, cse, sid))["et"] == sess["et"]

        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            await wait_gone(http, cse, cb, timeout=10)
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004

        async def both_told() -> bool:
            return bool(rcv1.events(3)) and bool(rcv2.events(3))
        await until(both_told, "the typ 3 (expired) event at both endpoint AEs", timeout=5)
        ev1, ev2 = rcv1.events(3)[0], rcv2.events(3)[0]
        assert ev1["sid"] == ev2["sid"] == sid, (ev1, ev2)
        assert ev1["iep"] == iep and ev1["tep"] == tep
        assert ev1["why"] == 2 and ev2["why"] == 2, (ev1, ev2)


async def test_flow3_termination_with_the_peer_down(cse_process: Callable[..., Any], http: Http) -> None:
    """CSE2 is down: a policy cannot be replicated (refused, not kept at
    CSE1); the termination at CSE1 still ends CSE1's copy, answers 2002 and
    names the hop it could not reach; when CSE2 comes back its copy goes too
    (it learns of the termination, or the session expires there)."""
    cse1, cse2 = await start_smg_pair(cse_process, http)
    async with SessionAE(epa=EPA2) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        et = format_ts(time.time() + 4)
        sid = (await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{aei2}", et=et))["sid"]
        await rcv2.event(1)
        assert await cse2.stop() == 0

        pol = await http.send("POST", f"{cse1.url}/ses{sid}/sessionPolicies", fr=aei1, ty=9006,
                              body={"m2m:spo": {"rn": "p", "spt": 1}})
        assert pol.rsc == 5103 and "/id-cse2" in dbg(pol), pol.body
        assert (await get(http, f"{cse1.url}/ses{sid}/sessionPolicies/p")).rsc == 4004

        r = await http.send("DELETE", f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)
        assert r.rsc == 2002, r.body
        assert "/id-cse2" in dbg(r), r.body
        assert (await get(http, f"{cse1.url}/ses{sid}")).rsc == 4004
        assert await smg_resources(http, cse1, "cse1") == []

        await cse2.start()
        await wait_gone(http, cse2, "cse2", timeout=10)
        assert (await get(http, f"{cse2.url}/ses{sid}")).rsc == 4004
        assert await smg_resources(http, cse1, "cse1") == []

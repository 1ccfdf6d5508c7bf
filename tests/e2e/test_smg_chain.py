"""Flows 1 and 3 across a transit CSE: AE1@CSE1 -- IN -- AE2@CSE2.

Why (docs/sessions.md "Beyond a pair"): CSE1 and CSE2 both register with an
IN-CSE and do not know each other. The session must still be one session:
the IN keeps it under its CSEBase ``sessions`` with a nextHop toward each
side, policies reach all three hops, the credentials never show at the IN
either, a failed establishment leaves nothing at the IN, and a termination
from either end reaches across it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import dbg, wait_csr
from tests.e2e.test_smg_helpers import (
    SID_RE,
    SessionAE,
    check_established_copy,
    establish,
    get,
    hop_view,
    sessions_in,
    smg_ae,
    smg_resources,
    start_smg_chain,
)

EPA1 = {"role": "collector"}
EPA2 = {"role": "meter", "fw": "1.2"}


async def test_chain_establish_replicate_and_terminate_through_the_in(
        cse_process: Callable[..., Any], http: Http) -> None:
    in_cse, cse1, cse2 = await start_smg_chain(cse_process, http)
    hops_cb = ((cse1, "cse1"), (in_cse, "cse-in"), (cse2, "cse2"))

    # step 1: every CSEBase is session-capable; every remoteCSE records it
    for cse, cb in hops_cb:
        base = await get(http, f"{cse.url}/{cb}")
        assert base.body["m2m:cb"]["scp"] == ["smg"], base.body
        assert (await get(http, f"{cse.url}/{cb}/sessions")).body["m2m:sesc"]["ty"] == 9001
    for cse, path, peer in ((in_cse, "cse-in/id-cse1", cse1), (in_cse, "cse-in/id-cse2", cse2),
                            (cse1, "cse1/id-in", in_cse), (cse2, "cse2/id-in", in_cse)):
        csr = await wait_csr(http, cse, path)
        assert csr["scp"] == ["smg"] and csr["poa"] == [peer.url], (path, csr)

    async with SessionAE(epa=EPA2) as rcv2, SessionAE() as rcv1, SessionAE(establish_rsc=4103) as no:
        # steps 2-6
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        rej = await smg_ae(http, cse2, "cse2", "rej", no)
        found = await get(http, f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2&scp=smg", fr=aei1)
        assert found.rsc == 2000, found.body
        assert sorted(found.body["m2m:uril"]) == ["/id-cse2/cse2/ae2", "/id-cse2/cse2/rej"], found.body
        iep, tep = f"/id-cse1/{aei1}", f"/id-cse2/{aei2}"

        # failures first: nothing may stay at the IN (nor elsewhere)
        r = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=9002,
                            body={"m2m:sess": {"tep": f"/id-cse2/{rej}"}})
        assert r.rsc == 4103 and "reject" in dbg(r).lower(), r.body
        await no.event(1)
        r = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=9002,
                            body={"m2m:sess": {"tep": "/id-cse2/Cnobody"}})
        assert r.rsc == 4004, r.body
        r = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=9002,
                            body={"m2m:sess": {"tep": "/id-nowhere/Cx"}})
        assert r.rsc in (4004, 5103), r.body
        for cse, cb in hops_cb:
            assert await smg_resources(http, cse, cb) == [], cb
        assert await sessions_in(http, in_cse, "cse-in/sessions") == []

        # steps 7-17 across the IN
        sess = await establish(http, cse1, "cse1", "ae1", aei1, tep, epa=EPA1)
        sid, scr = sess["sid"], sess["scr"]
        assert SID_RE.match(sid) and sess["sst"] == 2 and scr["alg"] == "A256GCM" and len(scr["key"]) == 43
        assert sorted((s["rol"], s["epa"] == (EPA1 if s["rol"] == 1 else EPA2)) for s in sess["m2m:sep"]) == \
            [(1, True), (2, True)], sess
        item, ev = await rcv2.event(1)
        assert ev["sid"] == sid and ev["iep"] == iep and ev["tep"] == tep and ev["scr"] == scr and ev["epa"] == EPA1
        assert item.sgn["nev"]["net"] == 3

        expected = {"cse1": {"/id-in": [in_cse.url]},
                    "cse-in": {"/id-cse1": [cse1.url], "/id-cse2": [cse2.url]},
                    "cse2": {"/id-in": [in_cse.url]}}
        for cse, cb in hops_cb:
            view = await hop_view(http, cse, sid)
            check_established_copy(view, sid=sid, iep=iep, tep=tep, epa1=EPA1, epa2=EPA2, hops=expected[cb])
        assert await sessions_in(http, in_cse, "cse-in/sessions") == [f"cse-in/sessions/ses{sid}"]
        assert len(await sessions_in(http, cse1, "cse1/ae1/sessions")) == 1
        assert len(await sessions_in(http, cse2, "cse2/ae2/sessions")) == 1
        assert await sessions_in(http, cse1, "cse1/sessions") == []
        assert await sessions_in(http, cse2, "cse2/sessions") == []

        # the IN never shows the credentials, not even to its admin
        needle = scr["key"].encode()
        for path in (f"ses{sid}", "cse-in/sessions", "cse-in"):
            for rcn in (1, 4, 5, 6, 8):
                got = await get(http, f"{in_cse.url}/{path}?rcn={rcn}")
                assert got.rsc == 2000 and needle not in got.raw and b'"scr"' not in got.raw, (path, rcn)
        disc = await get(http, f"{in_cse.url}/cse-in?fu=1&ty=9002+9003+9004+9005+9006&rcn=6")
        assert disc.rsc == 2000 and needle not in disc.raw
        # an AE of another CSE that is not a party cannot see the IN's copy
        outsider = await smg_ae(http, cse1, "cse1", "ae3", None, subscribe=False)
        assert (await get(http, f"{cse1.url}/~/id-in/ses{sid}", fr=outsider)).rsc == 4103
        assert (await get(http, f"{cse1.url}/~/id-in/ses{sid}", fr=aei1)).rsc == 2000

        # steps 18-23: policies reach all three hops, from either end
        spc = {cb: f"{cse.url}/ses{sid}/sessionPolicies" for cse, cb in hops_cb}
        pol = {"rn": "offpeak", "spt": 2, "sch": ["* * 0-5 * * * *"], "mbd": 600, "mbr": 5, "hop": "/id-in"}
        made = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions/ses{sid}/sessionPolicies", fr=aei1,
                               ty=9006, body={"m2m:spo": pol})
        assert made.rsc == 2001, made.body
        for cb in spc:
            spo = (await get(http, f"{spc[cb]}/offpeak")).body["m2m:spo"]
            assert {k: spo.get(k) for k in pol} == pol, (cb, spo)
        upd = await http.send("PUT", f"{spc['cse1']}/offpeak", fr=aei1, body={"m2m:spo": {"mbr": 7}})
        assert upd.rsc == 2004, upd.body
        for cb in spc:
            assert (await get(http, f"{spc[cb]}/offpeak")).body["m2m:spo"]["mbr"] == 7, cb
        bad = await http.send("POST", spc['cse1'], fr=aei1, ty=9006, body={"m2m:spo": {"rn": "bad", "spt": 2}})
        assert bad.rsc == 4000, bad.body
        made2 = await http.send("POST", f"{cse2.url}/cse2/ae2/sessions/ses{sid}/sessionPolicies", fr=aei2,
                                ty=9006, body={"m2m:spo": {"rn": "fromae2", "spt": 1, "aep": iep}})
        assert made2.rsc == 2001, made2.body
        for cb in spc:
            assert (await get(http, f"{spc[cb]}/fromae2")).body["m2m:spo"]["aep"] == iep, cb
            assert (await get(http, f"{spc[cb]}/bad")).rsc == 4004, cb
        assert (await http.send("DELETE", f"{spc['cse2']}/offpeak", fr=aei2)).rsc == 2002
        for cb in spc:
            assert (await get(http, f"{spc[cb]}/offpeak")).rsc == 4004, cb
            assert (await get(http, f"{spc[cb]}/fromae2")).rsc == 2000, cb

        # flow 3 from the far end: AE2 terminates at CSE2; it crosses the IN to CSE1 and AE1
        gone = await http.send("DELETE", f"{cse2.url}/cse2/ae2/sessions/ses{sid}", fr=aei2)
        assert gone.rsc == 2002 and "not reached" not in dbg(gone), gone.body
        _, ev = await rcv1.event(3)
        assert ev["sid"] == sid and ev["why"] == 1 and ev["iep"] == iep and ev["tep"] == tep, ev
        for cse, cb in hops_cb:
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004, cb
            assert await smg_resources(http, cse, cb) == [], cb

        # and from the near end: AE1 terminates at CSE1; AE2 is told
        sid2 = (await establish(http, cse1, "cse1", "ae1", aei1, tep))["sid"]
        await rcv2.event(1)
        assert (await hop_view(http, in_cse, sid2))["sst"] == 2
        gone = await http.send("DELETE", f"{cse1.url}/ses{sid2}", fr=aei1)
        assert gone.rsc == 2002 and "not reached" not in dbg(gone), gone.body
        _, ev = await rcv2.event(3)
        assert ev["sid"] == sid2 and ev["why"] == 1, ev
        for cse, cb in hops_cb:
            assert (await get(http, f"{cse.url}/ses{sid2}")).rsc == 4004, cb
            assert await smg_resources(http, cse, cb) == [], cb
        assert await sessions_in(http, in_cse, "cse-in/sessions") == []

        # with the IN down, CSE1 still ends its copy and names the hop it could not reach
        sid3 = (await establish(http, cse1, "cse1", "ae1", aei1, tep))["sid"]
        await rcv2.event(1)
        assert await in_cse.stop() == 0
        gone = await http.send("DELETE", f"{cse1.url}/ses{sid3}", fr=ADMIN)
        assert gone.rsc == 2002 and "/id-in" in dbg(gone), gone.body
        _, ev = await rcv1.event(3)
        assert ev["sid"] == sid3 and ev["why"] == 1
        assert await smg_resources(http, cse1, "cse1") == []

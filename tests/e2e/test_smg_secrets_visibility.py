"""Session credentials never leak; sessions are visible to their parties only.

Why (docs/sessions.md "session", "What a session authorizes", "Who sees sessions"):
``scr`` is shown exactly once to each endpoint -- in the establishment
answer to the initiator and the establishment notification to the target.
Any other path that returns resources (RETRIEVE with every result content,
partial retrieve, discovery, DELETE with content, notifications) must never
carry the key, not even to the admin: a leaked key lets anyone forge
session MACs and read end-to-end encrypted content. And a session is the
business of its two endpoint AEs (and the admin) only: any other AE gets
4103 and does not discover it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import register_ae
from tests.e2e.test_smg_helpers import SessionAE, establish, get, smg_ae, start_smg_pair

RCNS = (1, 4, 5, 6, 8)


async def test_credentials_appear_in_no_retrieve_discovery_or_notification(
        cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http)
    async with SessionAE(epa={"e": 2}) as rcv2, SessionAE() as rcv1, SessionAE() as plain_rcv:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        # ordinary subscriptions on the AE resources and the CSEBases, all event types
        for _cse, url, fr in ((cse1, f"{cse1.url}/cse1/ae1", aei1), (cse2, f"{cse2.url}/cse2/ae2", aei2),
                             (cse1, f"{cse1.url}/cse1", ADMIN), (cse2, f"{cse2.url}/cse2", ADMIN)):
            r = await http.send("POST", url, fr=fr, ty=23, body={"m2m:sub": {
                "nu": [plain_rcv.url], "enc": {"net": [1, 2, 3, 4]}}})
            assert r.rsc == 2001, r.body
            assert (await plain_rcv.next(5)).is_verification

        sess = await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{aei2}", epa={"e": 1})
        sid, key, kid = sess["sid"], sess["scr"]["key"], sess["scr"]["kid"]
        needle = key.encode()
        _, ev = await rcv2.event(1)
        assert ev["scr"]["key"] == key  # the one place the target learns it

        def clean(what: str, raw: bytes) -> None:
            assert needle not in raw, f"session key leaked in {what}: {raw[:300]!r}"
            assert b'"scr"' not in raw, f"scr in {what}: {raw[:300]!r}"

        # a policy and a session-collection sibling so rcn 4/5/6/8 have content
        made = await http.send("POST", f"{cse1.url}/ses{sid}/sessionPolicies", fr=aei1, ty=9006,
                               body={"m2m:spo": {"rn": "p", "spt": 1}})
        assert made.rsc == 2001, made.body
        clean("policy create answer", made.raw)

        views = [
            (cse1, aei1, [f"ses{sid}", f"cse1/ae1/sessions/ses{sid}", "cse1/ae1/sessions", "cse1/ae1"]),
            (cse2, aei2, [f"ses{sid}", f"cse2/ae2/sessions/ses{sid}", "cse2/ae2/sessions", "cse2/ae2"]),
            (cse1, ADMIN, [f"ses{sid}", "cse1/ae1/sessions", "cse1/ae1", "cse1", "cse1/sessions"]),
            (cse2, ADMIN, [f"ses{sid}", "cse2/ae2/sessions", "cse2/ae2", "cse2", "cse2/sessions"]),
        ]
        checked = 0
        for cse, fr, paths in views:
            for path in paths:
                for rcn in RCNS:
                    r = await get(http, f"{cse.url}/{path}?rcn={rcn}", fr=fr)
                    assert r.rsc == 2000, (path, rcn, fr, r.body)
                    clean(f"RETRIEVE {path} rcn={rcn} by {fr}", r.raw)
                    checked += 1
                    if rcn in (4, 5, 6, 8) and path.endswith(("ae1/sessions", "ae2/sessions")):
                        assert f"ses{sid}".encode() in r.raw, (path, rcn, r.body)  # the session was seen
                for q in ("fu=1&ty=9002", "fu=1&ty=9002&rcn=6", "fu=1&lbl=x&ty=9003+9004+9005+9006",
                          "fu=1&ty=9002+9003+9004+9005+9006&drt=2"):
                    r = await get(http, f"{cse.url}/{path}?{q}", fr=fr)
                    assert r.rsc == 2000, (path, q, r.body)
                    clean(f"discovery {path}?{q} by {fr}", r.raw)
            # partial retrieve naming the credentials
            r = await get(http, f"{cse.url}/ses{sid}?atrl=scr", fr=fr)
            assert r.rsc in (2000, 4000), r.body
            clean(f"atrl=scr by {fr}", r.raw)
            r = await get(http, f"{cse.url}/ses{sid}?atrl=sid+scr+sst", fr=fr)
            clean(f"atrl=sid+scr+sst by {fr}", r.raw)
        assert checked == 18 * len(RCNS)
        # forwarded retrieves of the other hop's copy, by the endpoints
        for url, fr in ((f"{cse1.url}/~/id-cse2/ses{sid}", aei1), (f"{cse2.url}/~/id-cse1/ses{sid}", aei2)):
            for rcn in RCNS:
                r = await get(http, f"{url}?rcn={rcn}", fr=fr)
                assert r.rsc == 2000, (url, rcn, r.body)
                clean(f"forwarded RETRIEVE {url} rcn={rcn}", r.raw)
        # the session found by discovery from the top, as the admin
        top = await get(http, f"{cse1.url}/cse1?fu=1&ty=9002")
        assert top.body["m2m:uril"] == [f"cse1/ae1/sessions/ses{sid}"], top.body
        # updating the session (et) answers without the credentials too
        upd = await http.send("PUT", f"{cse1.url}/ses{sid}", fr=aei1, body={"m2m:sess": {"lbl": ["x"]}})
        clean("session UPDATE answer", upd.raw)

        # termination with content (rcn 1): the deleted representation has no key
        gone = await http.send("DELETE", f"{cse1.url}/ses{sid}?rcn=1", fr=aei1)
        assert gone.rsc == 2002, gone.body
        clean("DELETE rcn=1 answer", gone.raw)
        await rcv2.event(3)

        # notifications: AE1 never gets the key; AE2 only in the typ 1 question
        for item in rcv1.received:
            clean(f"notification to AE1 {item.body}", item.raw)
        with_key = [item for item in rcv2.received if needle in item.raw]
        assert len(with_key) == 1, [i.body for i in with_key]
        assert with_key[0].body["m2m:sgn"]["nev"]["rep"]["m2m:sevt"]["typ"] == 1
        for item in plain_rcv.pending() + plain_rcv.received:
            clean(f"ordinary notification {item.body}", item.raw)
        assert kid  # kid is not secret; only the key is searched for


async def test_only_the_endpoints_and_the_admin_see_a_session(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http)
    async with SessionAE() as rcv2, SessionAE() as rcv1, SessionAE() as rcv3:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        aei3 = await smg_ae(http, cse1, "cse1", "ae3", rcv3)  # session-capable, but not a party
        aei4 = await register_ae(http, cse2, "cse2", "ae4")
        sid = (await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{aei2}"))["sid"]
        await rcv2.event(1)
        at1 = [f"{cse1.url}/ses{sid}", f"{cse1.url}/cse1/ae1/sessions/ses{sid}"]
        at2 = [f"{cse2.url}/ses{sid}", f"{cse2.url}/cse2/ae2/sessions/ses{sid}"]

        for url in at1:
            assert (await get(http, url, fr=aei1)).rsc == 2000, url
            assert (await get(http, url, fr=ADMIN)).rsc == 2000, url
            r = await get(http, url, fr=aei3)
            assert r.rsc == 4103, (url, r.body)
            assert (await get(http, f"{url}/sessionPolicies", fr=aei3)).rsc == 4103
        for url in at2:
            assert (await get(http, url, fr=aei2)).rsc == 2000, url
            assert (await get(http, url, fr=ADMIN)).rsc == 2000, url
            r = await get(http, url, fr=aei4)
            assert r.rsc == 4103, (url, r.body)
        # the endpoints reach the other hop's copy through their CSE; a third AE does not
        assert (await get(http, f"{cse1.url}/~/id-cse2/ses{sid}", fr=aei1)).rsc == 2000
        assert (await get(http, f"{cse2.url}/~/id-cse1/ses{sid}", fr=aei2)).rsc == 2000
        assert (await get(http, f"{cse1.url}/~/id-cse2/ses{sid}", fr=aei3)).rsc == 4103
        assert (await get(http, f"{cse2.url}/~/id-cse1/ses{sid}", fr=aei4)).rsc == 4103

        # discovery: the parties find it, a third AE does not
        d1 = await get(http, f"{cse1.url}/cse1?fu=1&ty=9002", fr=aei1)
        assert d1.body["m2m:uril"] == [f"cse1/ae1/sessions/ses{sid}"], d1.body
        d2 = await get(http, f"{cse2.url}/cse2?fu=1&ty=9002", fr=aei2)
        assert d2.body["m2m:uril"] == [f"cse2/ae2/sessions/ses{sid}"], d2.body
        for cse, cb, fr in ((cse1, "cse1", aei3), (cse2, "cse2", aei4)):
            for q in ("fu=1&ty=9002", "fu=1&ty=9002+9003+9004+9005+9006", "fu=1"):
                d = await get(http, f"{cse.url}/{cb}?{q}", fr=fr)
                assert d.rsc == 2000, d.body
                assert not any(sid in u for u in d.body["m2m:uril"]), (q, d.body)
        far = await get(http, f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=9002", fr=aei3)
        assert far.rsc in (2000, 4103) and sid not in far.raw.decode(), far.body
        # nor can it change or end the session
        assert (await http.send("PUT", at1[0], fr=aei3, body={"m2m:sess": {"lbl": ["x"]}})).rsc == 4103
        assert (await http.send("DELETE", at1[0], fr=aei3)).rsc == 4103
        assert (await http.send("DELETE", at2[0], fr=aei4)).rsc == 4103
        assert (await http.send("POST", f"{at1[0]}/sessionPolicies", fr=aei3, ty=9006,
                                body={"m2m:spo": {"spt": 1}})).rsc == 4103
        assert (await get(http, at1[0], fr=aei1)).rsc == 2000
        assert (await get(http, at2[0], fr=aei2)).rsc == 2000
        assert rcv1.events(3) == [] and rcv2.events(3) == []

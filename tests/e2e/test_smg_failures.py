"""Establishment that fails, and session resources users may not create.

Why (docs/sessions.md "Session event notifications", "Establishment", "Errors"):
a target that rejects, is not subscribed, does not answer in time, or sits
behind an unreachable CSE must fail the establishment end to end with the
documented code and a dbg saying which -- and leave nothing behind on any
hop, or the next attempt (and every RETRIEVE) sees half a session. The SMG's
own attributes and child resources are not the AE's to set.

Real pair: CSE1 (registrar) and CSE2 with ``[smg] notify_timeout_s = 1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import dbg, until
from tests.e2e.test_smg_helpers import (
    SessionAE,
    establish,
    get,
    sessions_in,
    smg_ae,
    smg_resources,
    start_smg_pair,
)

SLOW = "\n[smg]\nnotify_timeout_s = 1\n"


async def _nothing_anywhere(http: Http, cse1: Any, cse2: Any, *colls: tuple[Any, str]) -> None:
    assert await smg_resources(http, cse1, "cse1") == []
    assert await smg_resources(http, cse2, "cse2") == []
    for cse, path in colls:
        assert await sessions_in(http, cse, path) == [], (cse.url, path)


async def test_failed_establishments_leave_no_state(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http, cse2_extra=SLOW)
    async with SessionAE() as rcv1, SessionAE(establish_rsc=4103) as no, \
            SessionAE(establish_delay=4.0) as slow, SessionAE(epa={"ok": True}) as yes:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        rej = await smg_ae(http, cse2, "cse2", "rej", no)
        late = await smg_ae(http, cse2, "cse2", "late", slow)
        deaf = await smg_ae(http, cse2, "cse2", "deaf", None, subscribe=False)
        ok = await smg_ae(http, cse2, "cse2", "ok", yes)
        colls = ((cse1, "cse1/ae1/sessions"), (cse1, "cse1/sessions"), (cse2, "cse2/sessions"),
                 (cse2, "cse2/rej/sessions"), (cse2, "cse2/late/sessions"), (cse2, "cse2/deaf/sessions"),
                 (cse2, "cse2/ok/sessions"))
        start = f"{cse1.url}/cse1/ae1/sessions"

        async def attempt(tep: str, **attrs: Any) -> Any:
            return await http.send("POST", start, fr=aei1, ty=9002, body={"m2m:sess": {"tep": tep, **attrs}})

        # the target rejects: 4103, dbg says so
        r = await attempt(f"/id-cse2/{rej}")
        assert r.rsc == 4103, r.body
        assert "reject" in dbg(r).lower(), r.body
        _, ev = await no.event(1)
        assert ev["tep"] == f"/id-cse2/{rej}"
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # the target has no subscription under its sessions collection: 5103
        r = await attempt(f"/id-cse2/{deaf}")
        assert r.rsc == 5103, r.body
        assert "subscription" in dbg(r), r.body
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # the target does not answer within notify_timeout_s (1 s): 5103
        r = await attempt(f"/id-cse2/{late}")
        assert r.rsc == 5103, r.body
        assert late in dbg(r), r.body
        await slow.event(1)
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # unknown target AE: 4004; malformed tep: 4000
        r = await attempt("/id-cse2/Cnobody")
        assert r.rsc == 4004, r.body
        r = await attempt("/id-cse2/x/y")
        assert r.rsc == 4000 and "tep" in dbg(r), r.body
        r = await attempt(f"/id-cse1/{aei1}")
        assert r.rsc == 4000, r.body
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # an AE may not set what the SMG allocates
        for attrs in ({"sid": "A" * 32},
                      {"scr": {"kid": "k", "key": "A" * 43, "alg": "A256GCM"}},
                      {"iep": f"/id-cse1/{aei1}"}):
            r = await attempt(f"/id-cse2/{ok}", **attrs)
            assert r.rsc == 4000, (attrs, r.body)
            assert next(iter(attrs)) in dbg(r), r.body
        assert yes.events() == []  # nobody was asked
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # a session in another AE's sessions collection: 4103
        aei3 = await smg_ae(http, cse1, "cse1", "ae3", None, subscribe=False)
        r = await http.send("POST", start, fr=aei3, ty=9002, body={"m2m:sess": {"tep": f"/id-cse2/{ok}"}})
        assert r.rsc == 4103, r.body
        r = await http.send("POST", f"{cse2.url}/cse2/ok/sessions", fr=aei3, ty=9002,
                            body={"m2m:sess": {"tep": f"/id-cse2/{ok}"}})
        assert r.rsc == 4103, r.body
        assert yes.events() == []
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # an established session: the SMG's children are not the AE's to create
        sess = await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{ok}")
        sid = sess["sid"]
        for url, fr in ((f"{cse1.url}/cse1/ae1/sessions/ses{sid}", aei1),
                        (f"{cse2.url}/cse2/ok/sessions/ses{sid}", ok)):
            for ty, root, body in ((9003, "m2m:sep", {"aei": "/id-cse1/Cx", "rol": 1}),
                                   (9004, "m2m:nhp", {"csi": "/id-cse9", "poa": ["http://127.0.0.1:9"]}),
                                   (9005, "m2m:spc", {"rn": "sessionPolicies2"})):
                r = await http.send("POST", url, fr=fr, ty=ty, body={root: body})
                assert r.rsc == 4005, (url, ty, r.rsc, r.body)
                r = await http.send("POST", url, fr=ADMIN, ty=ty, body={root: body})
                assert r.rsc == 4005, (url, ty, "admin", r.rsc, r.body)
        for cse in (cse1, cse2):
            r = await get(http, f"{cse.url}/ses{sid}?rcn=6")
            kinds = sorted(c["typ"] for c in r.body["m2m:rrl"]["rrf"])
            assert kinds == [9003, 9003, 9004, 9005], (cse.url, r.body)
        # a second session with the same target is a separate session
        sess2 = await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{ok}")
        assert sess2["sid"] != sid and sess2["scr"]["key"] != sess["scr"]["key"]
        for s in (sid, sess2["sid"]):
            assert (await http.send("DELETE", f"{cse1.url}/ses{s}", fr=aei1)).rsc == 2002
        await _nothing_anywhere(http, cse1, cse2, *colls)

        # the next CSE is unreachable: 5103 (refused) or 4008 (no answer)
        assert await cse2.stop() == 0
        r = await attempt(f"/id-cse2/{ok}")
        assert r.rsc in (5103, 4008), r.body
        assert "/id-cse2" in dbg(r), r.body
        assert await smg_resources(http, cse1, "cse1") == []
        assert await sessions_in(http, cse1, "cse1/ae1/sessions") == []


async def test_initiator_giving_up_leaves_no_session_at_the_target(
        cse_process: Callable[..., Any], http: Http) -> None:
    """CSE1 stops waiting (``establish_timeout_s`` 1 s) while CSE2 is still
    asking its AE (``notify_timeout_s`` 3 s), and the AE then accepts: AE1
    got an error, so no hop may keep the session (docs/sessions.md: a failed
    establishment stores nothing on any hop)."""
    cse1, cse2 = await start_smg_pair(
        cse_process, http,
        cse1_extra="\n[smg]\nestablish_timeout_s = 1\n",
        cse2_extra="\n[smg]\nnotify_timeout_s = 3\n")
    async with SessionAE() as rcv1, SessionAE(establish_delay=1.8) as slow:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        late = await smg_ae(http, cse2, "cse2", "late", slow)
        r = await http.send("POST", f"{cse1.url}/cse1/ae1/sessions", fr=aei1, ty=9002,
                            body={"m2m:sess": {"tep": f"/id-cse2/{late}"}})
        assert r.rsc in (4008, 5103), r.body
        _, ev = await slow.event(1)
        sid = ev["sid"]
        assert await smg_resources(http, cse1, "cse1") == []

        async def answered() -> bool:
            return slow.in_flight == 0
        await until(answered, "the target AE's (late) acceptance", timeout=5)
        # CSE2 commits right after the acceptance: look for it for a moment,
        # and if it is there, it must go away again.
        loop = asyncio.get_running_loop()
        settle = loop.time() + 1.0
        while loop.time() < settle and (await get(http, f"{cse2.url}/ses{sid}")).rsc == 4004:
            await asyncio.sleep(0.05)

        async def clean() -> bool:
            return (await get(http, f"{cse2.url}/ses{sid}")).rsc == 4004 \
                and await smg_resources(http, cse2, "cse2") == []
        await until(clean, f"CSE2 without session {sid[:8]}, which AE1 was told failed", timeout=5)

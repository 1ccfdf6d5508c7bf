"""Two real CSEs: registration, forwarding, discovery, loops, dead peers, notifications.

Why: session flow 1 (docs/sessions.md) starts with two CSEs that know each other (step 1: each
holds a remoteCSE for the other with the peer's poa, srv and scp) and an AE
of CSE1 finding AEs of CSE2 through CSE1 (step 6). Everything later --
sessions, forwarded CRUD, notifications to AEs of the other CSE -- rides on
SP-relative addressing (``/~/id-cse2/...``) being forwarded with the
originator made SP-relative (``/id-cse1/<aei>``) and the peer's answer coming
back unchanged. A misrouted or looping request must end with an error, not a
hang; a dead or silent peer must cost at most the forwarding timeout.

CSE1 = ``/id-cse1`` (CSEBase ``cse1``) is the registrar; CSE2 = ``/id-cse2``
(``cse2``) registers with it at start-up (``[registrar]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import (
    create,
    dbg,
    grant,
    register_ae,
    start_pair,
    until,
    wait_csr,
)
from tests.notify_receiver import Receiver, closed_url

FAST = 5.0  # upper bound for "answers quickly, does not hang" (not a performance limit)


# -- 1. registration both ways ---------------------------------------------------------

async def test_registration_both_ways_records_the_peer(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    cb1 = (await http.send("GET", f"{cse1.url}/cse1", fr=ADMIN)).body["m2m:cb"]
    cb2 = (await http.send("GET", f"{cse2.url}/cse2", fr=ADMIN)).body["m2m:cb"]

    at1 = await wait_csr(http, cse1, "cse1/id-cse2")
    assert at1["csi"] == "/id-cse2"
    assert at1["cb"] == "/id-cse2/cse2"
    assert at1["poa"] == [cse2.url]
    assert at1["srv"] == cb2["srv"]
    assert at1["ty"] == 16 and at1["rn"] == "id-cse2"
    assert at1.get("scp") == cb2.get("scp")  # capability exchange: CSE2's own scp (or none on both)

    at2 = await wait_csr(http, cse2, "cse2/id-cse1")
    assert at2["csi"] == "/id-cse1"
    assert at2["cb"] == "/id-cse1/cse1"
    assert at2["poa"] == [cse1.url]
    assert at2["srv"] == cb1["srv"]
    assert at2["ty"] == 16 and at2["rn"] == "id-cse1"
    assert at2.get("scp") == cb1.get("scp")

    # the peer CSEBase, retrieved through the pair, agrees with what was recorded
    via1 = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)
    assert via1.rsc == 2000 and via1.body["m2m:cb"].get("scp") == at1.get("scp")
    via2 = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)
    assert via2.rsc == 2000 and via2.body["m2m:cb"].get("scp") == at2.get("scp")

    # registrar-side rules over HTTP (the unit tests cover them in detail)
    def csr(csi: str) -> dict[str, Any]:
        return {"m2m:csr": {"cb": f"{csi}/x", "csi": csi, "rr": True, "poa": ["http://127.0.0.1:9"]}}
    again = await http.send("POST", f"{cse1.url}/cse1", fr="/id-cse2", ty=16, body=csr("/id-cse2"))
    assert again.rsc == 4117, again.body
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    by_ae = await http.send("POST", f"{cse1.url}/cse1", fr=aei1, ty=16, body=csr("/id-cse3"))
    assert by_ae.rsc == 4005, by_ae.body
    other = await http.send("PUT", f"{cse1.url}/cse1/id-cse2", fr="/id-cse3",
                            body={"m2m:csr": {"poa": ["http://127.0.0.1:9"]}})
    assert other.rsc == 4103, other.body
    assert (await http.send("DELETE", f"{cse1.url}/cse1/id-cse2", fr="/id-cse3")).rsc == 4103
    assert (await wait_csr(http, cse1, "cse1/id-cse2"))["poa"] == [cse2.url]

    d1 = await http.send("GET", f"{cse1.url}/cse1?fu=1&ty=16", fr=ADMIN)
    assert d1.rsc == 2000 and d1.body["m2m:uril"] == ["cse1/id-cse2"], d1.body
    d2 = await http.send("GET", f"{cse2.url}/cse2?fu=1&ty=16", fr=ADMIN)
    assert d2.rsc == 2000 and d2.body["m2m:uril"] == ["cse2/id-cse1"], d2.body


# -- 3. forwarded CRUD -------------------------------------------------------------------

async def test_forwarded_crud_with_sp_relative_originator(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    cnt = await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": "data"})
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    far = f"{cse1.url}/~/id-cse2/cse2/ae2/data"

    # Without an ACP at CSE2 the forwarded originator (SP-relative) is refused.
    denied = await http.send("GET", far, fr=aei1)
    assert denied.rsc == 4103, denied.body
    assert f"/id-cse1/{aei1}" in dbg(denied), dbg(denied)

    await grant(http, cse2, "cse2/ae2/data", aei2, [f"/id-cse1/{aei1}"])

    got = await http.send("GET", far, fr=aei1, rqi="fwd-retrieve-4711")
    assert got.rsc == 2000, got.body
    assert got.headers.get("X-M2M-RI") == "fwd-retrieve-4711"
    assert got.body["m2m:cnt"]["ri"] == cnt["ri"]

    made = await http.send("POST", far, fr=aei1, ty=4, rqi="fwd-create-1",
                           body={"m2m:cin": {"rn": "c1", "con": "21.5"}})
    assert made.rsc == 2001, made.body
    assert made.headers.get("X-M2M-RI") == "fwd-create-1"
    assert made.body["m2m:cin"]["con"] == "21.5"
    assert made.headers.get("Content-Location") == "cse2/ae2/data/c1"  # the peer's, unchanged
    local = await http.send("GET", f"{cse2.url}/cse2/ae2/data/la", fr=aei2)
    assert local.rsc == 2000 and local.body["m2m:cin"]["con"] == "21.5"

    sub = await http.send("POST", far, fr=aei1, ty=3, body={"m2m:cnt": {"rn": "mine"}})
    assert sub.rsc == 2001, sub.body

    upd = await http.send("PUT", far, fr=aei1, rqi="fwd-update-1", body={"m2m:cnt": {"lbl": ["from:cse1"]}})
    assert upd.rsc == 2004, upd.body
    assert upd.headers.get("X-M2M-RI") == "fwd-update-1"
    check = await http.send("GET", f"{cse2.url}/cse2/ae2/data", fr=aei2)
    assert check.body["m2m:cnt"]["lbl"] == ["from:cse1"]

    # unstructured SP-relative form: /~/id-cse2/<ri>
    by_ri = await http.send("GET", f"{cse1.url}/~/id-cse2/{cnt['ri']}", fr=aei1)
    assert by_ri.rsc == 2000 and by_ri.body["m2m:cnt"]["rn"] == "data"

    gone = await http.send("DELETE", f"{far}/c1", fr=aei1, rqi="fwd-delete-1")
    assert gone.rsc == 2002, gone.body
    assert gone.headers.get("X-M2M-RI") == "fwd-delete-1"
    assert (await http.send("GET", f"{cse2.url}/cse2/ae2/data/c1", fr=ADMIN)).rsc == 4004
    assert (await http.send("DELETE", f"{far}/mine", fr=aei1)).rsc == 2002

    # registrations are never forwarded: a transit CSE refuses them (TS-0004 7.3.2.8)
    ae_there = await http.send("POST", f"{cse1.url}/~/id-cse2/cse2", fr="C", ty=2,
                               body={"m2m:ae": {"rn": "x", "api": "Nx", "rr": True, "srv": ["3"]}})
    assert ae_there.rsc == 4000, ae_there.body
    csr_there = await http.send("POST", f"{cse1.url}/~/id-cse2/cse2", fr="/id-cse9", ty=16, body={"m2m:csr": {
        "cb": "/id-cse9/cse9", "csi": "/id-cse9", "rr": True, "poa": ["http://127.0.0.1:9"]}})
    assert csr_there.rsc == 4000, csr_there.body
    assert (await http.send("GET", f"{cse2.url}/cse2/x", fr=ADMIN)).rsc == 4004
    assert (await http.send("GET", f"{cse2.url}/cse2/id-cse9", fr=ADMIN)).rsc == 4004

    # errors of the peer come back as they are
    missing = await http.send("GET", f"{far}/nope", fr=aei1, rqi="fwd-missing")
    assert missing.rsc == 4004 and missing.headers.get("X-M2M-RI") == "fwd-missing"


async def test_admin_and_absolute_form_through_the_pair(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    there = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN, rqi="admin-through-1")
    assert there.rsc == 2000, there.body
    assert there.body["m2m:cb"]["csi"] == "/id-cse2"
    assert there.headers.get("X-M2M-RI") == "admin-through-1"
    back = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)
    assert back.rsc == 2000 and back.body["m2m:cb"]["csi"] == "/id-cse1"
    # hyphen form of the CSEBase name on the far side
    dash = await http.send("GET", f"{cse1.url}/~/id-cse2/-", fr=ADMIN)
    assert dash.rsc == 2000 and dash.body["m2m:cb"]["rn"] == "cse2"

    # request parameters travel unchanged: partial retrieve, result content, discovery options
    part = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?atrl=csi+rn", fr=ADMIN)
    assert part.rsc == 2000 and part.body == {"m2m:cb": {"csi": "/id-cse2", "rn": "cse2"}}, part.body

    aei2 = await register_ae(http, cse2, "cse2", "ae2", lbl=["x&y=z"])
    await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": "data"})
    by_lbl = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2&lbl=x%26y%3Dz&drt=2", fr=ADMIN)
    assert by_lbl.rsc == 2000 and by_lbl.body["m2m:uril"] == [f"/id-cse2/{aei2}"], by_lbl.body
    # CSE1's admin arrives at CSE2 as /id-cse1/CAdmin: another CSE's admin is not CSE2's admin
    foreign = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2/ae2/data", fr=ADMIN)
    assert foreign.rsc == 4103 and f"/id-cse1/{ADMIN}" in dbg(foreign), foreign.body
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    await grant(http, cse2, "cse2/ae2/data", aei2, [f"/id-cse1/{aei1}"])
    with_rcn = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2/ae2/data?rcn=4", fr=aei1)
    assert with_rcn.rsc == 2000 and "m2m:cnt" in with_rcn.body, with_rcn.body
    absolute = await http.send("GET", f"{cse1.url}/_/example.net/id-cse2/cse2/ae2/data", fr=aei1,
                               rqi="absolute-1")
    assert absolute.rsc == 2000, absolute.body
    assert absolute.body["m2m:cnt"]["rn"] == "data"
    assert absolute.headers.get("X-M2M-RI") == "absolute-1"


# -- 4. forwarded discovery (flow 1 step 6) ---------------------------------------------

async def test_forwarded_discovery_finds_session_capable_aes(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    await register_ae(http, cse2, "cse2", "ae2", scp=["smg"])
    await register_ae(http, cse2, "cse2", "plain")
    await register_ae(http, cse2, "cse2", "other", scp=["xyz"])
    aei1 = await register_ae(http, cse1, "cse1", "ae1", scp=["smg"])

    r = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2&scp=smg", fr=aei1)
    assert r.rsc == 2000, r.body
    uril = r.body["m2m:uril"]
    assert uril == ["/id-cse2/cse2/ae2"], uril
    assert len(uril) == 1, uril
    assert not any(u.endswith(("/plain", "/other")) for u in uril), uril
    # without the scp filter every AE is found
    everyone = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2", fr=aei1)
    assert everyone.rsc == 2000 and len(everyone.body["m2m:uril"]) == 3, everyone.body


# -- 8. misrouting and loops ---------------------------------------------------------------

async def test_unknown_cse_is_4004_without_bouncing(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # CSE2 has no route: it asks its registrar CSE1, which has none either.
    r = await http.send("GET", f"{cse2.url}/~/id-nowhere/cse-x", fr=aei2)
    assert r.rsc == 4004, r.body
    assert "id-nowhere" in dbg(r)
    r1 = await http.send("GET", f"{cse1.url}/~/id-nowhere/cse-x", fr=ADMIN)
    assert r1.rsc == 4004, r1.body
    assert loop.time() - t0 < FAST


async def test_descendant_cse_ping_pong_is_a_loop_5103(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    u1 = await http.send("PUT", f"{cse1.url}/cse1/id-cse2", fr=ADMIN, body={"m2m:csr": {"dcse": ["/id-x"]}})
    assert u1.rsc == 2004, u1.body
    u2 = await http.send("PUT", f"{cse2.url}/cse2/id-cse1", fr=ADMIN, body={"m2m:csr": {"dcse": ["/id-x"]}})
    assert u2.rsc == 2004, u2.body
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    loop = asyncio.get_running_loop()
    for url, fr in ((f"{cse1.url}/~/id-x/cse-x", aei1), (f"{cse2.url}/~/id-x/cse-x/y", ADMIN)):
        t0 = loop.time()
        r = await http.send("GET", url, fr=fr, rqi="loop-1")
        elapsed = loop.time() - t0
        assert r.rsc == 5103, (url, r.rsc, r.body)
        assert "loop" in dbg(r).lower(), dbg(r)
        assert r.headers.get("X-M2M-RI") == "loop-1"
        assert elapsed < FAST, elapsed  # forwarding timeout is 10 s: it must not be what ends it
    # the pair still works afterwards
    ok = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)
    assert ok.rsc == 2000


# -- 9. unreachable and silent peers -------------------------------------------------------

async def test_dead_and_silent_peer(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http, cse1_extra="\n[forwarding]\ntimeout_s = 1\n")
    assert await cse2.stop() == 0
    # the registration is kept (deregister_on_shutdown defaults to false)
    assert (await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)).rsc == 2000
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    dead = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN, rqi="dead-1")
    assert dead.rsc == 5103, dead.body
    assert dead.headers.get("X-M2M-RI") == "dead-1"
    assert loop.time() - t0 < FAST

    # a peer that accepts connections and never answers
    held: list[asyncio.StreamWriter] = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass
    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        u = await http.send("PUT", f"{cse1.url}/cse1/id-cse2", fr=ADMIN,
                            body={"m2m:csr": {"poa": [f"http://127.0.0.1:{port}"]}})
        assert u.rsc == 2004, u.body
        t0 = loop.time()
        silent = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN, rqi="silent-1")
        elapsed = loop.time() - t0
        assert silent.rsc in (4008, 5103), silent.body
        assert silent.headers.get("X-M2M-RI") == "silent-1"
        assert held, "the request never reached the silent peer"
        assert elapsed < FAST, elapsed
        # CSE1 itself keeps serving
        assert (await http.send("GET", f"{cse1.url}/cse1", fr=ADMIN)).rsc == 2000
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


# -- 10. notifications through the CSEs ----------------------------------------------------

async def test_notifications_for_an_ae_of_the_other_cse(cse_process: Callable[..., Any], http: Http,
                                                        receiver: Receiver) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": "data"})
    aei1 = await register_ae(http, cse1, "cse1", "ae1", poa=[receiver.url])
    aei1b = await register_ae(http, cse1, "cse1", "ae1b", poa=[receiver.url])
    await grant(http, cse2, "cse2/ae2/data", aei2, [f"/id-cse1/{aei1}"])
    far = f"{cse1.url}/~/id-cse2/cse2/ae2/data"

    # AE1 subscribes for itself: nu is its own SP-relative AE-ID.
    own = await http.send("POST", far, fr=aei1, ty=23, body={"m2m:sub": {
        "rn": "own", "nu": [f"/id-cse1/{aei1}"], "enc": {"net": [3]}}})
    assert own.rsc == 2001, own.body
    sur_own = f"/id-cse2/{own.body['m2m:sub']['ri']}"
    early = receiver.pending()
    assert all(e.is_verification for e in early), [e.body for e in early]

    # AE1 subscribes on behalf of AE1b: the target is verified first, through CSE1.
    other = await http.send("POST", far, fr=aei1, ty=23, body={"m2m:sub": {
        "rn": "other", "nu": [f"/id-cse1/{aei1b}"], "enc": {"net": [3]}}})
    assert other.rsc == 2001, other.body
    sur_other = f"/id-cse2/{other.body['m2m:sub']['ri']}"
    vrq = await receiver.next(5)
    assert vrq.is_verification, vrq.body
    assert vrq.sgn["sur"] == sur_other
    assert vrq.sgn.get("cr") == f"/id-cse1/{aei1}"
    assert vrq.header("X-M2M-Origin") == "/id-cse2"

    made = await http.send("POST", f"{cse2.url}/cse2/ae2/data", fr=aei2, ty=4,
                           body={"m2m:cin": {"rn": "c1", "con": "hello from cse2"}})
    assert made.rsc == 2001, made.body
    got: dict[str, Any] = {}
    while len(got) < 2:
        n = await receiver.next_notification(5)
        # "own" (net 3) also hears of its sibling subscription "other" being
        # created, correctly; only the contentInstance notifications count here.
        if "m2m:cin" in n.sgn["nev"]["rep"]:
            got[n.sgn["sur"]] = n
    assert set(got) == {sur_own, sur_other}
    for n in got.values():
        assert n.sgn["nev"]["net"] == 3
        assert n.sgn["nev"]["rep"]["m2m:cin"]["con"] == "hello from cse2"
        assert n.header("X-M2M-Origin") == "/id-cse2"
        assert n.method == "POST"


async def test_failed_verification_through_the_pair_is_5204(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": "data"})
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    dead = await register_ae(http, cse1, "cse1", "dead", poa=[closed_url()])
    await grant(http, cse2, "cse2/ae2/data", aei2, [f"/id-cse1/{aei1}"])
    far = f"{cse1.url}/~/id-cse2/cse2/ae2/data"
    loop = asyncio.get_running_loop()
    for rn, nu in (("to-dead", f"/id-cse1/{dead}"), ("to-nobody", "/id-cse1/Cnobody")):
        t0 = loop.time()
        r = await http.send("POST", far, fr=aei1, ty=23, body={"m2m:sub": {"rn": rn, "nu": [nu]}})
        assert r.rsc == 5204, (nu, r.body)
        assert loop.time() - t0 < FAST
        assert (await http.send("GET", f"{cse2.url}/cse2/ae2/data/{rn}", fr=ADMIN)).rsc == 4004


# -- 11. deregistration on shutdown ----------------------------------------------------------

async def test_deregister_on_shutdown(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http, cse2_registrar={"deregister_on_shutdown": True})
    await wait_csr(http, cse1, "cse1/id-cse2")
    assert await cse2.stop() == 0
    r = await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)
    assert r.rsc == 4004, r.body
    found = await http.send("GET", f"{cse1.url}/cse1?fu=1&ty=16", fr=ADMIN)
    assert found.body["m2m:uril"] == []
    # with nothing registered, a request for CSE2 has no route at CSE1
    assert (await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)).rsc == 4004

    # started again, it registers again
    await cse2.start()
    await wait_csr(http, cse1, "cse1/id-cse2")
    ok = await until(lambda: _rsc_is(http, f"{cse1.url}/~/id-cse2/cse2", 2000), "forwarding to CSE2 again")
    assert ok


async def _rsc_is(http: Http, url: str, rsc: int) -> bool:
    return (await http.send("GET", url, fr=ADMIN)).rsc == rsc

"""SMG on one CSE: identifiers, a session between two AEs of the same CSE,
its termination and its expiry (docs/sessions.md).

Why: the identifiers are the session's security (a guessable sid or key
defeats it); a session whose endpoints share one CSE has no nextHop but
otherwise the same shape; and expiry must terminate a session "as if
deleted, both endpoints notified" (why 2) -- checked here with a clock the
test moves, so the ordering of what expires at the same instant is
exercised deterministically. In-process CSE, loopback receivers.
"""

from __future__ import annotations

import base64
from typing import Any

from cse.core.messages import Operation
from cse.core.timestamps import format_ts
from cse.csf.smg.model import new_credentials, new_sid, sp_ae_id, split_ae_id
from tests.conftest import InProc
from tests.e2e.test_smg_helpers import KEY_RE, SID_RE, SessionAE

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)
ADMIN = "CAdmin"
CB = "cse-in"
SMG_TYS = "9002 9003 9004 9005 9006"


def test_sid_and_credentials_are_random_and_well_formed() -> None:
    sids = {new_sid() for _ in range(200)}
    assert len(sids) == 200
    for sid in sids:
        assert SID_RE.match(sid), sid
        # >= 128 bits: at least 22 url-safe characters (6 bits each)
        assert len(sid) >= 22
    creds = [new_credentials() for _ in range(200)]
    assert len({c["key"] for c in creds}) == 200
    for c in creds:
        assert set(c) == {"kid", "key", "alg"} and c["alg"] == "A256GCM" and c["kid"]
        assert KEY_RE.match(c["key"]), c
        assert len(base64.urlsafe_b64decode(c["key"] + "=")) == 32


def test_ae_id_forms() -> None:
    assert split_ae_id("/id-cse2/Cae2", "/id-cse1") == ("/id-cse2", "Cae2")
    assert split_ae_id("Cae1", "/id-cse1") == ("/id-cse1", "Cae1")
    for bad in ("/id-cse2", "/id-cse2/a/b", "", "a/b", "//x"):
        try:
            split_ae_id(bad, "/id-cse1")
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    assert sp_ae_id("Cae1", "/id-cse1") == "/id-cse1/Cae1"
    assert sp_ae_id("/id-cse9/Cx", "/id-cse1") == "/id-cse9/Cx"


async def _ae(ip: InProc, rn: str, rcv: SessionAE, subscribe: bool = True) -> str:
    aei = await ip.register(rn, scp=["smg"], poa=[rcv.url])
    if subscribe:
        r = await ip.call(CREATE, f"{CB}/{rn}/sessions", aei, ty=23, pc={"m2m:sub": {"nu": [rcv.url]}})
        assert r.rsc == 2001, r.pc
        assert (await rcv.next(5)).is_verification
    return aei


async def _smg_left(ip: InProc) -> list[str]:
    r = await ip.call(RETRIEVE, CB, ADMIN, query={"fu": ("1",), "ty": (SMG_TYS,)})
    assert r.rsc == 2000, r.pc
    return list(r.pc["m2m:uril"])


async def _local_session(ip: InProc, rcv1: SessionAE, rcv2: SessionAE, **attrs: Any
                         ) -> tuple[str, str, dict[str, Any]]:
    aei1 = await _ae(ip, "ae1", rcv1)
    aei2 = await _ae(ip, "ae2", rcv2)
    r = await ip.call(CREATE, f"{CB}/ae1/sessions", aei1, ty=9002,
                      pc={"m2m:sess": {"tep": f"/id-in/{aei2}", "epa": {"a": 1}, **attrs}})
    assert r.rsc == 2001, r.pc
    return aei1, aei2, dict(r.pc["m2m:sess"])


async def test_session_between_two_aes_of_one_cse(inproc: InProc) -> None:
    ip = inproc
    async with SessionAE(epa={"b": 2}) as rcv2, SessionAE() as rcv1:
        aei1, aei2, sess = await _local_session(ip, rcv1, rcv2)
        sid = sess["sid"]
        assert sess["iep"] == f"/id-in/{aei1}" and sess["tep"] == f"/id-in/{aei2}" and sess["sst"] == 2
        assert KEY_RE.match(sess["scr"]["key"])
        _, ev = await rcv2.event(1)
        assert ev["scr"] == sess["scr"] and ev["epa"] == {"a": 1} and ev["sid"] == sid

        r = await ip.call(RETRIEVE, f"ses{sid}", ADMIN, rcn=4)
        assert r.rsc == 2000, r.pc
        view = r.pc["m2m:sess"]
        assert "scr" not in view
        assert view.get("m2m:nhp", []) == []  # both endpoints here: no hop
        seps = sorted(view["m2m:sep"], key=lambda s: s["rol"])
        assert [(s["rol"], s["aei"], s["csi"], s["epa"]) for s in seps] == [
            (1, f"/id-in/{aei1}", "/id-in", {"a": 1}), (2, f"/id-in/{aei2}", "/id-in", {"b": 2})]
        assert [c["rn"] for c in view["m2m:spc"]] == ["sessionPolicies"]

        # the target AE can see and end it; the initiator is told
        assert (await ip.call(RETRIEVE, f"ses{sid}", aei2)).rsc == 2000
        r = await ip.call(DELETE, f"ses{sid}", aei2)
        assert r.rsc == 2002, r.pc
        _, ev = await rcv1.event(3)
        assert ev["sid"] == sid and ev["why"] == 1
        assert await _smg_left(ip) == []
        assert (await ip.call(RETRIEVE, f"ses{sid}", ADMIN)).rsc == 4004


async def test_local_failures(inproc: InProc) -> None:
    ip = inproc
    async with SessionAE(establish_rsc=4103) as no, SessionAE() as rcv1, SessionAE() as deaf_rcv:
        aei1 = await _ae(ip, "ae1", rcv1)
        rej = await _ae(ip, "rej", no)
        deaf = await _ae(ip, "deaf", deaf_rcv, subscribe=False)
        for tep, rsc in ((f"/id-in/{rej}", 4103), (f"/id-in/{deaf}", 5103), ("/id-in/Cnobody", 4004),
                         (rej, 4103), (f"/id-in/{aei1}", 4000)):
            r = await ip.call(CREATE, f"{CB}/ae1/sessions", aei1, ty=9002, pc={"m2m:sess": {"tep": tep}})
            assert r.rsc == rsc, (tep, r.rsc, r.pc)
            assert await _smg_left(ip) == [], tep


async def test_expiry_terminates_and_tells_both_endpoints(inproc: InProc) -> None:
    """docs/sessions.md: "at expiry the session ends as if deleted, and both
    endpoints are told" with why 2. The session's children carry the
    session's et, so they fall due at the same instant as the session."""
    ip = inproc
    async with SessionAE() as rcv2, SessionAE() as rcv1:
        aei1, aei2, sess = await _local_session(ip, rcv1, rcv2, et=format_ts(ip.clock.now() + 30))
        sid = sess["sid"]
        await rcv2.event(1)
        ip.clock.advance(31)
        await ip.cse._expire(ip.clock.now())
        assert (await ip.call(RETRIEVE, f"ses{sid}", ADMIN)).rsc == 4004
        assert await _smg_left(ip) == []
        await ip.cse.notifier.drained(5)
        told1, told2 = rcv1.events(3), rcv2.events(3)
        assert told1 and told2, f"typ 3 at expiry: AE1 got {told1}, AE2 got {told2}"
        ev1, ev2 = told1[0], told2[0]
        assert ev1["sid"] == ev2["sid"] == sid
        assert ev1["why"] == ev2["why"] == 2, (ev1, ev2)

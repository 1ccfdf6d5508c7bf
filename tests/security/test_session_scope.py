"""What a session authorises and who sees sessions, attacked across a real
pair of CSE processes (docs/sessions.md "What a session authorizes",
"Who sees sessions"; docs/security.md "Sessions").

AE1 (at CSE1) and AE2 (at CSE2) share an established session. Through it,
AE1 may work on the data below AE2 but must not be able to:

* take AE2 over by changing its AE resource (``poa``: notifications meant
  for AE2, session keys included, would go to the attacker);
* leave itself a backdoor that survives the session (an ACP of its own, an
  ``acpi`` pointing to one);
* see AE2's other sessions in an ``rcn``/discovery walk.

And an ACP on AE2 that grants others CREATE and RETRIEVE must not let them
subscribe to (or read) AE2's ``sessions`` collection, where session offers
and their keys arrive.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Http
from tests.e2e.test_intercse_helpers import register_ae
from tests.flow2_helpers import CB1, CB2, CNT_TO, CSI2, Flow2, dbg, next_sevt, start_pair
from tests.notify_receiver import Receiver

AE2_TO = f"{CSI2}/{CB2}/AE2"


async def _flow(cse_process: Any, http: Http, rcv1: Receiver, rcv2: Receiver) -> Flow2:
    cse1, cse2 = await start_pair(cse_process, http)
    return await Flow2(http, cse1, cse2, rcv1, rcv2).setup()


async def _ae2(f: Flow2) -> dict[str, Any]:
    r = await f.http.send("GET", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2)
    assert r.rsc == 2000, (r.rsc, r.body)
    return dict(r.body["m2m:ae"])


async def _establish(f: Flow2, cse_url: str, cb: str, rn: str, aei: str) -> dict[str, Any]:
    """A further session from the AE ``rn`` to AE2 (AE2's receiver accepts it)."""
    r = await f.http.send("POST", f"{cse_url}/{cb}/{rn}/sessions", fr=aei, ty=9002,
                          body={"m2m:sess": {"tep": f"{CSI2}/{f.aei2}", "epa": {"who": rn}}})
    assert r.rsc == 2001, (r.rsc, r.body)
    await next_sevt(f.rcv2, 1)
    return dict(r.body["m2m:sess"])


async def test_a_session_peer_cannot_change_the_other_endpoints_ae(cse_process: Any, http: Http) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2, Receiver() as attacker:
        f = await _flow(cse_process, http, rcv1, rcv2)
        poa_before = (await _ae2(f))["poa"]
        for body in ({"m2m:ae": {"poa": [attacker.url]}},      # the takeover: AE2's notifications to the attacker
                     {"m2m:ae": {"lbl": ["owned"]}},            # any change of the AE resource itself
                     {"m2m:ae": {"scp": []}}):
            r = await f.send("PUT", f.cse1, AE2_TO, f.aei1, body=body)
            assert r.rsc == 4103, (body, r.rsc, r.body)
            assert "endpoint AE resource itself" in dbg(r) and "session" in dbg(r), dbg(r)
        # the same request reaching CSE2 as AE2's own session-based request is refused too (the rule is
        # about the session, not about who sends it)
        r = await f.send("PUT", f.cse2, f"{CB2}/AE2", f.aei2, body={"m2m:ae": {"poa": [attacker.url]}})
        assert r.rsc == 4103, (r.rsc, r.body)
        ae2 = await _ae2(f)
        assert ae2["poa"] == poa_before and "owned" not in (ae2.get("lbl") or []), ae2
        assert attacker.received == []
        # data below AE2 is still the session's to change
        r = await f.send("PUT", f.cse1, CNT_TO, f.aei1, body={"m2m:cnt": {"lbl": ["data"]}})
        assert r.rsc == 2004, (r.rsc, r.body)
        # AE2 itself, without a session, may change its AE resource
        r = await http.send("PUT", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2, body={"m2m:ae": {"lbl": ["mine"]}})
        assert r.rsc == 2004, (r.rsc, r.body)


async def test_a_session_leaves_no_access_control_backdoor(cse_process: Any, http: Http) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        # an ACP AE2 made itself (it grants everyone RETRIEVE), for a public container of its own
        r = await http.send("POST", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2, ty=1, body={"m2m:acp": {
            "rn": "public", "pv": {"acr": [{"acor": ["all"], "acop": 2}]},
            "pvs": {"acr": [{"acor": [f.aei2], "acop": 63}]}}})
        assert r.rsc == 2001, (r.rsc, r.body)
        public = r.body["m2m:acp"]["ri"]
        mine = {"acr": [{"acor": [f"/id-cse1/{f.aei1}", f.aei1], "acop": 63}]}
        attempts: list[tuple[str, str, Any, int | None, str]] = [
            # (method, To, body, ty, what the dbg must name)
            ("POST", AE2_TO, {"m2m:acp": {"rn": "backdoor", "pv": mine, "pvs": mine}}, 1, "accessControlPolicy"),
            ("PUT", CNT_TO, {"m2m:cnt": {"acpi": [public]}}, None, "acpi"),
            ("PUT", CNT_TO, {"m2m:cnt": {"lbl": ["x"], "acpi": [public]}}, None, "acpi"),
            ("PUT", CNT_TO, {"m2m:cnt": {"acpi": None}}, None, "acpi"),
            ("POST", AE2_TO, {"m2m:cnt": {"rn": "c2", "acpi": [public]}}, 3, "acpi"),
            ("PUT", f"{AE2_TO}/public", {"m2m:acp": {"pv": mine}}, None, "accessControlPolicy"),
            ("DELETE", f"{AE2_TO}/public", None, None, "accessControlPolicy"),
            ("POST", f"{AE2_TO}/public", {"m2m:sub": {"nu": [rcv1.url]}}, 23, "accessControlPolicy"),
        ]
        for method, to, body, ty, named in attempts:
            r = await f.send(method, f.cse1, to, f.aei1, body=body, ty=ty)
            assert r.rsc == 4103, (method, to, body, r.rsc, r.body)
            assert named in dbg(r) and "session" in dbg(r), (method, to, dbg(r))
        # nothing was made or changed
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE2/backdoor", fr=f.aei2)
        assert r.rsc == 4004, (r.rsc, r.body)
        assert "acpi" not in await f.container()
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE2/public", fr=f.aei2)
        assert r.rsc == 2000 and r.body["m2m:acp"]["pv"]["acr"][0]["acor"] == ["all"], r.body
        # the session still carries data operations
        r = await f.send("POST", f.cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("data")}})
        assert r.rsc == 2001, (r.rsc, r.body)
        # after termination AE1 has no access of its own to AE2's container
        r = await http.send("DELETE", f"{f.cse1.url}/{f.ses1}", fr=f.aei1)
        assert r.rsc == 2002, (r.rsc, r.body)
        r = await http.send("GET", f"{f.cse1.url}/~{CNT_TO}", fr=f.aei1)
        assert r.rsc == 4103, (r.rsc, r.body)
        assert (await f.container())["cni"] == 1


def _sessions_in(body: Any) -> list[str]:
    """What of a walk's result betrays a session: sessions collections,
    sessions and their attributes."""
    text = json.dumps(body)
    return [marker for marker in ('"m2m:sesc"', '"m2m:sess"', '"sid"', '"iep"', '"hst"', '"epa"', "/sessions",
                                  '"ty": 9001', '"ty": 9002') if marker in text]


async def test_a_session_walk_does_not_show_the_peers_sessions(cse_process: Any, http: Http) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await _flow(cse_process, http, rcv1, rcv2)
        # AE2's other sessions: one with AE3 at CSE1, one with AE4 at CSE2
        aei3 = await register_ae(http, f.cse1, CB1, "AE3", scp=["smg"])
        other = await _establish(f, f.cse1.url, CB1, "AE3", aei3)
        aei4 = await register_ae(http, f.cse2, CB2, "AE4", scp=["smg"])
        local = await _establish(f, f.cse2.url, CB2, "AE4", aei4)
        # AE2 itself sees its sessions (the control)
        r = await http.send("GET", f"{f.cse2.url}/{CB2}/AE2?rcn=4", fr=f.aei2)
        assert r.rsc == 2000 and other["sid"] in json.dumps(r.body), r.body
        for query, root in (("rcn=4", "m2m:ae"), ("rcn=5", "m2m:ae"), ("rcn=6", "m2m:rrl"), ("rcn=8", "m2m:ae"),
                            ("fu=1", "m2m:uril"), ("fu=1&rcn=6", "m2m:rrl"), ("fu=1&ty=9002", "m2m:uril")):
            r = await f.send("GET", f.cse1, AE2_TO, f.aei1, query=query)
            assert r.rsc == 2000, (query, r.rsc, r.body)
            assert root in r.body, (query, r.body)
            assert _sessions_in(r.body) == [], (query, _sessions_in(r.body), r.body)
            for sid in (other["sid"], local["sid"], f.sid):
                assert sid not in json.dumps(r.body), (query, r.body)
        # the session's data is in the walk
        r = await f.send("GET", f.cse1, AE2_TO, f.aei1, query="fu=1")
        assert r.body["m2m:uril"] == [f"{CSI2}/{CB2}/AE2/container1"], r.body  # SP-relative: it is CSE2's
        r = await f.send("GET", f.cse1, AE2_TO, f.aei1, query="rcn=4")
        assert [c["rn"] for c in r.body["m2m:ae"]["m2m:cnt"]] == ["container1"], r.body
        # AE2's session-based walk of its own AE still sees what AE2 owns
        r = await f.send("GET", f.cse2, f"{CB2}/AE2", f.aei2, query="rcn=4")
        assert r.rsc == 2000 and other["sid"] in json.dumps(r.body), r.body


async def test_an_acp_on_the_ae_does_not_open_its_sessions(cse_process: Any, http: Http) -> None:
    async with Receiver() as rcv1, Receiver() as rcv2, Receiver() as rcv3:
        f = await _flow(cse_process, http, rcv1, rcv2)
        # AE2 lets everybody CREATE, RETRIEVE and DISCOVER on its AE resource
        r = await http.send("POST", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2, ty=1, body={"m2m:acp": {
            "rn": "open", "pv": {"acr": [{"acor": ["all"], "acop": 1 | 2 | 32}, {"acor": [f.aei2], "acop": 63}]},
            "pvs": {"acr": [{"acor": [f.aei2], "acop": 63}]}}})
        assert r.rsc == 2001, (r.rsc, r.body)
        r = await http.send("PUT", f"{f.cse2.url}/{CB2}/AE2", fr=f.aei2,
                            body={"m2m:ae": {"acpi": [r.body["m2m:acp"]["ri"]]}})
        assert r.rsc == 2004, (r.rsc, r.body)
        # AE3 at CSE1 (its requests are forwarded to CSE2)
        aei3 = await register_ae(http, f.cse1, CB1, "AE3", poa=[rcv3.url])
        ae2_url = f"{f.cse1.url}/~{AE2_TO}"
        # the ACP does what it says on AE2 itself
        r = await http.send("POST", ae2_url, fr=aei3, ty=3, body={"m2m:cnt": {"rn": "fromAE3"}})
        assert r.rsc == 2001, (r.rsc, r.body)
        # ... but not in AE2's sessions collection: no subscription (offers carry session keys), no reading
        r = await http.send("POST", f"{ae2_url}/sessions", fr=aei3, ty=23, body={"m2m:sub": {"nu": [rcv3.url]}})
        assert r.rsc == 4103, (r.rsc, r.body)
        assert rcv3.received == []  # not even a verification request
        for path in ("sessions", f"sessions/{f.rn}", f"sessions/{f.rn}/sep1", "sessions/sesSub"):
            r = await http.send("GET", f"{ae2_url}/{path}", fr=aei3)
            assert r.rsc == 4103, (path, r.rsc, r.body)
        for query in ("rcn=4", "rcn=6", "fu=1", "fu=1&ty=9001", "fu=1&ty=23"):
            r = await http.send("GET", f"{ae2_url}?{query}", fr=aei3)
            assert r.rsc == 2000, (query, r.rsc, r.body)
            assert _sessions_in(r.body) == [] and "sesSub" not in json.dumps(r.body), (query, r.body)
        # a new offer to AE2 (from AE4) reaches AE2's own subscription only
        aei4 = await register_ae(http, f.cse1, CB1, "AE4", scp=["smg"])
        offer = await _establish(f, f.cse1.url, CB1, "AE4", aei4)
        assert offer["sst"] == 2
        assert rcv3.received == []

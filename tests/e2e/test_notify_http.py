"""Notifications and non-blocking requests end to end: a real ``python -m cse``
process, driven over HTTP, notifying a real receiver on loopback
(docs/onem2m.md "Non-blocking requests", "Subscriptions and notifications")."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Http
from tests.notify_receiver import Receiver
from tests.waiting import until

TS = re.compile(r"^\d{8}T\d{6}(,\d{1,6})?$")


async def register(http: Http, url: str, rn: str, **attrs: Any) -> str:
    r = await http.send("POST", f"{url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": rn, "api": f"N{rn}", "rr": True, "srv": ["3"], **attrs}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    return str(r.body["m2m:ae"]["aei"])


async def setup_container(http: Http, url: str, **ae_attrs: Any) -> str:
    aei = await register(http, url, "app", **ae_attrs)
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    return aei


async def test_subscribe_and_notify_over_http(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url)
    r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                        body={"m2m:sub": {"rn": "sub1", "nu": [receiver.url], "enc": {"net": [3]}}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    sub = r.body["m2m:sub"]
    assert sub["nct"] == 1 and sub["enc"]["net"] == [3]

    vrq = await receiver.next()
    assert vrq.sgn == {"vrq": True, "sur": f"/id-in/{sub['ri']}", "cr": aei}

    r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4,
                        body={"m2m:cin": {"rn": "c1", "cnf": "text/plain:0", "con": "21.5"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    cin = r.body["m2m:cin"]

    item = await receiver.next()
    assert item.method == "POST"
    assert item.path == "/notify"
    assert item.header("X-M2M-Origin") == "/id-in"
    ri = item.header("X-M2M-RI")
    assert ri and ri != vrq.header("X-M2M-RI")  # fresh per notification
    assert item.header("X-M2M-RVI")
    ot = item.header("X-M2M-OT")
    assert ot is not None and TS.match(ot), ot
    ctype = item.header("Content-Type") or ""
    assert ctype.startswith(("application/json", "application/vnd.onem2m-res+json")), ctype
    assert "ty=" not in ctype
    sgn = item.sgn
    assert sgn["sur"] == f"/id-in/{sub['ri']}"
    assert sgn["cr"] == aei
    assert sgn["nev"]["net"] == 3
    assert sgn["nev"]["rep"] == {"m2m:cin": cin}


async def test_notification_to_ae_poa_over_http(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url, poa=[receiver.url])
    r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                        body={"m2m:sub": {"nu": [aei], "enc": {"net": [1]}, "nct": 2}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    # nu = the originator: its poa is asked first, like any target (docs/security.md "Outbound requests")
    assert (await receiver.next()).sgn == {"vrq": True, "sur": f"/id-in/{r.body['m2m:sub']['ri']}", "cr": aei}
    r = await http.send("PUT", f"{cse.url}/cse-in/app/data", fr=aei, body={"m2m:cnt": {"lbl": ["k:v"]}})
    assert (r.status, r.rsc) == (200, 2004), r.body
    item = await receiver.next()
    assert item.sgn["nev"]["net"] == 1
    assert item.sgn["nev"]["rep"]["m2m:cnt"]["lbl"] == ["k:v"]


async def test_rejected_verification_over_http(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url)
    async with Receiver(reject_verification=True) as rcv:
        r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                            body={"m2m:sub": {"rn": "sub1", "nu": [rcv.url]}})
        assert r.rsc == 5204, r.body
        assert r.status >= 400
        assert isinstance(r.body.get("m2m:dbg"), str)
        assert (await rcv.next()).is_verification
    r = await http.send("GET", f"{cse.url}/cse-in/app/data/sub1", fr=aei)
    assert (r.status, r.rsc) == (404, 4004), r.body


async def test_non_blocking_rt1_over_http(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aei = await register(http, cse.url, "app")
    r = await http.send("POST", f"{cse.url}/cse-in/app?rt=1", fr=aei, ty=3, rqi="nb-1",
                        body={"m2m:cnt": {"rn": "data", "mni": 2}})
    assert (r.status, r.rsc) == (202, 1001), r.body
    assert r.headers["X-M2M-RI"] == "nb-1"
    ri = r.body["m2m:uri"]
    async def done() -> dict | None:
        p = await http.send("GET", f"{cse.url}/~/id-in/{ri}", fr=aei)
        assert (p.status, p.rsc) == (200, 2000), p.body
        return p.body["m2m:req"] if p.body["m2m:req"]["rs"] != 3 else None
    req = await until(done, f"<request> {ri} to complete", timeout=10, interval=0.01)
    assert req["rs"] == 1
    assert req["ors"]["rsc"] == 2001
    assert req["ors"]["pc"]["m2m:cnt"]["rn"] == "data" and req["ors"]["pc"]["m2m:cnt"]["mni"] == 2
    assert req["rid"] == "nb-1" and req["org"] == aei
    r = await http.send("GET", f"{cse.url}/cse-in/app/data", fr=aei)
    assert (r.status, r.rsc) == (200, 2000)
    # another AE may not read it
    other = await register(http, cse.url, "other")
    r = await http.send("GET", f"{cse.url}/~/id-in/{ri}", fr=other)
    assert (r.status, r.rsc) == (403, 4103), r.body


async def test_non_blocking_rt2_over_http(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url)
    r = await http.send("DELETE", f"{cse.url}/cse-in/app/data?rt=2", fr=aei, rqi="nb-2",
                        headers={"X-M2M-RTU": receiver.url})
    assert (r.status, r.rsc) == (202, 1002), r.body
    assert isinstance(r.body["m2m:uri"], str)
    # the RTU target is asked first (docs/security.md "Outbound requests")
    assert (await receiver.next()).sgn == {"vrq": True, "sur": f"/id-in/{r.body['m2m:uri']}", "cr": aei}
    item = await receiver.next()
    assert item.header("X-M2M-Origin") == "/id-in"
    rsp = item.body["m2m:rsp"]
    assert rsp["rsc"] == 2002 and rsp["rqi"] == "nb-2"
    r = await http.send("GET", f"{cse.url}/cse-in/app/data", fr=aei)
    assert r.rsc == 4004


async def test_stopped_receiver_does_not_block_retrieve(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url)
    rcv = Receiver()
    await rcv.start()
    r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                        body={"m2m:sub": {"nu": [rcv.url], "enc": {"net": [3]}}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert (await rcv.next()).is_verification
    await rcv.stop()
    for i in range(5):
        r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"con": f"v{i}"}})
        assert (r.status, r.rsc) == (201, 2001), r.body
    r = await http.send("GET", f"{cse.url}/cse-in/app/data/la", fr=aei)
    assert (r.status, r.rsc) == (200, 2000), r.body
    assert r.body["m2m:cin"]["con"] == "v4"
    r = await http.send("GET", f"{cse.url}/cse-in/app/data", fr=aei)
    assert (r.status, r.rsc) == (200, 2000)
    assert r.body["m2m:cnt"]["cni"] == 5


async def test_slow_receiver_does_not_block_retrieve(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    aei = await setup_container(http, cse.url)
    r = await http.send("POST", f"{cse.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "other"}})
    assert r.rsc == 2001
    async with Receiver() as slow:
        for target, rcv in (("data", slow), ("other", receiver)):
            r = await http.send("POST", f"{cse.url}/cse-in/app/{target}", fr=aei, ty=23,
                                body={"m2m:sub": {"nu": [rcv.url], "enc": {"net": [3]}}})
            assert (r.status, r.rsc) == (201, 2001), r.body
            assert (await rcv.next()).is_verification
        slow.gate()
        r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4, body={"m2m:cin": {"con": "x"}})
        assert r.rsc == 2001
        assert (await slow.next()).sgn["nev"]["net"] == 3  # arrived, answer held
        r = await http.send("GET", f"{cse.url}/cse-in/app/data/la", fr=aei)
        assert (r.status, r.rsc) == (200, 2000) and r.body["m2m:cin"]["con"] == "x"
        r = await http.send("POST", f"{cse.url}/cse-in/app/other", fr=aei, ty=4, body={"m2m:cin": {"con": "y"}})
        assert r.rsc == 2001
        got = await receiver.next()
        assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "y"
        slow.release()

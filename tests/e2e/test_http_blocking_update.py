"""blockingUpdate (net 7) end to end: a real ``python -m cse`` process asks a
real notification receiver on loopback before each UPDATE, over HTTP
(docs/onem2m.md "Subscriptions and notifications")."""

from __future__ import annotations

from typing import Any

from tests.conftest import Http
from tests.notify_receiver import Receiver


async def test_blocking_update_over_http(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    r = await http.send("POST", f"{cse.url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
    aei = r.body["m2m:ae"]["aei"]
    data = f"{cse.url}/cse-in/app/data"
    r = await http.send("POST", f"{cse.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.body
    r = await http.send("POST", data, fr=aei, ty=23,
                        body={"m2m:sub": {"rn": "gate", "nu": [receiver.url], "enc": {"net": [7]}}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert (await receiver.next()).is_verification

    r = await http.send("PUT", data, fr=aei, body={"m2m:cnt": {"lbl": ["ok"]}})
    assert (r.status, r.rsc) == (200, 2004), r.body
    asked = await receiver.next()
    assert asked.sgn["nev"] == {"net": 7, "rep": {"m2m:cnt": {"lbl": ["ok"]}}}
    assert asked.header("X-M2M-Origin") == "/id-in"

    receiver.rsc = 4103  # the subscriber refuses from now on
    r = await http.send("PUT", data, fr=aei, body={"m2m:cnt": {"lbl": ["no"]}})
    assert (r.status, r.rsc) == (403, 4127), r.body
    assert (await receiver.next()).sgn["nev"]["rep"] == {"m2m:cnt": {"lbl": ["no"]}}
    r = await http.send("GET", data, fr=aei)
    assert r.body["m2m:cnt"]["lbl"] == ["ok"]

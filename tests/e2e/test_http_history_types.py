"""timeSeries and a flexContainer with history over real HTTP (docs/onem2m.md
"timeSeries", "flexContainerInstance"): a real ``python -m cse`` process on
loopback, the type numbers in ``Content-Type``, the instances read back
through ``la``."""

from __future__ import annotations

from typing import Any

from tests.conftest import Http
from tests.e2e.test_http_core import assert_error, register


async def test_timeseries_and_flex_history_over_http(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = f"{cse.url}/cse-in"
    aei = await register(http, cse.url, "meter")
    r = await http.send("POST", f"{base}/meter", fr=aei, ty=29, rvi="4",
                        body={"m2m:ts": {"rn": "power", "mni": 10, "pei": 60000, "mdd": True, "mdn": 5}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    tsi = {"m2m:tsi": {"dgt": "20300101T120000", "con": "230", "snr": 7}}
    r = await http.send("POST", f"{base}/meter/power", fr=aei, ty=30, rvi="4", body=tsi)
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert_error(await http.send("POST", f"{base}/meter/power", fr=aei, ty=30, rvi="4", body=tsi), 4105, 409)
    r = await http.send("GET", f"{base}/meter/power/la", fr=aei, rvi="4")
    assert r.body["m2m:tsi"]["snr"] == 7 and r.body["m2m:tsi"]["cs"] == 3, r.body

    r = await http.send("POST", f"{base}/meter", fr=aei, ty=28, rvi="4",
                        body={"m2m:fcnt": {"rn": "state", "cnd": "com.example.meter", "mni": 2, "kWh": 1}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    r = await http.send("PUT", f"{base}/meter/state", fr=aei, rvi="4", body={"m2m:fcnt": {"kWh": 2}})
    assert (r.status, r.rsc) == (200, 2004) and r.body["m2m:fcnt"]["cni"] == 2, r.body
    r = await http.send("GET", f"{base}/meter/state/la", fr=aei, rvi="4")
    assert r.body["m2m:fcin"]["kWh"] == 2, r.body
    assert_error(await http.send("POST", f"{base}/meter/state", fr=aei, ty=58, rvi="4",
                                 body={"m2m:fcin": {"kWh": 3}}), 4005, 405)
    # peid bounded by pei and mdt (TS-0001 9.6.36); mni 0 keeps nothing (docs/onem2m.md "container")
    r = await http.send("POST", f"{base}/meter", fr=aei, ty=29, rvi="4",
                        body={"m2m:ts": {"rn": "bad", "pei": 1000, "peid": 600}})
    assert_error(r, 4000, 400)
    assert "peid" in r.body["m2m:dbg"], r.body
    r = await http.send("POST", f"{base}/meter", fr=aei, ty=29, rvi="4",
                        body={"m2m:ts": {"rn": "none", "mni": 0, "pei": 1000, "peid": 500, "mdt": 600, "mdd": True}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    r = await http.send("POST", f"{base}/meter/none", fr=aei, ty=30, rvi="4", body=tsi)
    assert (r.status, r.rsc) == (201, 2001), r.body
    r = await http.send("GET", f"{base}/meter/none", fr=aei, rvi="4")
    assert r.body["m2m:ts"]["cni"] == 0, r.body
    assert_error(await http.send("GET", f"{base}/meter/none/la", fr=aei, rvi="4"), 4004, 404)

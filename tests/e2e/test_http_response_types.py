"""Response types 4 and 5 over real HTTP (docs/onem2m.md "Non-blocking
requests"): rt=5 is answered 202 with X-M2M-RSC 1001 and no body, and the
operation is still performed; a quick rt=4 is an ordinary blocking 201.
A real CSE process on loopback."""

from __future__ import annotations

from typing import Any

from tests.conftest import Http
from tests.e2e.test_http_core import register
from tests.waiting import until


async def test_no_response_and_flex_blocking_over_http(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aei = await register(http, cse.url, "rtapp")
    r = await http.send("POST", f"{cse.url}/cse-in/rtapp?rt=5", fr=aei, ty=3, body={"m2m:cnt": {"rn": "quiet"}})
    assert (r.status, r.rsc, r.raw) == (202, 1001, b""), r.body

    async def created() -> bool:
        got = await http.send("GET", f"{cse.url}/cse-in/rtapp/quiet", fr=aei)
        return got.rsc == 2000
    await until(created, "the rt=5 container is created", timeout=10)

    r = await http.send("POST", f"{cse.url}/cse-in/rtapp?rt=4", fr=aei, ty=3, body={"m2m:cnt": {"rn": "flex"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert r.body["m2m:cnt"]["rn"] == "flex"

"""node, mgmtObj and flexContainer over real HTTP (docs/onem2m.md "node and mgmtObj", "flexContainer").

Why: a conformance suite's discovery set-up creates a <node> under the
CSEBase over HTTP and discovers by ``ty``; home appliances send their
flexContainer specialization roots (``cod:binSh``) in the body and the
type number in ``Content-Type``. A real ``python -m cse`` process on loopback.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_http_core import assert_error, register
from tests.e2e.test_http_durability import restart

BINSH = "org.onem2m.common.moduleclass.binarySwitch"


async def test_node_mgmt_obj_and_flex_container_over_http(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = f"{cse.url}/cse-in"
    r = await http.send("POST", base, fr=ADMIN, ty=14,
                        body={"m2m:nod": {"rn": "gw", "ni": "urn:dev:gw", "lbl": ["t"], "hcl": "/id-in"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert r.body["m2m:nod"]["ni"] == "urn:dev:gw"
    r = await http.send("POST", f"{base}/gw", fr=ADMIN, ty=13,
                        body={"m2m:dvi": {"rn": "info", "man": "ACME", "mod": "x"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert r.body["m2m:dvi"]["mgd"] == 1007
    assert_error(await http.send("POST", f"{base}/gw", fr=ADMIN, ty=13, body={"m2m:mgo": {}}), 4000, 400)

    aei = await register(http, cse.url, "lamp")
    r = await http.send("POST", f"{base}/lamp", fr=aei, ty=28,
                        body={"cod:binSh": {"rn": "sw", "cnd": BINSH, "powSe": False}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    r = await http.send("PUT", f"{base}/lamp/sw", fr=aei, body={"cod:binSh": {"powSe": True}})
    assert (r.status, r.rsc) == (200, 2004), r.body
    r = await http.send("GET", f"{base}/lamp/sw", fr=aei)
    assert r.body["cod:binSh"]["powSe"] is True and r.body["cod:binSh"]["st"] == 1, r.body
    assert_error(await http.send("PUT", f"{base}/lamp/sw", fr=aei, body={"cod:binSh": {"powSe": 1}}), 4000, 400)

    r = await http.send("GET", f"{base}?fu=1&ty=14", fr=ADMIN)
    assert r.body["m2m:uril"] == ["cse-in/gw"], r.body
    r = await http.send("GET", f"{base}?fu=1&ty=13", fr=ADMIN)
    assert r.body["m2m:uril"] == ["cse-in/gw/info"], r.body
    r = await http.send("GET", f"{base}?fu=1&ty=28", fr=aei)
    assert r.body["m2m:uril"] == ["cse-in/lamp/sw"], r.body
    r = await http.send("GET", f"{base}/gw?rcn=4", fr=ADMIN)
    assert r.body["m2m:nod"]["m2m:dvi"][0]["man"] == "ACME", r.body

    # the store keeps them as acknowledged, specialization and CSEBase nl included
    before = {p: (await http.send("GET", f"{base}/{p}", fr=ADMIN)).body for p in ("gw", "gw/info", "lamp/sw")}
    assert (await http.send("GET", base, fr=ADMIN)).body["m2m:cb"]["nl"] == before["gw"]["m2m:nod"]["ri"]
    await cse.stop()
    cse = await restart(cse_process, cse)
    base = f"{cse.url}/cse-in"
    after = {p: (await http.send("GET", f"{base}/{p}", fr=ADMIN)).body for p in before}
    assert after == before
    assert (await http.send("GET", base, fr=ADMIN)).body["m2m:cb"]["nl"] == before["gw"]["m2m:nod"]["ri"]

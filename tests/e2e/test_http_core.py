"""End to end over HTTP: a real ``python -m cse`` process, driven like curl would.

Why: the binding, the pipeline and the store only count as working when a
client on a socket sees the exact codes and content of docs/onem2m.md (addressing,
result content, discovery, access control) and the README's curl walkthrough. One CSE process per test (start
is ~0.3 s), each on a free loopback port with its store in a temp dir.
"""

from __future__ import annotations

import re
from typing import Any

from cse.core.timestamps import parse_ts
from tests.conftest import ADMIN, CSEProcess, Http, HttpReply, write_config

TS = re.compile(r"^\d{8}T\d{6},\d{6}$")


def assert_error(r: HttpReply, rsc: int, status: int) -> None:
    """A oneM2M error: the right codes and a debug text."""
    assert (r.status, r.rsc) == (status, rsc), (r.status, r.rsc, r.body)
    assert isinstance(r.body, dict) and isinstance(r.body.get("m2m:dbg"), str) and r.body["m2m:dbg"], r.body


def same_ri(value: str, ri: str) -> bool:
    """An unstructured discovery result: CSE-relative ``ri`` (spec) or ``/id-in/ri`` (ACME)."""
    return value in (ri, f"/id-in/{ri}")


async def register(http: Http, url: str, rn: str, fr: str = "C", **attrs: Any) -> str:
    r = await http.send("POST", f"{url}/cse-in", fr=fr, ty=2,
                        body={"m2m:ae": {"rn": rn, "api": f"N{rn}", "rr": True, "srv": ["3"], **attrs}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    return str(r.body["m2m:ae"]["aei"])


async def create(http: Http, url: str, fr: str, ty: int, root: str, attrs: dict[str, Any],
                 query: str = "") -> dict[str, Any]:
    r = await http.send("POST", f"{url}{query}", fr=fr, ty=ty, body={root: attrs})
    assert (r.status, r.rsc) == (201, 2001), r.body
    return dict(r.body[root])


# -- the acceptance check --------------------------------------------------------

async def test_acceptance_retrieve_cse_base(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    r = await http.send("GET", f"{cse.url}/cse-in", fr="CAdmin", rqi="1", rvi="3")
    assert r.status == 200
    assert r.rsc == 2000
    assert r.headers["X-M2M-RSC"] == "2000"
    assert r.headers["X-M2M-RI"] == "1"
    assert r.headers["X-M2M-RVI"] == "3"
    assert TS.match(r.headers["X-M2M-OT"])
    assert r.headers["Content-Type"].startswith("application/json")
    cb = r.body["m2m:cb"]
    assert cb["csi"] == "/id-in"
    assert (cb["ty"], cb["rn"], cb["ri"], cb["pi"]) == (5, "cse-in", "id-in", "")
    assert cb["cst"] == 1
    assert set(cb["srt"]) >= {1, 2, 3, 4, 5}
    assert TS.match(cb["ct"]) and TS.match(cb["lt"])
    assert "et" not in cb  # a CSEBase has no expirationTime


async def test_cse_base_poa_is_the_address_it_serves_on(cse_process: Any, http: Http) -> None:
    # Started with --http-port 0: the CSEBase's pointOfAccess must name the port
    # actually bound (the one in the READY line), not the configured 0.
    cse = await cse_process()
    r = await http.send("GET", f"{cse.url}/cse-in")
    assert r.rsc == 2000
    assert cse.url in r.body["m2m:cb"]["poa"], r.body["m2m:cb"]["poa"]


# -- README "Talking to it with curl", step by step --------------------------------

async def test_curl_walkthrough(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url

    # CREATE <AE> with From "C": the CSE assigns a C-stem.
    r = await http.send("POST", f"{base}/cse-in", fr="C", rqi="rq-0001", ty=2,
                        headers={"Accept": "application/json"},
                        body={"m2m:ae": {"rn": "myapp", "api": "Nmyapp", "rr": True, "srv": ["3"],
                                         "poa": ["http://192.168.1.10:9000/notify"]}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert r.headers["X-M2M-RI"] == "rq-0001" and r.headers["X-M2M-RVI"] == "3"
    ae = r.body["m2m:ae"]
    aei = ae["aei"]
    assert aei.startswith("C") and len(aei) > 1 and "/" not in aei
    assert ae["ri"] == aei
    assert (ae["rn"], ae["ty"], ae["pi"], ae["api"], ae["rr"]) == ("myapp", 2, "id-in", "Nmyapp", True)
    assert ae["poa"] == ["http://192.168.1.10:9000/notify"]
    assert TS.match(ae["ct"]) and ae["lt"] == ae["ct"]

    # CREATE <container>, structured, asking the CSE to set cr.
    r = await http.send("POST", f"{base}/cse-in/myapp", fr=aei, rqi="rq-0002", ty=3,
                        body={"m2m:cnt": {"rn": "data", "mni": 100, "lbl": ["room:kitchen"], "cr": None}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert r.headers["X-M2M-RI"] == "rq-0002"
    cnt = r.body["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"], cnt["st"], cnt["cr"]) == (0, 0, 0, aei)
    assert (cnt["rn"], cnt["ty"], cnt["pi"], cnt["mni"], cnt["lbl"]) == ("data", 3, aei, 100, ["room:kitchen"])

    # CREATE <contentInstance> returning only its address (rcn=2).
    r = await http.send("POST", f"{base}/cse-in/myapp/data?rcn=2", fr=aei, rqi="rq-0003", ty=4,
                        body={"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    uri = r.body["m2m:uri"]
    assert list(r.body) == ["m2m:uri"]
    assert uri.startswith("cse-in/myapp/data/") and len(uri) > len("cse-in/myapp/data/")
    assert r.headers["Content-Location"] == uri

    # RETRIEVE the latest instance via the SP-relative form.
    r = await http.send("GET", f"{base}/~/id-in/cse-in/myapp/data/la", fr=aei, rqi="rq-0004",
                        headers={"Accept": "application/json"})
    assert (r.status, r.rsc) == (200, 2000), r.body
    assert r.headers["X-M2M-RI"] == "rq-0004"
    cin = r.body["m2m:cin"]
    assert (cin["con"], cin["cnf"], cin["cs"], cin["ty"], cin["st"]) == ("21.5", "text/plain:0", 4, 4, 1)
    assert cin["rn"] == uri.rsplit("/", 1)[1]
    assert cin["pi"] == cnt["ri"]

    # ... the same instance by its address, and the container by the absolute unstructured form.
    r = await http.send("GET", f"{base}/{uri}", fr=aei)
    assert r.rsc == 2000 and r.body["m2m:cin"] == cin
    r = await http.send("GET", f"{base}/_/acme.example.com/id-in/{cnt['ri']}", fr=aei)
    assert r.rsc == 2000 and r.body["m2m:cnt"]["ri"] == cnt["ri"]
    assert (r.body["m2m:cnt"]["cni"], r.body["m2m:cnt"]["cbs"], r.body["m2m:cnt"]["st"]) == (1, 4, 1)

    # Partial RETRIEVE.
    r = await http.send("GET", f"{base}/cse-in/myapp?atrl=rr+poa", fr=aei)
    assert r.rsc == 2000
    assert r.body == {"m2m:ae": {"rr": True, "poa": ["http://192.168.1.10:9000/notify"]}}

    # DISCOVERY: containers labelled room:kitchen, at most 10, unstructured.
    r = await http.send("GET", f"{base}/cse-in/myapp?fu=1&ty=3&lbl=room:kitchen&lim=10&drt=2",
                        fr=aei, rqi="rq-0005")
    assert (r.status, r.rsc) == (200, 2000), r.body
    assert len(r.body["m2m:uril"]) == 1 and same_ri(r.body["m2m:uril"][0], cnt["ri"]), r.body

    # UPDATE <container>: change mni, delete lbl; full resource back, st incremented.
    r = await http.send("PUT", f"{base}/cse-in/myapp/data", fr=aei, rqi="rq-0006",
                        body={"m2m:cnt": {"mni": 5, "lbl": None}})
    assert (r.status, r.rsc) == (200, 2004), r.body
    upd = r.body["m2m:cnt"]
    assert upd["mni"] == 5 and "lbl" not in upd
    assert upd["st"] == 2 and upd["ri"] == cnt["ri"] and upd["cni"] == 1
    assert upd["lt"] >= upd["ct"]
    r = await http.send("GET", f"{base}/cse-in/myapp?fu=1&ty=3&lbl=room:kitchen&drt=2", fr=aei)
    assert r.rsc == 2000 and r.body["m2m:uril"] == []

    # DELETE the AE: default rcn=0, so no body; its subtree is gone too.
    r = await http.send("DELETE", f"{base}/cse-in/myapp", fr=aei, rqi="rq-0009")
    assert (r.status, r.rsc) == (200, 2002)
    assert r.headers["X-M2M-RI"] == "rq-0009"
    assert r.raw == b""
    for path in ("cse-in/myapp", f"~/id-in/{cnt['ri']}", uri):
        r = await http.send("GET", f"{base}/{path}", fr=ADMIN)
        assert_error(r, 4004, 404)


# -- addressing forms, every operation --------------------------------------------

async def test_every_operation_in_every_addressing_form(tmp_path: Any, http: Http) -> None:
    # A CSE with an SP-ID, so the absolute form can also be rejected for another SP.
    cfg = write_config(tmp_path / "sp", extra="")
    cfg.write_text(cfg.read_text().replace('admin = "CAdmin"', 'admin = "CAdmin"\nsp_id = "sp.example"'))
    cse = CSEProcess(cfg, tmp_path / "sp" / "cse-in.db")
    await cse.start()
    try:
        base = cse.url
        aei = await register(http, base, "app")
        cnt = await create(http, base + "/cse-in/app", aei, 3, "m2m:cnt", {"rn": "cnt"})
        ri = cnt["ri"]
        forms = {
            "structured": "/cse-in/app/cnt",
            "dash": "/-/app/cnt",
            "unstructured": f"/{ri}",
            "hybrid": f"/{aei}/cnt",
            "sp-relative structured": "/~/id-in/cse-in/app/cnt",
            "sp-relative dash": "/~/id-in/-/app/cnt",
            "sp-relative unstructured": f"/~/id-in/{ri}",
            "absolute structured": "/_/sp.example/id-in/cse-in/app/cnt",
            "absolute unstructured": f"/_/sp.example/id-in/{ri}",
        }
        for i, (name, path) in enumerate(forms.items()):
            r = await http.send("GET", base + path, fr=aei)
            assert (r.status, r.rsc) == (200, 2000), (name, r.body)
            assert r.body["m2m:cnt"]["ri"] == ri, name
            r = await http.send("POST", base + path, fr=aei, ty=4, body={"m2m:cin": {"rn": f"i{i}", "con": name}})
            assert (r.status, r.rsc) == (201, 2001), (name, r.body)
            assert r.body["m2m:cin"]["pi"] == ri
            assert r.headers.get("Content-Location", f"cse-in/app/cnt/i{i}") == f"cse-in/app/cnt/i{i}", name
            r = await http.send("PUT", base + path, fr=aei, body={"m2m:cnt": {"lbl": [f"form:{i}"]}})
            assert (r.status, r.rsc) == (200, 2004), (name, r.body)
            assert r.body["m2m:cnt"]["lbl"] == [f"form:{i}"]
            r = await http.send("GET", f"{base}{path}/la", fr=aei)
            assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == name, (name, r.body)
            r = await http.send("DELETE", f"{base}{path}/i{i}", fr=aei)
            assert (r.status, r.rsc) == (200, 2002), (name, r.body)
        r = await http.send("GET", f"{base}/cse-in/app/cnt")
        assert r.body["m2m:cnt"]["cni"] == 0 and r.body["m2m:cnt"]["st"] == len(forms) * 2

        # Targets that are not this CSE, or not well formed.
        for path in ("/_/other.example/id-in/cse-in/app/cnt", "/~/id-other/cse-in", f"/~/id-other/{ri}"):
            r = await http.send("GET", base + path, fr=aei)
            assert_error(r, 4004, 404)
        for path in ("/cse-in/nothing", "/nothing", "/~/id-in/nothing", "/cse-in/app/cnt/la"):
            r = await http.send("GET", base + path, fr=aei)
            assert_error(r, 4004, 404)

        # DELETE through the absolute unstructured form.
        r = await http.send("DELETE", f"{base}/_/sp.example/id-in/{ri}", fr=aei)
        assert (r.status, r.rsc) == (200, 2002)
        assert_error(await http.send("GET", f"{base}/{ri}", fr=aei), 4004, 404)
    finally:
        await cse.stop()


async def test_originator_as_sp_relative_ae_id(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aei = await register(http, cse.url, "app")
    r = await http.send("GET", f"{cse.url}/cse-in/app", fr=f"/id-in/{aei}")
    assert r.rsc == 2000 and r.body["m2m:ae"]["aei"] == aei


# -- AE registration ---------------------------------------------------------------

async def test_ae_registration_variants(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url
    body = {"api": "Napp", "rr": False, "srv": ["3"]}
    r = await http.send("POST", f"{base}/cse-in", fr=None, ty=2, body={"m2m:ae": {"rn": "anon", **body}})
    assert r.rsc == 2001 and r.body["m2m:ae"]["aei"].startswith("C")
    r = await http.send("POST", f"{base}/cse-in", fr="S", ty=2, body={"m2m:ae": {"rn": "sapp", **body}})
    assert r.rsc == 2001 and r.body["m2m:ae"]["aei"].startswith("S")
    r = await http.send("POST", f"{base}/cse-in", fr="Cmine", ty=2, body={"m2m:ae": {"rn": "mine", **body}})
    assert r.rsc == 2001 and r.body["m2m:ae"]["aei"] == "Cmine" and r.body["m2m:ae"]["ri"] == "Cmine"
    # the same stem again
    r = await http.send("POST", f"{base}/cse-in", fr="Cmine", ty=2, body={"m2m:ae": {"rn": "mine2", **body}})
    assert_error(r, 4117, 403)
    # the same name again
    r = await http.send("POST", f"{base}/cse-in", fr="C", ty=2, body={"m2m:ae": {"rn": "mine", **body}})
    assert_error(r, 4105, 409)
    # an originator that is not an AE-ID
    r = await http.send("POST", f"{base}/cse-in", fr="xyz", ty=2, body={"m2m:ae": {"rn": "bad", **body}})
    assert_error(r, 4000, 400)
    # an App-ID that starts with neither R nor N
    r = await http.send("POST", f"{base}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": "bad", **body, "api": "Xapp"}})
    assert_error(r, 4000, 400)
    # an AE is only allowed under the CSEBase
    await create(http, f"{base}/cse-in/mine", "Cmine", 3, "m2m:cnt", {"rn": "c"})
    r = await http.send("POST", f"{base}/cse-in/mine", fr="C", ty=2, body={"m2m:ae": {"rn": "sub", **body}})
    assert_error(r, 4108, 403)
    r = await http.send("POST", f"{base}/cse-in/mine/c", fr="Cmine", ty=2,
                        body={"m2m:ae": {"rn": "sub", **body}})
    assert_error(r, 4108, 403)
    # a missing mandatory attribute
    r = await http.send("POST", f"{base}/cse-in", fr="C", ty=2, body={"m2m:ae": {"rn": "x", "api": "Nx", "rr": True}})
    assert_error(r, 4000, 400)
    assert "srv" in r.body["m2m:dbg"]
    # the AE may read the CSEBase, an unknown originator may not
    assert (await http.send("GET", f"{base}/cse-in", fr="Cmine")).rsc == 2000
    assert_error(await http.send("GET", f"{base}/cse-in", fr="Cunknown"), 4103, 403)


# -- rcn variants --------------------------------------------------------------------

async def test_result_content_variants(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url
    aei = await register(http, base, "app")
    url = f"{base}/cse-in/app"

    # CREATE: rcn 0, 1, 2, 3, 9; 4 is not valid for CREATE.
    r = await http.send("POST", f"{url}?rcn=0", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c0"}})
    assert (r.status, r.rsc, r.raw) == (201, 2001, b"")
    r = await http.send("POST", f"{url}?rcn=1", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c1"}})
    assert r.rsc == 2001 and r.body["m2m:cnt"]["rn"] == "c1" and r.body["m2m:cnt"]["cni"] == 0
    r = await http.send("POST", f"{url}?rcn=2", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c2"}})
    assert r.rsc == 2001 and r.body == {"m2m:uri": "cse-in/app/c2"}
    assert r.headers["Content-Location"] == "cse-in/app/c2"
    r = await http.send("POST", f"{url}?rcn=3", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c3", "mni": 3}})
    assert r.rsc == 2001
    rce = r.body["m2m:rce"]
    assert rce["uri"] == "cse-in/app/c3" and rce["m2m:cnt"]["mni"] == 3 and rce["m2m:cnt"]["rn"] == "c3"
    assert r.headers["Content-Location"] == "cse-in/app/c3"
    r = await http.send("POST", f"{url}?rcn=9", fr=aei, ty=3, body={"m2m:cnt": {"rn": "c9", "mni": 3}})
    assert r.rsc == 2001
    modified = r.body["m2m:cnt"]
    assert "ri" in modified and "ct" in modified and "mni" not in modified and "rn" not in modified
    for bad in (4, 5, 6, 7, 8):
        assert_error(await http.send("POST", f"{url}?rcn={bad}", fr=aei, ty=3,
                                     body={"m2m:cnt": {"rn": f"x{bad}"}}), 4000, 400)

    # three instances in c1, one nested container
    cins = [await create(http, f"{url}/c1", aei, 4, "m2m:cin", {"rn": f"i{i}", "con": f"v{i}"}) for i in range(3)]
    await create(http, f"{url}/c1", aei, 3, "m2m:cnt", {"rn": "sub"})

    # RETRIEVE: rcn 1, 4, 5, 6, 8 (+ drt 2); 0, 2, 3, 7, 9 are not valid.
    r = await http.send("GET", f"{url}/c1?rcn=1", fr=aei)
    assert r.rsc == 2000 and "m2m:cin" not in r.body["m2m:cnt"] and "ch" not in r.body["m2m:cnt"]
    r = await http.send("GET", f"{url}/c1?rcn=4", fr=aei)
    assert r.rsc == 2000
    c1 = r.body["m2m:cnt"]
    assert c1["rn"] == "c1" and c1["cni"] == 3
    assert [c["rn"] for c in c1["m2m:cin"]] == ["i0", "i1", "i2"]
    assert c1["m2m:cin"] == cins
    assert [c["rn"] for c in c1["m2m:cnt"]] == ["sub"]
    r = await http.send("GET", f"{url}/c1?rcn=5", fr=aei)
    assert r.rsc == 2000
    assert r.body["m2m:cnt"]["rn"] == "c1"
    assert r.body["m2m:cnt"]["ch"] == [
        *({"nm": f"i{i}", "typ": 4, "val": f"cse-in/app/c1/i{i}"} for i in range(3)),
        {"nm": "sub", "typ": 3, "val": "cse-in/app/c1/sub"}]
    r = await http.send("GET", f"{url}/c1?rcn=6", fr=aei)
    assert r.rsc == 2000
    assert r.body["m2m:rrl"]["rrf"][:3] == [{"nm": f"i{i}", "typ": 4, "val": f"cse-in/app/c1/i{i}"} for i in range(3)]
    r = await http.send("GET", f"{url}/c1?rcn=6&drt=2", fr=aei)
    assert [x["val"] for x in r.body["m2m:rrl"]["rrf"][:3]] == [c["ri"] for c in cins]
    r = await http.send("GET", f"{url}/c1?rcn=8", fr=aei)
    assert r.rsc == 2000
    only_children = r.body["m2m:cnt"]
    assert set(only_children) == {"m2m:cin", "m2m:cnt"}
    assert only_children["m2m:cin"] == cins
    r = await http.send("GET", f"{url}/c1?rcn=4&ty=4&lim=2", fr=aei)
    assert r.rsc == 2000 and [c["rn"] for c in r.body["m2m:cnt"]["m2m:cin"]] == ["i0", "i1"]
    assert "m2m:cnt" not in r.body["m2m:cnt"]
    for bad in (0, 2, 3, 7, 9):
        assert_error(await http.send("GET", f"{url}/c1?rcn={bad}", fr=aei), 4000, 400)

    # UPDATE: rcn 0, 1, 9.
    r = await http.send("PUT", f"{url}/c1?rcn=0", fr=aei, body={"m2m:cnt": {"lbl": ["a"]}})
    assert (r.status, r.rsc, r.raw) == (200, 2004, b"")
    r = await http.send("PUT", f"{url}/c1?rcn=9", fr=aei, body={"m2m:cnt": {"lbl": ["b"]}})
    assert r.rsc == 2004 and "lbl" not in (r.body or {}).get("m2m:cnt", {})
    assert_error(await http.send("PUT", f"{url}/c1?rcn=2", fr=aei, body={"m2m:cnt": {"lbl": ["c"]}}), 4000, 400)

    # DELETE: rcn 1 returns what was deleted; rcn 0 (default) nothing.
    r = await http.send("DELETE", f"{url}/c1/i0?rcn=1", fr=aei)
    assert r.rsc == 2002 and r.body == {"m2m:cin": cins[0]}
    r = await http.send("DELETE", f"{url}/c1/i1", fr=aei)
    assert (r.rsc, r.raw) == (2002, b"")
    assert_error(await http.send("DELETE", f"{url}/c1/i2?rcn=2", fr=aei), 4000, 400)
    r = await http.send("GET", f"{url}/c1", fr=aei)
    assert r.body["m2m:cnt"]["cni"] == 1 and r.body["m2m:cnt"]["cbs"] == 2


# -- la / ol, and operations that are not allowed -------------------------------------

async def test_latest_oldest_and_not_allowed_operations(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url
    aei = await register(http, base, "app")
    url = f"{base}/cse-in/app/data"
    await create(http, f"{base}/cse-in/app", aei, 3, "m2m:cnt", {"rn": "data", "mni": 3})
    assert_error(await http.send("GET", f"{url}/la", fr=aei), 4004, 404)
    assert_error(await http.send("GET", f"{url}/ol", fr=aei), 4004, 404)
    for i in range(5):
        await create(http, url, aei, 4, "m2m:cin", {"rn": f"i{i}", "con": "x" * (i + 1)})
    r = await http.send("GET", url, fr=aei)
    assert (r.body["m2m:cnt"]["cni"], r.body["m2m:cnt"]["cbs"]) == (3, 3 + 4 + 5)  # i0, i1 evicted
    assert_error(await http.send("GET", f"{url}/i0", fr=aei), 4004, 404)
    assert (await http.send("GET", f"{url}/la", fr=aei)).body["m2m:cin"]["rn"] == "i4"
    assert (await http.send("GET", f"{url}/ol", fr=aei)).body["m2m:cin"]["rn"] == "i2"
    # DELETE la / ol removes the newest / oldest instance
    assert (await http.send("DELETE", f"{url}/la", fr=aei)).rsc == 2002
    assert (await http.send("DELETE", f"{url}/ol", fr=aei)).rsc == 2002
    r = await http.send("GET", f"{url}?rcn=4", fr=aei)
    assert [c["rn"] for c in r.body["m2m:cnt"]["m2m:cin"]] == ["i3"]
    assert r.body["m2m:cnt"]["cni"] == 1 and r.body["m2m:cnt"]["cbs"] == 4

    assert_error(await http.send("POST", f"{url}/la", fr=aei, ty=4, body={"m2m:cin": {"con": "x"}}), 4005, 405)
    assert_error(await http.send("PUT", f"{url}/la", fr=aei, body={"m2m:cin": {"con": "y"}}), 4005, 405)
    assert_error(await http.send("PUT", f"{url}/i3", fr=aei, body={"m2m:cin": {"con": "y"}}), 4005, 405)
    assert_error(await http.send("PUT", f"{base}/cse-in", body={"m2m:cb": {"lbl": ["x"]}}), 4005, 405)
    assert_error(await http.send("DELETE", f"{base}/cse-in"), 4005, 405)
    assert_error(await http.send("DELETE", f"{base}/~/id-in/id-in"), 4005, 405)
    # a contentInstance larger than mbs
    await create(http, f"{base}/cse-in/app", aei, 3, "m2m:cnt", {"rn": "small", "mbs": 4})
    assert_error(await http.send("POST", f"{base}/cse-in/app/small", fr=aei, ty=4,
                                 body={"m2m:cin": {"con": "12345"}}), 5207, 406)
    # a contentInstance only under a container
    assert_error(await http.send("POST", f"{base}/cse-in/app", fr=aei, ty=4,
                                 body={"m2m:cin": {"con": "x"}}), 4108, 403)
    # a name used twice among siblings
    assert_error(await http.send("POST", f"{base}/cse-in/app", fr=aei, ty=3,
                                 body={"m2m:cnt": {"rn": "data"}}), 4105, 409)
    # a NOTIFY to a resource that takes none
    r = await http.send("POST", url, fr=aei, body={"m2m:sgn": {"vrq": True}})
    assert 4000 <= r.rsc < 5000 and "m2m:dbg" in r.body


# -- discovery ------------------------------------------------------------------------

async def test_operation_execution_time_holds_the_operation(cse_process: Any, http: Http) -> None:
    """X-M2M-OET (TS-0001 8.1.2): the CREATE runs when the OET comes, not on
    arrival; the CSE's own ct values show it."""
    cse = await cse_process()
    aei = await register(http, cse.url, "timer")
    before = await create(http, f"{cse.url}/cse-in/timer", aei, 3, "m2m:cnt", {"rn": "now"})
    r = await http.send("POST", f"{cse.url}/cse-in/timer", fr=aei, ty=3, body={"m2m:cnt": {"rn": "later"}},
                        headers={"X-M2M-OET": "1200"})
    assert (r.status, r.rsc) == (201, 2001), r.body
    held = parse_ts(r.body["m2m:cnt"]["ct"]) - parse_ts(before["ct"])
    assert 1.2 <= held < 10, held


async def test_discovery_filters(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url
    aei = await register(http, base, "app")
    other = await register(http, base, "other")
    app = f"{base}/cse-in/app"
    a = await create(http, app, aei, 3, "m2m:cnt", {"rn": "a", "lbl": ["room:kitchen", "x"]})
    b = await create(http, app, aei, 3, "m2m:cnt", {"rn": "b", "lbl": ["room:hall"]})
    a1 = await create(http, f"{app}/a", aei, 3, "m2m:cnt", {"rn": "a1", "lbl": ["room:kitchen"]})
    for i, con in enumerate(["1", "123", "12345"]):
        await create(http, f"{app}/a", aei, 4, "m2m:cin", {"rn": f"i{i}", "con": con, "cnf": "text/plain:0"})

    async def uril(query: str, fr: str = aei, target: str = app) -> list[str]:
        r = await http.send("GET", f"{target}?{query}", fr=fr)
        assert (r.status, r.rsc) == (200, 2000), (query, r.body)
        return list(r.body["m2m:uril"])

    assert await uril("fu=1&ty=3") == ["cse-in/app/a", "cse-in/app/a/a1", "cse-in/app/b"]
    assert await uril("fu=1&ty=3&lvl=1") == ["cse-in/app/a", "cse-in/app/b"]
    assert await uril("fu=1&lbl=room:kitchen") == ["cse-in/app/a", "cse-in/app/a/a1"]
    assert await uril("fu=1&lbl=room:kitchen+room:hall") == ["cse-in/app/a", "cse-in/app/a/a1", "cse-in/app/b"]
    assert await uril("fu=1&lbl=room:kitchen&lbl=room:hall") == ["cse-in/app/a", "cse-in/app/a/a1", "cse-in/app/b"]
    assert await uril("fu=1&lbl=x&ty=3") == ["cse-in/app/a"]
    assert await uril("fu=1&lbl=nothing") == []
    assert await uril("fu=1&ty=3&lim=2") == ["cse-in/app/a", "cse-in/app/a/a1"]
    assert await uril("fu=1&ty=3&lim=0") == []
    assert await uril("fu=1&ty=4") == ["cse-in/app/a/i0", "cse-in/app/a/i1", "cse-in/app/a/i2"]
    assert await uril("fu=1&ty=3+4&lvl=1") == ["cse-in/app/a", "cse-in/app/b"]
    assert await uril("fu=1&ty=4&sza=3") == ["cse-in/app/a/i1", "cse-in/app/a/i2"]
    assert await uril("fu=1&ty=4&szb=3") == ["cse-in/app/a/i0"]
    assert await uril("fu=1&cty=text/plain") == ["cse-in/app/a/i0", "cse-in/app/a/i1", "cse-in/app/a/i2"]
    assert await uril("fu=1&ty=3&cra=20000101T000000") == ["cse-in/app/a", "cse-in/app/a/a1", "cse-in/app/b"]
    assert await uril("fu=1&ty=3&cra=29991231T000000") == []
    assert await uril("fu=1&ty=3&crb=29991231T000000&lbl=room:hall") == ["cse-in/app/b"]
    assert await uril("fu=1&fo=2&lbl=room:hall&rn=a1") == ["cse-in/app/a/a1", "cse-in/app/b"]
    ids = await uril("fu=1&ty=3&drt=2")
    assert [same_ri(v, ri) for v, ri in zip(ids, [a["ri"], a1["ri"], b["ri"]], strict=True)] == [True] * 3
    assert await uril("fu=1&ty=3", target=f"{base}/cse-in/app/a") == ["cse-in/app/a/a1"]
    assert await uril("fu=1&ty=3", target=f"{base}/~/id-in/{a['ri']}") == ["cse-in/app/a/a1"]
    r = await http.send("GET", f"{app}?fu=1&ty=3&rcn=6", fr=aei)
    assert r.rsc == 2000
    assert [x["nm"] for x in r.body["m2m:rrl"]["rrf"]] == ["a", "a1", "b"]
    assert all(x["typ"] == 3 for x in r.body["m2m:rrl"]["rrf"])

    # another AE sees nothing of app's resources (default policy), the admin sees all
    assert await uril("fu=1&ty=3", fr=other) == []
    assert await uril("fu=1&ty=3", fr=ADMIN) == ["cse-in/app/a", "cse-in/app/a/a1", "cse-in/app/b"]
    # registered originators may discover AEs on the CSEBase
    aes = await uril("fu=1&ty=2", fr=other, target=f"{base}/cse-in")
    assert set(aes) == {"cse-in/app", "cse-in/other"}

    # bad filter criteria
    for query in ("fu=1&ty=abc", "fu=1&lim=-1", "fu=1&crb=yesterday", "fu=1&rcn=1", "fu=3x",
                  "fu=1&nosuchattribute=1", "fu=1&ct=20250101T000000"):
        r = await http.send("GET", f"{app}?{query}", fr=aei)
        assert_error(r, 4000, 400)
    assert_error(await http.send("GET", f"{base}/cse-in/nothing?fu=1&ty=3", fr=aei), 4004, 404)
    # no filter criteria on CREATE
    r = await http.send("POST", f"{app}?fu=1&ty=3", fr=aei, ty=3, body={"m2m:cnt": {"rn": "z"}})
    assert_error(r, 4000, 400)


# -- access control -------------------------------------------------------------------

async def test_access_control_policies_and_admin(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    base = cse.url
    owner = await register(http, base, "owner")
    guest = await register(http, base, "guest")
    url = f"{base}/cse-in/owner/data"
    await create(http, f"{base}/cse-in/owner", owner, 3, "m2m:cnt", {"rn": "data"})
    await create(http, url, owner, 4, "m2m:cin", {"rn": "first", "con": "x"})

    # Default policy: only the owner (and the admin) may do anything.
    assert_error(await http.send("GET", url, fr=guest), 4103, 403)
    assert_error(await http.send("GET", f"{url}/la", fr=guest), 4103, 403)
    assert_error(await http.send("POST", url, fr=guest, ty=4, body={"m2m:cin": {"con": "g"}}), 4103, 403)
    assert_error(await http.send("PUT", url, fr=guest, body={"m2m:cnt": {"lbl": ["g"]}}), 4103, 403)
    assert_error(await http.send("DELETE", url, fr=guest), 4103, 403)
    assert_error(await http.send("GET", f"{base}/cse-in/owner", fr=guest), 4103, 403)
    assert_error(await http.send("GET", url, fr="Cstranger"), 4103, 403)
    assert_error(await http.send("GET", url, fr=None), 4000, 400)
    assert (await http.send("GET", url, fr=ADMIN)).rsc == 2000
    assert (await http.send("GET", url, fr="/id-in")).rsc == 2000  # the CSE itself

    # An ACP: guest may RETRIEVE only; owner everything; only owner may change the ACP.
    acp = await create(http, f"{base}/cse-in/owner", owner, 1, "m2m:acp", {
        "rn": "acp1",
        "pv": {"acr": [{"acor": [owner], "acop": 63}, {"acor": [guest], "acop": 2}]},
        "pvs": {"acr": [{"acor": [owner], "acop": 63}]}})
    r = await http.send("PUT", url, fr=owner, body={"m2m:cnt": {"acpi": [acp["ri"]]}})
    assert r.rsc == 2004 and r.body["m2m:cnt"]["acpi"] == [acp["ri"]]
    r = await http.send("GET", url, fr=guest)
    assert r.rsc == 2000 and r.body["m2m:cnt"]["rn"] == "data"
    assert (await http.send("GET", f"{url}/la", fr=guest)).body["m2m:cin"]["rn"] == "first"
    assert_error(await http.send("POST", url, fr=guest, ty=4, body={"m2m:cin": {"con": "g"}}), 4103, 403)
    assert_error(await http.send("PUT", url, fr=guest, body={"m2m:cnt": {"lbl": ["g"]}}), 4103, 403)
    assert_error(await http.send("DELETE", f"{url}/first", fr=guest), 4103, 403)
    assert_error(await http.send("DELETE", url, fr=guest), 4103, 403)
    assert_error(await http.send("GET", url, fr="Cstranger"), 4103, 403)
    assert_error(await http.send("PUT", f"{base}/cse-in/owner/acp1", fr=guest,
                                 body={"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 63}]}}}), 4103, 403)
    assert_error(await http.send("GET", f"{base}/cse-in/owner/acp1", fr=guest), 4103, 403)
    assert (await http.send("GET", f"{base}/cse-in/owner/acp1", fr=owner)).rsc == 2000

    # The owner widens the grant: guest may now CREATE too (acop 1 + 2).
    r = await http.send("PUT", f"{base}/cse-in/owner/acp1", fr=owner, body={"m2m:acp": {"pv": {"acr": [
        {"acor": [owner], "acop": 63}, {"acor": [guest], "acop": 3}]}}})
    assert r.rsc == 2004
    r = await http.send("POST", url, fr=guest, ty=4, body={"m2m:cin": {"rn": "byguest", "con": "g"}})
    assert r.rsc == 2001
    assert_error(await http.send("DELETE", f"{url}/byguest", fr=guest), 4103, 403)

    # "all" and wildcards: every originator the CSE knows (an unregistered one is refused first)
    r = await http.send("PUT", f"{base}/cse-in/owner/acp1", fr=owner, body={"m2m:acp": {"pv": {"acr": [
        {"acor": [owner], "acop": 63}, {"acor": ["all"], "acop": 2}, {"acor": ["Cstr*"], "acop": 8}]}}})
    assert r.rsc == 2004
    assert_error(await http.send("GET", url, fr="Canybody"), 4103, 403)
    await register(http, base, "anybody", fr="Canybody")
    await register(http, base, "stranger", fr="Cstranger")
    assert (await http.send("GET", url, fr="Canybody")).rsc == 2000
    assert_error(await http.send("DELETE", f"{url}/byguest", fr="Canybody"), 4103, 403)
    assert (await http.send("DELETE", f"{url}/byguest", fr="Cstranger")).rsc == 2002

    # The admin bypasses every check, including on someone else's ACP and AE.
    r = await http.send("PUT", f"{base}/cse-in/owner/acp1", fr=ADMIN, body={"m2m:acp": {"pv": {"acr": []}}})
    assert r.rsc == 2004
    assert_error(await http.send("GET", url, fr=guest), 4103, 403)
    assert_error(await http.send("GET", url, fr=owner), 4103, 403)  # acpi set: the ACP decides alone
    assert (await http.send("GET", url, fr=ADMIN)).rsc == 2000
    r = await http.send("DELETE", f"{base}/cse-in/owner?rcn=1", fr=ADMIN)
    assert r.rsc == 2002 and r.body["m2m:ae"]["aei"] == owner
    assert_error(await http.send("GET", url, fr=ADMIN), 4004, 404)

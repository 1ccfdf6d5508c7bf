"""Access control and originators against real CSE processes, authentication off
(docs/security.md "Access control", "Originators and remote CSEs").

Why: each attack here was reproduced over HTTP on loopback --

* an AE with UPDATE in an ACP's ``pv`` rewrote ``acpi`` along with a label,
  pointed it at its own ACP, or removed it (``acpi: null``);
* ``/id-zz/Cfoo``, of a CSE nobody registered, discovered an AE on a fresh CSE;
* an AE-ID nobody registered was forwarded to the peer in CSE1's name;
* an AE an ACP let UPDATE CSE2's ``<remoteCSE>`` at CSE1 moved its ``poa``
  (forwarding hijacked) or deleted it; a fake remoteCSE claimed a registered
  CSE as its descendant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import create, dbg, register_ae, start_pair


async def test_acpi_is_changed_alone_and_only_by_pvs(cse_process: Callable[..., Any], http: Http) -> None:
    cse = await cse_process(cse_id="/id-cse1", name="cse1")
    base = f"{cse.url}/cse1"
    owner = await register_ae(http, cse, "cse1", "owner")
    writer = await register_ae(http, cse, "cse1", "writer")
    guard = await create(http, f"{base}/owner", owner, 1, "m2m:acp", {
        "rn": "guard", "pv": {"acr": [{"acor": [owner, writer], "acop": 63}]},
        "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}})
    mine = await create(http, f"{base}/owner", owner, 1, "m2m:acp", {
        "rn": "mine", "pv": {"acr": [{"acor": [writer], "acop": 63}]},
        "pvs": {"acr": [{"acor": [writer], "acop": 63}]}})
    await create(http, f"{base}/owner", owner, 3, "m2m:cnt", {"rn": "data", "acpi": [guard["ri"]]})
    data = f"{base}/owner/data"

    r = await http.send("PUT", data, fr=writer, body={"m2m:cnt": {"lbl": ["a"], "acpi": [mine["ri"]]}})
    assert r.rsc == 4000 and "acpi must be the only attribute" in dbg(r), r.body
    r = await http.send("PUT", data, fr=writer, body={"m2m:cnt": {"acpi": [mine["ri"]]}})
    assert r.rsc == 4103 and "selfPrivileges (pvs)" in dbg(r), r.body
    r = await http.send("PUT", data, fr=owner, body={"m2m:cnt": {"acpi": None}})
    assert r.rsc == 4103, r.body
    r = await http.send("GET", data, fr=ADMIN)
    assert r.body["m2m:cnt"]["acpi"] == [guard["ri"]], r.body
    # the holder of the pvs may, alone
    r = await http.send("PUT", data, fr=ADMIN, body={"m2m:cnt": {"acpi": [guard["ri"], mine["ri"]]}})
    assert r.rsc == 2004, r.body


async def test_an_unregistered_cse_s_originator_is_refused(cse_process: Callable[..., Any], http: Http) -> None:
    cse = await cse_process(cse_id="/id-cse1", name="cse1")
    await register_ae(http, cse, "cse1", "target", scp=["smg"])
    r = await http.send("GET", f"{cse.url}/cse1?fu=1&ty=2", fr="/id-zz/Cfoo")
    assert r.rsc == 4103 and "CSE /id-zz is not registered here" in dbg(r), r.body
    r = await http.send("GET", f"{cse.url}/cse1", fr="/id-zz")
    assert r.rsc == 4103, r.body
    r = await http.send("GET", f"{cse.url}/cse1", fr="/id-zz//x")
    assert r.rsc == 4000 and "is not a valid ID" in dbg(r), r.body


async def test_unregistered_originators_are_not_forwarded(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    for fr in ("Cnobody", "/id-zz/Cx"):
        r = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=fr)
        assert r.rsc == 4103, (fr, r.body)
        assert f"originator '{fr}'" in dbg(r) and "/id-cse1/" not in dbg(r), dbg(r)  # CSE1's answer, not CSE2's
    # a registered AE of CSE1 is forwarded, and CSE2 knows CSE1's originators
    aei = await register_ae(http, cse1, "cse1", "ae1")
    r = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=aei)
    assert r.rsc == 2000 and r.body["m2m:cb"]["csi"] == "/id-cse2", r.body
    # straight to CSE2: originators of CSE1 (its registrar) are known, others are not
    assert (await http.send("GET", f"{cse2.url}/cse2", fr=f"/id-cse1/{aei}")).rsc == 2000
    assert (await http.send("GET", f"{cse2.url}/cse2", fr="Cnobody")).rsc == 4103


async def test_remote_cse_is_changed_by_its_cse_only(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    evil = await register_ae(http, cse1, "cse1", "evil")
    acp = await create(http, f"{cse1.url}/cse1", ADMIN, 1, "m2m:acp", {
        "rn": "open", "pv": {"acr": [{"acor": ["all"], "acop": 63}]}, "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}})
    r = await http.send("PUT", f"{cse1.url}/cse1/id-cse2", fr=ADMIN, body={"m2m:csr": {"acpi": [acp["ri"]]}})
    assert r.rsc == 2004, r.body
    r = await http.send("PUT", f"{cse1.url}/cse1/id-cse2", fr=evil,
                        body={"m2m:csr": {"poa": ["http://127.0.0.1:9"]}})
    assert r.rsc == 4103 and "only that CSE" in dbg(r), r.body
    r = await http.send("DELETE", f"{cse1.url}/cse1/id-cse2", fr=evil)
    assert r.rsc == 4103, r.body
    r = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN)
    assert r.rsc == 2000 and r.body["m2m:cb"]["csi"] == "/id-cse2", r.body  # forwarding still goes to CSE2

    # a fake CSE cannot claim routes that exist: a registered CSE, this CSE, the registrar
    def fake(dcse: list[str]) -> dict[str, Any]:
        return {"m2m:csr": {"cb": "/id-evil/cb", "rr": True, "poa": ["http://127.0.0.1:9"], "dcse": dcse}}
    r = await http.send("POST", f"{cse1.url}/cse1", fr="/id-evil", ty=16, body=fake(["/id-cse2"]))
    assert r.rsc == 4103 and "registered here itself" in dbg(r), r.body
    r = await http.send("POST", f"{cse2.url}/cse2", fr="/id-evil", ty=16, body=fake(["/id-cse1"]))
    assert r.rsc == 4103, r.body
    r = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)
    assert r.rsc == 2000 and r.body["m2m:cb"]["csi"] == "/id-cse1", r.body

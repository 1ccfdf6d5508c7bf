"""Three real CSEs: two MNs under one IN (samples/chain), and a deep tree CSE1 <- CSE2 <- CSE3.

Why: two MN-CSEs that both register with an IN-CSE do not know each other;
a request from one for the other must go up to the IN, which knows both,
and down again -- with the originator made SP-relative once, at the first
CSE, and the answer (and request ID) coming back the same way. A
notification from CSE2 to an AE of CSE1 takes the same path.

In a deep tree the IN-CSE only knows its child: a request for a CSE
registered below that child reaches it only because the child announces it
as a descendant (``dcse``, TS-0001 9.6.4) on its remoteCSE at the IN, and
withdraws it when it goes (TS-0004 7.3.2.6: routing follows ``dcse``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import (
    REG_TIMEOUT,
    create,
    dbg,
    grant,
    register_ae,
    registrar_toml,
    until,
    wait_csr,
    wait_registered,
)
from tests.notify_receiver import Receiver


async def test_chain_through_the_in_cse(cse_process: Callable[..., Any], http: Http, receiver: Receiver) -> None:
    in_cse = await cse_process(cse_id="/id-in", name="cse-in", subdir="in")
    cse1, cse2 = await asyncio.gather(
        cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1",
                    extra=registrar_toml("/id-in", "cse-in", in_cse.url)),
        cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                    extra=registrar_toml("/id-in", "cse-in", in_cse.url)))
    await wait_registered(http, cse1, "/id-in", "cse-in")
    await wait_registered(http, cse2, "/id-in", "cse-in")
    await wait_csr(http, in_cse, "cse-in/id-cse1")
    await wait_csr(http, in_cse, "cse-in/id-cse2")
    # the ends know only the IN
    for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
        r = await http.send("GET", f"{cse.url}/{cb}?fu=1&ty=16", fr=ADMIN)
        assert r.body["m2m:uril"] == [f"{cb}/id-in"], r.body

    # CSE1 -> IN -> CSE2
    there = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2", fr=ADMIN, rqi="chain-1")
    assert there.rsc == 2000, there.body
    assert there.body["m2m:cb"]["csi"] == "/id-cse2"
    assert there.headers.get("X-M2M-RI") == "chain-1"
    # and back: CSE2 -> IN -> CSE1
    back = await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN, rqi="chain-2")
    assert back.rsc == 2000, back.body
    assert back.body["m2m:cb"]["csi"] == "/id-cse1"
    assert back.headers.get("X-M2M-RI") == "chain-2"

    # an AE of CSE1 works on a container of an AE of CSE2; it arrives as /id-cse1/<aei>
    aei2 = await register_ae(http, cse2, "cse2", "ae2", scp=["smg"])
    await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": "data"})
    aei1 = await register_ae(http, cse1, "cse1", "ae1", poa=[receiver.url])
    far = f"{cse1.url}/~/id-cse2/cse2/ae2/data"
    denied = await http.send("GET", far, fr=aei1)
    assert denied.rsc == 4103 and f"/id-cse1/{aei1}" in dbg(denied), denied.body
    await grant(http, cse2, "cse2/ae2/data", aei2, [f"/id-cse1/{aei1}"])
    made = await http.send("POST", far, fr=aei1, ty=4, body={"m2m:cin": {"con": "via the IN"}})
    assert made.rsc == 2001, made.body
    latest = await http.send("GET", f"{far}/la", fr=aei1)
    assert latest.rsc == 2000 and latest.body["m2m:cin"]["con"] == "via the IN"

    found = await http.send("GET", f"{cse1.url}/~/id-cse2/cse2?fu=1&ty=2&scp=smg", fr=aei1)
    # SP-relative: a CSE-relative ID of CSE2 is useless at CSE1 (TS-0004 7.3.2.8)
    assert found.rsc == 2000 and found.body["m2m:uril"] == ["/id-cse2/cse2/ae2"], found.body

    # a notification from CSE2 to the AE of CSE1 goes CSE2 -> IN -> CSE1 -> AE
    sub = await http.send("POST", far, fr=aei1, ty=23, body={"m2m:sub": {
        "rn": "s", "nu": [f"/id-cse1/{aei1}"], "enc": {"net": [3]}}})
    assert sub.rsc == 2001, sub.body
    await create(http, f"{cse2.url}/cse2/ae2/data", aei2, 4, "m2m:cin", {"con": "ping"})
    n = await receiver.next_notification(5)
    assert n.sgn["nev"]["rep"]["m2m:cin"]["con"] == "ping"
    assert n.sgn["sur"] == f"/id-cse2/{sub.body['m2m:sub']['ri']}"

    # an unknown CSE-ID ends at the IN with 4004
    lost = await http.send("GET", f"{cse1.url}/~/id-nowhere/x", fr=aei1)
    assert lost.rsc == 4004, lost.body


async def test_deep_tree_routes_down_through_dcse(cse_process: Callable[..., Any], http: Http) -> None:
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1")
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=registrar_toml("/id-cse1", "cse1", cse1.url))
    await wait_registered(http, cse2, "/id-cse1", "cse1")
    cse3 = await cse_process(cse_id="/id-cse3", name="cse3", subdir="cse3",
                             extra=registrar_toml("/id-cse2", "cse2", cse2.url, deregister_on_shutdown=True))
    await wait_registered(http, cse3, "/id-cse2", "cse2")

    # CSE2 announces CSE3 to CSE1 ...
    async def announced() -> bool:
        r = await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)
        return r.rsc == 2000 and r.body["m2m:csr"].get("dcse") == ["/id-cse3"]
    assert await until(announced, "dcse /id-cse3 on CSE2's remoteCSE at CSE1", REG_TIMEOUT)
    # ... so the IN-CSE reaches CSE3 through CSE2, and CSE3 reaches the IN-CSE
    down = await http.send("GET", f"{cse1.url}/~/id-cse3/cse3", fr=ADMIN, rqi="deep-1")
    assert down.rsc == 2000, down.body
    assert down.body["m2m:cb"]["csi"] == "/id-cse3" and down.headers.get("X-M2M-RI") == "deep-1"
    up = await http.send("GET", f"{cse3.url}/~/id-cse1/cse1", fr=ADMIN)
    assert up.rsc == 2000 and up.body["m2m:cb"]["csi"] == "/id-cse1", up.body

    # an AE of CSE3 is a known originator at CSE1 (through CSE2's dcse) and works there
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    await create(http, f"{cse1.url}/cse1/ae1", aei1, 3, "m2m:cnt", {"rn": "data"})
    aei3 = await register_ae(http, cse3, "cse3", "ae3")
    await grant(http, cse1, "cse1/ae1/data", aei1, [f"/id-cse3/{aei3}"])
    made = await http.send("POST", f"{cse3.url}/~/id-cse1/cse1/ae1/data", fr=aei3, ty=4,
                           body={"m2m:cin": {"con": "from below"}})
    assert made.rsc == 2001, made.body
    # and an AE of CSE1 reaches a resource of CSE3
    await create(http, f"{cse3.url}/cse3/ae3", aei3, 3, "m2m:cnt", {"rn": "low"})
    await grant(http, cse3, "cse3/ae3/low", aei3, [f"/id-cse1/{aei1}"])
    far = await http.send("GET", f"{cse1.url}/~/id-cse3/cse3/ae3/low", fr=aei1)
    assert far.rsc == 2000 and far.body["m2m:cnt"]["rn"] == "low", far.body

    # CSE3 leaves: CSE2 withdraws it, and CSE1 has no route to it any more
    assert await cse3.stop() == 0

    async def withdrawn() -> bool:
        r = await http.send("GET", f"{cse1.url}/cse1/id-cse2", fr=ADMIN)
        return r.rsc == 2000 and not r.body["m2m:csr"].get("dcse")
    assert await until(withdrawn, "dcse emptied on CSE2's remoteCSE at CSE1", REG_TIMEOUT)
    gone = await http.send("GET", f"{cse1.url}/~/id-cse3/cse3", fr=ADMIN)
    assert gone.rsc == 4004, gone.body

"""A group with members on two real CSEs, its fanOutPoint over HTTP (docs/onem2m.md "group";
TS-0001 9.6.13, 9.6.14).

Why: a group's members may live on other CSEs. Its hosting CSE validates a
remote member with a RETRIEVE through normal forwarding (as the group's
originator), and a fan-out reaches it the same way, as the original
originator, so the member's CSE applies its ACP. When that CSE is down,
the aggregated answer says so for that member (5103) while the local
members still succeed, and a group created meanwhile keeps the member
unvalidated (``mtv`` false) instead of failing.

CSE1 = ``/id-cse1`` (``cse1``) is the registrar; CSE2 = ``/id-cse2`` (``cse2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import Http
from tests.e2e.test_intercse_helpers import create, dbg, grant, register_ae, start_pair


def rscs(reply: Any) -> list[int]:
    assert reply.rsc == 2000, reply.body
    return [int(x["rsc"]) for x in reply.body["m2m:agr"]["m2m:rsp"]]


async def test_group_across_the_pair_and_a_stopped_member_cse(cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    aei1 = await register_ae(http, cse1, "cse1", "ae1")
    for rn in ("d0", "d1"):
        await create(http, f"{cse1.url}/cse1/ae1", aei1, 3, "m2m:cnt", {"rn": rn})
    aei2 = await register_ae(http, cse2, "cse2", "ae2")
    for rn in ("r0", "r1"):
        await create(http, f"{cse2.url}/cse2/ae2", aei2, 3, "m2m:cnt", {"rn": rn})
    remote, remote1 = "/id-cse2/cse2/ae2/r0", "/id-cse2/cse2/ae2/r1"
    members = ["cse1/ae1/d0", remote, "cse1/ae1/d1", remote1]

    # the remote member is validated by a forwarded RETRIEVE as ae1: refused (4103) -> unvalidated
    g0 = await create(http, f"{cse1.url}/cse1/ae1", aei1, 9, "m2m:grp", {"rn": "g0", "mt": 3, "mid": members})
    assert g0["mtv"] is False and g0["cnm"] == 4, g0
    acp = await grant(http, cse2, "cse2/ae2/r0", aei2, [f"/id-cse1/{aei1}"])
    r = await http.send("PUT", f"{cse2.url}/cse2/ae2/r1", fr=aei2, body={"m2m:cnt": {"acpi": [acp]}})
    assert r.rsc == 2004, r.body
    grp = await create(http, f"{cse1.url}/cse1/ae1", aei1, 9, "m2m:grp", {"rn": "g", "mt": 3, "mid": members})
    assert grp["mtv"] is True and grp["mid"] == members, grp
    gone = await http.send("POST", f"{cse1.url}/cse1/ae1", fr=aei1, ty=9, body={"m2m:grp": {
        "rn": "gx", "mt": 3, "mid": ["cse1/ae1/d0", "/id-cse2/cse2/ae2/nothing"]}})
    assert gone.rsc == 4004 and "nothing" in dbg(gone), gone.body

    fopt = f"{cse1.url}/cse1/ae1/g/fopt"
    made = await http.send("POST", fopt, fr=aei1, ty=4, rqi="fan-1", body={"m2m:cin": {"con": "on"}})
    # two members on CSE2 at once: each member request has its own request ID (no false loop)
    assert rscs(made) == [2001, 2001, 2001, 2001], made.body
    assert made.headers.get("X-M2M-RI") == "fan-1"
    rsp = made.body["m2m:agr"]["m2m:rsp"]
    assert [(x["to"], x["fr"]) for x in rsp] == [
        ("cse1/ae1/d0", "/id-cse1"), (remote, "/id-cse2"), ("cse1/ae1/d1", "/id-cse1"), (remote1, "/id-cse2")]
    assert len({x["rqi"] for x in rsp}) == 4 and all(x["rqi"].startswith("fan-1") for x in rsp)
    for rn in ("r0", "r1"):
        at2 = await http.send("GET", f"{cse2.url}/cse2/ae2/{rn}/la", fr=aei2)
        assert at2.rsc == 2000 and at2.body["m2m:cin"]["con"] == "on", at2.body
    # as another originator the remote member's ACP refuses it
    aei3 = await register_ae(http, cse1, "cse1", "ae3")
    assert (await http.send("GET", fopt, fr=aei3)).rsc == 4103  # the group's own acpi first

    assert await cse2.stop() == 0
    got = await http.send("GET", f"{fopt}/la", fr=aei1)
    codes = rscs(got)
    assert codes == [2000, 5103, 2000, 5103], got.body
    assert all(x["pc"]["m2m:cin"]["con"] == "on" for i, x in enumerate(got.body["m2m:agr"]["m2m:rsp"]) if i in (0, 2))
    late = await create(http, f"{cse1.url}/cse1/ae1", aei1, 9, "m2m:grp", {"rn": "g2", "mt": 3, "mid": members})
    assert late["mtv"] is False and late["mid"] == members, late

"""Durability over HTTP: what a CSE acknowledged survives SIGTERM and SIGKILL.

Why: docs/configuration.md "Starting a CSE" promises a clean stop on SIGTERM (exit code 0, store
flushed), and the store contract says an acknowledged write survives
``kill -9``. Checked against real processes: every resource comes back after
a restart on the same config with exactly the attributes it was acknowledged
with, in creation order, with ``la``/``ol`` and the container counters right
-- also after 50 concurrent creates.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from tests.conftest import CSEProcess, Http

N = 200


async def register(http: Http, url: str, rn: str = "app") -> dict[str, Any]:
    r = await http.send("POST", f"{url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": rn, "api": "Napp", "rr": True, "srv": ["3"], "lbl": ["durable"]}})
    assert r.rsc == 2001, r.body
    return dict(r.body["m2m:ae"])


async def populate(http: Http, url: str, n: int) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """An AE, a container and ``n`` instances, created one after the other;
    returns what each create acknowledged."""
    ae = await register(http, url)
    aei = ae["aei"]
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3,
                        body={"m2m:cnt": {"rn": "data", "mni": 10 * n, "lbl": ["k:v"], "cr": None}})
    assert r.rsc == 2001, r.body
    cnt = r.body["m2m:cnt"]
    cins = []
    for i in range(n):
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"rn": f"i{i:03d}", "con": f"value {i} \u00e9", "cnf": "text/plain:0",
                                              "lbl": [f"n:{i}"]}})
        assert (r.status, r.rsc) == (201, 2001), r.body
        cins.append(r.body["m2m:cin"])
    return ae, cnt, cins


async def restart(cse_process: Any, old: CSEProcess) -> CSEProcess:
    """A new process on the same config file (and so the same store)."""
    new: CSEProcess = await cse_process(start=False)
    assert new.config_path == old.config_path and new.db_path == old.db_path
    await new.start()
    return new


async def get(http: Http, url: str, fr: str = "CAdmin") -> Any:
    r = await http.send("GET", url, fr=fr)
    assert (r.status, r.rsc) == (200, 2000), (url, r.body)
    return r.body


async def check_restored(http: Http, url: str, ae: dict[str, Any], cins: list[dict[str, Any]]) -> None:
    aei = ae["aei"]
    assert (await get(http, f"{url}/cse-in/app", aei))["m2m:ae"] == ae
    cnt = (await get(http, f"{url}/cse-in/app/data?rcn=4", aei))["m2m:cnt"]
    assert cnt.pop("m2m:cin") == cins, "instances differ, or their order does"
    assert cnt["cni"] == len(cins)
    assert cnt["cbs"] == sum(c["cs"] for c in cins)
    assert cnt["st"] == len(cins) and cnt["cr"] == aei and cnt["lbl"] == ["k:v"]
    assert (await get(http, f"{url}/cse-in/app/data/la", aei))["m2m:cin"] == cins[-1]
    assert (await get(http, f"{url}/cse-in/app/data/ol", aei))["m2m:cin"] == cins[0]
    bodies = await asyncio.gather(*(get(http, f"{url}/~/id-in/{c['ri']}", aei) for c in cins))
    assert [b["m2m:cin"] for b in bodies] == cins
    r = await http.send("GET", f"{url}/cse-in/app?fu=1&ty=4&lbl=n:7", fr=aei)
    assert r.body["m2m:uril"] == ["cse-in/app/data/i007"]


async def test_sigterm_then_restart_keeps_everything(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    ae, cnt, cins = await populate(http, cse.url, N)
    cb = (await get(http, f"{cse.url}/cse-in"))["m2m:cb"]
    full_cnt = (await get(http, f"{cse.url}/cse-in/app/data"))["m2m:cnt"]
    assert await cse.stop(signal.SIGTERM) == 0
    assert not [line for line in cse.lines if "Traceback" in line], "".join(cse.lines)

    again = await restart(cse_process, cse)
    await check_restored(http, again.url, ae, cins)
    assert (await get(http, f"{again.url}/cse-in/app/data"))["m2m:cnt"] == full_cnt
    cb_again = (await get(http, f"{again.url}/cse-in"))["m2m:cb"]
    assert (cb_again["ri"], cb_again["ct"], cb_again["csi"]) == (cb["ri"], cb["ct"], cb["csi"])
    # the restarted CSE carries on where it stopped
    r = await http.send("POST", f"{again.url}/cse-in/app/data", fr=ae["aei"], ty=4,
                        body={"m2m:cin": {"rn": "next", "con": "n"}})
    assert r.rsc == 2001 and r.body["m2m:cin"]["st"] == N + 1
    r = await http.send("POST", f"{again.url}/cse-in/app/data", fr=ae["aei"], ty=4,
                        body={"m2m:cin": {"rn": "i000", "con": "dup"}})
    assert r.rsc == 4105
    r = await http.send("POST", f"{again.url}/cse-in", fr=ae["aei"], ty=2,
                        body={"m2m:ae": {"rn": "again", "api": "Napp", "rr": True, "srv": ["3"]}})
    assert r.rsc == 4117
    assert await again.stop(signal.SIGTERM) == 0


async def test_sigkill_right_after_the_last_acknowledged_create(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    ae, _, cins = await populate(http, cse.url, N)
    await cse.kill()
    assert cse.proc is not None and cse.proc.returncode == -signal.SIGKILL

    again = await restart(cse_process, cse)
    await check_restored(http, again.url, ae, cins)
    r = await http.send("POST", f"{again.url}/cse-in/app/data", fr=ae["aei"], ty=4,
                        body={"m2m:cin": {"con": "after crash"}})
    assert r.rsc == 2001 and r.body["m2m:cin"]["st"] == N + 1


async def test_sigkill_after_updates_and_deletes(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    url = cse.url
    ae = await register(http, url)
    aei = ae["aei"]
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data", "lbl": ["a"]}})
    assert r.rsc == 2001
    cins = []
    for i in range(10):
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"rn": f"i{i}", "con": str(i)}})
        assert r.rsc == 2001
        cins.append(r.body["m2m:cin"])
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "gone"}})
    assert r.rsc == 2001
    gone_ri = r.body["m2m:cnt"]["ri"]
    for path in ("cse-in/app/data/ol", "cse-in/app/data/la", "cse-in/app/data/i4", "cse-in/app/gone"):
        assert (await http.send("DELETE", f"{url}/{path}", fr=aei)).rsc == 2002
    # lowering mni evicts the two oldest remaining (i1, i2) at once
    r = await http.send("PUT", f"{url}/cse-in/app/data", fr=aei, body={"m2m:cnt": {"mni": 5, "lbl": None}})
    assert r.rsc == 2004
    expected_cnt = r.body["m2m:cnt"]
    r = await http.send("PUT", f"{url}/cse-in/app", fr=aei, body={"m2m:ae": {"lbl": ["changed"], "rr": False}})
    assert r.rsc == 2004
    expected_ae = r.body["m2m:ae"]
    await cse.kill()

    again = await restart(cse_process, cse)
    url = again.url
    assert (await get(http, f"{url}/cse-in/app", aei))["m2m:ae"] == expected_ae
    cnt = (await get(http, f"{url}/cse-in/app/data?rcn=4", aei))["m2m:cnt"]
    left = cnt.pop("m2m:cin")
    assert cnt == expected_cnt
    assert [c["rn"] for c in left] == ["i3", "i5", "i6", "i7", "i8"]
    assert left == [c for c in cins if c["rn"] in ("i3", "i5", "i6", "i7", "i8")]
    assert (cnt["cni"], cnt["cbs"], "lbl" in cnt, cnt["mni"]) == (5, 5, False, 5)
    for path in ("cse-in/app/data/i0", "cse-in/app/data/i9", "cse-in/app/data/i4", "cse-in/app/gone",
                 f"~/id-in/{gone_ri}", "cse-in/app/data/i1"):
        assert (await http.send("GET", f"{url}/{path}", fr=aei)).rsc == 4004, path


async def test_concurrent_creates_then_sigkill(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    url = cse.url
    ae = await register(http, url)
    aei = ae["aei"]
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001

    async def one(i: int) -> dict[str, Any]:
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"rn": f"p{i:02d}", "con": "c" * (i + 1)}})
        assert (r.status, r.rsc) == (201, 2001), r.body
        return dict(r.body["m2m:cin"])

    created = await asyncio.gather(*(one(i) for i in range(50)))
    await cse.kill()
    # every create saw its own state tag: no two read the same container state
    assert sorted(c["st"] for c in created) == list(range(1, 51))

    again = await restart(cse_process, cse)
    url = again.url
    cnt = (await get(http, f"{url}/cse-in/app/data?rcn=4", aei))["m2m:cnt"]
    stored = cnt.pop("m2m:cin")
    assert len(stored) == 50
    assert sorted(stored, key=lambda c: c["rn"]) == sorted(created, key=lambda c: c["rn"])
    assert [c["st"] for c in stored] == list(range(1, 51)), "creation order should follow commit order"
    assert (cnt["cni"], cnt["cbs"], cnt["st"]) == (50, sum(range(1, 51)), 50)
    assert (await get(http, f"{url}/cse-in/app/data/la", aei))["m2m:cin"] == stored[-1]
    assert (await get(http, f"{url}/cse-in/app/data/ol", aei))["m2m:cin"] == stored[0]
    for c in created:
        assert (await get(http, f"{url}/{c['ri']}", aei))["m2m:cin"] == c


async def test_concurrent_registrations_then_sigkill(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    aes = await asyncio.gather(*(register(http, cse.url, f"ae{i:02d}") for i in range(30)))
    assert len({a["aei"] for a in aes}) == 30
    await cse.kill()
    again = await restart(cse_process, cse)
    r = await http.send("GET", f"{again.url}/cse-in?fu=1&ty=2")
    assert sorted(r.body["m2m:uril"]) == [f"cse-in/ae{i:02d}" for i in range(30)]
    for a in aes:
        assert (await get(http, f"{again.url}/cse-in/{a['rn']}", a["aei"]))["m2m:ae"] == a

"""Sessions survive CSE restarts, graceful or not.

Why: an established session is durable state on every hop (credentials,
endpoints, nextHops): a CSE restarted by its operator (SIGTERM) or after a
crash (SIGKILL) must come back with the session as it was, and terminating
it afterwards must still reach every hop and the endpoint AEs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import dbg, until, wait_registered
from tests.e2e.test_smg_helpers import (
    SessionAE,
    check_established_copy,
    establish,
    get,
    hop_view,
    smg_ae,
    smg_resources,
    start_smg_pair,
)
from tests.pg import pg_schema, store_toml


async def _forwarding(http: Http, url: str) -> bool:
    return (await http.send("GET", url, fr=ADMIN)).rsc == 2000


@pytest.mark.parametrize("backend", ["tinydb", "postgresql", "mixed"])
async def test_session_survives_sigterm_of_cse2_and_sigkill_of_cse1(
        cse_process: Callable[..., Any], http: Http, backend: str) -> None:
    """Also with both CSEs on PostgreSQL (docs/configuration.md "PostgreSQL store"):
    the session's resources, its wrapped key and the registrations come back
    from the tables; and with a mixed pair (CSE1 embedded, CSE2 on PostgreSQL):
    the hops do not depend on each other's backend."""
    async with contextlib.AsyncExitStack() as stack:
        stores = ["", ""]
        if backend == "postgresql":
            stores = [store_toml(await stack.enter_async_context(pg_schema())) for _ in range(2)]
        elif backend == "mixed":
            stores[1] = store_toml(await stack.enter_async_context(pg_schema()))
        await _session_survives_restarts(cse_process, http, *stores)


async def _session_survives_restarts(cse_process: Callable[..., Any], http: Http, store1: str,
                                     store2: str) -> None:
    cse1, cse2 = await start_smg_pair(cse_process, http, cse1_store=store1, cse2_store=store2)
    async with SessionAE(epa={"t": 2}) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        iep, tep = f"/id-cse1/{aei1}", f"/id-cse2/{aei2}"
        sess = await establish(http, cse1, "cse1", "ae1", aei1, tep, epa={"t": 1})
        sid = sess["sid"]
        await rcv2.event(1)
        made = await http.send("POST", f"{cse1.url}/ses{sid}/sessionPolicies", fr=aei1, ty=9006,
                               body={"m2m:spo": {"rn": "p", "spt": 1}})
        assert made.rsc == 2001, made.body

        def check(v1: dict[str, Any], v2: dict[str, Any]) -> None:
            check_established_copy(v1, sid=sid, iep=iep, tep=tep, epa1={"t": 1}, epa2={"t": 2},
                                   hops={"/id-cse2": [cse2.url]})
            check_established_copy(v2, sid=sid, iep=iep, tep=tep, epa1={"t": 1}, epa2={"t": 2},
                                   hops={"/id-cse1": [cse1.url]})
            for v in (v1, v2):
                assert [p["rn"] for p in v["m2m:spc"][0].get("m2m:spo", [])] == ["p"], v

        before1, before2 = await hop_view(http, cse1, sid), await hop_view(http, cse2, sid)
        check(before1, before2)

        # graceful restart of CSE2 on the same port
        port2 = cse2.port
        assert await cse2.stop() == 0
        await cse2.start()
        assert cse2.port == port2
        await wait_registered(http, cse2, "/id-cse1", "cse1")
        await until(lambda: _forwarding(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2 again")
        after2 = await hop_view(http, cse2, sid)
        assert after2 == before2
        check(await hop_view(http, cse1, sid), after2)

        # crash of CSE1 (the registrar), restarted on the same port
        port1 = cse1.port
        await cse1.kill()
        await cse1.start()
        assert cse1.port == port1
        await until(lambda: _forwarding(http, f"{cse1.url}/~/id-cse2/cse2"), "CSE1 -> CSE2 after the crash")
        await until(lambda: _forwarding(http, f"{cse2.url}/~/id-cse1/cse1"), "CSE2 -> CSE1 after the crash")
        after1 = await hop_view(http, cse1, sid)
        assert after1 == before1
        check(after1, await hop_view(http, cse2, sid))
        own = await get(http, f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)
        assert own.rsc == 2000 and own.body["m2m:sess"]["sst"] == 2, own.body

        # termination still works end to end
        gone = await http.send("DELETE", f"{cse1.url}/cse1/ae1/sessions/ses{sid}", fr=aei1)
        assert gone.rsc == 2002, gone.body
        assert "not reached" not in dbg(gone), gone.body
        _, ev = await rcv2.event(3)
        assert ev["sid"] == sid and ev["why"] == 1, ev
        for cse, cb in ((cse1, "cse1"), (cse2, "cse2")):
            assert (await get(http, f"{cse.url}/ses{sid}")).rsc == 4004
            assert await smg_resources(http, cse, cb) == []

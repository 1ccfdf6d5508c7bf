"""The whole pipeline on the PostgreSQL store, over HTTP, across restarts.

Why: the contract suite checks the store alone; this checks that a real CSE
process on ``[store] backend = "postgresql"`` (docs/configuration.md
"PostgreSQL store") keeps what it acknowledged -- through SIGTERM and
SIGKILL, in creation order, with the container counters right after
concurrent creates (no lost update) -- and that what it keeps is in the
database's tables, not only in the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.conftest import CSEProcess, Http
from tests.e2e.test_http_durability import check_restored, get, populate, register
from tests.pg import PG_DSN, pg_schema, store_toml


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with pg_schema() as name:
        yield name


async def restart(old: CSEProcess) -> CSEProcess:
    """A new process on the same config file (so the same schema)."""
    await old.start()
    return old


async def rows(schema: str, sql: str) -> Any:
    conn = await asyncpg.connect(PG_DSN)
    try:
        return await conn.fetchval(sql.replace("S.", f'"{schema}".'))
    finally:
        await conn.close()


async def test_crud_then_sigterm_then_sigkill_keeps_everything(cse_process: Any, http: Http, schema: str) -> None:
    cse = await cse_process(extra=store_toml(schema))
    ae, _, cins = await populate(http, cse.url, 40)
    assert await rows(schema, "SELECT count(*) FROM S.doc WHERE ty = 4") == 40
    assert await rows(schema, "SELECT doc->>'con' FROM S.doc WHERE rn = 'i007'") == "value 7 \u00e9"
    full_cnt = (await get(http, f"{cse.url}/cse-in/app/data"))["m2m:cnt"]
    assert await cse.stop(signal.SIGTERM) == 0
    assert not [line for line in cse.lines if "Traceback" in line], "".join(cse.lines)

    again = await restart(cse)
    await check_restored(http, again.url, ae, cins)
    assert (await get(http, f"{again.url}/cse-in/app/data"))["m2m:cnt"] == full_cnt
    aei = ae["aei"]
    # update, delete (with its subtree), then a crash right after the last acknowledgement
    r = await http.send("PUT", f"{again.url}/cse-in/app", fr=aei, body={"m2m:ae": {"lbl": ["changed"]}})
    assert r.rsc == 2004
    changed = r.body["m2m:ae"]
    assert (await http.send("DELETE", f"{again.url}/cse-in/app/data/ol", fr=aei)).rsc == 2002
    r = await http.send("POST", f"{again.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "gone"}})
    assert r.rsc == 2001
    r = await http.send("POST", f"{again.url}/cse-in/app/gone", fr=aei, ty=4, body={"m2m:cin": {"con": "x"}})
    assert r.rsc == 2001
    assert (await http.send("DELETE", f"{again.url}/cse-in/app/gone", fr=aei)).rsc == 2002
    await again.kill()

    third = await restart(again)
    assert (await get(http, f"{third.url}/cse-in/app", aei))["m2m:ae"] == changed
    cnt = (await get(http, f"{third.url}/cse-in/app/data?rcn=4", aei))["m2m:cnt"]
    assert cnt.pop("m2m:cin") == cins[1:] and cnt["cni"] == 39
    assert (await http.send("GET", f"{third.url}/cse-in/app/gone", fr=aei)).rsc == 4004
    assert await rows(schema, "SELECT count(*) FROM S.doc WHERE pi NOT IN (SELECT ri FROM S.doc) AND pi <> ''") == 0
    assert await third.stop(signal.SIGTERM) == 0


async def test_concurrent_creates_lose_no_update_then_sigkill(cse_process: Any, http: Http, schema: str) -> None:
    cse = await cse_process(extra=store_toml(schema))
    url = cse.url
    aei = (await register(http, url))["aei"]
    assert (await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})).rsc == 2001

    async def one(i: int) -> dict[str, Any]:
        r = await http.send("POST", f"{url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"rn": f"p{i:02d}", "con": "c" * (i + 1)}})
        assert (r.status, r.rsc) == (201, 2001), r.body
        return dict(r.body["m2m:cin"])

    created = await asyncio.gather(*(one(i) for i in range(40)))
    assert sorted(c["st"] for c in created) == list(range(1, 41))
    await cse.kill()

    again = await restart(cse)
    cnt = (await get(http, f"{again.url}/cse-in/app/data?rcn=4", aei))["m2m:cnt"]
    stored = cnt.pop("m2m:cin")
    assert [c["st"] for c in stored] == list(range(1, 41)), "creation order should follow commit order"
    assert (cnt["cni"], cnt["cbs"], cnt["st"]) == (40, sum(range(1, 41)), 40)
    assert await rows(schema, "SELECT (doc->>'cni')::int FROM S.doc WHERE rn = 'data'") == 40
    assert await again.stop(signal.SIGTERM) == 0

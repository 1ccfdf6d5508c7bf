"""The PostgreSQL store beyond the shared contract: configuration, schema
migration, what survives a reopen, a failed write, the ``migrate`` command.

Why: the contract suite (test_contract.py) checks one open store; these
check what only this backend has -- a schema it creates and migrates itself
(docs/configuration.md "PostgreSQL store"), state that must come back from
the tables in the same order, and memory that must not keep a write the
database refused.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cse.app import build_store
from cse.config import ConfigError, load_config
from cse.core.ports import Delete, Doc, KvDelete, KvPut, Put
from cse.store.memory import MemoryStore
from cse.store.pg_schema import LATEST
from cse.store.pg_store import PgStoreWriteError, PostgresStore, StoreUnavailableError
from cse.store.tinydb_store import TinyDBStore
from tests.conftest import subprocess_env
from tests.pg import PG_DSN, pg_schema, pg_store

AE, CNT, CIN = 2, 3, 4


def base() -> Doc:
    return {"ri": "id-in", "ty": 5, "rn": "cse-in", "pi": "", "_srn": "cse-in", "csi": "/id-in"}


def child(parent: Doc, ri: str, ty: int, rn: str | None = None, **attrs: Any) -> Doc:
    rn = rn or ri
    return {"ri": ri, "ty": ty, "rn": rn, "pi": parent["ri"], "_srn": f"{parent['_srn']}/{rn}", **attrs}


def toml(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "cse.toml"
    path.write_text(f"[store]\n{store}\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- configuration ----------------------------------------------------------------

def test_config_selects_the_backend(tmp_path: Path) -> None:
    default = load_config(str(toml(tmp_path, 'path = "x.db"')))
    assert default.store.backend == "tinydb"
    assert isinstance(build_store(default), TinyDBStore)
    pg = load_config(str(toml(tmp_path, f'backend = "postgresql"\ndsn = "{PG_DSN}"\nschema = "cse_a"')))
    store = build_store(pg)
    assert isinstance(store, PostgresStore) and store.schema == "cse_a"
    assert pg.store.key_path == "var/cse-in.db.key"  # the key stays a local file
    in_memory = load_config(str(toml(tmp_path, f'backend = "postgresql"\ndsn = "{PG_DSN}"')), db=":memory:")
    assert isinstance(build_store(in_memory), MemoryStore)  # --db :memory: still keeps nothing


@pytest.mark.parametrize(("store", "message"), [
    ('backend = "postgres"', "'store.backend' must be one of tinydb, postgresql"),
    ('backend = "postgresql"', "'store.dsn' must be a postgresql:// URL"),
    ('backend = "postgresql"\ndsn = "mysql://x"', "'store.dsn' must be a postgresql:// URL"),
    (f'backend = "postgresql"\ndsn = "{PG_DSN}"\nschema = "a;drop"', "'store.schema' must be a plain SQL name"),
    (f'backend = "postgresql"\ndsn = "{PG_DSN}"\npool_size = 0', "'store.pool_size' must be 1..100"),
    ("schema = 3", "'store.schema' must be str"),
])
def test_config_errors_name_the_key(tmp_path: Path, store: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(str(toml(tmp_path, store)))


# -- schema -----------------------------------------------------------------------

async def versions(schema: str) -> list[int]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_version ORDER BY version')
        return [row[0] for row in rows]
    finally:
        await conn.close()


async def test_open_creates_and_migrates_the_schema_once_even_when_two_start_together() -> None:
    async with pg_schema() as schema:
        stores = [pg_store(schema), pg_store(schema)]
        await asyncio.gather(*(s.open() for s in stores))
        assert await versions(schema) == list(range(1, LATEST + 1))
        await stores[0].commit([Put(base())])
        for s in stores:
            await s.close()
        again = pg_store(schema)
        await again.open()
        assert await again.get("id-in") == base()
        await again.close()
        assert await versions(schema) == list(range(1, LATEST + 1))


async def test_a_newer_schema_is_refused_and_migrate_false_refuses_an_old_one() -> None:
    async with pg_schema() as schema:
        fresh = PostgresStore(PG_DSN, schema=schema, migrate=False)
        with pytest.raises(StoreUnavailableError, match="has schema version 0, this CSE needs"):
            await fresh.open()
        s = pg_store(schema)
        await s.open()
        await s.close()
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES (99)')
        finally:
            await conn.close()
        newer = pg_store(schema)
        with pytest.raises(StoreUnavailableError, match="has schema version 99; this CSE knows up to"):
            await newer.open()


async def test_an_unreachable_database_stops_open_with_the_address() -> None:
    s = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test", connect_timeout_s=5)
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        await s.open()


# -- state across a reopen ----------------------------------------------------------

async def test_everything_comes_back_in_order_after_a_reopen() -> None:
    async with pg_schema() as schema:
        s = pg_store(schema)
        await s.open()
        cse = base()
        cnt = child(cse, "cnt", CNT, aei="Cx", _own="Cx", et="20300101T000000")
        cins = [child(cnt, f"c{i}", CIN, et=f"2029010{i}T000000") for i in range(5)]
        await s.commit([Put(cse), Put(cnt)])
        for c in cins:
            await s.commit([Put(c)])
        await s.commit([Put({**cins[0], "con": "replaced"})])  # keeps its slot
        await s.commit([Delete("c2"), Put(cins[2])])  # a re-creation: goes last
        await s.commit([KvPut("q", "b", 1), KvPut("q", "a", {"x": [1]}), KvPut("q", "c", None)])
        await s.commit([KvPut("q", "b", 2), KvDelete("q", "c")])
        await s.close()

        again = pg_store(schema)
        await again.open()
        assert [d["ri"] for d in await again.children("cnt")] == ["c0", "c1", "c3", "c4", "c2"]
        assert (await again.get("c0") or {}).get("con") == "replaced"
        assert (await again.edge_child("cnt", CIN, newest=True) or {}).get("ri") == "c2"
        assert await again.kv_items("q") == [("b", 2), ("a", {"x": [1]})]
        assert await again.lookup("aei", "Cx") == [cnt] and await again.count_by("_own", "Cx") == 1
        assert await again.next_expiry() == "20290100T000000"
        assert await again.get_by_path("cse-in/cnt/c3") == cins[3]
        assert await again.count() == 7
        await again.close()


async def test_a_write_the_database_refuses_leaves_no_trace_and_the_store_goes_on() -> None:
    """Memory accepts a second resource under an existing (pi, rn) (the index
    is last-writer-wins); the table's unique index refuses it: the commit
    fails and memory is the database's state again."""
    async with pg_schema() as schema:
        s = pg_store(schema)
        await s.open()
        cse = base()
        first = child(cse, "a1", AE, "app", aei="Capp")
        await s.commit([Put(cse), Put(first)])
        clash = child(cse, "a2", AE, "app", aei="Cother")
        with pytest.raises(PgStoreWriteError, match="the store cannot write: duplicate key"):
            await s.commit([Put(clash), KvPut("q", "k", 1)])
        assert await s.get("a2") is None
        assert await s.child_by_name("id-in", "app") == first
        assert await s.lookup("aei", "Cother") == [] and await s.kv_get("q", "k") is None
        await s.commit([Put(child(cse, "a3", AE, "other"))])
        assert [d["ri"] for d in await s.children("id-in")] == ["a1", "a3"]
        await s.close()
        again = pg_store(schema)
        await again.open()
        assert [d["ri"] for d in await again.children("id-in")] == ["a1", "a3"]
        await again.close()


# -- the migrate command ------------------------------------------------------------

async def run_cse(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=str(cwd), env=subprocess_env())
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_migrate_command_creates_the_schema(tmp_path: Path) -> None:
    async with pg_schema() as schema:
        cfg = toml(tmp_path, f'backend = "postgresql"\ndsn = "{PG_DSN}"\nschema = "{schema}"')
        code, out = await run_cse("--config", str(cfg), "migrate", cwd=tmp_path)
        assert code == 0, out
        assert f"schema {schema} is at schema version {LATEST}" in out
        assert await versions(schema) == list(range(1, LATEST + 1))
    down = toml(tmp_path, f'backend = "postgresql"\ndsn = "postgresql://postgres@127.0.0.1:{free_port()}/test"')
    code, out = await run_cse("--config", str(down), "migrate", cwd=tmp_path)
    assert code == 1 and "cse: cannot start: PostgreSQL store" in out and "cannot connect" in out, out

"""The PostgreSQL the tests use, and a schema of their own for each test.

The server is the one .ci/run starts (127.0.0.1:5432, trust auth, database
``test``); ``CSE_TEST_PG_DSN`` points elsewhere.  In CI (``CI=true``) a
server that cannot be reached fails the test: the PostgreSQL backend must
be tested there.  Elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from cse.store.pg_shared import PgSharedStore
from cse.store.pg_store import PgDirectStore, PostgresStore

__all__ = ["PG_DSN", "require_pg", "pg_schema", "pg_store", "new_schema_name", "drop_schema", "store_toml"]

PG_DSN = os.environ.get("CSE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

_reachable: str | None = None  # "" once reachable, else why not


async def _probe() -> str:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"PostgreSQL at {PG_DSN} cannot be reached: {exc}"
    await conn.close()
    return ""


async def require_pg() -> None:
    """Skip (fail under CI=true) when the test PostgreSQL cannot be reached."""
    global _reachable
    if _reachable is None:
        _reachable = await _probe()
    if _reachable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{_reachable} (CI=true: .ci/run must start PostgreSQL)")
        pytest.skip(_reachable)


def new_schema_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema name, dropped afterwards with everything in it."""
    await require_pg()
    schema = new_schema_name()
    try:
        yield schema
    finally:
        await drop_schema(schema)


def pg_store(schema: str, *, direct: bool = False, shared: bool = False) -> PostgresStore | PgDirectStore:
    """The CSE's PostgreSQL store (or the one reading every time from the database, or
    that of one worker among several: docs/scaling.md) in ``schema``."""
    if shared:
        return PgSharedStore(PG_DSN, schema=schema)
    return PgDirectStore(PG_DSN, schema=schema) if direct else PostgresStore(PG_DSN, schema=schema)


def store_toml(schema: str) -> str:
    """``[store]`` lines putting a CSE on the test PostgreSQL, in ``schema``."""
    return f'backend = "postgresql"\ndsn = "{PG_DSN}"\nschema = "{schema}"\n'

"""The PostgreSQL store: the Store port on a database several CSE processes can share.

Why: the embedded TinyDB store holds everything in one process's memory.
This backend keeps nothing in memory; every read is a query against
indexed columns (:mod:`cse.store.pg_schema`), every ``commit`` one
transaction (docs/configuration.md "PostgreSQL store").  ``asyncpg`` is the
driver.

How it meets the store contract (cse.core.ports):

* ``commit`` validates the whole batch first (:func:`check_ops`), then
  applies it in one transaction: atomic, and durable when it returns
  (PostgreSQL's commit, ``synchronous_commit`` as the server has it).
  Commits of this process run one at a time, in call order, on the pool:
  creation order (``seq``) is call order.
* "Reads see the batch as soon as ``commit`` has been called": a read
  started while commits of this process are in flight waits for the last
  of them (``_tail``) before it queries.  Commits of *other* processes
  are seen once they are committed.
* Creation order is the ``seq`` column, taken from a sequence on insert and
  kept by a replace unless ``pi`` or ``ty`` changes (a re-creation).
* ``Delete`` takes the subtree with a recursive query over ``pi`` and
  returns the removed documents.
* The KV area is table ``kv``; a replace keeps the key's ``seq``.

Concurrent writers (several processes): each commit is one transaction,
but the documents in it were computed from reads made before it (cni/cbs
of a container, the outbox counter).  With more than one writer these
need a row lock (``SELECT ... FOR UPDATE`` on the parent) or a version
check inside the transaction; one process alone cannot lose an update.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from cse.core.errors import Conflict, InternalServerError
from cse.core.ports import CommitResult, Delete, Doc, KvDelete, KvPut, Op, Put
from cse.store.indexed import check_ops
from cse.store.pg_schema import ADVISORY_LOCK_KEY, LATEST, MIGRATIONS, valid_schema_name

__all__ = ["PostgresStore", "StoreUnavailableError", "PgStoreWriteError"]

log = logging.getLogger(__name__)

# The attributes with a column of their own (lookup / count_by on them use
# an index); a value that is not a string is not indexed, as in
# cse.store.indexed.
_ATTR_COLUMNS = {"aei": "aei", "csi": "csi", "_own": "own"}

_PUT = """
INSERT INTO doc (ri, pi, rn, ty, srn, et, aei, csi, own, doc, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nextval('doc_seq'))
ON CONFLICT (ri) DO UPDATE SET
    pi = EXCLUDED.pi, rn = EXCLUDED.rn, ty = EXCLUDED.ty, srn = EXCLUDED.srn, et = EXCLUDED.et,
    aei = EXCLUDED.aei, csi = EXCLUDED.csi, own = EXCLUDED.own, doc = EXCLUDED.doc,
    seq = CASE WHEN doc.pi = EXCLUDED.pi AND doc.ty = EXCLUDED.ty THEN doc.seq ELSE EXCLUDED.seq END
"""
_DELETE = """
WITH RECURSIVE sub(ri) AS (
    SELECT ri FROM doc WHERE ri = $1
    UNION
    SELECT d.ri FROM doc d JOIN sub ON d.pi = sub.ri
)
DELETE FROM doc WHERE ri IN (SELECT ri FROM sub) RETURNING doc
"""
_KV_PUT = """
INSERT INTO kv (ns, key, value, seq) VALUES ($1, $2, $3, nextval('kv_seq'))
ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value
"""
_KV_DELETE = "DELETE FROM kv WHERE ns = $1 AND key = $2"


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached or its schema is not one this CSE can use."""


class PgStoreWriteError(InternalServerError):
    """A commit did not reach the database (and left no trace: its
    transaction was rolled back).  5000 with an ``m2m:dbg`` naming the cause,
    as the embedded store's write errors (TS-0004 6.6.3.3)."""


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def _put_args(doc: Doc) -> tuple[Any, ...]:
    return (doc["ri"], doc["pi"], doc["rn"], doc["ty"], doc["_srn"], _text(doc.get("et")),
            _text(doc.get("aei")), _text(doc.get("csi")), _text(doc.get("_own")), doc)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    """JSONB in and out as Python values (asyncpg hands out text by default)."""
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=json.loads, schema="pg_catalog")


class PostgresStore:
    """The Store port on PostgreSQL (see module docstring)."""

    def __init__(self, dsn: str, *, schema: str = "cse", pool_size: int = 4, connect_timeout_s: float = 10.0,
                 migrate: bool = True) -> None:
        if not valid_schema_name(schema):
            raise ValueError(f"PostgreSQL schema name {schema!r} is not a plain identifier")
        self._dsn = dsn
        self._schema = schema
        self._pool_size = pool_size
        self._timeout = connect_timeout_s
        self._migrate = migrate
        self._pool: asyncpg.Pool[Any] | None = None
        self._lock = asyncio.Lock()  # commits one at a time, FIFO
        self._tail: asyncio.Future[None] | None = None  # the last commit called, until it ends
        self.schema_version = 0

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def where(self) -> str:
        """The database and schema, without credentials (for log lines)."""
        dsn = re.sub(r"//[^@/]*@", "//", self._dsn)
        return f"{dsn} schema {self._schema}"

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Connect, create the schema if needed and migrate it to :data:`LATEST`."""
        if self._pool is not None:
            raise RuntimeError("PostgresStore.open() twice")
        try:
            pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._pool_size, init=_init_connection, timeout=self._timeout,
                server_settings={"search_path": self._schema, "application_name": "cse"})
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailableError(f"PostgreSQL store {self.where}: cannot connect: {exc}") from exc
        try:
            self.schema_version = await self._prepare(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _prepare(self, pool: asyncpg.Pool[Any]) -> int:
        """Create and migrate the schema (module docstring of pg_schema)."""
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                               "version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())")
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            if current > LATEST:
                raise StoreUnavailableError(
                    f"PostgreSQL store {self.where} has schema version {current}; this CSE knows up to "
                    f"{LATEST}: run a newer CSE")
            if current < LATEST and not self._migrate:
                raise StoreUnavailableError(
                    f"PostgreSQL store {self.where} has schema version {current}, this CSE needs {LATEST}: "
                    "run `python -m cse --config FILE migrate`")
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                log.info("PostgreSQL store %s: migrated to schema version %d", self.where, version)
            return LATEST

    async def close(self) -> None:
        """Wait for commits in flight, then close every connection."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        async with self._lock:
            await pool.close()

    def _p(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise RuntimeError("PostgresStore used before open() or after close()")
        return self._pool

    # ------------------------------------------------------------------ commit

    async def commit(self, ops: Sequence[Op]) -> CommitResult:
        """Apply ``ops`` in one transaction; return once it is committed."""
        if not isinstance(ops, (list, tuple)):
            ops = list(ops)
        check_ops(ops)  # raises before anything is sent
        pool = self._p()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail = done
        try:
            async with self._lock:
                if not ops:
                    return CommitResult()
                try:
                    return await self._apply(pool, ops)
                except asyncpg.UniqueViolationError as exc:
                    raise Conflict(f"the store refused the change: {exc.detail or exc}") from exc
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise PgStoreWriteError(f"the store cannot write: {exc}") from exc
        finally:
            done.set_result(None)
            if self._tail is done:
                self._tail = None

    @staticmethod
    async def _apply(pool: asyncpg.Pool[Any], ops: Sequence[Op]) -> CommitResult:
        result = CommitResult()
        async with pool.acquire() as conn:
            if len(ops) == 1 and not isinstance(ops[0], Delete):
                await PostgresStore._one(conn, ops[0], result)  # one statement: atomic by itself
                return result
            async with conn.transaction():
                for op in ops:
                    await PostgresStore._one(conn, op, result)
        return result

    @staticmethod
    async def _one(conn: Any, op: Op, result: CommitResult) -> None:
        if isinstance(op, Put):
            await conn.execute(_PUT, *_put_args(op.doc))
        elif isinstance(op, Delete):
            rows = await conn.fetch(_DELETE, op.ri)
            result.removed.extend(row[0] for row in rows)
        elif isinstance(op, KvPut):
            await conn.execute(_KV_PUT, op.ns, op.key, op.value)
        elif isinstance(op, KvDelete):
            await conn.execute(_KV_DELETE, op.ns, op.key)

    async def _settled(self) -> asyncpg.Pool[Any]:
        """The pool, once every commit called so far has ended (module docstring)."""
        tail = self._tail
        if tail is not None and not tail.done():
            await asyncio.wait((tail,))
        return self._p()

    # ------------------------------------------------------------------- reads

    async def get(self, ri: str) -> Doc | None:
        doc: Doc | None = await (await self._settled()).fetchval("SELECT doc FROM doc WHERE ri = $1", ri)
        return doc

    async def get_by_path(self, srn: str) -> Doc | None:
        doc: Doc | None = await (await self._settled()).fetchval("SELECT doc FROM doc WHERE srn = $1", srn)
        return doc

    async def child_by_name(self, pi: str, rn: str) -> Doc | None:
        doc: Doc | None = await (await self._settled()).fetchval(
            "SELECT doc FROM doc WHERE pi = $1 AND rn = $2", pi, rn)
        return doc

    async def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        pool = await self._settled()
        if ty is None:
            rows = await pool.fetch("SELECT doc FROM doc WHERE pi = $1 ORDER BY seq", pi)
        else:
            rows = await pool.fetch("SELECT doc FROM doc WHERE pi = $1 AND ty = $2 ORDER BY seq", pi, ty)
        return [row[0] for row in rows]

    async def edge_child(self, pi: str, ty: int, newest: bool) -> Doc | None:
        order = "DESC" if newest else "ASC"
        doc: Doc | None = await (await self._settled()).fetchval(
            f"SELECT doc FROM doc WHERE pi = $1 AND ty = $2 ORDER BY seq {order} LIMIT 1", pi, ty)
        return doc

    async def count_children(self, pi: str, ty: int | None = None) -> int:
        pool = await self._settled()
        if ty is None:
            n = await pool.fetchval("SELECT count(*) FROM doc WHERE pi = $1", pi)
        else:
            n = await pool.fetchval("SELECT count(*) FROM doc WHERE pi = $1 AND ty = $2", pi, ty)
        return int(n)

    @staticmethod
    def _where(attr: str, value: Any) -> tuple[str, Any]:
        """The condition (on $1) selecting documents whose ``attr`` equals ``value``."""
        column = _ATTR_COLUMNS.get(attr)
        if column is not None and type(value) is str:
            return f"{column} = $1", value
        if attr == "ty" and type(value) is int:
            return "ty = $1", value
        return "doc -> $2::text = $1::jsonb", value  # no index: a scan, as in the embedded store

    async def lookup(self, attr: str, value: Any) -> list[Doc]:
        pool = await self._settled()
        cond, arg = self._where(attr, value)
        sql = f"SELECT doc FROM doc WHERE {cond} ORDER BY seq"
        rows = await (pool.fetch(sql, arg, attr) if "$2" in cond else pool.fetch(sql, arg))
        return [row[0] for row in rows]

    async def count_by(self, attr: str, value: str) -> int:
        pool = await self._settled()
        cond, arg = self._where(attr, value)
        sql = f"SELECT count(*) FROM doc WHERE {cond}"
        n = await (pool.fetchval(sql, arg, attr) if "$2" in cond else pool.fetchval(sql, arg))
        return int(n)

    async def expired(self, now: str, limit: int = 1000) -> list[str]:
        if limit <= 0:
            return []
        rows = await (await self._settled()).fetch(
            "SELECT ri FROM doc WHERE et IS NOT NULL AND et <= $1 ORDER BY et, ri LIMIT $2", now, limit)
        return [row[0] for row in rows]

    async def next_expiry(self) -> str | None:
        et: str | None = await (await self._settled()).fetchval(
            "SELECT et FROM doc WHERE et IS NOT NULL ORDER BY et LIMIT 1")
        return et

    async def kv_get(self, ns: str, key: str) -> Any | None:
        return await (await self._settled()).fetchval("SELECT value FROM kv WHERE ns = $1 AND key = $2", ns, key)

    async def kv_items(self, ns: str) -> list[tuple[str, Any]]:
        rows = await (await self._settled()).fetch("SELECT key, value FROM kv WHERE ns = $1 ORDER BY seq", ns)
        return [(row[0], row[1]) for row in rows]

    async def count(self) -> int:
        return int(await (await self._settled()).fetchval("SELECT count(*) FROM doc"))

    async def drop_schema(self) -> None:
        """Remove this store's schema with everything in it (tests, and
        an operator's explicit reset)."""
        await self._p().execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')

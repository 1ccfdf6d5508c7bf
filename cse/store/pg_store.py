"""The store on PostgreSQL: the Store port on a database (docs/configuration.md "PostgreSQL store").

Why: the resources live in a database that operators already back up,
replicate and query, rather than in files of one process.  ``asyncpg`` is
the driver; :mod:`cse.store.pg_schema` has the tables and indexes (the
documents as JSONB plus an indexed column for every lookup) and the
migrations the store applies itself at ``open``.

Two stores share the writing code (:class:`_PgBase`):

* :class:`PostgresStore`, the one the CSE runs on, holds the documents in
  memory as well (:class:`~cse.store.indexed.IndexedDocs`, loaded at
  ``open`` from one snapshot of the tables) and answers reads from there.
  That is what keeps a CSF's read-compute-commit atomic in one process:
  the pipeline computes a container's ``cni``/``cbs``/``st`` from what it
  read and relies on reads and the in-memory apply of a commit not
  suspending (cse.core.executor docstring).  With reads that went to the
  database, two concurrent CREATEs in one container would both read the
  same ``cni`` and one update would be lost.  ``commit`` applies the batch
  in memory at once, then ONE writer task puts every commit queued since
  its last write into one transaction (group commit, as the embedded
  store's journal) and resolves them once it is committed.  The group is
  one ``executemany`` of the ``cse_op`` function (schema version 2): one
  round trip, atomic, instead of BEGIN, a statement per operation and
  COMMIT.  A failed
  write reloads memory from the database (undoing that group and every
  commit queued after it) before those commits fail with
  :class:`PgStoreWriteError`: nothing acknowledged is lost, nothing failed
  stays visible.
* :class:`PgDirectStore` keeps nothing in memory: every read is a query on
  the indexes, every commit its own transaction, commits of one process
  one at a time in call order, and a read started while one is in flight
  waits for it ("reads see the batch as soon as commit has been called").
  It passes the same contract suite (a reference for the in-memory one).
  Several worker processes on one schema (docs/scaling.md) run
  :class:`cse.store.pg_shared.PgSharedStore`: this in-memory store kept
  current with the other workers' commits, behind a cross-worker write gate.

Both: creation order is the ``seq`` column, taken from a sequence on insert
and kept by a replace unless ``pi`` or ``ty`` changes (a re-creation, as in
cse.store.indexed); a ``Delete`` takes the subtree with a recursive query
over ``pi``; the KV area is table ``kv`` and a replace keeps the key's
``seq``.

Several writers on one schema: the documents of an outcome are computed
from reads made before its transaction (a container's ``cni``/``cbs``/``st``
and its oldest instance for eviction, a parent's child count for quotas, a
session's history), so the workers of cse.store.pg_coord run every
writing request from its first read to its commit under one advisory lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from cse.core.errors import Conflict, InternalServerError
from cse.core.ports import CommitResult, Delete, Doc, KvDelete, KvPut, Op, Put
from cse.store.indexed import IndexedDocs, check_ops
from cse.store.memory import IndexedStore
from cse.store.pg_schema import ADVISORY_LOCK_KEY, LATEST, MIGRATIONS, valid_schema_name

__all__ = ["PostgresStore", "PgDirectStore", "StoreUnavailableError", "PgStoreWriteError"]

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
_OP = "SELECT cse_op($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
_NO_DOC = (None,) * 10
_NO_KV = (None, None, None)


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


def _op_args(op: Op) -> tuple[Any, ...]:
    """The arguments of ``cse_op`` (cse.store.pg_schema, version 2) for ``op``."""
    if isinstance(op, Put):
        return ("p", *_put_args(op.doc), *_NO_KV)
    if isinstance(op, Delete):
        return ("d", op.ri, *_NO_DOC[1:], *_NO_KV)
    if isinstance(op, KvPut):
        return ("k", *_NO_DOC, op.ns, op.key, op.value)
    return ("x", *_NO_DOC, op.ns, op.key, None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _no_reset(conn: asyncpg.Connection[Any]) -> None:
    """Released connections keep their session: the store sets no session
    state (its advisory lock is transaction-level), and asyncpg's default
    reset is one more round trip per query."""


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    """JSONB in and out as Python values (asyncpg hands out text by default)."""
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=json.loads, schema="pg_catalog")


class _PgBase:
    """Connection pool, schema migration and the writing of batches, shared by both stores."""

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
        self._lock = asyncio.Lock()  # writes one at a time, FIFO: creation order is call order
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
                self._dsn, min_size=1, max_size=self._pool_size, init=_init_connection, reset=_no_reset,
                timeout=self._timeout,
                server_settings={"search_path": self._schema, "application_name": "cse"})
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailableError(f"PostgreSQL store {self.where}: cannot connect: {exc}") from exc
        try:
            self.schema_version = await self._prepare(pool)
            await self._loaded(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _loaded(self, pool: asyncpg.Pool[Any]) -> None:
        """Called once the schema is current, before the store is in use."""

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

    @staticmethod
    async def _write(pool: asyncpg.Pool[Any], ops: Sequence[Op], removed: list[Doc] | None) -> None:
        """``ops`` in one transaction (one statement alone needs none);
        the documents a Delete took go to ``removed`` if given."""
        async with pool.acquire() as conn:
            if len(ops) == 1 and not isinstance(ops[0], Delete):
                await _PgBase._one(conn, ops[0], removed)
                return
            async with conn.transaction():
                for op in ops:
                    await _PgBase._one(conn, op, removed)

    @staticmethod
    async def _one(conn: Any, op: Op, removed: list[Doc] | None) -> None:
        if isinstance(op, Put):
            await conn.execute(_PUT, *_put_args(op.doc))
        elif isinstance(op, Delete):
            rows = await conn.fetch(_DELETE, op.ri)
            if removed is not None:
                removed.extend(row[0] for row in rows)
        elif isinstance(op, KvPut):
            await conn.execute(_KV_PUT, op.ns, op.key, op.value)
        elif isinstance(op, KvDelete):
            await conn.execute(_KV_DELETE, op.ns, op.key)

    async def drop_schema(self) -> None:
        """Remove this store's schema with everything in it (tests, and
        an operator's explicit reset)."""
        await self._p().execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')


class PgDirectStore(_PgBase):
    """The Store port on PostgreSQL with every read a query (module docstring)."""

    def __init__(self, dsn: str, **kw: Any) -> None:
        super().__init__(dsn, **kw)
        self._tail: asyncio.Future[None] | None = None  # the last commit called, until it ends

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
                    result = CommitResult()
                    await self._write(pool, ops, result.removed)
                    return result
                except asyncpg.UniqueViolationError as exc:
                    raise Conflict(f"the store refused the change: {exc.detail or exc}") from exc
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise PgStoreWriteError(f"the store cannot write: {exc}") from exc
        finally:
            done.set_result(None)
            if self._tail is done:
                self._tail = None

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


#: At most this many queued commits go into one transaction (group commit).
_GROUP_MAX = 256


class PostgresStore(_PgBase, IndexedStore):
    """The CSE's PostgreSQL store: the documents are also held in memory
    (module docstring "The CSE's store"); every commit goes to the database
    before it returns."""

    def __init__(self, dsn: str, **kw: Any) -> None:
        _PgBase.__init__(self, dsn, **kw)
        IndexedStore.__init__(self)
        self._queue: list[tuple[Sequence[Op], asyncio.Future[None], str]] = []  # (ops, done, commit id)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._reloading = False
        self._broken: BaseException | None = None  # memory could not be reloaded after a failed write

    async def _loaded(self, pool: asyncpg.Pool[Any]) -> None:
        self._idx = await self._read_all(pool)

    async def _read_all(self, pool: asyncpg.Pool[Any]) -> IndexedDocs:
        """Every document and KV entry, in creation / insertion order, from one snapshot."""
        idx = IndexedDocs()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            idx.load(row[0] for row in await conn.fetch("SELECT doc FROM doc ORDER BY seq"))
            for ns, key, value in await conn.fetch("SELECT ns, key, value FROM kv ORDER BY seq"):
                idx.kv_set(ns, key, value)
        return idx

    async def open(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"PostgresStore.open() on a {self._state} store")
        await super().open()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._state = "open"

    async def close(self) -> None:
        """Write what is queued, then close the connections."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closing"
        self._wake.set()
        try:
            if self._writer is not None:
                await self._writer
        finally:
            self._state = "closed"
            await super().close()

    async def commit(self, ops: Sequence[Op]) -> CommitResult:
        """Apply ``ops`` in memory now (reads see them), return once the
        transaction holding them is committed; if it fails, memory is
        reloaded from the database first (no trace) and
        :class:`PgStoreWriteError` raised."""
        if self._state != "open":
            raise RuntimeError(f"commit on a {self._state} PostgresStore")
        if not isinstance(ops, (list, tuple)):
            ops = list(ops)
        if self._reloading:
            raise PgStoreWriteError("the store cannot write: recovering from a failed write")
        if self._broken is not None:
            check_ops(ops)
            await self._reload(self._broken)
        return await self._enqueue(ops, "")

    async def _enqueue(self, ops: Sequence[Op], cid: str) -> CommitResult:
        """Apply ``ops`` in memory, queue them for the writer under commit id
        ``cid`` and wait for their transaction."""
        result = self._idx.apply(ops)  # validates first; atomic
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((ops, done, cid))
        self._wake.set()
        await done
        return result

    def _group_args(self, group: list[tuple[Sequence[Op], asyncio.Future[None], str]]) -> list[tuple[Any, ...]]:
        """The ``cse_op`` calls writing ``group`` (one transaction)."""
        return [_op_args(op) for batch, _, _ in group for op in batch]

    async def _write_loop(self) -> None:
        """The single writer: every commit queued since its last write in one transaction."""
        pool = self._p()
        while True:
            if not self._queue:
                if self._state != "open":
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            group, self._queue = self._queue[:_GROUP_MAX], self._queue[_GROUP_MAX:]
            args = self._group_args(group)
            try:
                if args:
                    async with self._lock, self._connection(pool) as conn:
                        await conn.executemany(_OP, args)  # one round trip, atomic
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                await self._undo(exc, [fut for _, fut, _ in group])
                continue
            for _, fut, _ in group:
                if not fut.done():
                    fut.set_result(None)

    def _connection(self, pool: asyncpg.Pool[Any]) -> AbstractAsyncContextManager[Any]:
        """The connection a group is written on: any of the pool's."""
        return pool.acquire()

    async def _undo(self, exc: BaseException, waiters: list[asyncio.Future[None]]) -> None:
        """A group was not written: reload memory from the database (undoing
        it and every commit queued after it), then fail all of them."""
        waiters = waiters + [fut for _, fut, _ in self._queue]
        self._queue = []
        log.error("PostgreSQL store %s: a write failed (%s); %d commit(s) undone", self.where, exc, len(waiters))
        try:
            await self._reload(exc)
        except PgStoreWriteError:
            pass
        error = PgStoreWriteError(f"the store cannot write: {exc}")
        for fut in waiters:
            if not fut.done():
                fut.set_exception(error)

    async def _reload(self, cause: BaseException) -> None:
        """Memory from the database again; until that works every commit
        tries it first (reads meanwhile may see what was undone)."""
        if self._reloading:
            raise PgStoreWriteError("the store cannot write: recovering from a failed write")
        self._reloading = True
        try:
            self._idx = await self._read_all(self._p())
            self._broken = None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._broken = cause
            raise PgStoreWriteError(f"the store cannot write: {exc}") from exc
        finally:
            self._reloading = False

"""Several CSE worker processes on one PostgreSQL store (docs/scaling.md).

Why PostgreSQL is the only coordination point: the workers share nothing
else (no broker, no files), so a worker started on another machine with the
same configuration joins the same CSE.  Two things are coordinated here,
both with PostgreSQL advisory locks keyed by the store's schema (the locks
are per database; two CSEs in two schemas never meet):

* **The write gate** (:meth:`PgCoordinator.gate`).  The pipeline reads,
  computes and then commits (cse.core.executor): a container's
  ``cni``/``cbs``, the oldest instance to evict at ``mni``, a session's
  request history, a parent's child count for a quota.  One process keeps
  that atomic by not suspending between the reads and the in-memory apply;
  several processes cannot.  Every request that may change the store
  (every operation but RETRIEVE and NOTIFY) and every timer job that
  changes it (expiry) therefore runs from its first read to its commit
  holding one session-level advisory lock, plus an in-process lock for the
  requests of this worker.  Reads come from the database
  (:class:`PgSharedStore`, never a private in-memory copy), so the holder
  sees every commit made before it.  That is the simplest correct choice:
  a per-row ``SELECT ... FOR UPDATE`` in one transaction would need every
  read of a request to go through that request's connection, and the CSFs
  read through the store port, not through a transaction handed to them.
  The price: writes of the whole CSE run one at a time (reads do not wait);
  docs/scaling.md says what that means for throughput.
* **Leadership per job kind** (:meth:`PgCoordinator.leads`): expiry,
  store-and-forward flushing, outbox delivery and registration with the
  registrar each run in one worker only, the one holding that kind's
  session-level ``pg_try_advisory_lock``.  A worker that dies drops its
  connection and PostgreSQL releases its locks; another worker asks again
  within :data:`LEAD_POLL_S` and takes the job over.

Outbox delivery (docs/architecture.md "The outbox"): every worker commits
its notifications as outbox entries (named with a per-worker tag so the
names never collide); only the outbox leader sends, reading the entries in
commit order (the ``kv.seq`` a sequence gives them inside the gated
transaction), so each is claimed once and a subscription's notifications
keep their order.  A trigger (schema version 3) NOTIFYs the leader of a
new entry; it also looks every :data:`LEAD_POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

from cse.core.errors import InternalServerError
from cse.core.ports import Delete, Doc, Op
from cse.store.pg_store import _OP, PgDirectStore, _op_args

__all__ = ["PgCoordinator", "PgSharedStore", "LEAD_POLL_S", "JOB_KINDS", "OUTBOX_CHANNEL", "worker_tag"]

log = logging.getLogger("cse.workers")

#: How often a worker that does not lead a job asks again (and how late a
#: job may notice work another worker scheduled): the takeover time.
LEAD_POLL_S = 1.0

#: At most this many writers of one worker in a row keep the write gate
#: without unlocking it while others of the same worker wait (gate()).
HANDOVER_MAX = 8

#: The jobs that run in one worker only, and their advisory lock numbers.
JOB_KINDS = {"gate": 0, "expiry": 1, "store_and_forward": 2, "outbox": 3, "registrar": 4}

#: The channel the outbox trigger NOTIFYs (cse.store.pg_schema version 3).
OUTBOX_CHANNEL = "cse_outbox"

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def worker_tag() -> str:
    """A suffix unique to this worker process, for the names it gives KV entries."""
    return f"w{os.getpid():x}{secrets.token_hex(3)}"


class PgSharedStore(PgDirectStore):
    """:class:`PgDirectStore` for a worker among several: every read from the
    database; a batch without a Delete is one ``executemany`` of ``cse_op``
    (one round trip, atomic), as the in-memory store's group commit."""

    @staticmethod
    async def _write(pool: asyncpg.Pool[Any], ops: Sequence[Op], removed: list[Doc] | None) -> None:
        if any(isinstance(op, Delete) for op in ops):
            await PgDirectStore._write(pool, ops, removed)  # a Delete reports what it took
            return
        async with pool.acquire() as conn:
            await conn.executemany(_OP, [_op_args(op) for op in ops])


class PgCoordinator:
    """The write gate and the job leaderships of one worker (module docstring)."""

    def __init__(self, dsn: str, schema: str, *, connect_timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout = connect_timeout_s
        self._local = asyncio.Lock()  # this worker's writers, one at a time, before the cross-worker lock
        self._waiting = 0  # this worker's writers waiting for the gate
        self._gate_held = False  # the advisory lock is held (between two writers handing it over)
        self._handovers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate_conn: asyncpg.Connection[Any] | None = None
        self._lead_conn: asyncpg.Connection[Any] | None = None
        self._lead_lock = asyncio.Lock()  # one query at a time on the leadership connection
        self._held: set[str] = set()
        self._listeners: list[Callable[[], None]] = []

    async def _connect(self) -> asyncpg.Connection[Any]:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            self._dsn, timeout=self._timeout,
            server_settings={"search_path": self._schema, "application_name": "cse-worker"})
        return conn

    async def open(self) -> None:
        self._gate_conn = await self._connect()
        self._lead_conn = await self._connect()
        await self._lead_conn.add_listener(OUTBOX_CHANNEL, self._notified)

    async def close(self) -> None:
        """Close both connections: the locks go with them (another worker takes the jobs over)."""
        for conn in (self._gate_conn, self._lead_conn):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(*_ERRORS):
                    await conn.close(timeout=2.0)
        self._gate_conn = self._lead_conn = None
        self._gate_held = False
        self._held.clear()

    def on_outbox(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever a worker committed an outbox entry."""
        self._listeners.append(wake)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        if payload != self._schema:  # another CSE's schema in the same database
            return
        for wake in self._listeners:
            wake()

    @contextlib.asynccontextmanager
    async def gate(self) -> AsyncIterator[None]:
        """Hold the write gate (module docstring) for the block.

        When more of this worker's writers are waiting, the advisory lock is
        handed to the next one without unlocking it (two round trips fewer
        each), at most :data:`HANDOVER_MAX` times in a row, so the other
        workers' writers still get their turn."""
        self._waiting += 1
        try:
            await self._local.acquire()
        except BaseException:  # cancelled while waiting: a lock handed to it must not stay held
            self._waiting -= 1
            if self._gate_held and not self._waiting:
                task = asyncio.get_running_loop().create_task(self._release_idle())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            raise
        self._waiting -= 1
        try:
            conn = await self._gate_locked()
            try:
                yield
            finally:
                await self._gate_release(conn)
        finally:
            self._local.release()

    async def _gate_locked(self) -> asyncpg.Connection[Any]:
        """The gate connection, holding the advisory lock (taken now unless handed over)."""
        conn = self._gate_conn
        if self._gate_held and conn is not None and not conn.is_closed():
            return conn
        self._gate_held = False
        self._handovers = 0
        if conn is None or conn.is_closed():
            try:
                conn = self._gate_conn = await self._connect()
            except _ERRORS as exc:
                raise InternalServerError(f"the store cannot write: no connection for the write gate: {exc}") \
                    from exc
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1), $2)", self._schema, JOB_KINDS["gate"])
        except _ERRORS as exc:
            self._drop_gate_conn()
            raise InternalServerError(f"the store cannot write: the write gate failed: {exc}") from exc
        except BaseException:  # cancelled: granted or not, the session goes, and any lock with it
            self._drop_gate_conn()
            raise
        self._gate_held = True
        return conn

    def _drop_gate_conn(self) -> None:
        """Close the gate's session at once: PostgreSQL releases whatever it held."""
        conn, self._gate_conn = self._gate_conn, None
        self._gate_held = False
        self._handovers = 0
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _release_idle(self) -> None:
        """Unlock a gate handed over to a writer that went away."""
        async with self._local:
            conn = self._gate_conn
            if self._gate_held and conn is not None:
                await self._gate_release(conn)

    async def _gate_release(self, conn: asyncpg.Connection[Any]) -> None:
        if self._waiting and self._handovers < HANDOVER_MAX and not conn.is_closed():
            self._handovers += 1  # the next writer of this worker goes on holding it
            return
        self._gate_held = False
        self._handovers = 0
        try:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1), $2)", self._schema, JOB_KINDS["gate"])
        except _ERRORS as exc:  # the connection is gone, and the lock with it
            log.warning("write gate: unlock failed (%s); reconnecting", exc)
            self._drop_gate_conn()
        except BaseException:  # cancelled mid-unlock: drop the session rather than guess whether it ran
            self._drop_gate_conn()
            raise

    async def leads(self, kind: str) -> bool:
        """Whether this worker runs job ``kind``: it holds the lock, or gets it now."""
        key = JOB_KINDS[kind]
        async with self._lead_lock:
            conn = self._lead_conn
            try:
                if conn is None or conn.is_closed():
                    self._held.clear()  # a lost connection lost every lock
                    conn = self._lead_conn = await self._connect()
                    await conn.add_listener(OUTBOX_CHANNEL, self._notified)
                if kind in self._held:
                    await conn.execute("SELECT 1")  # still connected: still holding it
                    return True
                got = bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1), $2)", self._schema, key))
            except BaseException as exc:  # cancelled too: whether the lock was granted is unknown
                if not isinstance(exc, _ERRORS):
                    self._held.clear()
                    if conn is not None and not conn.is_closed():
                        conn.terminate()
                    self._lead_conn = None
                    raise
                log.warning("leadership of %s: %s", kind, exc)
                self._held.clear()
                if conn is not None:
                    with contextlib.suppress(*_ERRORS):
                        conn.terminate()
                self._lead_conn = None
                return False
            if got:
                self._held.add(kind)
                log.info("this worker (pid %d) now runs %s", os.getpid(), kind)
            return got

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

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
  holding one session-level advisory lock; the writers of the worker that
  holds it run together, as in one process.  Once it holds the lock, the gate brings the
  worker's store up to every commit made before (``sync``: the change log
  of cse.store.pg_shared), so the holder reads, from memory, everything
  the other workers committed.  That is the simplest correct choice:
  a per-row ``SELECT ... FOR UPDATE`` in one transaction would need every
  read of a request to go through that request's connection, and the CSFs
  read through the store port, not through a transaction handed to them.
  The price: one worker writes at a time (reads do not wait);
  docs/scaling.md says what that means for throughput.  While the worker
  holds the gate, its store writes through the gate's own session
  (:meth:`PgCoordinator.writing`), so the lock cannot pass on while a
  gated commit may still land.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from cse.core.errors import InternalServerError

__all__ = ["PgCoordinator", "HOLD_MAX", "LEAD_POLL_S", "JOB_KINDS", "OUTBOX_CHANNEL", "worker_tag"]

log = logging.getLogger("cse.workers")

#: How often a worker that does not lead a job asks again (and how late a
#: job may notice work another worker scheduled): the takeover time.
LEAD_POLL_S = 1.0

#: At most this many writers of one worker enter the write gate in one
#: turn of holding its lock; then the other workers' writers get theirs (gate()).
HOLD_MAX = 32

#: How long a worker keeps the write gate's lock after its last writer
#: left, for its next writer (a client's next request arrives about one
#: round trip later): without it, every group of writes pays a lock, a sync
#: and an unlock.
GRACE_S = 0.002

#: The jobs that run in one worker only, and their advisory lock numbers.
JOB_KINDS = {"gate": 0, "expiry": 1, "store_and_forward": 2, "outbox": 3, "registrar": 4, "missing_data": 5}

#: The channel the outbox trigger NOTIFYs (cse.store.pg_schema version 3).
OUTBOX_CHANNEL = "cse_outbox"

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def worker_tag() -> str:
    """A suffix unique to this worker process, for the names it gives KV entries."""
    return f"w{os.getpid():x}{secrets.token_hex(3)}"


class PgCoordinator:
    """The write gate and the job leaderships of one worker (module docstring)."""

    def __init__(self, dsn: str, schema: str, *, connect_timeout_s: float = 10.0,
                 sync: Callable[[], Awaitable[None]] | None = None,
                 init: Callable[[asyncpg.Connection[Any]], Awaitable[None]] | None = None) -> None:
        """``sync`` brings the worker's store up to every commit made so far
        (cse.store.pg_shared); the gate calls it once the lock is held.
        ``init`` prepares each new connection (the store's codecs: its
        writes go through the gate's session, :meth:`writing`)."""
        self._sync = sync
        self._init = init
        self._dsn = dsn
        self._schema = schema
        self._timeout = connect_timeout_s
        self._taking = asyncio.Lock()  # one lock or unlock at a time on the gate connection
        self._turn_over = asyncio.Event()  # set whenever the lock is not held
        self._waiting = 0  # this worker's writers waiting to enter
        self._inside = 0  # this worker's writers in the gate
        self._entries = 0  # writers let in since the lock was taken
        self._gate_held = False  # this worker holds the advisory lock
        self._tasks: set[asyncio.Task[None]] = set()
        self._grace: asyncio.TimerHandle | None = None  # the lock kept a moment after the last writer left
        self._gate_conn: asyncpg.Connection[Any] | None = None
        self._lead_conn: asyncpg.Connection[Any] | None = None
        self._lead_lock = asyncio.Lock()  # one query at a time on the leadership connection
        self._held: set[str] = set()
        self._listeners: list[Callable[[], None]] = []

    async def _connect(self) -> asyncpg.Connection[Any]:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            self._dsn, timeout=self._timeout,
            server_settings={"search_path": self._schema, "application_name": "cse-worker"})
        if self._init is not None:
            await self._init(conn)
        return conn

    async def open(self) -> None:
        self._gate_conn = await self._connect()
        self._lead_conn = await self._connect()
        await self._lead_conn.add_listener(OUTBOX_CHANNEL, self._notified)

    async def close(self) -> None:
        """Close both connections: the locks go with them (another worker takes the jobs over).
        A release still running (the grace's) is cancelled first: closing the
        session under its unlock would leave asyncpg a reply it no longer expects."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._gate_conn, self._lead_conn):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(*_ERRORS):
                    await conn.close(timeout=2.0)
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._gate_conn = self._lead_conn = None
        self._gate_held = False
        self._turn_over.set()
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

        The worker takes the advisory lock, brings its store up to every
        commit made before (``sync``), and then lets its writers in
        together, as in one process: each reads and applies its commit in
        memory without suspending, and the commits are written in that
        order (cse.store.pg_shared), so several writes share one
        transaction and its flush.  After :data:`HOLD_MAX` writers in one
        turn the worker lets the others have the lock: it admits no more,
        and the last one out unlocks (its commit written, every one before
        it written too).  The lock also goes when no writer has been in for
        :data:`GRACE_S`."""
        await self._enter()
        try:
            yield
        finally:
            await self._leave()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[asyncpg.Connection[Any] | None]:
        """The gate's session while this worker holds the gate, else None:
        the store writes through it (cse.store.pg_shared).

        Why: PostgreSQL releases a session's advisory lock only when the
        session ends, and a session ends only once the transaction it is
        running has committed or rolled back.  Were a gated commit written
        on another connection, a worker killed with that commit in flight
        would lose the gate at once (its idle gate session ends), another
        worker would take the gate and read the change log, and the dead
        worker's commit could land after that read: the new holder would
        compute from memory that lacks it.  Taking and releasing the lock
        wait for the block (one statement at a time on the session)."""
        await self._taking.acquire()
        conn = self._gate_conn
        if not self._gate_held or conn is None or conn.is_closed():
            self._taking.release()
            yield None
            return
        try:
            yield conn
        except BaseException as exc:
            if conn.is_closed() or not isinstance(exc, asyncpg.PostgresError):
                # gone, or cancelled mid-statement: the session (and the lock) is given up
                self._drop_gate_conn()
            raise
        finally:
            self._taking.release()

    async def _enter(self) -> None:
        self._waiting += 1
        try:
            while True:
                if self._gate_held and self._entries < HOLD_MAX:
                    break
                if self._gate_held:  # this turn is full: wait for the unlock, then take a new turn
                    await self._turn_over.wait()
                    continue
                async with self._taking:
                    if not self._gate_held:
                        await self._take()
        except BaseException:  # cancelled while waiting: a lock kept for it must not stay held
            self._waiting -= 1
            self._grace_over()
            raise
        self._waiting -= 1
        self._inside += 1
        self._entries += 1

    async def _take(self) -> None:
        """Take the advisory lock and sync (under ``_taking``)."""
        conn = self._gate_conn
        if conn is None or conn.is_closed():
            try:
                conn = self._gate_conn = await self._connect()
            except _ERRORS as exc:
                raise InternalServerError(f"the store cannot write: no connection for the write gate: {exc}") \
                    from exc
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1), $2)", self._schema, JOB_KINDS["gate"])
            if self._sync is not None:
                await self._sync()  # everything committed before the lock was taken
        except _ERRORS as exc:
            self._drop_gate_conn()
            raise InternalServerError(f"the store cannot write: the write gate failed: {exc}") from exc
        except InternalServerError:  # the sync could not read the change log
            self._drop_gate_conn()
            raise
        except BaseException:  # cancelled: granted or not, the session goes, and any lock with it
            self._drop_gate_conn()
            raise
        self._gate_held = True
        self._entries = 0
        self._turn_over.clear()

    async def _leave(self) -> None:
        self._inside -= 1
        if self._inside or not self._gate_held:
            return
        if self._entries >= HOLD_MAX:
            await self._release()  # the turn is over: the other workers' writers now
        elif not self._waiting and self._grace is None:
            # keep the lock a moment for this worker's next writer (its client's next request)
            self._grace = asyncio.get_running_loop().call_later(GRACE_S, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        if self._gate_held and not self._inside and not self._waiting:
            task = asyncio.get_running_loop().create_task(self._release())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _release(self) -> None:
        """Unlock, unless a writer is in the gate (it unlocks when it leaves)."""
        async with self._taking:
            if self._inside or not self._gate_held:
                return
            conn = self._gate_conn
            self._gate_held = False
            self._turn_over.set()
            if conn is None or conn.is_closed():
                return
            try:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1), $2)", self._schema, JOB_KINDS["gate"])
            except _ERRORS as exc:  # the connection is gone, and the lock with it
                log.warning("write gate: unlock failed (%s); reconnecting", exc)
                self._drop_gate_conn()
            except BaseException:  # cancelled mid-unlock: drop the session rather than guess whether it ran
                self._drop_gate_conn()
                raise

    def _drop_gate_conn(self) -> None:
        """Close the gate's session at once: PostgreSQL releases whatever it held."""
        conn, self._gate_conn = self._gate_conn, None
        self._gate_held = False
        self._turn_over.set()
        if conn is not None and not conn.is_closed():
            conn.terminate()

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
    def holding_gate(self) -> bool:
        """Whether this worker holds the write gate's lock now."""
        return self._gate_held

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

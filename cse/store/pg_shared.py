"""The store of one worker among several on one PostgreSQL schema (docs/scaling.md).

Why a copy in memory at all: with every read a query, a RETRIEVE cost
three to four round trips and a CREATE six or more, and the write gate was
held across all of them (bench ``pg``: 3.6x and 7.4x the embedded store's
CPU per request).  Each worker now holds the documents in memory, as the
one-process :class:`~cse.store.pg_store.PostgresStore` does, and keeps them
current from the **change log** (schema version 4, cse.store.pg_schema):

* every commit a worker makes writes, in the same transaction, one ``chg``
  row: a number from ``chg_head`` (commit order, no gaps), the commit's id
  and its operations;
* :meth:`PgSharedStore.sync` returns once memory holds every row committed
  before it was called: it reads the rows after the last one applied (one
  indexed query) and applies the other workers' operations in order; its
  own rows it skips, as they were applied when committed;
* calls while a round is in flight wait for the next round (that one starts
  after them), so concurrent requests share one query.

Who calls ``sync``, which is what closes the stale-read window:

* the write gate (cse.store.pg_coord), after taking the cross-worker lock:
  a writer reads, from memory, everything committed before it, and nobody
  else commits until it has committed (the read-compute-commit of
  cse.core.executor stays atomic across workers);
* the dispatcher, before every request (cse.core.dispatcher ``refresh``):
  a request that arrives after another worker acknowledged a write sees
  it, as it did when every read was a query;
* a background task whenever a
  NOTIFY on ``cse_chg`` says another worker committed (LISTEN/NOTIFY alone
  cannot close the window: the NOTIFY may arrive after the answer reached
  a client), or every second without one, so an idle worker stays close
  to the head (at most one round per :data:`SYNC_BUSY_S` for the NOTIFYs:
  a busy worker's requests read the log anyway).

A worker more than :data:`~cse.store.pg_schema.CHANGE_LOG_KEEP` rows behind
(the log was pruned past it), or whose memory refused a row, loads every
document again from one snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from cse.core.errors import InternalServerError
from cse.core.ports import CommitResult, Delete, KvDelete, KvPut, Op, Put
from cse.store.indexed import IndexedDocs
from cse.store.pg_coord import PgCoordinator, worker_tag
from cse.store.pg_store import PostgresStore, _init_connection, _op_args

__all__ = ["PgSharedStore", "CHANGE_CHANNEL", "SYNC_IDLE_S"]

log = logging.getLogger("cse.workers")

#: The channel ``cse_op('g')`` NOTIFYs (schema version 4).
CHANGE_CHANNEL = "cse_chg"

#: An idle worker reads the change log at least this often.
SYNC_IDLE_S = 1.0

#: A NOTIFY within this long after a round adds no round of its own.
SYNC_BUSY_S = 0.05

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_NO_DOC = (None,) * 10


def _encode(ops: Sequence[Op]) -> list[list[Any]]:
    """A commit's operations as the JSON of its change-log row."""
    out: list[list[Any]] = []
    for op in ops:
        if isinstance(op, Put):
            out.append(["p", op.doc])
        elif isinstance(op, Delete):
            out.append(["d", op.ri])
        elif isinstance(op, KvPut):
            out.append(["k", op.ns, op.key, op.value])
        else:
            out.append(["x", op.ns, op.key])
    return out


def _decode(rows: list[list[Any]]) -> list[Op]:
    ops: list[Op] = []
    for row in rows:
        kind = row[0]
        if kind == "p":
            ops.append(Put(row[1]))
        elif kind == "d":
            ops.append(Delete(row[1]))
        elif kind == "k":
            ops.append(KvPut(row[1], row[2], row[3]))
        elif kind == "x":
            ops.append(KvDelete(row[1], row[2]))
        else:
            raise ValueError(f"change log: unknown operation {kind!r}")
    return ops


def _fail(waiters: asyncio.Future[None] | None, error: InternalServerError) -> None:
    """Fail a round's callers (a background round may have none: the error counts as retrieved)."""
    if waiters is not None and not waiters.done():
        waiters.set_exception(error)
        waiters.exception()


class PgSharedStore(PostgresStore):
    """:class:`PostgresStore` kept current with the other workers' commits (module docstring)."""

    def __init__(self, dsn: str, **kw: Any) -> None:
        super().__init__(dsn, **kw)
        #: the write gate and job leaderships of this worker (cse.store.pg_coord);
        #: while it holds the gate, commits are written through the gate's session
        self.coordinator = PgCoordinator(dsn, self._schema, connect_timeout_s=self._timeout, sync=self.sync,
                                         init=_init_connection)
        self._tag = worker_tag()
        self._ids = itertools.count(1)
        self._gen = 0  # the last change-log row memory holds
        self._epoch = 0  # bumped by every full load: a round that straddles one starts again
        self._loading = False  # a full load after falling behind is running
        self._last_round = 0.0  # when the last round ended (time.monotonic)
        self._mine: set[str] = set()  # ids of this worker's commits applied in memory, not yet seen in the log
        self._pending: asyncio.Future[None] | None = None  # the next round's callers
        self._kick = asyncio.Event()
        self._poke = asyncio.Event()  # a NOTIFY arrived
        self._syncer: asyncio.Task[None] | None = None
        self._idler: asyncio.Task[None] | None = None
        self._listen: asyncpg.Connection[Any] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        await super().open()
        loop = asyncio.get_running_loop()
        self._syncer = loop.create_task(self._sync_loop())
        self._idler = loop.create_task(self._idle_loop())

    async def close(self) -> None:
        for task in (self._idler, self._syncer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._idler = self._syncer = None
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(InternalServerError("the store is closing"))
            self._pending.exception()  # retrieved: nobody may be waiting
        await self._unlisten()
        await super().close()

    async def _read_all(self, pool: asyncpg.Pool[Any]) -> IndexedDocs:
        """Every document and the change-log number they include, from one snapshot."""
        idx = IndexedDocs()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            gen = int(await conn.fetchval("SELECT gen FROM chg_head"))
            idx.load(row[0] for row in await conn.fetch("SELECT doc FROM doc ORDER BY seq"))
            for ns, key, value in await conn.fetch("SELECT ns, key, value FROM kv ORDER BY seq"):
                idx.kv_set(ns, key, value)
        # no await from here until the caller installs ``idx``: memory and number change together
        self._gen = gen
        self._epoch += 1
        self._mine.clear()  # a commit still in flight comes back through the log as anyone's
        return idx

    # ------------------------------------------------------------------ writes

    async def _enqueue(self, ops: Sequence[Op], cid: str) -> CommitResult:
        """As :meth:`PostgresStore._enqueue`, under a commit id of this worker
        (logged for the other workers; skipped when it comes back)."""
        cid = f"{self._tag}.{next(self._ids)}"
        self._mine.add(cid)
        try:
            return await super()._enqueue(ops, cid)
        except (ValueError, TypeError):  # refused before it was queued: it never reaches the log
            self._mine.discard(cid)
            raise

    @contextlib.asynccontextmanager
    async def _connection(self, pool: asyncpg.Pool[Any]) -> AsyncIterator[Any]:
        """The gate's session while this worker holds the gate (why:
        :meth:`PgCoordinator.writing`), else one of the pool's."""
        async with self.coordinator.writing() as gated:
            if gated is not None:
                yield gated
                return
        async with pool.acquire() as conn:
            yield conn

    def _group_args(self, group: list[tuple[Sequence[Op], asyncio.Future[None], str]]) -> list[tuple[Any, ...]]:
        args: list[tuple[Any, ...]] = []
        for batch, _, cid in group:
            if not batch:
                continue
            args.extend(_op_args(op) for op in batch)
            args.append(("g", *_NO_DOC[:-1], _encode(batch), None, cid, None))
        return args

    async def committed_kv_items(self, ns: str) -> list[tuple[str, Any]]:
        """``kv_items`` as the database holds it: commits of this worker
        applied in memory but not written yet are not there (the outbox
        relay sends only what is committed)."""
        rows = await self._p().fetch("SELECT key, value FROM kv WHERE ns = $1 ORDER BY seq", ns)
        return [(row[0], row[1]) for row in rows]

    # ------------------------------------------------------------------- sync

    def sync(self) -> asyncio.Future[None]:
        """Done once memory holds every commit made before this call (module docstring)."""
        if self._syncer is None:
            raise RuntimeError("PgSharedStore.sync() before open() or after close()")
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
            self._kick.set()
        return asyncio.shield(self._pending)

    async def _sync_loop(self) -> None:
        """One round at a time; callers that came during a round are the next round's."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            waiters, self._pending = self._pending, None
            try:
                await self._catch_up()
                self._last_round = time.monotonic()
            except asyncio.CancelledError:  # closing: nobody may wait for this round forever
                _fail(waiters, InternalServerError("the store is closing"))
                raise
            except _ERRORS as exc:
                _fail(waiters, InternalServerError(f"the store cannot be read: {exc}"))
                continue
            except Exception as exc:  # a bug: fail the callers, keep the loop
                log.exception("change log: round failed")
                _fail(waiters, InternalServerError(f"the store cannot be read: {exc}"))
                continue
            if waiters is not None and not waiters.done():
                waiters.set_result(None)

    async def _catch_up(self) -> None:
        """Apply the change-log rows after the last one memory holds."""
        pool = self._p()
        while True:
            epoch, since = self._epoch, self._gen
            rows = await pool.fetch("SELECT gen, cid, ops FROM chg WHERE gen > $1 ORDER BY gen", since)
            if self._epoch != epoch or self._reloading or self._loading:
                continue  # memory was loaded again meanwhile: read from its number
            if rows and rows[0][0] != since + 1:
                log.warning("change log: this worker is behind the kept log (at %d, log from %d); "
                            "loading every document again", since, rows[0][0])
                await self._full_load()
                return
            for gen, cid, ops in rows:
                if cid in self._mine:
                    self._mine.discard(cid)
                else:
                    try:
                        self._idx.apply(_decode(ops))
                    except (ValueError, TypeError, KeyError) as exc:
                        log.error("change log: row %d does not apply here (%s); loading every document again",
                                  gen, exc)
                        await self._full_load()
                        return
                self._gen = gen
            return

    async def _full_load(self) -> None:
        """Memory from one snapshot again.  Commits go on meanwhile: one
        applied to the memory being replaced comes back through the log
        (``_read_all`` forgets which commits were this worker's)."""
        if self._reloading:
            return
        self._loading = True
        try:
            self._idx = await self._read_all(self._p())
        finally:
            self._loading = False

    # ---------------------------------------------------- other workers' news

    async def _idle_loop(self) -> None:
        """Read the log when told another worker committed, and every
        :data:`SYNC_IDLE_S` without news (module docstring)."""
        while True:
            if self._listen is None or self._listen.is_closed():
                await self._relisten()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), SYNC_IDLE_S)
            self._poke.clear()
            if time.monotonic() - self._last_round < SYNC_BUSY_S:
                continue  # requests are reading the log anyway: no extra round for each NOTIFY
            with contextlib.suppress(InternalServerError):
                await self.sync()

    async def _relisten(self) -> None:
        await self._unlisten()
        try:
            conn: asyncpg.Connection[Any] = await asyncpg.connect(
                self._dsn, timeout=self._timeout,
                server_settings={"search_path": self._schema, "application_name": "cse-worker"})
            await conn.add_listener(CHANGE_CHANNEL, self._notified)
        except _ERRORS as exc:
            log.warning("change log: cannot listen for other workers' commits (%s); reading it every %.0f s",
                        exc, SYNC_IDLE_S)
            return
        self._listen = conn

    async def _unlisten(self) -> None:
        conn, self._listen = self._listen, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*_ERRORS):
                await conn.close(timeout=2.0)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        schema, _, tag = str(payload).partition(" ")
        if schema == self._schema and tag != self._tag:  # not another CSE's, nor this worker's own
            self._poke.set()

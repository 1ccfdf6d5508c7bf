"""Crash-loop durability harness: kill -9 CSEs of a pair under load.

Why: the store promises that an acknowledged write survives ``kill -9``
and the SMG that a 1001-accepted store-and-forward request is delivered
exactly once. Both are claims about *every* crash moment, so this harness
crashes a real pair many times at random (seeded) moments while concurrent
load runs, and then checks every acknowledged operation.

What runs (see :func:`run_crash_loop`):

* plain workers, on both CSEs, each owning its own containers under the
  CSE's ``load`` AE: create containers (``lbl`` ``["v0"]``), create
  contentInstances in them, update a container's ``lbl`` (``["v<k>"]``),
  delete contentInstances and containers;
* store-and-forward workers, one per direction (AE1 -> AE2's ``sfbox`` via
  CSE1, AE2 -> AE1's ``sfbox`` via CSE2): session-based CREATEs of a
  contentInstance labelled ``sf:<marker>``, stored by a policy whose window
  is open every other second (so deliveries, and crashes during them,
  happen throughout the run) and answered 1001;
* an immediate session worker: session-based UPDATEs of AE2's
  ``container1`` from AE1, through both CSEs;
* notify workers, one per CSE: contentInstances (``con`` a marker) in the
  ``nbox`` container of the CSE's ``notif`` AE, which has a subscription
  notifying a slow receiver (so notifications are pending at the kills);
  every notification of an acknowledged create must reach it, at least
  once (docs/architecture.md "The outbox"; duplicates are counted, not
  failures);
* the killer: after a seeded random delay, SIGKILLs CSE1 or CSE2 (seeded
  choice), sometimes right after firing a burst of concurrent requests at
  it, restarts it on the same port and store, waits for READY. A CSE
  served by several workers on PostgreSQL (``--workers N``,
  docs/scaling.md; ``CrashLoopConfig.workers``) is not killed whole: one
  of its workers is (seeded choice), the load goes on against the others,
  and the killer waits for the supervisor to start a replacement.

The ledger (:class:`Ledger`) records every request with what its answer
allows: acknowledged (2xxx, 1001) effects must be there; a request whose
connection failed may or may not have been applied, but never twice, and
never in a way that undoes an acknowledged one. Any other answer is an
anomaly and fails the run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import CSEProcess, HttpReply
from tests.e2e.test_intercse_helpers import register_ae
from tests.e2e.test_pg_workers import leader
from tests.flow2_helpers import COMPLETED, PENDING, rqi
from tests.notify_receiver import Receiver
from tests.waiting import until

from .pair import Pair, call, routes_up, worker_pids

__all__ = ["CrashLoopConfig", "CrashLoopReport", "Ledger", "run_crash_loop"]

SF_POLICY_SCH = ["*/2 * * * * * *"]  # open every other second: delivery runs all along
ANY_CSE = (0, 1)


@dataclass
class CrashLoopConfig:
    """Size and timing of one run."""

    seed: int
    kills: int = 20
    delay: tuple[float, float] = (0.4, 1.6)  # seconds of load between a restart and the next kill
    burst_share: float = 0.35                  # share of kills fired right into a burst
    burst_size: int = 24
    plain_workers: int = 2                     # per CSE
    pace: float = 0.01                         # seconds between one worker's requests
    victims: tuple[int, ...] = (0, 1)          # the CSEs the killer crashes (0: CSE1, 1: CSE2)
    workers: tuple[int, ...] = ()              # those served by --workers N: kill -9 one worker, not the CSE


@dataclass
class Res:
    """What the ledger knows about one plain resource."""

    cse: int
    path: str                  # CSE-relative structured path
    kind: str                  # "cnt" or "cin"
    parent: Res | None
    value: Any                 # acknowledged lbl (cnt) or con (cin)
    created: bool              # acknowledged create (else: maybe created)
    maybe_values: set[str] = field(default_factory=set)  # unacknowledged updates since `value`
    deleted: bool = False      # acknowledged delete
    maybe_deleted: bool = False
    acked_ops: int = 0         # acknowledged requests on it (create, updates, delete)

    @property
    def usable(self) -> bool:
        """Safe to send more requests to: known to exist, nothing uncertain about it."""
        return self.created and not self.deleted and not self.maybe_deleted and \
            (self.parent is None or self.parent.usable)


@dataclass
class SfReq:
    """One session-based store-and-forward CREATE."""

    marker: str
    ingress: int               # the CSE it was sent to (the destination is the other one)
    request_ri: str | None     # the <request> of a 1001; None when unacknowledged
    rqi: str = ""


@dataclass
class NotifyReq:
    """One CREATE under a subscription: its notification carries ``marker``."""

    marker: str
    cse: int
    acked: bool


@dataclass
class Ledger:
    """Every request of the run and what its answer promises."""

    resources: list[Res] = field(default_factory=list)
    sf: list[SfReq] = field(default_factory=list)
    session_updates: list[tuple[str, bool]] = field(default_factory=list)  # (lbl value, acknowledged)
    notify: list[NotifyReq] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    acked: int = 0
    unknown: int = 0

    def anomaly(self, what: str, reply: HttpReply) -> None:
        self.anomalies.append(f"{what}: rsc {reply.rsc} {str(reply.body)[:200]}")


@dataclass
class CrashLoopReport:
    """Figures of one run (printed as the summary line)."""

    seed: int
    kills: int = 0
    restarts: int = 0
    job_holder_kills: int = 0  # kills of the worker running store-and-forward flushing (--workers)
    torn_tails: int = 0        # restarts that logged a dropped torn journal record
    acked_verified: int = 0
    unknown: int = 0
    sf_acked: int = 0
    sf_delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    notify_acked: int = 0      # acknowledged creates under a subscription
    notify_delivered: int = 0  # ... whose notification reached the receiver
    notify_lost: int = 0       # ... whose notification never came
    notify_duplicates: int = 0  # extra copies (at least once: what was in flight at a kill)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"CRASH LOOP seed={self.seed} kills={self.kills} restarts={self.restarts} "
                f"job_holder_kills={self.job_holder_kills} "
                f"torn_tails_dropped={self.torn_tails} acked_ops_verified={self.acked_verified} "
                f"unacked_ops={self.unknown} sf_acked={self.sf_acked} sf_delivered={self.sf_delivered} "
                f"lost={self.lost} duplicates={self.duplicates} notifications_acked={self.notify_acked} "
                f"notifications_delivered={self.notify_delivered} notifications_lost={self.notify_lost} "
                f"notification_duplicates={self.notify_duplicates} problems={len(self.problems)} "
                f"time={self.seconds:.1f}s")


class CrashLoop:
    """One run (module docstring)."""

    def __init__(self, pair: Pair, cfg: CrashLoopConfig) -> None:
        self.pair = pair
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.ledger = Ledger()
        self.report = CrashLoopReport(cfg.seed)
        self.up = (asyncio.Event(), asyncio.Event())
        for ev in self.up:
            ev.set()
        self.stopping = False
        self._names = itertools.count()
        self._bursts: list[asyncio.Task[None]] = []
        self.notified = Receiver(delay=0.02)  # slow enough for notifications to be pending at a kill
        self.notif_aei: list[str] = []

    # -- requests (each records its outcome) ------------------------------------------
    async def create_cnt(self, i: int, w: str) -> Res | None:
        p = self.pair
        rn = f"{w}c{next(self._names)}"
        parent = f"{p.cb(i)}/load"
        res = Res(i, f"{parent}/{rn}", "cnt", None, ["v0"], created=False)
        r = await call(lambda: p.http.send("POST", f"{p.cse(i).url}/{parent}", fr=p.load_aei[i], ty=3,
                                           body={"m2m:cnt": {"rn": rn, "lbl": ["v0"]}}))
        return self._settle_create(res, r)

    async def create_cin(self, i: int, w: str, cnt: Res) -> Res | None:
        p = self.pair
        rn = f"{w}i{next(self._names)}"
        con = f"con-{rn}"
        res = Res(i, f"{cnt.path}/{rn}", "cin", cnt, con, created=False)
        r = await call(lambda: p.http.send("POST", f"{p.cse(i).url}/{cnt.path}", fr=p.load_aei[i], ty=4,
                                           body={"m2m:cin": {"rn": rn, "con": con}}))
        return self._settle_create(res, r)

    def _settle_create(self, res: Res, r: HttpReply | None) -> Res | None:
        led = self.ledger
        if r is not None and r.rsc == 2001:
            res.created = True
            res.acked_ops += 1
            led.acked += 1
        elif r is None:
            led.unknown += 1
        else:
            led.anomaly(f"create {res.path}", r)
            return None
        led.resources.append(res)
        return res

    async def update_cnt(self, i: int, cnt: Res, k: int) -> None:
        p = self.pair
        v = f"v{k}"
        r = await call(lambda: p.http.send("PUT", f"{p.cse(i).url}/{cnt.path}", fr=p.load_aei[i],
                                           body={"m2m:cnt": {"lbl": [v]}}))
        if r is not None and r.rsc == 2004:
            cnt.value, cnt.maybe_values = [v], set()
            cnt.acked_ops += 1
            self.ledger.acked += 1
        elif r is None:
            cnt.maybe_values.add(v)
            self.ledger.unknown += 1
        else:
            self.ledger.anomaly(f"update {cnt.path}", r)

    async def delete(self, i: int, res: Res) -> None:
        p = self.pair
        r = await call(lambda: p.http.send("DELETE", f"{p.cse(i).url}/{res.path}", fr=p.load_aei[i]))
        if r is not None and r.rsc == 2002:
            res.deleted = True
            res.acked_ops += 1
            self.ledger.acked += 1
        elif r is None:
            res.maybe_deleted = True
            self.ledger.unknown += 1
        else:
            self.ledger.anomaly(f"delete {res.path}", r)

    async def sf_create(self, ingress: int) -> None:
        """A session-based CREATE stored by the policy at ``ingress``, for the other CSE's AE."""
        p, f = self.pair, self.pair.flow
        marker = f"m{ingress}-{next(self._names)}"
        dest_cb, dest_ae = (p.cb(1), "AE2") if ingress == 0 else (p.cb(0), "AE1")
        to = f"{p.csi(1 - ingress)}/{dest_cb}/{dest_ae}/sfbox"
        fr = f.aei1 if ingress == 0 else f.aei2
        rq = rqi(f"sf{ingress}")
        r = await call(lambda: f.send("POST", p.cse(ingress), to, fr, ty=4, rq=rq,
                                      body={"m2m:cin": {"con": marker, "lbl": [f"sf:{marker}"]}}))
        if r is not None and r.rsc == 1001:
            self.ledger.sf.append(SfReq(marker, ingress, r.body["m2m:uri"], rq))
            self.ledger.acked += 1
        elif r is None:
            self.ledger.sf.append(SfReq(marker, ingress, None, rq))
            self.ledger.unknown += 1
        else:
            self.ledger.anomaly(f"store-and-forward create {marker} via CSE{ingress + 1}", r)

    async def session_update(self, k: int) -> None:
        """An immediate session-based UPDATE of AE2's container1, sent by AE1 to CSE1."""
        p, f = self.pair, self.pair.flow
        v = f"u{k}"
        r = await call(lambda: f.send("PUT", p.cse1, f"{p.csi(1)}/{p.cb(1)}/AE2/container1", f.aei1,
                                      body={"m2m:cnt": {"lbl": [v]}}))
        if r is not None and r.rsc == 2004:
            self.ledger.session_updates.append((v, True))
            self.ledger.acked += 1
        elif r is None or self._down_answer(r):
            self.ledger.session_updates.append((v, False))
            self.ledger.unknown += 1
        else:
            self.ledger.anomaly(f"session update {v}", r)

    async def notify_create(self, i: int) -> None:
        """A contentInstance under CSE ``i``'s subscribed ``nbox``: one notification."""
        p = self.pair
        marker = f"n{i}-{next(self._names)}"
        r = await call(lambda: p.http.send("POST", f"{p.cse(i).url}/{p.cb(i)}/notif/nbox", fr=self.notif_aei[i],
                                           ty=4, body={"m2m:cin": {"con": marker}}))
        if r is not None and r.rsc == 2001:
            self.ledger.notify.append(NotifyReq(marker, i, True))
            self.ledger.acked += 1
        elif r is None:
            self.ledger.notify.append(NotifyReq(marker, i, False))
            self.ledger.unknown += 1
        else:
            self.ledger.anomaly(f"create under a subscription {marker}", r)

    @staticmethod
    def _down_answer(r: HttpReply) -> bool:
        """An answer saying the *other* CSE could not be reached (it is being
        restarted): 5103 (unreachable) or 4008 (no answer in time). The
        request may or may not have reached it."""
        return r.rsc in (5103, 4008)

    # -- workers -------------------------------------------------------------------------
    async def plain_worker(self, i: int, w: int) -> None:
        rng = random.Random(self.rng.random())
        name = f"w{i}{w}"
        mine: list[Res] = []
        k = 0
        while not self.stopping:
            await self.up[i].wait()
            live = [r for r in mine if r.usable]
            cnts = [r for r in live if r.kind == "cnt"]
            roll = rng.random()
            if not cnts or (roll < 0.15 and len(cnts) < 6):
                made = await self.create_cnt(i, name)
                if made is not None:
                    mine.append(made)
            elif roll < 0.6:
                made = await self.create_cin(i, name, rng.choice(cnts))
                if made is not None:
                    mine.append(made)
            elif roll < 0.85:
                k += 1
                await self.update_cnt(i, rng.choice(cnts), k)
            elif roll < 0.95:
                cins = [r for r in live if r.kind == "cin"]
                if cins:
                    await self.delete(i, rng.choice(cins))
            elif len(cnts) > 2:
                await self.delete(i, rng.choice(cnts))
            await asyncio.sleep(self.cfg.pace)  # load timing, not a wait for an event

    async def sf_worker(self, ingress: int) -> None:
        while not self.stopping:
            await self.up[ingress].wait()
            await self.sf_create(ingress)
            await asyncio.sleep(self.cfg.pace * 2)

    async def notify_worker(self, i: int) -> None:
        while not self.stopping:
            await self.up[i].wait()
            await self.notify_create(i)
            await asyncio.sleep(self.cfg.pace * 2)

    async def session_worker(self) -> None:
        k = 0
        while not self.stopping:
            await self.up[0].wait()
            await self.up[1].wait()
            k += 1
            await self.session_update(k)
            await asyncio.sleep(self.cfg.pace * 3)

    async def burst(self, i: int) -> None:
        """Concurrent requests at CSE ``i`` (and its S&F ingress) to kill into."""
        rng = random.Random(self.rng.random())
        name = f"b{i}"
        tasks = []
        # only containers nobody deletes: the burst's own (created earlier), never a worker's
        cnts = [r for r in self.ledger.resources if r.cse == i and r.kind == "cnt" and r.usable
                and r.path.rsplit("/", 1)[1].startswith(name)]
        for n in range(self.cfg.burst_size):
            if n % 4 == 3:
                tasks.append(self.notify_create(i))
            elif n % 3 == 0:
                tasks.append(self.sf_create(i))
            elif cnts and n % 3 == 1:
                tasks.append(self.create_cin(i, name, rng.choice(cnts)))
            else:
                tasks.append(self.create_cnt(i, name))
        await asyncio.gather(*tasks)

    # -- the killer ----------------------------------------------------------------------------
    async def killer(self) -> None:
        for _ in range(self.cfg.kills):
            await asyncio.sleep(self.rng.uniform(*self.cfg.delay))  # seeded load timing
            victim = self.rng.choice(self.cfg.victims)
            if self.rng.random() < self.cfg.burst_share:
                task = asyncio.get_running_loop().create_task(self.burst(victim))
                self._bursts.append(task)
                await asyncio.sleep(self.rng.uniform(0.0, 0.04))  # into the middle of it
            proc = self.pair.cse(victim)
            before = len(proc.lines)
            if victim in self.cfg.workers:
                await self.kill_worker(proc)
            else:
                self.up[victim].clear()
                await proc.kill()
                self.report.kills += 1
                port = proc.port
                await proc.start()  # same config, store and port; raises if start-up fails
                assert proc.port == port, (port, proc.port)
                self.report.restarts += 1
                self.up[victim].set()
            start_log = "".join(proc.lines[before:])
            if "Traceback" in start_log:
                self.report.problems.append(f"CSE{victim + 1} restart {self.report.restarts}: {start_log[-2000:]}")

    async def kill_worker(self, proc: CSEProcess) -> None:
        """SIGKILL one worker (seeded choice, mostly the one holding the jobs) of a CSE served by ``--workers N``
        and wait until its supervisor has started another in its place
        (cse/workers.py). The CSE stays up: the load goes on against the
        other workers meanwhile, which is the point (they take over its
        jobs: docs/scaling.md)."""
        pids = worker_pids(proc)
        holder = leader(proc, "store_and_forward", pids)  # its INFO line (cse/store/pg_coord.py)
        # mostly the worker holding the jobs (store-and-forward flushing, the outbox): the
        # other must take them over mid-delivery without losing or repeating a stored request
        victim = holder if holder is not None and self.rng.random() < 0.75 else self.rng.choice(pids)
        self.report.job_holder_kills += victim == holder
        os.kill(victim, signal.SIGKILL)
        self.report.kills += 1

        async def replaced() -> bool:
            now = worker_pids(proc)
            return victim not in now and len(now) == len(pids)
        await until(replaced, f"the supervisor to restart worker {victim}", 60)
        self.report.restarts += 1

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> CrashLoopReport:
        t0 = time.monotonic()
        p = self.pair
        async with self.notified:
            await self.setup()
            workers = [asyncio.create_task(self.plain_worker(i, w))
                       for i in ANY_CSE for w in range(self.cfg.plain_workers)]
            workers += [asyncio.create_task(self.sf_worker(i)) for i in ANY_CSE]
            workers += [asyncio.create_task(self.notify_worker(i)) for i in ANY_CSE]
            workers.append(asyncio.create_task(self.session_worker()))
            try:
                await self.killer()
            finally:
                self.stopping = True
                for ev in self.up:
                    ev.set()
                await asyncio.gather(*workers, *self._bursts, return_exceptions=True)
            for cse in (p.cse1, p.cse2):
                self.report.torn_tails += sum("dropped a torn/corrupt last record" in line for line in cse.lines)
            await routes_up(p)
            await self.verify()
        self.report.seconds = time.monotonic() - t0
        return self.report

    async def setup(self) -> None:
        """AE1's and AE2's ``sfbox`` and the store-and-forward policy (every hop, CREATE only)."""
        p, f = self.pair, self.pair.flow
        for i, ae, aei in ((0, "AE1", f.aei1), (1, "AE2", f.aei2)):
            r = await p.http.send("POST", f"{p.cse(i).url}/{p.cb(i)}/{ae}", fr=aei, ty=3,
                                  body={"m2m:cnt": {"rn": "sfbox"}})
            assert r.rsc == 2001, (r.rsc, r.body)
        await f.policy(SF_POLICY_SCH, hop=None, ops=1)
        for i in ANY_CSE:  # the subscribed container of each CSE's notify worker
            aei = await register_ae(p.http, p.cse(i), p.cb(i), "notif")
            self.notif_aei.append(aei)
            r = await p.http.send("POST", f"{p.cse(i).url}/{p.cb(i)}/notif", fr=aei, ty=3,
                                  body={"m2m:cnt": {"rn": "nbox"}})
            assert r.rsc == 2001, (r.rsc, r.body)
            r = await p.http.send("POST", f"{p.cse(i).url}/{p.cb(i)}/notif/nbox", fr=aei, ty=23,
                                  body={"m2m:sub": {"rn": "watch", "nu": [self.notified.url], "enc": {"net": [3]}}})
            assert r.rsc == 2001, (r.rsc, r.body)

    # -- verification -----------------------------------------------------------------------------
    async def verify(self) -> None:
        rep, led = self.report, self.ledger
        rep.unknown = led.unknown
        rep.problems.extend(led.anomalies)
        await self.verify_plain()
        await self.verify_sf()
        await self.verify_session()
        await self.verify_notify()

    def _markers(self) -> Counter[str]:
        """How often each marker arrived in a notification."""
        got: Counter[str] = Counter()
        for item in self.notified.received:
            sgn = item.sgn or {}
            cin = ((sgn.get("nev") or {}).get("rep") or {}).get("m2m:cin")
            if isinstance(cin, dict) and isinstance(cin.get("con"), str):
                got[cin["con"]] += 1
        return got

    async def verify_notify(self) -> None:
        """Every acknowledged create under a subscription was notified (at
        least once); nothing was notified that was never created."""
        rep = self.report
        acked = [n.marker for n in self.ledger.notify if n.acked]
        rep.notify_acked = len(acked)

        async def all_in() -> bool:
            got = self._markers()
            return all(m in got for m in acked)
        try:  # the notifiers work through what the kills left in their outboxes
            await until(all_in, "every acknowledged create's notification", 60)
        except AssertionError:
            pass  # counted below, one problem per lost notification
        got = self._markers()
        for marker in acked:
            if got[marker]:
                rep.notify_delivered += 1
            else:
                rep.notify_lost += 1
                rep.problems.append(f"notification of acknowledged create {marker} never came")
        rep.notify_duplicates = sum(n - 1 for n in got.values() if n > 1)
        strangers = set(got) - {n.marker for n in self.ledger.notify}
        if strangers:
            rep.problems.append(f"notified but never created: {sorted(strangers)[:5]}")

    async def tree(self, i: int, path: str) -> dict[str, dict[str, Any]]:
        """Every resource below ``path`` at CSE ``i`` by CSE-relative path (rcn=4
        RETRIEVEs, resumed at the Content Offset while the CSE says the
        result is partial: docs/onem2m.md, ``[limits] max_result``)."""
        p = self.pair
        fr = p.load_aei[i] if "load" in path else (p.flow.aei1 if i == 0 else p.flow.aei2)
        out: dict[str, dict[str, Any]] = {}

        def walk(base: str, node: dict[str, Any]) -> None:
            for key, kids in node.items():
                if key.startswith("m2m:") and isinstance(kids, list):
                    for kid in kids:
                        kp = f"{base}/{kid['rn']}"
                        out[kp] = {**kid, "_kind": key[4:]}
                        walk(kp, kid)
        ofst = 0
        while True:
            query = f"?rcn=4&ofst={ofst}" if ofst else "?rcn=4"
            r = await p.http.send("GET", f"{p.cse(i).url}/{path}{query}", fr=fr)
            assert r.rsc == 2000, (path, r.rsc, r.body)
            (root,) = r.body.values()
            walk(path, root)
            if r.headers.get("X-M2M-CTS") != "1":
                return out
            nxt = int(r.headers["X-M2M-CTO"])
            assert nxt > ofst, (path, "a partial result must move on", ofst, nxt)
            ofst = nxt

    async def verify_plain(self) -> None:
        """Acknowledged creates exist with their content, acknowledged updates
        show their value (or a later unacknowledged one), acknowledged deletes
        are gone; unacknowledged creates/deletes may have happened or not."""
        rep = self.report
        trees = [await self.tree(i, f"{self.pair.cb(i)}/load") for i in ANY_CSE]
        for res in self.ledger.resources:
            doc = trees[res.cse].get(res.path)
            chain = [res] + ([res.parent] if res.parent is not None else [])
            must_be_gone = any(r.deleted for r in chain)
            may_be_gone = any(r.maybe_deleted or not r.created for r in chain)
            bad = len(rep.problems)
            if must_be_gone and doc is not None:
                rep.problems.append(f"{res.path}: acknowledged delete, still there")
            elif doc is None and not must_be_gone and not may_be_gone:
                rep.problems.append(f"{res.path}: acknowledged create, missing (lost)")
                rep.lost += 1
            elif doc is not None and res.kind == "cin" and doc.get("con") != res.value:
                rep.problems.append(f"{res.path}: con {doc.get('con')!r}, expected {res.value!r}")
            elif doc is not None and res.kind == "cnt":
                allowed = [res.value, *([v] for v in res.maybe_values)]
                if doc.get("lbl") not in allowed:
                    rep.problems.append(f"{res.path}: lbl {doc.get('lbl')}, acknowledged {res.value} "
                                        f"(or unacknowledged {sorted(res.maybe_values)})")
            if len(rep.problems) == bad:
                rep.acked_verified += res.acked_ops
        # nothing exists that nobody asked for
        known = {(r.cse, r.path) for r in self.ledger.resources}
        for i in ANY_CSE:
            for path in trees[i]:
                if (i, path) not in known:
                    rep.problems.append(f"CSE{i + 1} {path}: exists but was never requested")

    async def verify_sf(self) -> None:
        rep, p, f = self.report, self.pair, self.pair.flow
        acked = [s for s in self.ledger.sf if s.request_ri is not None]
        rep.sf_acked = len(acked)

        async def settled(s: SfReq) -> dict[str, Any] | None:
            fr = f.aei1 if s.ingress == 0 else f.aei2
            r = await p.http.send("GET", f"{p.cse(s.ingress).url}/{s.request_ri}", fr=fr)
            assert r.rsc == 2000, (s.marker, r.rsc, r.body)
            req = r.body["m2m:req"]
            return req if req["rs"] != PENDING else None

        for s in acked:  # windows open every other second: wait for each outcome
            req = await until(lambda s=s: settled(s), f"stored request {s.marker} to be delivered", 60)
            if req["rs"] != COMPLETED or req["ors"]["rsc"] != 2001:
                rep.problems.append(f"stored request {s.marker}: rs {req['rs']} ors {req.get('ors')}")
        counts: dict[str, int] = {}
        copies: dict[str, list[str]] = {}
        for i in ANY_CSE:
            box = f"{p.cb(i)}/{'AE1' if i == 0 else 'AE2'}/sfbox"
            for doc in (await self.tree(i, box)).values():
                for lbl in doc.get("lbl", []):
                    if lbl.startswith("sf:"):
                        counts[lbl[3:]] = counts.get(lbl[3:], 0) + 1
                        copies.setdefault(lbl[3:], []).append(f"{doc['ri']} ct {doc['ct']}")
        # discovery agrees with the tree walk (the count the lead can trust)
        for i in ANY_CSE:
            box = f"{p.cb(i)}/{'AE1' if i == 0 else 'AE2'}/sfbox"
            aei = f.aei1 if i == 0 else f.aei2
            uris: set[str] = set()
            ofst = 0
            while True:  # resumed at the Content Offset while partial ([limits] max_result)
                more = f"&ofst={ofst}" if ofst else ""
                r = await p.http.send("GET", f"{p.cse(i).url}/{box}?fu=1&ty=4&lim=100000{more}", fr=aei)
                assert r.rsc == 2000, (r.rsc, r.body)
                uris.update(r.body.get("m2m:uril", []))
                if r.headers.get("X-M2M-CTS") != "1":
                    break
                assert int(r.headers["X-M2M-CTO"]) > ofst, (box, "a partial result must move on")
                ofst = int(r.headers["X-M2M-CTO"])
            found = len(uris)
            mine = sum(n for m, n in counts.items() if m.startswith(f"m{1 - i}-"))
            if found != mine:
                rep.problems.append(f"CSE{i + 1} sfbox: discovery finds {found}, the tree {mine}")
        for s in self.ledger.sf:
            n = counts.get(s.marker, 0)
            if n > 1:
                rep.duplicates += n - 1
                rep.problems.append(f"stored request {s.marker} (rqi {s.rqi}, <request> {s.request_ri}) "
                                    f"delivered {n} times: {copies[s.marker]}")
            if s.request_ri is not None:
                if n == 0:
                    rep.lost += 1
                    rep.problems.append(f"stored request {s.marker} (1001) never delivered")
                else:
                    rep.sf_delivered += 1
                    rep.acked_verified += 1
        strangers = set(counts) - {s.marker for s in self.ledger.sf}
        if strangers:
            rep.problems.append(f"delivered but never sent: {sorted(strangers)[:5]}")

    async def verify_session(self) -> None:
        rep, p, f = self.report, self.pair, self.pair.flow
        for cse in (p.cse1, p.cse2):
            sess = await f.session_at(cse)
            if sess.get("sst") != 2:
                rep.problems.append(f"session at {cse.url}: sst {sess.get('sst')}")
        cnt = await f.container()
        acked = [v for v, ok in self.ledger.session_updates if ok]
        if acked:
            last = self.ledger.session_updates.index((acked[-1], True))
            allowed = [[acked[-1]], *([v] for v, _ in self.ledger.session_updates[last + 1:])]
            if cnt.get("lbl") not in allowed:
                rep.problems.append(f"container1 lbl {cnt.get('lbl')}, acknowledged {acked[-1]}")
            rep.acked_verified += 1
        # the session still carries requests: an immediate one and a stored one
        r = await f.send("PUT", p.cse1, f"{p.csi(1)}/{p.cb(1)}/AE2/container1", f.aei1,
                         body={"m2m:cnt": {"lbl": ["after"]}})
        if r.rsc != 2004:
            rep.problems.append(f"session update after the run: {r.rsc} {r.body}")
        await self.sf_create(0)
        last = self.ledger.sf[-1]
        if last.request_ri is None:
            rep.problems.append("store-and-forward create after the run was not accepted")
            return
        done = await f.poll_request(last.request_ri, lambda q: q["rs"] != PENDING, "the last stored request", 30)
        if done["rs"] != COMPLETED or done["ors"]["rsc"] != 2001:
            rep.problems.append(f"store-and-forward create after the run: {done}")


async def run_crash_loop(pair: Pair, cfg: CrashLoopConfig) -> CrashLoopReport:
    """Run the crash loop on ``pair`` (already started, session established)."""
    return await CrashLoop(pair, cfg).run()

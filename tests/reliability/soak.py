"""Soak harness: fixed-rate mixed load on a pair with sessions,
RSS and open file descriptors of both CSEs sampled throughout.

Why: leaks in a long-running CSE (a dict that only grows, tasks or
connections never closed, per-session memories never dropped) show up only
after many requests of every kind. The load here touches every long-lived
structure: AE registrations and deletions, contentInstances in containers
with ``mni`` (so the tree itself stays bounded), retrieves (local and through
the other CSE), discovery, subscriptions with notifications to a loopback
receiver (and subscribe/unsubscribe churn), and session cycles (establish,
signed session-based updates, terminate). After a warm-up the growth of
RSS and FDs must stay under the bounds the test states, and no request may
get a 5xxx answer or a dropped connection.

Rate: one operation slot every ``1/rate`` s (a slot may be a few requests,
e.g. register then delete); slots run concurrently up to ``concurrency``;
if the CSEs cannot keep up the achieved rate is lower and reported.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cse.core.session_crypto import canonical, derive_keys, sign, sp_relative_target, unb64u
from cse.core.timestamps import format_ts
from cse.csf.smg.history import REPLAY_KEEP
from tests.conftest import HttpReply
from tests.notify_receiver import Receiver

from .pair import NETWORK_ERRORS, Pair, fd_count, rss_kb

__all__ = ["SoakConfig", "SoakReport", "Sample", "run_soak"]


@dataclass
class SoakConfig:
    seed: int
    duration: float = 40.0      # seconds of load
    warmup: float = 12.0        # seconds before the baseline is taken
    rate: float = 120.0         # operation slots per second
    concurrency: int = 12
    sample_every: float = 2.0
    # Fill the long-lived session's request-ID memory to its cap before the
    # clock starts: it is a bounded cache (REPLAY_KEEP answers per session
    # and hop, ~2 KB each here, ~8 MB at CSE1), and filling it during a run
    # would look like growth. The CI run is too short for it to matter.
    prefill_replay: bool = False


@dataclass
class Sample:
    t: float
    rss_kb: tuple[int, int]
    fds: tuple[int, int]


@dataclass
class SoakReport:
    seed: int
    samples: list[Sample] = field(default_factory=list)
    requests: int = 0
    slots: int = 0
    codes: Counter[str] = field(default_factory=Counter)   # "<op>:<rsc>"
    errors: list[str] = field(default_factory=list)        # 5xxx, dropped connections, unexpected codes
    seconds: float = 0.0
    warmup: float = 0.0

    def baseline(self) -> Sample:
        """The first sample at or after the warm-up."""
        return next(s for s in self.samples if s.t >= self.warmup)

    def end(self) -> Sample:
        return self.samples[-1]

    def growth(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(RSS growth kB per CSE, FD growth per CSE) from the baseline to the end;
        the end is the median of the last three samples (one GC or arena moment is noise)."""
        b = self.baseline()
        last = self.samples[-3:]
        rss = tuple(int(statistics.median(s.rss_kb[i] for s in last)) - b.rss_kb[i] for i in (0, 1))
        fds = tuple(int(statistics.median(s.fds[i] for s in last)) - b.fds[i] for i in (0, 1))
        return (rss[0], rss[1]), (fds[0], fds[1])

    def trend(self) -> str:
        """About ten samples across the run: t, RSS MB and FDs of both CSEs."""
        step = max(1, len(self.samples) // 10)
        return " ".join(f"[{s.t:.0f}s {s.rss_kb[0] / 1024:.1f}/{s.rss_kb[1] / 1024:.1f}MB "
                        f"{s.fds[0]}/{s.fds[1]}fd]" for s in self.samples[::step])

    def line(self) -> str:
        b, e = self.baseline(), self.end()
        first = self.samples[0]
        parts = [f"SOAK seed={self.seed} time={self.seconds:.0f}s slots={self.slots} requests={self.requests} "
                 f"rate={self.requests / max(self.seconds, 1e-9):.0f}/s errors={len(self.errors)}"]
        for i in (0, 1):
            parts.append(f"CSE{i + 1}: RSS start={first.rss_kb[i] / 1024:.1f}MB "
                         f"after-warmup={b.rss_kb[i] / 1024:.1f}MB end={e.rss_kb[i] / 1024:.1f}MB "
                         f"FD start={first.fds[i]} after-warmup={b.fds[i]} end={e.fds[i]}")
        return " | ".join(parts)


class Soak:
    def __init__(self, pair: Pair, cfg: SoakConfig, notify: Receiver) -> None:
        self.pair = pair
        self.cfg = cfg
        self.notify = notify
        self.rng = random.Random(cfg.seed)
        self.report = SoakReport(cfg.seed, warmup=cfg.warmup)
        self._n = itertools.count()
        self._ops: list[tuple[float, Callable[[], Awaitable[None]]]] = []

    # -- one request, counted -----------------------------------------------------------------
    async def req(self, name: str, expect: tuple[int, ...], method: str, url: str, **kw: Any) -> HttpReply | None:
        self.report.requests += 1
        try:
            r = await self.pair.http.send(method, url, **kw)
        except NETWORK_ERRORS as exc:
            self.report.errors.append(f"{name}: {type(exc).__name__} {exc}")
            return None
        self.report.codes[f"{name}:{r.rsc}"] += 1
        if r.rsc not in expect:
            self.report.errors.append(f"{name}: rsc {r.rsc} {str(r.body)[:200]}")
            return None
        return r

    # -- the operations ---------------------------------------------------------------------------
    def url(self, i: int) -> str:
        return self.pair.cse(i).url

    async def setup(self) -> None:
        """A bounded container (mni 10) with a subscription to ``notify`` on each CSE."""
        p = self.pair
        for i in (0, 1):
            base = f"{self.url(i)}/{p.cb(i)}/load"
            r = await p.http.send("POST", base, fr=p.load_aei[i], ty=3, body={"m2m:cnt": {"rn": "data", "mni": 10}})
            assert r.rsc == 2001, r.body
            r = await p.http.send("POST", f"{base}/data", fr=p.load_aei[i], ty=23,
                                  body={"m2m:sub": {"rn": "watch", "nu": [self.notify.url], "enc": {"net": [3]}}})
            assert r.rsc == 2001, r.body
            r = await p.http.send("POST", f"{base}/data", fr=p.load_aei[i], ty=4, body={"m2m:cin": {"con": "0"}})
            assert r.rsc == 2001, r.body
        self._ops = [
            (30, self.op_cin), (20, self.op_retrieve), (8, self.op_remote_retrieve), (8, self.op_discover),
            (6, self.op_ae_churn), (4, self.op_sub_churn), (6, self.op_session_update), (1, self.op_session_cycle),
        ]

    async def op_cin(self) -> None:
        i = self.rng.randrange(2)
        p = self.pair
        await self.req("cin", (2001,), "POST", f"{self.url(i)}/{p.cb(i)}/load/data", fr=p.load_aei[i], ty=4,
                       body={"m2m:cin": {"con": f"x{next(self._n)}"}})

    async def op_retrieve(self) -> None:
        i = self.rng.randrange(2)
        p = self.pair
        path = self.rng.choice(["data/la", "data", "data?rcn=4"])
        await self.req("retrieve", (2000,), "GET", f"{self.url(i)}/{p.cb(i)}/load/{path}", fr=p.load_aei[i])

    async def op_remote_retrieve(self) -> None:
        """Through the other CSE: its CSEBase as the admin, or (flow 1 step 6)
        a discovery of its session-capable AEs as AE1/AE2."""
        p, f = self.pair, self.pair.flow
        i = self.rng.randrange(2)
        other = 1 - i
        if self.rng.random() < 0.5:
            await self.req("remote", (2000,), "GET", f"{self.url(i)}/~{p.csi(other)}/{p.cb(other)}", fr="CAdmin")
        else:
            await self.req("remote-discover", (2000,), "GET",
                           f"{self.url(i)}/~{p.csi(other)}/{p.cb(other)}?fu=1&ty=2&scp=smg",
                           fr=f.aei1 if i == 0 else f.aei2)

    async def op_discover(self) -> None:
        i = self.rng.randrange(2)
        p = self.pair
        q = self.rng.choice(["fu=1&ty=4&lim=20", "fu=1&ty=2", "fu=1&ty=3&lbl=none"])
        await self.req("discover", (2000,), "GET", f"{self.url(i)}/{p.cb(i)}?{q}", fr="CAdmin")

    async def op_ae_churn(self) -> None:
        i = self.rng.randrange(2)
        p = self.pair
        rn = f"churn{next(self._n)}"
        r = await self.req("ae-create", (2001,), "POST", f"{self.url(i)}/{p.cb(i)}", fr="C", ty=2,
                           body={"m2m:ae": {"rn": rn, "api": "Nchurn", "rr": False, "srv": ["3"],
                                            "scp": ["smg"]}})
        if r is not None:
            aei = r.body["m2m:ae"]["aei"]
            await self.req("ae-delete", (2002,), "DELETE", f"{self.url(i)}/{p.cb(i)}/{rn}", fr=aei)

    async def op_sub_churn(self) -> None:
        i = self.rng.randrange(2)
        p = self.pair
        rn = f"s{next(self._n)}"
        base = f"{self.url(i)}/{p.cb(i)}/load/data"
        r = await self.req("sub-create", (2001,), "POST", base, fr=p.load_aei[i], ty=23,
                           body={"m2m:sub": {"rn": rn, "nu": [self.notify.url], "enc": {"net": [3]}}})
        if r is not None:
            await self.req("sub-delete", (2002,), "DELETE", f"{base}/{rn}", fr=p.load_aei[i])

    def signed(self, op: str, to: str, sid: str, key: bytes, rq: str, raw: bytes) -> dict[str, str]:
        ot = format_ts(time.time())
        mac = sign(key, canonical(op, sp_relative_target(to, self.pair.csi(0)), sid, rq, ot, raw))
        return {"X-M2M-SID": sid, "X-M2M-OT": ot, "X-M2M-SMAC": mac}

    async def session_updates(self, sid: str, k_mac: bytes, n: int) -> None:
        p, f = self.pair, self.pair.flow
        to = f"{p.csi(1)}/{p.cb(1)}/AE2/container1"
        for _ in range(n):
            rq = f"soak-{next(self._n)}"
            raw = json.dumps({"m2m:cnt": {"lbl": [rq]}}).encode()
            await self.req("session-update", (2004,), "PUT", f"{self.url(0)}/~{to}", fr=f.aei1, raw=raw, rqi=rq,
                           headers=self.signed("UPDATE", to, sid, k_mac, rq, raw))

    async def op_session_update(self) -> None:
        """On the long-lived session of the pair."""
        await self.session_updates(self.pair.flow.sid, self.pair.flow.k_mac, 1)

    async def op_session_cycle(self) -> None:
        """Establish a session AE1 -> AE2, use it, terminate it."""
        p, f = self.pair, self.pair.flow
        r = await self.req("session-establish", (2001,), "POST", f"{self.url(0)}/{p.cb(0)}/AE1/sessions",
                           fr=f.aei1, ty=9002, body={"m2m:sess": {"tep": f"{p.csi(1)}/{f.aei2}"}})
        if r is None:
            return
        sess = r.body["m2m:sess"]
        k_mac, _ = derive_keys(unb64u(sess["scr"]["key"]), sess["sid"])
        await self.session_updates(sess["sid"], k_mac, 3)
        await self.req("session-terminate", (2002,), "DELETE",
                       f"{self.url(0)}/{p.cb(0)}/AE1/sessions/{sess['rn']}", fr=f.aei1)

    # -- the run ----------------------------------------------------------------------------------
    def sample(self, t0: float) -> None:
        p = self.pair
        pids = [p.cse1.proc.pid, p.cse2.proc.pid]  # type: ignore[union-attr]
        self.report.samples.append(Sample(time.monotonic() - t0, (rss_kb(pids[0]), rss_kb(pids[1])),
                                          (fd_count(pids[0]), fd_count(pids[1]))))

    async def sampler(self, t0: float, done: asyncio.Event) -> None:
        while not done.is_set():
            self.sample(t0)
            try:
                await asyncio.wait_for(done.wait(), self.cfg.sample_every)
            except TimeoutError:
                pass
        self.sample(t0)

    async def prefill(self) -> None:
        """REPLAY_KEEP + 512 session updates on the long-lived session (pruning then keeps it at the cap)."""
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem:
                await self.op_session_update()
        await asyncio.gather(*(one() for _ in range(REPLAY_KEEP + 512)))

    async def run(self) -> SoakReport:
        await self.setup()
        if self.cfg.prefill_replay:
            await self.prefill()
        weights = [w for w, _ in self._ops]
        ops = [op for _, op in self._ops]
        sem = asyncio.Semaphore(self.cfg.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def slot(op: Callable[[], Awaitable[None]]) -> None:
            try:
                await op()
            finally:
                sem.release()

        t0 = time.monotonic()
        done = asyncio.Event()
        sampler = asyncio.create_task(self.sampler(t0, done))
        n = 0
        try:
            while (now := time.monotonic() - t0) < self.cfg.duration:
                due = n / self.cfg.rate
                if due > now:
                    await asyncio.sleep(due - now)  # the fixed rate (load timing)
                await sem.acquire()
                task = asyncio.create_task(slot(self.rng.choices(ops, weights)[0]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*tasks)
        finally:
            done.set()
            await sampler
        self.report.slots = n
        self.report.seconds = time.monotonic() - t0
        return self.report


async def run_soak(pair: Pair, cfg: SoakConfig, notify: Receiver) -> SoakReport:
    """Run the soak on ``pair`` (started, session established)."""
    return await Soak(pair, cfg, notify).run()

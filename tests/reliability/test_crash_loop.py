"""Durability under crash: a pair under concurrent load, CSEs
killed with SIGKILL at random moments and restarted on the same port and
store; every acknowledged operation must be there afterwards, every
1001-accepted store-and-forward request delivered exactly once, every
notification of an acknowledged create delivered (at least once), the
session alive, every restart clean (see :mod:`tests.reliability.crashloop`).

Two variants of the one harness:

* the embedded store: CSE1 or CSE2 killed whole. CI: 20 kills in about a
  minute; ``--long``: 100 kills, more load;
* PostgreSQL: CSE1 served by two workers on one schema (``--workers 2``,
  shared mode, docs/scaling.md); one worker at a time is killed, the other
  keeps serving and takes over its jobs (store-and-forward flushing, the
  outbox), the supervisor starts a replacement. CI: 4 kills in a few
  seconds of load; ``--long``: 100 kills. In CI a missing PostgreSQL fails
  (tests/pg.py).

The seed is printed (and can be fixed with ``CRASH_LOOP_SEED``) so a
failing run can be replayed with the same kill choices and delays.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from tests.notify_receiver import Receiver
from tests.pg import pg_schema, store_toml

from .crashloop import CrashLoopConfig, CrashLoopReport, run_crash_loop
from .pair import open_pair

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)


def _seed() -> int:
    seed = int(os.environ.get("CRASH_LOOP_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\ncrash loop seed {seed} (replay: CRASH_LOOP_SEED={seed})")
    return seed


def _check(report: CrashLoopReport, cfg: CrashLoopConfig) -> None:
    print(report.line())
    assert report.kills == cfg.kills and report.restarts == cfg.kills
    assert report.problems == [], "\n".join(report.problems[:40])
    assert report.lost == 0 and report.duplicates == 0
    assert report.notify_lost == 0 and report.notify_delivered == report.notify_acked > 0
    # the run proved something: acknowledged work of every kind was checked
    assert report.sf_delivered == report.sf_acked > 0
    assert report.acked_verified > report.sf_acked


async def test_crash_loop_keeps_acknowledged_work(cse_process: Any, http: Any, long_run: bool) -> None:
    seed = _seed()
    cfg = CrashLoopConfig(seed=seed)
    if long_run:
        cfg = CrashLoopConfig(seed=seed, kills=100, plain_workers=3, burst_size=40)
    async with Receiver() as rcv1, Receiver() as rcv2:
        pair = await open_pair(cse_process, http, rcv1, rcv2)
        report = await run_crash_loop(pair, cfg)
    _check(report, cfg)


async def test_crash_loop_on_postgresql_workers_keeps_acknowledged_work(
        cse_process: Any, http: Any, long_run: bool) -> None:
    seed = _seed()
    cfg = CrashLoopConfig(seed=seed, kills=3, delay=(0.3, 0.8), plain_workers=1, burst_size=12, pace=0.02,
                          victims=(0,), workers=(0,))
    if long_run:
        cfg = CrashLoopConfig(seed=seed, kills=100, plain_workers=2, burst_size=24, victims=(0,), workers=(0,))
    async with pg_schema() as schema, Receiver() as rcv1, Receiver() as rcv2:
        # INFO: the workers' "now runs <job>" lines tell the killer which one holds the jobs
        pair = await open_pair(cse_process, http, rcv1, rcv2, cse1_store=store_toml(schema),
                               cse1_args=["--workers", "2", "--log-level", "info"])
        report = await run_crash_loop(pair, cfg)
    _check(report, cfg)

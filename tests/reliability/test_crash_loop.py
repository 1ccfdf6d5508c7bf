"""Durability under crash: a pair under concurrent load, CSEs
killed with SIGKILL at random moments and restarted on the same port and
store; every acknowledged operation must be there afterwards, every
1001-accepted store-and-forward request delivered exactly once, every
notification of an acknowledged create delivered (at least once), the
session alive, every restart clean (see :mod:`tests.reliability.crashloop`).

CI: 20 kills in about a minute. ``--long``: 100 kills, more load. The seed
is printed (and can be fixed with ``CRASH_LOOP_SEED``) so a failing run can
be replayed with the same kill choices and delays.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from tests.notify_receiver import Receiver

from .crashloop import CrashLoopConfig, run_crash_loop
from .pair import open_pair

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)


async def test_crash_loop_keeps_acknowledged_work(cse_process: Any, http: Any, long_run: bool) -> None:
    seed = int(os.environ.get("CRASH_LOOP_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\ncrash loop seed {seed} (replay: CRASH_LOOP_SEED={seed})")
    cfg = CrashLoopConfig(seed=seed)
    if long_run:
        cfg = CrashLoopConfig(seed=seed, kills=100, plain_workers=3, burst_size=40)
    async with Receiver() as rcv1, Receiver() as rcv2:
        pair = await open_pair(cse_process, http, rcv1, rcv2)
        report = await run_crash_loop(pair, cfg)
    print(report.line())
    assert report.kills == cfg.kills and report.restarts == cfg.kills
    assert report.problems == [], "\n".join(report.problems[:40])
    assert report.lost == 0 and report.duplicates == 0
    assert report.notify_lost == 0 and report.notify_delivered == report.notify_acked > 0
    # the run proved something: acknowledged work of every kind was checked
    assert report.sf_delivered == report.sf_acked > 0
    assert report.acked_verified > report.sf_acked

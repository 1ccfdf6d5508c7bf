"""Soak: fixed-rate mixed load on a pair with sessions; RSS and
open FDs of both CSEs must stop growing after a warm-up, and no request may
fail with 5xxx or a dropped connection (see :mod:`tests.reliability.soak`).

CI: 40 s at 120 slots/s. ``--long``: 10 minutes.

Bounds, after the warm-up (first sample at 12 s, 60 s with --long):

* RSS growth <= 8 MB per CSE (CI) and <= 6 MB (--long). A healthy CSE's
  RSS moves by a few MB as pymalloc arenas, aiohttp buffers and the bounded
  caches settle. The largest bounded cache is the request-ID memory of a
  session (up to 4096 remembered answers per session and hop, ~2 KB each
  for this load: ~8 MB at CSE1); the --long run fills it to its cap before
  the clock starts (SoakConfig.prefill_replay), so what remains is leaks: a
  per-request leak of even 100 bytes would add ~8 MB over the ~80 000
  requests of the long run, beyond the bound. The CI run (40 s) is a smoke
  test with the looser bound: too short to see a slow leak, and the memory
  fills by ~1 MB during it.
* Open FDs growth <= 20 per CSE: keep-alive connections to the other CSE and
  to the receivers are pooled, and the pool grows in steps with the peak
  number of concurrent outbound requests (a 10-minute run went +6 and +9,
  in steps, flat between them); a leak of one connection per notification,
  forward or session would add hundreds.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from tests.notify_receiver import Receiver

from .pair import open_pair
from .soak import SoakConfig, run_soak

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)

MB = 1024


async def test_soak_memory_and_fds_stay_bounded(cse_process: Any, http: Any, long_run: bool) -> None:
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nsoak seed {seed}")
    cfg = SoakConfig(seed=seed)
    rss_bound = 8 * MB
    if os.environ.get("SOAK_SECONDS"):  # an in-between length, for looking at trends
        cfg = SoakConfig(seed=seed, duration=float(os.environ["SOAK_SECONDS"]), warmup=30.0)
    if long_run:
        cfg = SoakConfig(seed=seed, duration=600.0, warmup=60.0, prefill_replay=True)
        rss_bound = 6 * MB
    fd_bound = 20
    async with Receiver() as rcv1, Receiver() as rcv2, Receiver() as notify:
        pair = await open_pair(cse_process, http, rcv1, rcv2)
        report = await run_soak(pair, cfg, notify)
    print(report.line())
    print("SOAK trend (CSE1/CSE2):", report.trend())
    (rss1, rss2), (fd1, fd2) = report.growth()
    print(f"SOAK growth after warm-up: CSE1 RSS {rss1 / MB:+.1f}MB FD {fd1:+d} | "
          f"CSE2 RSS {rss2 / MB:+.1f}MB FD {fd2:+d} (bounds RSS {rss_bound / MB:.0f}MB, FD {fd_bound})")
    kinds = sorted({e.split(" {")[0][:80] for e in report.errors})
    assert report.errors == [], f"{len(report.errors)} errors of kinds {kinds}:\n" + "\n".join(report.errors[:20])
    assert report.requests >= cfg.rate * cfg.duration * 0.8, "the load did not reach its rate"
    assert len(report.samples) >= 5
    assert rss1 <= rss_bound and rss2 <= rss_bound, report.line()
    assert fd1 <= fd_bound and fd2 <= fd_bound, report.line()

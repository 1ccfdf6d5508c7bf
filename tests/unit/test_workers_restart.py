"""The ``--workers`` supervisor restarts a worker that died (docs/scaling.md).

Why: a worker killed by ``kill -9`` or the OOM killer leaves the CSE one
process short for good unless the supervisor starts another; but a worker
stopped on purpose (exit 0) must stay stopped, and one that keeps failing
to start must be retried with a growing delay, not in a fork loop.

Real (tiny) child processes stand in for workers: ``_start`` is replaced,
so no CSE or database is involved; the tests wait on the processes, never
sleep for them.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from cse import workers


async def child(code: int) -> asyncio.subprocess.Process:
    """A process that prints a line and exits with ``code``."""
    return await asyncio.create_subprocess_exec(sys.executable, "-c", f"print('hi'); raise SystemExit({code})",
                                                stdout=asyncio.subprocess.PIPE)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_RESTART_MIN_S", 0.01)
    monkeypatch.setattr(workers, "_RESTART_MAX_S", 0.04)


async def test_a_dead_worker_is_replaced_and_announced(fast: None, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    started: list[Any] = []

    async def start(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
        started.append(argv)
        proc = await child(0)  # the replacement, later stopped on purpose
        return proc, "READY"
    monkeypatch.setattr(workers, "_start", start)
    slot = workers._Slot(await child(-9 % 256))  # died: non-zero exit
    first = slot.proc.pid
    code = await workers._keep(slot, ["--shared"], [slot], asyncio.Event())
    assert code == 0 and started == [["--shared"]]
    assert slot.proc.pid != first
    out, err = capsys.readouterr()
    assert f"WORKERS {slot.proc.pid}\n" in out
    assert f"worker {first} exited (code 247)" in err and f"restarted as {slot.proc.pid}" in err


async def test_a_worker_stopped_on_purpose_is_not_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def start(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
        raise AssertionError("must not restart")
    monkeypatch.setattr(workers, "_start", start)
    slot = workers._Slot(await child(0))
    assert await workers._keep(slot, [], [slot], asyncio.Event()) == 0


async def test_failing_starts_back_off_up_to_the_cap(fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    slot = workers._Slot(await child(1))

    async def start(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
        delays.append(slot.delay)
        if len(delays) < 4:
            raise RuntimeError("worker exited before it was ready")
        return await child(0), "READY"
    monkeypatch.setattr(workers, "_start", start)
    assert await workers._keep(slot, [], [slot], asyncio.Event()) == 0
    assert delays == [0.02, 0.04, 0.04, 0.04]  # doubled after each wait, capped


async def test_stopping_during_the_back_off_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_RESTART_MIN_S", 30.0)

    async def start(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
        raise AssertionError("must not restart while stopping")
    monkeypatch.setattr(workers, "_start", start)
    stop = asyncio.Event()
    slot = workers._Slot(await child(1))
    keep = asyncio.create_task(workers._keep(slot, [], [slot], stop))
    await slot.proc.wait()
    stop.set()
    assert await asyncio.wait_for(keep, 5.0) == 1

"""``python -m cse --config FILE --workers N``: one CSE served by N processes (docs/scaling.md).

Why processes: a CSE worker is one asyncio loop on one core; N workers on
one PostgreSQL store serve the same CSE (same CSE-ID, same resources) on
one port, the kernel spreading the connections among them (SO_REUSEPORT).
This module only starts and stops them; how they stay correct together is
cse.store.pg_coord.

The first worker starts alone: it migrates the schema, creates the CSEBase
and the store key file; the others start once it is ready, on the port it
bound (so ``http.port = 0`` works: they all get the port the OS gave the
first).  Each worker is ``python -m cse ... --shared``, the same command
a worker on another machine runs.  SIGINT/SIGTERM stop every worker.  A
worker that dies (non-zero exit: a crash, ``kill -9``, the OOM killer) is
reported and started again on the same port, after a back-off that grows
while workers keep dying young; meanwhile the others serve and take over
its jobs (cse.store.pg_coord).  A worker that exits with code 0 was
stopped on purpose and is not restarted; the supervisor exits when the
last worker did.  On Linux a worker is also sent SIGTERM when the
supervisor dies (even by SIGKILL: ``PR_SET_PDEATHSIG``), so no worker
outlives it unnoticed.

The supervisor prints ``WORKERS pid ...`` then the first worker's
``READY csi url`` line once all are ready, and ``WORKERS pid ...`` again
(the current set) after each restart, for scripts and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import time
from collections.abc import Sequence

__all__ = ["supervise", "worker_argv"]

log = logging.getLogger("cse.workers")

_READY_TIMEOUT_S = 60.0
_RESTART_MIN_S = 0.1     # first restart of a worker that died
_RESTART_MAX_S = 30.0    # back-off cap for a worker that keeps dying
_RESTART_RESET_S = 5.0   # a worker that served this long restarts quickly again


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line of one worker: ``argv`` without ``--workers N``, plus ``--shared``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [*out, "--shared"]


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _start(argv: list[str]) -> tuple[asyncio.subprocess.Process, str]:
    """Start one worker; its READY line once it serves."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cse", *argv, stdout=asyncio.subprocess.PIPE,
                                                preexec_fn=_die_with_parent)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            while True:
                line = (await proc.stdout.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError(f"worker exited before it was ready (exit code {await proc.wait()})")
                if line.startswith("READY "):
                    return proc, line.strip()
                sys.stdout.write(line)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise


async def _echo(proc: asyncio.subprocess.Process) -> int:
    """Pass the worker's output on until it exits; its exit code."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()
    return await proc.wait()


class _Slot:
    """One worker position: the process serving it now, and how soon to restart it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.started = time.monotonic()
        self.delay = _RESTART_MIN_S

    def died(self) -> None:
        """Its worker exited: one that had served ``_RESTART_RESET_S`` is restarted quickly again."""
        if time.monotonic() - self.started >= _RESTART_RESET_S:
            self.delay = _RESTART_MIN_S

    def waited(self) -> None:
        """A restart is being tried: the next one (if this dies young too) waits twice as long."""
        self.delay = min(self.delay * 2, _RESTART_MAX_S)

    def replaced(self, proc: asyncio.subprocess.Process) -> int:
        """``proc`` serves this position now; the pid of the worker it replaces."""
        old = self.proc.pid
        self.proc, self.started = proc, time.monotonic()
        return old


async def _keep(slot: _Slot, argv: list[str], slots: list[_Slot], stop: asyncio.Event) -> int:
    """Echo the slot's worker; when it dies (non-zero exit, e.g. ``kill -9``)
    and the CSE is not stopping, start another in its place (module
    docstring); the exit code of the slot's last worker.

    Why a bounded back-off: a worker that keeps dying (the database gone, a
    bug at start-up) must not become a fork loop; the delay doubles up to
    ``_RESTART_MAX_S`` while workers die young, and is reset by one that
    served ``_RESTART_RESET_S``."""
    while True:
        code = await _echo(slot.proc)
        if stop.is_set():
            return code
        alive = len([s for s in slots if s.proc.returncode is None])
        if code == 0:  # it was stopped on purpose (SIGTERM to that worker): not restarted
            print(f"cse: worker {slot.proc.pid} exited (code 0); {alive} still serving", file=sys.stderr, flush=True)
            return code
        slot.died()
        while True:
            print(f"cse: worker {slot.proc.pid} exited (code {code}); {alive} still serving; "
                  f"restarting it in {slot.delay:g} s", file=sys.stderr, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), slot.delay)
            if stop.is_set():
                return code
            slot.waited()
            try:
                proc, _ = await _start(argv)
            except (RuntimeError, TimeoutError, OSError) as exc:
                print(f"cse: restarting a worker failed: {exc}", file=sys.stderr, flush=True)
                continue
            old = slot.replaced(proc)
            if stop.is_set():  # stopped while it started: _stop saw the old process only
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            else:
                print(f"cse: worker {old} restarted as {proc.pid}", file=sys.stderr, flush=True)
                print("WORKERS " + " ".join(str(s.proc.pid) for s in slots), flush=True)
            break


async def supervise(argv: Sequence[str], n: int) -> int:
    """Run ``n`` workers of the CSE ``argv`` configures (module docstring); the exit code."""
    base = worker_argv(argv)
    procs: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        first, ready = await _start(base)
        procs.append(first)
        url = ready.split()[2]
        port = url.rsplit(":", 1)[1]
        started = await asyncio.gather(*(_start([*base, "--http-port", port]) for _ in range(n - 1)),
                                       return_exceptions=True)
        for item in started:
            if isinstance(item, BaseException):
                raise item
            procs.append(item[0])
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"cse: --workers {n}: a worker did not start: {exc}", file=sys.stderr)
        await _stop(procs)
        return 1
    print("WORKERS " + " ".join(str(p.pid) for p in procs), flush=True)
    print(ready, flush=True)
    slots = [_Slot(p) for p in procs]
    again = [*base, "--http-port", port]  # a restarted worker joins on the port the others serve
    keepers = {loop.create_task(_keep(slot, again, slots, stop)) for slot in slots}
    stopping = loop.create_task(stop.wait())
    pending = set(keepers)
    while pending:
        done, _ = await asyncio.wait({*pending, stopping}, return_when=asyncio.FIRST_COMPLETED)
        pending -= done
        if stopping in done:
            await _stop([s.proc for s in slots])
            break
    stopping.cancel()
    codes = await asyncio.gather(*keepers)
    return max((c for c in codes if c > 0), default=0)


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 20.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

"""Process control for the benchmark: start CSEs and the ceiling server on
loopback, read their CPU time and RSS from /proc, stop them.

Every process is started with a free port (``port = 0``, the port is read
from the ``READY <id> <url>`` line), a store in a temp dir the caller owns,
and is registered in a :class:`ProcSet` so that one ``stop_all()`` (in a
``finally``, also on Ctrl-C) ends every process the run started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = ["Proc", "ProcSet", "cpu_seconds", "rss_mb", "cse_toml"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (/proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cse_toml(cse_id: str, name: str, db: Path, *, cse_type: str = "IN",
             registrar: tuple[str, str, str] | None = None, extra: str = "") -> str:
    """A CSE configuration on 127.0.0.1, a free port and the durable store at ``db``.
    ``registrar`` = (cse_id, name, poa) registers with that CSE at start-up."""
    text = (f'[cse]\ncse_id = "{cse_id}"\nname = "{name}"\ntype = "{cse_type}"\nadmin = "CAdmin"\n\n'
            f'[http]\nhost = "127.0.0.1"\nport = 0\n\n[store]\npath = "{db}"\n\n[log]\nlevel = "warning"\n')
    if registrar is not None:
        rid, rname, poa = registrar
        text += (f'\n[registrar]\ncse_id = "{rid}"\nname = "{rname}"\npoa = "{poa}"\n'
                 "deregister_on_shutdown = false\n")
    return text + extra


@dataclass
class Proc:
    """One started process: its argv, the URL from its READY line, the time
    from spawn to READY, and the lines it printed."""

    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    url: str = ""
    ready_s: float = 0.0
    output: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float = 60.0) -> Proc:
        """Spawn and wait for ``READY ... <url>``; ``ready_s`` = spawn to READY."""
        t0 = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=str(ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no READY within {timeout:g} s:\n" + "".join(self.output[-20:]))
            raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not raw:
                await self.proc.wait()
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before READY:\n"
                                   + "".join(self.output[-20:]))
            line = raw.decode(errors="replace")
            self.output.append(line)
            if line.startswith("READY "):
                self.ready_s = time.perf_counter() - t0
                self.url = line.split()[-1]
                break
        self._drain = asyncio.get_running_loop().create_task(self._read_rest())
        return self

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.output.append(raw.decode(errors="replace"))
            del self.output[:-200]

    async def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM, wait (kill after ``timeout``); returns (exit code, seconds to exit)."""
        if self.proc is None:
            return None, 0.0
        t0 = time.perf_counter()
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            try:
                await asyncio.wait_for(self._drain, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._drain.cancel()
        return self.proc.returncode, time.perf_counter() - t0


class ProcSet:
    """Every process of a run; ``stop_all`` in a ``finally`` stops them all."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    async def cse(self, name: str, config: Path, timeout: float = 60.0) -> Proc:
        """Start ``python -m cse --config <config>`` and wait for READY."""
        p = Proc(name, [sys.executable, "-m", "cse", "--config", str(config), "--log-level", "warning"])
        self.procs.append(p)
        return await p.start(timeout)

    async def ceiling(self) -> Proc:
        """Start the bare aiohttp server (bench/ceiling_server.py)."""
        p = Proc("ceiling", [sys.executable, str(Path(__file__).with_name("ceiling_server.py"))])
        self.procs.append(p)
        return await p.start(30)

    async def stop(self, p: Proc) -> tuple[int | None, float]:
        result = await p.stop()
        if p in self.procs:
            self.procs.remove(p)
        return result

    async def stop_all_named(self, names: tuple[str, ...]) -> None:
        """Stop the processes called one of ``names`` (a scenario's own, on its way out)."""
        for p in [p for p in self.procs if p.name in names]:
            await self.stop(p)

    async def stop_all(self) -> None:
        """Stop every process still running (in reverse start order)."""
        for p in reversed(self.procs):
            try:
                await p.stop()
            except Exception as exc:  # keep stopping the others
                print(f"bench: stopping {p.name} failed: {exc}", file=sys.stderr)
        self.procs.clear()

"""A CSE pair with an established session, shared by the crash loop and the soak.

Why a module of its own: both reliability runs need the same set-up (CSE1
IN + CSE2 MN registered with it, free ports, stores in the test's tmp dir,
AE1 at CSE1 and AE2 at CSE2 with a session between them) and the same
tolerant HTTP call (a CSE that is being killed answers with a dropped
connection, which the runs count, not crash on). No tests here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.conftest import ADMIN, CSEProcess, Http, HttpReply
from tests.e2e.test_intercse_helpers import register_ae, wait_csr, wait_registered
from tests.flow2_helpers import CB1, CB2, CSI1, CSI2, Flow2, start_pair, until
from tests.notify_receiver import Receiver

__all__ = ["Pair", "open_pair", "call", "NETWORK_ERRORS", "rss_kb", "fd_count", "routes_up", "worker_pids"]

# What a request to a CSE being killed (or just restarted) can raise:
# refused connection, reset, dropped keep-alive connection, timeout.
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError)


async def call(send: Callable[[], Awaitable[HttpReply]]) -> HttpReply | None:
    """``send()``'s reply, or None when the connection failed (outcome unknown)."""
    try:
        return await send()
    except NETWORK_ERRORS:
        return None


@dataclass
class Pair:
    """CSE1 and CSE2 (registered with CSE1), AE1/AE2 with a session (:class:`Flow2`),
    and one plain AE ``load`` per CSE for non-session traffic."""

    http: Http
    cse1: CSEProcess
    cse2: CSEProcess
    flow: Flow2
    load_aei: tuple[str, str]

    def cse(self, i: int) -> CSEProcess:
        return self.cse1 if i == 0 else self.cse2

    @staticmethod
    def cb(i: int) -> str:
        return CB1 if i == 0 else CB2

    @staticmethod
    def csi(i: int) -> str:
        return CSI1 if i == 0 else CSI2


async def routes_up(pair: Pair, timeout: float = 20.0) -> None:
    """Wait until each CSE reaches the other's CSEBase (registration after restarts)."""
    await wait_registered(pair.http, pair.cse2, CSI1, CB1, timeout)

    async def back() -> bool:
        r = await pair.http.send("GET", f"{pair.cse1.url}/~{CSI2}/{CB2}", fr=ADMIN)
        return r.rsc == 2000
    await until(back, "CSE1 -> CSE2 route", timeout)


async def open_pair(cse_process: Callable[..., Any], http: Http, rcv1: Receiver, rcv2: Receiver, *,
                    extra: str = "", cse1_store: str = "", cse1_args: Sequence[str] = ()) -> Pair:
    """Start the pair, the two session AEs and their session, and the plain AEs;
    ``cse1_store``/``cse1_args``: CSE1's ``[store]`` lines and command-line
    arguments (PostgreSQL, ``--workers 2``)."""
    cse1, cse2 = await start_pair(cse_process, http, cse1_extra=extra, cse2_extra=extra,
                                  cse1_store=cse1_store, cse1_args=cse1_args)
    await wait_csr(http, cse1, f"{CB1}/id-cse2")
    flow = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
    load = (await register_ae(http, cse1, CB1, "load"), await register_ae(http, cse2, CB2, "load"))
    return Pair(http, cse1, cse2, flow, load)


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (``VmRSS`` of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def worker_pids(cse: CSEProcess) -> list[int]:
    """The worker processes of a CSE run with ``--workers N``: its supervisor's
    last ``WORKERS pid ...`` line (printed at start and after each restart,
    cse/workers.py)."""
    lines = [line for line in cse.lines if line.startswith("WORKERS ")]
    assert lines, "not started with --workers:\n" + "".join(cse.lines[-20:])
    return [int(pid) for pid in lines[-1].split()[1:]]


"""A real pair for the session-based request tests of the SDK; no tests here.

* :func:`flow` (fixture) -- CSE1 (``/id-cse1``, ``cse1``) and CSE2
  (``/id-cse2``, ``cse2``, registered with CSE1) as processes on loopback;
  AE1 at CSE1 and AE2 at CSE2 (``scp=["smg"]``, SDK clients over HTTP), AE2
  with ``container1``; both listening to their session events; an
  established session (``s1`` AE1's view, ``s2`` AE2's).
* :func:`window_ahead` -- a store-and-forward window opening a few seconds
  from now, as exact schedule entries (one per UTC minute it touches).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ae_sdk import AEClient, HttpTransport, Session
from tests.conftest import ADMIN, CSEProcess, Http
from tests.waiting import until as _until

T = 15.0  # upper bound of every wait (not a performance target)
CSI1, CSI2 = "/id-cse1", "/id-cse2"


async def until(check: Callable[[], Any], what: str, timeout: float = T) -> Any:
    """Poll ``check`` until truthy (see tests/waiting.py)."""
    return await _until(check, what, timeout)


def window_sch(start: float, end: float) -> list[str]:
    """Schedule entries open exactly for the whole seconds [floor(start), floor(end)] (UTC)."""
    t, e = math.floor(start), math.floor(end)
    out: list[str] = []
    while t <= e:
        tm = time.gmtime(t)
        last = min(e, t - tm.tm_sec + 59)
        out.append(f"{tm.tm_sec}-{time.gmtime(last).tm_sec} {tm.tm_min} {tm.tm_hour} {tm.tm_mday} "
                   f"{tm.tm_mon} * {tm.tm_year}")
        t = last + 1
    return out


def window_ahead(lead: float, length: float = 120.0) -> tuple[float, list[str]]:
    """(opening epoch, sch) of a window opening ``lead`` s from now (rounded up to a second)."""
    opens = math.ceil(time.time() + lead)
    return float(opens), window_sch(opens, opens + length)


@dataclass
class Flow:
    cse1: CSEProcess
    cse2: CSEProcess
    ae1: AEClient
    ae2: AEClient
    s1: Session
    s2: Session
    http: Http

    @property
    def ae2_path(self) -> str:
        """AE2's structured SP-relative path."""
        return f"{CSI2}/cse2/ae2"

    async def admin(self, cse: CSEProcess, path: str) -> tuple[int, Any]:
        """(rsc, body) of a RETRIEVE of ``path`` at ``cse`` as the admin."""
        r = await self.http.send("GET", f"{cse.url}/{path}", fr=ADMIN)
        return r.rsc, r.body


async def start_registered_pair(cse_process: Callable[..., Any], http: Http, *,
                                ids: tuple[str, str] = (CSI1, CSI2), extra1: str = "", extra2: str = "",
                                registrar_poa: str | None = None) -> tuple[CSEProcess, CSEProcess]:
    """CSE1 and CSE2 (registered with CSE1), once each reaches the other.

    ``ids`` are their CSE-IDs, ``extra1``/``extra2`` more configuration of
    each (an ``[mqtt]`` section, say), ``registrar_poa`` the address CSE2 is
    given for CSE1 (default: CSE1's HTTP URL)."""
    csi1, csi2 = ids
    cse1 = await cse_process(cse_id=csi1, name="cse1", subdir="cse1", extra=extra1)
    reg = (f'[registrar]\ncse_id = "{csi1}"\nname = "cse1"\npoa = "{registrar_poa or cse1.url}"\n'
           "check_interval_s = 0.5\n\n[forwarding]\ntimeout_s = 5\n" + extra2)
    cse2 = await cse_process(cse_id=csi2, name="cse2", subdir="cse2", extra=reg)

    async def registered() -> bool:
        there = await http.send("GET", f"{cse2.url}/~{csi1}/cse1", fr=ADMIN)
        back = await http.send("GET", f"{cse1.url}/~{csi2}/cse2", fr=ADMIN)
        return there.rsc == back.rsc == 2000
    await until(registered, "CSE2 registered with CSE1 (both ways)")
    return cse1, cse2


@pytest.fixture
async def flow(cse_process: Callable[..., Any], http: Http) -> AsyncIterator[Flow]:
    cse1, cse2 = await start_registered_pair(cse_process, http)

    ae1 = AEClient(HttpTransport(cse1.url, timeout=T), cse_name="cse1", cse_id=CSI1)
    ae2 = AEClient(HttpTransport(cse2.url, timeout=T), cse_name="cse2", cse_id=CSI2)
    try:
        await ae1.register("ae1", scp=["smg"])
        await ae2.register("ae2", scp=["smg"])
        await ae2.create_container("ae2", "container1")
        await ae1.enable_sessions(lambda offer: False)  # hears terminations; accepts nothing
        await ae2.enable_sessions()
        s1 = await ae1.establish(f"{CSI2}/{ae2.originator}", epa={"role": "collector"})
        s2 = await ae2.next_session(T)
        assert s1.sid == s2.sid
        yield Flow(cse1, cse2, ae1, ae2, s1, s2, http)
    finally:
        await ae1.close()
        await ae2.close()

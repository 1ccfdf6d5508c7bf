"""Pending notifications survive ``kill -9`` (docs/architecture.md "The outbox").

Why: 200 CREATEs under a subscription were acknowledged, the CSE was killed
right after, and 187 of the 200 notifications were never sent -- they only
lived in memory. Now each is committed with its change and deleted once
delivered, so after a restart every notification of an acknowledged change
reaches the receiver (at least once: one in flight at the kill may come
twice), and those sent after the restart come in order.

A real ``python -m cse`` process and a slow real receiver on loopback (it
answers after a delay, so most notifications are still queued at the kill).
"""

from __future__ import annotations

import signal
from typing import Any

from tests.conftest import Http
from tests.notify_receiver import Received, Receiver
from tests.waiting import until

from .test_http_durability import restart
from .test_notify_http import setup_container

N = 200


def con_of(item: Received) -> str | None:
    sgn = item.sgn or {}
    rep = (sgn.get("nev") or {}).get("rep") or {}
    cin = rep.get("m2m:cin")
    return str(cin["con"]) if isinstance(cin, dict) else None


async def test_every_notification_of_acknowledged_creates_is_delivered_after_sigkill(
        cse_process: Any, http: Http) -> None:
    async with Receiver(delay=0.05) as rcv:
        cse = await cse_process()
        aei = await setup_container(http, cse.url)
        r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                            body={"m2m:sub": {"rn": "sub1", "nu": [rcv.url], "enc": {"net": [3]}}})
        assert r.rsc == 2001, r.body
        acked = []
        for i in range(N):
            r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4,
                                body={"m2m:cin": {"rn": f"i{i:03d}", "con": f"c{i:03d}"}})
            assert r.rsc == 2001, r.body
            acked.append(f"c{i:03d}")
        await cse.kill()
        assert cse.proc is not None and cse.proc.returncode == -signal.SIGKILL
        before = [c for c in map(con_of, rcv.received) if c is not None]
        assert len(set(before)) < N, "everything was sent before the kill: the test proves nothing"

        again = await restart(cse_process, cse)

        async def all_arrived() -> bool:
            return len(arrived(rcv)) >= N
        await until(all_arrived, f"all {N} notifications after the restart", 120)
        assert arrived(rcv) == set(acked)
        after = [c for c in map(con_of, rcv.received) if c is not None][len(before):]
        assert after == sorted(after), "notifications after the restart came out of order"
        # duplicates only of what was in flight at the kill (at most the per-target sends, 4)
        assert len(before) + len(after) - N <= 4, (len(before), len(after))
        assert await again.stop(signal.SIGTERM) == 0
        assert not [line for line in again.lines if "Traceback" in line], "".join(again.lines)


def arrived(rcv: Receiver) -> set[str]:
    return {c for c in map(con_of, rcv.received) if c is not None}

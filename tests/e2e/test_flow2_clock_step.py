"""Flow 2 store-and-forward across wall-clock steps, with real processes:
CSE1 runs under libfaketime (tests/faketime.py), its wall clock moved by the
test, its monotonic clock real (docs/troubleshooting.md "Clock jumps",
docs/sessions.md "Store-and-forward").

* A +2 h step while CSE1 runs: the window it steps into opens within a
  timer slice and the stored requests are delivered; their ``mbd`` (1 h) is
  measured on the monotonic clock, so the step does not fail them.
* A step back of 1 h: CSE1's clock was an hour ahead when the requests were
  stored, past their window for good; set back, the window is open again and
  the idle forwarding timer notices the step and delivers them.
* A restart at +2 h: the requests' ``<request>`` resources (1 h lifetime) are
  due on the wall clock, but their ``mbd`` has not elapsed: nothing is
  deleted or failed, and they are delivered in the window.
* A restart 11 years ahead: expiry is held (a container with ``et``
  stays), the stored requests stay PENDING and readable (their buffered time
  is counted up to the newest time recorded before the jump); once the
  operator accepts the jump, what is past its ``et`` goes and the stored
  requests end FAILED with a recorded 4008, readable by their originator.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from cse.core.timestamps import format_ts
from tests.conftest import ADMIN
from tests.faketime import FakeTime
from tests.flow2_helpers import CB1, CNT_TO, COMPLETED, FAILED, PENDING, Flow2, rqi, start_pair, window_sch
from tests.notify_receiver import Receiver
from tests.waiting import until

HOUR = 3600.0
YEAR = 365 * 86400.0
N = 5


async def stored(f: Flow2, n: int = N, offset: float = 0.0) -> list[tuple[str, str]]:
    """``n`` session requests stored at CSE1, each answered 1001; (rqi, <request> ri).
    ``offset``: CSE1's clock ahead of real time (the originator's OT follows it)."""
    out = []
    for i in range(n):
        rq = rqi(f"step{i}")
        r = await f.send("POST", f.cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc(f"#{i}")}}, rq=rq,
                         ot=format_ts(time.time() + offset))
        assert r.rsc == 1001, (i, r.rsc, r.body)
        out.append((rq, str(r.body["m2m:uri"])))
    for _, ri in out:
        assert (await f.request_res(ri))["rs"] == PENDING
    return out


async def delivered(f: Flow2, sent: list[tuple[str, str]]) -> None:
    """Each stored request completes with 2001, in order, once."""
    for rq, ri in sent:
        done = await f.poll_request(ri, lambda q: q["rs"] != PENDING, f"stored request {rq} to be delivered", 30)
        assert done["rs"] == COMPLETED and done["ors"]["rsc"] == 2001, done
    assert [f.dec(c["con"]) for c in await f.instances()] == [f"#{i}" for i in range(len(sent))]
    assert (await f.container())["cni"] == len(sent)


async def stays(check: Any, seconds: float) -> None:
    """``check()`` holds at every look for ``seconds`` (a negative check:
    what must not happen has had the time to)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await check()
        await asyncio.sleep(0.2)


async def test_wall_step_while_running_opens_the_window_and_keeps_mbd(cse_process: Any, http: Any,
                                                                        tmp_path: Path) -> None:
    ft = FakeTime(tmp_path)
    cse1, cse2 = await start_pair(cse_process, http, cse1_env=ft.env())
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        now = time.time()
        await f.policy(window_sch(now + HOUR, now + 3 * HOUR), mbd=3600)
        sent = await stored(f)
        ft.set(2 * HOUR)  # an operator or NTP steps CSE1's wall clock into the window
        await delivered(f, sent)


async def test_wall_step_back_reopens_a_passed_window(cse_process: Any, http: Any, tmp_path: Path) -> None:
    ft = FakeTime(tmp_path)
    ft.set(HOUR)
    # CSE2 takes the OTs of CSE1's clock, an hour ahead of its own
    cse1, cse2 = await start_pair(cse_process, http, cse1_env=ft.env(), cse2_extra="\n[smg]\nfreshness_s = 7200\n")
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        now = time.time()
        await f.policy(window_sch(now, now + 600))  # over for good on CSE1's clock
        sent = await stored(f, offset=HOUR)
        ft.set(0)  # CSE1's clock is put right: the window is open
        await delivered(f, sent)


async def test_restart_two_hours_ahead_delivers_what_was_accepted(cse_process: Any, http: Any,
                                                                  tmp_path: Path) -> None:
    ft = FakeTime(tmp_path)
    cse1, cse2 = await start_pair(cse_process, http, cse1_env=ft.env())
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        now = time.time()
        await f.policy(window_sch(now + HOUR, now + 3 * HOUR), mbd=4 * 3600)
        sent = await stored(f)
        await cse1.stop()
        ft.set(2 * HOUR)
        await cse1.start()
        await delivered(f, sent)


async def test_restart_eleven_years_ahead_deletes_nothing_until_accepted(cse_process: Any, http: Any,
                                                                         tmp_path: Path) -> None:
    ft = FakeTime(tmp_path)
    cse1, cse2 = await start_pair(cse_process, http, cse1_env=ft.env())
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        now = time.time()
        r = await http.send("POST", f"{cse1.url}/{CB1}/AE1", fr=f.aei1, ty=3,
                            body={"m2m:cnt": {"rn": "daily", "et": format_ts(now + 86400)}})
        assert r.rsc == 2001, (r.rsc, r.body)
        await f.policy(window_sch(now + HOUR, now + 3 * HOUR), mbd=4 * 3600)
        sent = await stored(f, 3)
        await cse1.stop()
        ft.set(11 * YEAR)
        await cse1.start()
        assert any("expiry is held" in line for line in cse1.lines), "".join(cse1.lines)

        async def nothing_gone() -> None:
            r = await http.send("GET", f"{cse1.url}/{CB1}/AE1/daily", fr=ADMIN)
            assert r.rsc == 2000, (r.rsc, r.body)
            for _, ri in sent:
                req = await f.request_res(ri, fr=ADMIN)
                assert req["rs"] == PENDING, req

        await stays(nothing_gone, 3.0)
        # the operator confirms the clock: expiry runs, the stored requests end visibly
        await cse1.stop()
        cse1.extra_args = ["--accept-clock-jump"]
        await cse1.start()
        for rq, ri in sent:  # read as the admin: AE1 itself (default et 10 years) has expired too
            async def ended(ri: str = ri) -> dict[str, Any] | None:
                req = await f.request_res(ri, fr=ADMIN)
                return req if req["rs"] != PENDING else None
            done = await until(ended, f"stored request {rq} to end", 20)
            assert done["rs"] == FAILED and done["ors"]["rsc"] == 4008, done
        r = await http.send("GET", f"{cse1.url}/{CB1}/AE1/daily", fr=ADMIN)
        assert r.rsc == 4004, (r.rsc, r.body)
        assert (await f.container())["cni"] == 0  # never delivered

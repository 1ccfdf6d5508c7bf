"""Replays of session-based requests once the request-ID memory has forgotten them
(docs/sessions.md "Request MAC", docs/security.md "Replay protection").

The attack, on a real pair: AE1 (at CSE1) creates a contentInstance in AE2's
container through the session; an eavesdropper keeps the signed request and
later sends it *straight to CSE2*, the serving hop, which is not the ingress
hop and so has no freshness window (a stored request may reach it hours
later). While CSE2 still remembers the request ID the replay only gets the
first answer again. Once the bounded memory has forgotten it (4,700 requests
later with the default bound of 4096; here a bound of 8) it used to be
executed again (``cni`` 1 -> 2). Now the memory's low-water mark refuses it:
4103 with a dbg, nothing created.
"""

from __future__ import annotations

import time
from typing import Any

from cse.core.timestamps import format_ts
from tests.flow2_helpers import CNT_TO, CSI1, Flow2, dbg, rqi, start_pair
from tests.notify_receiver import Receiver

KEEP = 8
SMALL_MEMORY = f"\n[smg]\nreplay_keep = {KEEP}\n"


async def test_replay_to_the_serving_hop_after_the_memory_forgot_it(cse_process: Any, http: Any) -> None:
    cse1, cse2 = await start_pair(cse_process, http, cse1_extra=SMALL_MEMORY, cse2_extra=SMALL_MEMORY)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        rq, ot = rqi("victim"), format_ts(time.time())
        body = {"m2m:cin": {"con": f.enc("pay 100")}}
        first = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body=body, rq=rq, ot=ot)
        assert first.rsc == 2001, (first.rsc, first.body)

        async def replay() -> Any:
            # the captured request, word for word (same rqi, OT and MAC), straight to CSE2
            return await f.send("POST", cse2, CNT_TO, f"{CSI1}/{f.aei1}", ty=4, body=body, rq=rq, ot=ot)

        # remembered: answered again, not executed again
        again = await replay()
        assert again.rsc == 2001, (again.rsc, again.body)
        assert (await f.container())["cni"] == 1
        # the memory at CSE2 fills past its bound with newer requests of the session
        for _ in range(3 * KEEP):
            r = await f.send("GET", cse1, CNT_TO, f.aei1)
            assert r.rsc == 2000, (r.rsc, r.body)
        # forgotten by the memory, still refused
        late = await replay()
        assert late.rsc == 4103, (late.rsc, late.body)
        assert "no longer remembers" in dbg(late) and "replay" in dbg(late), dbg(late)
        assert (await f.container())["cni"] == 1
        # the session itself is unharmed: a new request goes through
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("next")}})
        assert r.rsc == 2001, (r.rsc, r.body)
        assert (await f.container())["cni"] == 2

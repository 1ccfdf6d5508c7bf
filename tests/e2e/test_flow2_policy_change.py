"""Flow 2: a stored request follows its policy as it is *now*. When the
endpoint AE changes the store-and-forward policy (a window that opens now)
or deletes it (delivery becomes immediate, docs/sessions.md "With no matching
policy, delivery is immediate"), requests already stored go in the new window,
not in the old one (which, here, never comes)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.flow2_helpers import CNT_TO, COMPLETED, CSI1, NEVER, PENDING, Flow2, rqi, start_pair, window_ahead
from tests.notify_receiver import Receiver


@pytest.mark.parametrize("change", ["update-window", "delete-policy"])
async def test_flow2_stored_requests_follow_a_changed_policy(cse_process: Any, http: Any, change: str) -> None:
    cse1, cse2 = await start_pair(cse_process, http)
    async with Receiver() as rcv1, Receiver() as rcv2:
        f = await Flow2(http, cse1, cse2, rcv1, rcv2).setup()
        await f.policy(NEVER, hop=CSI1)
        rq = rqi("chg")
        r = await f.send("POST", cse1, CNT_TO, f.aei1, ty=4, body={"m2m:cin": {"con": f.enc("x")}}, rq=rq)
        assert r.rsc == 1001, (r.rsc, r.body)
        ri = r.body["m2m:uri"]
        assert (await f.request_res(ri))["rs"] == PENDING
        url = f"{cse1.url}/{f.ses1}/sessionPolicies/sf"
        if change == "update-window":
            _, sch = window_ahead(0.0)
            u = await http.send("PUT", url, fr=f.aei1, body={"m2m:spo": {"sch": sch}})
            assert u.rsc == 2004, (u.rsc, u.body)
        else:
            u = await http.send("DELETE", url, fr=f.aei1)
            assert u.rsc == 2002, (u.rsc, u.body)
        done = await f.poll_request(ri, lambda q: q["rs"] != PENDING,
                                    f"the stored request to go after the policy change ({change})", 6)
        assert done["rs"] == COMPLETED and done["ors"]["rsc"] == 2001, done
        assert (await f.container())["cni"] == 1

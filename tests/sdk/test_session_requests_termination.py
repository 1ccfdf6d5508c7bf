"""A session-based request stored for a store-and-forward window, when the
session ends before the window opens (docs/sessions.md "Store-and-forward",
"Termination").

Why: the originator holds a PendingResult for the stored request and polls
its ``<request>`` (CSE1). Termination removes the stored request at every
hop; the originator must then learn that it will never be delivered: its
``<request>`` must leave PENDING (FAILED, with the reason in ``ors``), like
the other ways a stored request fails (``mbd`` expiry: 4008). Otherwise the
AE polls a request that can never complete until the ``<request>`` expires
(as it did before commit e1ba422; found again through the SDK's PendingResult).
"""

from __future__ import annotations

from ae_sdk import PendingResult
from tests.sdk.session_pair import CSI1, Flow, T

NEVER = ["* * * * * * 2099"]  # a window that does not open while the test runs
FAILED = 2


async def test_terminating_the_session_fails_its_stored_requests(flow: Flow) -> None:
    s1 = flow.s1
    await s1.add_policy(2, sch=NEVER, rn="never", hop=CSI1)
    pending = await s1.update("container1", {"lbl": ["never-delivered"]}, ty=3)
    assert isinstance(pending, PendingResult) and pending.rsc == 1001
    assert await s1.terminate() is None
    await flow.s2.wait_terminated(T)

    ors = await pending.result(timeout=T)
    assert ors["rsc"] == 4004 and "terminated" in ors["pc"]["m2m:dbg"], ors
    ref = pending.ref if "/" in pending.ref else flow.ae1.ri_path(pending.ref)
    assert (await flow.ae1.retrieve(ref))["rs"] == FAILED
    rsc, body = await flow.admin(flow.cse2, "cse2/ae2/container1")
    assert rsc == 2000 and "lbl" not in body["m2m:cnt"]  # and it was never delivered

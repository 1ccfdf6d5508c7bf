"""What a session does NOT authorize: the peer's other sessions and its session
events (docs/sessions.md "What a session authorizes", "session" scr;
"Who sees sessions": "Nobody else sees or discovers sessions").

AE1 (CSE1) has a session with AE2 (CSE2); AE3 (CSE1) has another one with AE2.
A session lets AE1 use AE2's resources whatever the ACPs say -- but AE2's
``sessions`` collection holds AE2's *other* sessions and the subscriptions
through which the CSE hands AE2 the keys of new sessions (typ 1 carries
``scr``, which must reach only the target AE). Through its own session AE1
must not:

* see or terminate AE2's session with AE3;
* subscribe to AE2's session events, or redirect AE2's own subscription:
  it would receive the key of every later session of AE2 and could even
  accept or reject them in AE2's place.

These tests FAIL against the CSE of this commit: the SMG gate
(``cse/csf/smg/gate.py``, ``_serve_local``) grants the session's authority to
everything at or below the endpoint AE, ``sessions`` subtree included (it only
refuses DELETE of the AE and of the ``sessions`` collection itself). Found
while testing the SDK's session-based requests; reported, not fixed here.
"""

from __future__ import annotations

import asyncio

import pytest

from ae_sdk import AEClient, HttpTransport, M2MResponseError, NotificationServer, SessionOffer
from tests.sdk.session_pair import CSI1, CSI2, Flow, T


async def _ae3(flow: Flow) -> AEClient:
    ae3 = AEClient(HttpTransport(flow.cse1.url, timeout=T), cse_name="cse1", cse_id=CSI1)
    await ae3.register("ae3", scp=["smg"])
    return ae3


async def test_a_session_gives_no_access_to_the_peers_other_sessions(flow: Flow) -> None:
    ae3 = await _ae3(flow)
    try:
        s3 = await ae3.establish(f"{CSI2}/{flow.ae2.originator}")
        other = f"{flow.ae2_path}/sessions/ses{s3.sid}"
        with pytest.raises(M2MResponseError) as info:
            await flow.s1.retrieve(other)                      # today: 2000, AE3's session shown to AE1
        assert info.value.rsc == 4103
        with pytest.raises(M2MResponseError) as info:
            await flow.s1.delete(other)                        # today: 2002, AE1 ends AE2's session with AE3
        assert info.value.rsc == 4103
        assert (await flow.admin(flow.cse2, f"cse2/ae2/sessions/ses{s3.sid}"))[0] == 2000
        assert not s3.terminated
    finally:
        await ae3.close()


async def test_a_session_cannot_hear_the_peers_session_events(flow: Flow) -> None:
    offers: asyncio.Queue[SessionOffer] = asyncio.Queue()
    await flow.ae2.enable_sessions(lambda offer: offers.put_nowait(offer) or True)
    spy = NotificationServer()
    await spy.start()
    ae3 = await _ae3(flow)
    try:
        with pytest.raises(M2MResponseError) as info:         # today: 2001
            await flow.s1.create(f"{flow.ae2_path}/sessions", 23, {"rn": "spy", "nu": [spy.url]})
        assert info.value.rsc == 4103
        with pytest.raises(M2MResponseError) as info:         # today: 2004, AE2's events now go to AE1
            await flow.s1.update(f"{flow.ae2_path}/sessions/sdk-sessions", {"nu": [spy.url]}, ty=23)
        assert info.value.rsc == 4103

        s3 = await ae3.establish(f"{CSI2}/{flow.ae2.originator}")
        assert (await asyncio.wait_for(offers.get(), T)).sid == s3.sid   # AE2 itself decided
        leaked = [n for n in spy.received_nowait() if "scr" in str(n.content)]
        assert not leaked, "the key of AE2's session with AE3 reached AE1's receiver"
    finally:
        await spy.stop()
        await ae3.close()

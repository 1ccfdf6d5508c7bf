"""A session establishment offer reaches an AE behind NAT (docs/sdk.md
"Behind NAT: a polling channel"): AE2 registers with rr false and
receives through its pollingChannel; AE1 establishes a session with it; the
offer comes to AE2 by polling, its decision goes back as the poll's answer,
and both ends agree on the session. One in-process CSE, no port opened by AE2."""

from __future__ import annotations

import asyncio
from typing import Any

from ae_sdk import AEClient, InProcessTransport, Session, SessionOffer
from ae_sdk.polling import PollingReceiver
from cse.app import CSE

T = 10.0  # upper bound of every wait (not a performance target)


async def test_session_offer_through_the_polling_channel(cse_app: CSE) -> None:
    a1 = AEClient(InProcessTransport(cse_app.handle))
    a2 = AEClient(InProcessTransport(cse_app.handle))
    try:
        await a1.register("ae1", scp=["smg"])
        await a2.register("ae2", scp=["smg"], rr=False)
        server = await a2.start_notifications(polling=True)
        assert isinstance(server, PollingReceiver)
        offers: list[SessionOffer] = []
        announced: asyncio.Queue[Session] = asyncio.Queue()

        def decide(offer: SessionOffer) -> dict[str, Any]:
            offers.append(offer)
            return {"role": "sensor"}

        await a2.enable_sessions(decide)
        a2.on_session(announced.put_nowait)
        s1 = await a1.establish(a2.originator or "", epa={"role": "collector"})
        s2 = await asyncio.wait_for(announced.get(), T)
        assert s1.sid == s2.sid and s1.key == s2.key
        assert len(offers) == 1 and offers[0].initiator == f"/id-in/{a1.originator}"
        assert server.polls >= 2  # at least the subscription's verification and the offer
    finally:
        await a1.close()
        await a2.close()

"""A session across two CSEs with the target AE behind NAT (docs/sdk.md
"Behind NAT: a polling channel"; docs/sessions.md): AE2 on CSE2 registers
with rr false and receives through its pollingChannel, opening no port;
AE1 on CSE1 establishes a session with it; the offer crosses both CSEs and
reaches AE2 by polling, and both ends agree. Real CSE processes, loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ae_sdk import AEClient, HttpTransport, SessionOffer
from ae_sdk.polling import PollingReceiver
from tests.conftest import Http
from tests.sdk.session_pair import CSI1, CSI2, T, start_registered_pair


async def test_session_offer_across_two_cses_through_the_polling_channel(
        cse_process: Callable[..., Any], http: Http) -> None:
    cse1, cse2 = await start_registered_pair(cse_process, http)

    ae1 = AEClient(HttpTransport(cse1.url, timeout=T), cse_name="cse1", cse_id=CSI1)
    ae2 = AEClient(HttpTransport(cse2.url, timeout=T), cse_name="cse2", cse_id=CSI2)
    offers: list[SessionOffer] = []
    try:
        await ae1.register("ae1", scp=["smg"])
        await ae2.register("ae2", scp=["smg"], rr=False)
        server = await ae2.start_notifications(polling=True)
        assert isinstance(server, PollingReceiver)
        await ae1.enable_sessions(lambda offer: False)
        await ae2.enable_sessions(lambda offer: offers.append(offer) or {"role": "sensor"})
        s1 = await ae1.establish(f"{CSI2}/{ae2.originator}", epa={"role": "collector"})
        s2 = await ae2.next_session(T)
        assert s1.sid == s2.sid and s1.key == s2.key
        assert [o.epa for o in offers] == [{"role": "collector"}]
        assert server.polls >= 2  # the subscription's verification and the offer came by polling
    finally:
        await ae1.close()
        await ae2.close()

"""Re-running an AE that subscribes with a notification server on a random port.

Why: each run used to create another ``<subscription>`` (CSE-assigned name)
whose ``nu`` was the previous run's port, now dead: they piled up and the
CSE kept trying them. Now a subscription has a stable name per AE,
resource and events, and a re-run replaces it; ``close(unsubscribe=True)``
removes it.
"""

from __future__ import annotations

import asyncio

from ae_sdk import AEClient, InProcessTransport
from cse.app import CSE

T = 10.0


async def _subscriptions(cse: CSE, client: AEClient) -> list[dict[str, object]]:
    container = await cse.store.get_by_path(f"{client.cse_name}/app/data")
    assert container is not None
    return [d for d in await cse.store.children(container["ri"]) if d["ty"] == 23]


async def _run(cse: CSE) -> tuple[AEClient, asyncio.Queue[dict[str, object]]]:
    client = AEClient(InProcessTransport(cse.handle))
    await client.register("app", origin="Capp")
    await client.create_container("app", "data", exist_ok=True)
    await client.start_notifications()  # a new random port each run
    got: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await client.subscribe("app/data", got.put_nowait)
    return client, got


async def test_a_rerun_replaces_its_subscription_and_close_can_remove_it(cse_app: CSE) -> None:
    first, _ = await _run(cse_app)
    old_url = first.notifications.url if first.notifications else ""
    await first.close()  # the receiver is gone; its subscription stays
    second, got = await _run(cse_app)
    subs = await _subscriptions(cse_app, second)
    assert len(subs) == 1, subs
    assert second.notifications is not None
    assert subs[0]["nu"] == [second.notifications.url] != [old_url]
    await second.create_content_instance("app/data", "x")
    sgn = await asyncio.wait_for(got.get(), T)
    assert sgn["nev"]["rep"]["m2m:cin"]["con"] == "x"  # type: ignore[index]
    # distinct events are distinct subscriptions; replace=False and no rn: the CSE names each
    await second.subscribe("app/data", got.put_nowait, net=(1, 3))
    await second.subscribe("app/data", got.put_nowait, replace=False)
    assert len(await _subscriptions(cse_app, second)) == 3
    await second.close(unsubscribe=True)
    assert await _subscriptions(cse_app, second) == []

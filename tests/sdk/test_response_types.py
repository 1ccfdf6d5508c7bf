"""The SDK's response types 4 (flexBlocking) and 5 (noResponse) (docs/sdk.md,
docs/onem2m.md "Non-blocking requests"): rt 4 returns the result when the
CSE answered at once, else the <request> reference; rt 5 returns nothing.
Against an in-process CSE and a scripted one (InProcessTransport)."""

from __future__ import annotations

from typing import Any

from ae_sdk import AEClient, InProcessTransport
from cse.app import CSE
from cse.core.messages import Request, Response
from tests.waiting import until

from .conftest import Recorder


async def test_flex_blocking_answered_at_once_returns_the_result(client: AEClient, recorder: Recorder) -> None:
    await client.register("app")
    cnt = await client.create("app", 3, {}, rn="flex", rt=4)
    assert isinstance(cnt, dict) and cnt["rn"] == "flex"
    assert recorder.requests[-1].rt == 4
    got = await client.retrieve("app/flex", rt=4)
    assert isinstance(got, dict) and got["ri"] == cnt["ri"]
    assert await client.delete("app/flex", rt=4) is None  # deleted at once: nothing to refer to


async def test_no_response_returns_nothing_and_the_cse_still_acts(client: AEClient, recorder: Recorder,
                                                                  cse_app: CSE) -> None:
    await client.register("app")
    assert await client.create("app", 3, {}, rn="quiet", rt=5) is None  # type: ignore[func-returns-value]
    assert recorder.requests[-1].rt == 5

    async def created() -> bool:  # the CSE runs it in the background
        return await cse_app.store.get_by_path("cse-in/app/quiet") is not None

    await until(created, "the rt=5 container is created", timeout=5)
    assert (await client.retrieve("app/quiet"))["rn"] == "quiet"
    assert await client.update("app/quiet", {"lbl": ["x"]}, ty=3, rt=5) is None  # type: ignore[func-returns-value]


async def test_flex_blocking_turned_non_blocking_returns_the_reference() -> None:
    seen: list[Request] = []

    async def cse(req: Request) -> Response:  # a CSE that chose non-blocking (1001 + <request> reference)
        seen.append(req)
        return Response(rsc=1001, rqi=req.rqi, pc={"m2m:uri": "req7"})

    c = AEClient(InProcessTransport(cse), originator="Cme")
    ref = await c.update("x", {"lbl": ["a"]}, ty=3, rt=4, rtu=["http://127.0.0.1:9/n"])
    assert ref == "req7" and seen[-1].rt == 4 and seen[-1].rtu == ("http://127.0.0.1:9/n",)
    assert await c.delete("x", rt=4) == "req7"
    created: Any = await c.create("x", 3, {}, rt=4)
    assert created == "req7"

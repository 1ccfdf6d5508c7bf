"""The SDK's generic create/retrieve with timeSeries, timeSeriesInstance and
a flexContainer keeping flexContainerInstances (docs/onem2m.md "timeSeries",
"flexContainerInstance"), against an in-process CSE."""

from __future__ import annotations

import pytest

from ae_sdk import AEClient, M2MResponseError
from ae_sdk.content import root_for


async def test_timeseries_and_flex_history_through_the_sdk(client: AEClient) -> None:
    await client.register("hist")
    ts = await client.create("hist", 29, {"mni": 5, "pei": 1000, "mdd": True}, rn="temps")
    assert (ts["cni"], ts["mdc"], ts["mdlt"]) == (0, 0, []), ts
    tsi = await client.create("hist/temps", 30, {"dgt": "20300101T000000", "con": "21.5", "snr": 1})
    assert tsi["cs"] == 4 and tsi["dgt"].startswith("20300101T000000"), tsi
    assert (await client.retrieve("hist/temps/la"))["con"] == "21.5"
    with pytest.raises(M2MResponseError) as info:
        await client.create("hist/temps", 30, {"dgt": "20300101T000000", "con": "again"})
    assert info.value.rsc == 4105
    f = await client.create("hist", 28, {"cnd": "com.example.meter", "mni": 2, "kWh": 1}, rn="meter")
    assert f["cni"] == 1, f
    await client.update("hist/meter", {"kWh": 2}, ty=28)
    assert (await client.retrieve("hist/meter/la"))["kWh"] == 2
    assert root_for(58) == "m2m:fcin"
    with pytest.raises(M2MResponseError) as info:
        await client.create("hist/meter", 58, {"kWh": 3})
    assert info.value.rsc == 4005

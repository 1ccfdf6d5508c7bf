"""Fixtures shared by the pipeline tests (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.flow2_helpers import LocalSession, local_session
from tests.notify_receiver import Receiver


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` registered on the in-process CSE: ``{"ip", "aei"}``."""
    aei = await inproc.register("app")
    return {"ip": inproc, "aei": aei}


@pytest.fixture
async def rcv2() -> AsyncIterator[Receiver]:
    """AE2's notification receiver on loopback."""
    async with Receiver() as r:
        yield r


@pytest.fixture
async def ls(inproc: Any, rcv2: Receiver) -> LocalSession:
    """AE1 and AE2 on the in-process CSE with an established session (:func:`local_session`)."""
    return await local_session(inproc, rcv2)

"""Fixtures shared by the pipeline tests (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def app(inproc: Any) -> dict[str, Any]:
    """An AE ``app`` registered on the in-process CSE: ``{"ip", "aei"}``."""
    aei = await inproc.register("app")
    return {"ip": inproc, "aei": aei}

"""Fixtures for the AE SDK tests.

* ``cse_app`` -- a started in-process :class:`cse.app.CSE` on the memory store
  (no HTTP server; its outbound notifications still use loopback HTTP).
* ``recorder`` -- an :class:`InProcessTransport` to it that keeps every
  request and response, to check what the SDK sends.
* ``client`` -- an :class:`AEClient` over ``recorder``, closed at teardown.
* ``flow`` -- a real pair with AE1, AE2 and an established session
  (:mod:`tests.sdk.session_pair`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ae_sdk import AEClient, InProcessTransport
from cse.app import CSE
from cse.core.messages import Request, Response


class Recorder:
    """A transport that records what passes through another one."""

    def __init__(self, inner: InProcessTransport) -> None:
        self.inner = inner
        self.requests: list[Request] = []
        self.responses: list[Response] = []

    async def send(self, req: Request) -> Response:
        self.requests.append(req)
        resp = await self.inner.send(req)
        self.responses.append(resp)
        return resp


@pytest.fixture
def recorder(cse_app: CSE) -> Recorder:
    return Recorder(InProcessTransport(cse_app.handle))


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[AEClient]:
    async with AEClient(recorder) as c:
        yield c


# A real pair with an established session, for the session-based request tests.
from tests.sdk.session_pair import flow  # noqa: E402,F401

"""HttpOutbound with a token source: which requests carry the token, and one retry after a refusal.

Why: the CSE's token must go to peer CSEs (registration, forwarding) but
never to an AE's notification URL; and a token the peer no longer accepts
(expired early, key rotated) must cost one retry with a fresh token, not a
failed request -- and not a retry loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from cse.binding.http_client import HttpOutbound
from cse.core.messages import Operation, Request


class Tokens:
    """Gives "old" until invalidated, then "new"."""

    def __init__(self) -> None:
        self.current = "old"
        self.invalidated: list[str] = []

    async def token(self, session: aiohttp.ClientSession, peer: str | None = None) -> str:
        return self.current

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        self.current = "new"


class Peer:
    """A loopback peer accepting only ``Bearer new`` (or anything on /notify)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, request: web.BaseRequest) -> web.Response:
        auth = request.headers.get("Authorization")
        self.seen.append((request.path, auth))
        if request.path.startswith("/notify") or auth == "Bearer new":
            return web.Response(status=200, headers={"X-M2M-RSC": "2000", "X-M2M-RI": "r"})
        return web.Response(status=403, headers={"X-M2M-RSC": "4103", "X-M2M-RI": "r",
                                                  "WWW-Authenticate": 'Bearer error="invalid_token"'},
                            body=b'{"m2m:dbg": "access token refused: token expired 3 s ago"}',
                            content_type="application/json")


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, str]]:
    p = Peer()
    runner = web.ServerRunner(web.Server(p.handle))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield p, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def req() -> Request:
    return Request(op=Operation.RETRIEVE, to="/id-cse2/cse2", fr="/id-cse1", rqi="r")


async def test_refused_token_is_renewed_once(peer: tuple[Peer, str]) -> None:
    p, base = peer
    tokens = Tokens()
    out = HttpOutbound(tokens=tokens)
    try:
        resp = await out.send(base, req(), timeout=5)
        assert resp.rsc == 2000
        assert tokens.invalidated == ["old"]
        assert [a for _, a in p.seen] == ["Bearer old", "Bearer new"]
    finally:
        await out.close()


async def test_a_second_refusal_is_returned_not_retried(peer: tuple[Peer, str]) -> None:
    p, base = peer
    tokens = Tokens()
    tokens.invalidate = lambda token: tokens.invalidated.append(token)  # type: ignore[method-assign]
    out = HttpOutbound(tokens=tokens)
    try:
        resp = await out.send(base, req(), timeout=5)
        assert resp.rsc == 4103 and "expired" in resp.pc["m2m:dbg"]
        assert len(p.seen) == 2 and tokens.invalidated == ["old"]
    finally:
        await out.close()


async def test_notification_urls_never_get_the_token(peer: tuple[Peer, str]) -> None:
    p, base = peer
    out = HttpOutbound(tokens=Tokens())
    try:
        resp = await out.send(f"{base}/notify", req(), timeout=5, exact=True)
        assert resp.rsc == 2000 and p.seen == [("/notify", None)]
    finally:
        await out.close()

"""NotificationServer on its own (no CSE): answers, dispatch, rejections.

Requests are POSTed with aiohttp over loopback; tests wait on queues and
events with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ae_sdk import NotificationServer
from ae_sdk.notify_server import canonical_id

_rqi = itertools.count(1)
TIMEOUT = 5.0


@pytest.fixture
async def server() -> AsyncIterator[NotificationServer]:
    async with NotificationServer() as s:
        yield s


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as s:
        yield s


async def post(session: aiohttp.ClientSession, url: str, body: Any = None, *, raw: bytes | None = None,
               headers: dict[str, str] | None = None, method: str = "POST",
               rqi: str | None = None) -> tuple[int, dict[str, str], Any]:
    h = {"X-M2M-Origin": "/id-in", "X-M2M-RI": rqi or f"ntf{next(_rqi)}", "X-M2M-RVI": "3",
         "Content-Type": "application/json"}
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with session.request(method, url, headers=h, data=data) as resp:
        payload = await resp.read()
        return resp.status, dict(resp.headers), json.loads(payload) if payload else None


class Collector:
    """A callback that puts what it gets on a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __call__(self, content: dict[str, Any]) -> None:
        self.queue.put_nowait(content)

    async def get(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


def sgn(sur: str, con: str = "21.5", net: int = 3) -> dict[str, Any]:
    return {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": con, "ty": 4}}, "net": net}, "sur": sur}}


def test_canonical_id() -> None:
    assert canonical_id("/id-in/sub1") == "sub1"
    assert canonical_id("//sp.example/id-in/sub1") == "sub1"
    assert canonical_id("sub1") == "sub1"
    assert canonical_id("/id-in/cse-in/app/sub") == "cse-in/app/sub"
    assert canonical_id("/Sabc") == "/Sabc"


async def test_url_and_stop() -> None:
    s = NotificationServer()
    with pytest.raises(RuntimeError):
        _ = s.url
    await s.start()
    assert s.url.startswith("http://127.0.0.1:") and s.port != 0
    await s.stop()
    assert not s.running


async def test_verification_request_is_answered_2000(server: NotificationServer,
                                                     session: aiohttp.ClientSession) -> None:
    status, headers, body = await post(session, server.url, {"m2m:sgn": {"vrq": True, "sur": "/id-in/sub1",
                                                                         "cr": "Capp"}}, rqi="vrq-1")
    assert status == 200
    assert headers["X-M2M-RSC"] == "2000"
    assert headers["X-M2M-RI"] == "vrq-1"
    assert body is None
    got = await server.next(TIMEOUT)
    assert got.kind == "verification" and got.sur == "/id-in/sub1"
    assert got.request.fr == "/id-in" and got.request.rqi == "vrq-1"


@pytest.mark.parametrize("accept", [False, True])
async def test_verification_hook(session: aiohttp.ClientSession, accept: bool) -> None:
    seen: list[dict[str, Any]] = []

    async def verify(content: dict[str, Any]) -> bool:
        seen.append(content)
        return accept

    async with NotificationServer(verify=verify) as server:
        status, headers, body = await post(session, server.url, {"m2m:sgn": {"vrq": True, "sur": "s1"}})
    assert seen == [{"vrq": True, "sur": "s1"}]
    if accept:
        assert (status, headers["X-M2M-RSC"]) == (200, "2000")
    else:
        assert (status, headers["X-M2M-RSC"]) == (403, "4101")
        assert "s1" in body["m2m:dbg"]


async def test_dispatch_by_sur_in_both_forms(server: NotificationServer,
                                             session: aiohttp.ClientSession) -> None:
    one, two = Collector(), Collector()
    server.add_subscription("/id-in/sub1", one)
    server.add_subscription("sub2", two)
    status, headers, _ = await post(session, server.url, sgn("sub1", "a"), rqi="n-1")
    assert (status, headers["X-M2M-RSC"], headers["X-M2M-RI"]) == (200, "2000", "n-1")
    await post(session, server.url, sgn("/id-in/sub2", "b"))
    await post(session, server.url + "/any/path", sgn("//sp.example/id-in/sub1", "c"))
    assert (await one.get())["nev"]["rep"]["m2m:cin"]["con"] == "a"
    assert (await two.get())["nev"]["rep"]["m2m:cin"]["con"] == "b"
    third = await one.get()
    assert third["nev"]["rep"]["m2m:cin"]["con"] == "c" and third["sur"] == "//sp.example/id-in/sub1"
    kinds = [(await server.next(TIMEOUT)).kind for _ in range(3)]
    assert kinds == ["notification"] * 3


async def test_async_callbacks_run_in_order_and_errors_are_contained(server: NotificationServer,
                                                                     session: aiohttp.ClientSession) -> None:
    got = Collector()
    calls = 0

    async def flaky(content: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("callback bug")
        await asyncio.sleep(0)
        got(content)

    server.add_subscription("/id-in/sub1", flaky)
    for con in ("1", "2", "3"):
        _status, headers, _ = await post(session, server.url, sgn("sub1", con))
        assert headers["X-M2M-RSC"] == "2000"
    assert [(await got.get())["nev"]["rep"]["m2m:cin"]["con"] for _ in range(2)] == ["2", "3"]


async def test_deletion_notification(server: NotificationServer, session: aiohttp.ClientSession) -> None:
    notified, deleted = Collector(), Collector()
    server.add_subscription("/id-in/sub1", notified, on_deleted=deleted)
    await post(session, server.url, {"m2m:sgn": {"sud": True, "sur": "/id-in/sub1"}})
    assert (await deleted.get())["sud"] is True
    assert (await server.next(TIMEOUT)).kind == "deletion"
    # the registration ended with the deletion: later notifications are unclaimed
    fallback = Collector()
    server.catch_all = fallback
    await post(session, server.url, sgn("sub1"))
    assert (await fallback.get())["sur"] == "sub1"
    assert notified.queue.empty()


async def test_catch_all_and_early_notifications(server: NotificationServer,
                                                 session: aiohttp.ClientSession) -> None:
    fallback = Collector()
    server.catch_all = fallback
    await post(session, server.url, sgn("/id-in/subX", "early"))
    assert (await fallback.get())["nev"]["rep"]["m2m:cin"]["con"] == "early"
    # the subscription's callback registered just after its first notification still gets it
    late = Collector()
    server.add_subscription("/id-in/subX", late)
    assert (await late.get())["nev"]["rep"]["m2m:cin"]["con"] == "early"
    await post(session, server.url, {"m2m:other": {"x": 1}})
    assert await fallback.get() == {"m2m:other": {"x": 1}}


async def test_batched_notifications(server: NotificationServer, session: aiohttp.ClientSession) -> None:
    got = Collector()
    server.add_subscription("sub1", got)
    batch = {"m2m:agn": {"m2m:sgn": [sgn("/id-in/sub1", "1")["m2m:sgn"], sgn("/id-in/sub1", "2")["m2m:sgn"]]}}
    _status, headers, _ = await post(session, server.url, batch)
    assert headers["X-M2M-RSC"] == "2000"
    assert [(await got.get())["nev"]["rep"]["m2m:cin"]["con"] for _ in range(2)] == ["1", "2"]


async def test_result_dispatch(session: aiohttp.ClientSession) -> None:
    default = Collector()
    async with NotificationServer(on_result=default) as server:
        specific = Collector()
        server.add_result_callback("rq-7", specific)
        rsp = {"m2m:rsp": {"rsc": 2001, "rqi": "rq-7", "pc": {"m2m:cnt": {"rn": "x"}}, "to": "cse-in/app",
                           "fr": "/id-in", "rvi": "3"}}
        status, headers, _ = await post(session, server.url, rsp)
        assert (status, headers["X-M2M-RSC"]) == (200, "2000")
        assert (await specific.get())["pc"]["m2m:cnt"]["rn"] == "x"
        assert (await server.next(TIMEOUT)).kind == "result"
        await post(session, server.url, {"m2m:rsp": {"rsc": 2002, "rqi": "rq-8"}})
        assert (await default.get())["rqi"] == "rq-8"
        # a result callback is used once
        await post(session, server.url, rsp)
        assert (await default.get())["rqi"] == "rq-7"
        assert specific.queue.empty()


@pytest.mark.parametrize("raw, content_type, rsc", [
    (b"{not json", "application/json", 4000),
    (b"[1, 2]", "application/json", 4000),
    (b"", "application/json", 4000),
    (b"\xff\xfe", "application/json", 4000),
    (b'{"m2m:sgn": 5}', "application/json", 4000),
    (b"<sgn/>", "application/xml", 4015),
    (b'{"m2m:sgn": {}}', "application/json;ty=4", 4005),
])
async def test_bad_requests(server: NotificationServer, session: aiohttp.ClientSession, raw: bytes,
                            content_type: str, rsc: int) -> None:
    status, headers, body = await post(session, server.url, raw=raw, headers={"Content-Type": content_type},
                                       rqi="bad-1")
    assert headers["X-M2M-RSC"] == str(rsc)
    assert headers["X-M2M-RI"] == "bad-1"
    assert status == {4000: 400, 4015: 415, 4005: 405}[rsc]
    assert body["m2m:dbg"]


async def test_header_checks(server: NotificationServer, session: aiohttp.ClientSession) -> None:
    body = json.dumps(sgn("s")).encode()
    async with session.post(server.url, data=body, headers={"X-M2M-RVI": "3",
                                                            "Content-Type": "application/json"}) as resp:
        assert resp.headers["X-M2M-RSC"] == "4000"  # no X-M2M-RI
    status, headers, _ = await post(session, server.url, raw=body, headers={"X-M2M-RVI": "1"})
    assert headers["X-M2M-RSC"] == "4001"
    status, headers, _ = await post(session, server.url, method="GET")
    assert (status, headers["X-M2M-RSC"]) == (405, "4005")


async def test_next_times_out(server: NotificationServer) -> None:
    with pytest.raises(TimeoutError):
        await server.next(0.01)

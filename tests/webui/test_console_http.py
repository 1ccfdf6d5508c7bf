"""The console's HTTP side in-process: files, headers, the switch, the live log's gate and bounds.

Why (docs/webui.md): the console's files are served from a fixed list (no
path reaches outside it) with a Content-Security-Policy; the live log shows
every client's originator and target, so only the admin originator may open
it, a bounded number at once, each reader with a bounded buffer and dropped
when it falls behind; and an open log must not hold up the CSE's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from cse.app import CSE
from cse.config import Config, ConfigError, load_config
from cse.observe.requestlog import FeedFull, RequestFeed
from cse.store.memory import MemoryStore
from tests.conftest import ADMIN, write_config

WAIT = 10.0  # upper bound of every wait (not a performance target)


def _config(tmp_path: Path, extra: str = "") -> Config:
    return load_config(str(write_config(tmp_path / "cse", db=":memory:", extra=extra)))


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[tuple[CSE, str]]:
    cse = CSE(config, store=MemoryStore())
    await cse.start()
    try:
        assert cse.http is not None
        yield cse, f"http://127.0.0.1:{cse.http.port}"
    finally:
        await cse.stop()


async def _event(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, object]]:
    """The next server-sent event: (name, data), skipping comment lines."""
    name, data = "message", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), WAIT)).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data:
            return name, json.loads(data)


async def test_files_carry_the_policy_and_nothing_outside_the_folder_is_served(tmp_path: Path) -> None:
    async with serving(_config(tmp_path)) as (_, url), aiohttp.ClientSession() as s:
        async with s.get(f"{url}/webui", allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"] == "/webui/"
        async with s.get(f"{url}/webui/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            page = await r.text()
        assert "<script>" not in page and 'type="module" src="app.js"' in page  # no inline script
        async with s.get(f"{url}/webui/app.js") as r:
            assert r.status == 200 and r.content_type == "text/javascript"
        async with s.get(f"{url}/webui/config.json") as r:
            assert await r.json() == {"cseId": "/id-in", "cseName": "cse-in"}
        for raw in ("/webui/..%2fconfig.py", "/webui/%2e%2e/app.py", "/webui/../cse/app.py", "/webui/nope.js"):
            async with s.get(URL(url + raw, encoded=True)) as r:
                assert r.status == 404, raw
                assert r.headers["X-M2M-RSC"] == "4004"
        async with s.post(f"{url}/webui/") as r:
            assert r.status == 405


async def test_switched_off_the_paths_are_ordinary_onem2m_targets(tmp_path: Path) -> None:
    async with serving(_config(tmp_path, "\n[webui]\nenabled = false\n")) as (cse, url), \
            aiohttp.ClientSession() as s:
        assert cse.request_feed is None
        for path in ("/webui/", "/webui/app.js", "/webui/log"):
            async with s.get(f"{url}{path}", headers={"X-M2M-Origin": ADMIN, "X-M2M-RI": "1",
                                                      "X-M2M-RVI": "3"}) as r:
                assert r.headers["X-M2M-RSC"] in ("4000", "4004"), path  # the oneM2M mapping answered
                assert "Content-Security-Policy" not in r.headers


def test_the_bounds_are_checked_at_load(tmp_path: Path) -> None:
    for extra in ("log_buffer = 0", "max_log_clients = 0", "allow = []"):
        with pytest.raises(ConfigError, match="webui"):
            _config(tmp_path, f"\n[webui]\n{extra}\n")
    assert _config(tmp_path).webui.enabled  # on by default (docs/webui.md)


async def test_the_live_log_is_the_admins_bounded_and_a_reader_behind_is_dropped(tmp_path: Path) -> None:
    extra = "\n[webui]\nmax_log_clients = 1\nlog_buffer = 2\n"
    async with serving(_config(tmp_path, extra)) as (cse, url), aiohttp.ClientSession() as s:
        for headers in ({}, {"X-M2M-Origin": "Cother"}):
            async with s.get(f"{url}/webui/log", headers=headers) as r:
                assert (r.status, r.headers["X-M2M-RSC"]) == (403, "4103")
                assert "admin" in (await r.json())["m2m:dbg"]
        async with s.get(f"{url}/webui/log", headers={"X-M2M-Origin": ADMIN}) as log:
            assert log.status == 200 and log.content_type == "text/event-stream"
            assert await _event(log) == ("open", {"buffer": 2})
            async with s.get(f"{url}/cse-in?x=1", headers={"X-M2M-Origin": "Cnobody", "X-M2M-RI": "r1",
                                                             "X-M2M-RVI": "3"}) as r:
                assert r.headers["X-M2M-RSC"] == "4103"
            name, entry = await _event(log)
            assert name == "message"
            assert {k: entry[k] for k in ("method", "target", "origin", "rsc", "rqi")} == {
                "method": "GET", "target": "/cse-in?x=1", "origin": "Cnobody", "rsc": 4103, "rqi": "r1"}
            assert "not registered" in str(entry["dbg"]) and isinstance(entry["ms"], float)
            async with s.get(f"{url}/webui/log", headers={"X-M2M-Origin": ADMIN}) as second:
                assert (second.status, second.headers["X-M2M-RSC"]) == (503, "5207")  # max_log_clients
            feed = cse.request_feed
            assert feed is not None
            for i in range(3):  # before the stream's writer runs again: its buffer of 2 overflows
                feed.publish({"target": f"/t{i}"})
            assert feed.readers == 0 and feed.dropped == 1
            assert [await _event(log) for _ in range(3)] == [
                ("message", {"target": "/t0"}), ("message", {"target": "/t1"}),
                ("dropped", {"reason": "this reader fell 2 entries behind and was dropped"})]
            assert await asyncio.wait_for(log.content.read(), WAIT) == b""  # and closed


async def test_an_open_log_does_not_hold_up_the_shutdown(tmp_path: Path) -> None:
    cse = CSE(_config(tmp_path), store=MemoryStore())
    await cse.start()
    assert cse.http is not None
    async with aiohttp.ClientSession() as s, \
            s.get(f"http://127.0.0.1:{cse.http.port}/webui/log", headers={"X-M2M-Origin": ADMIN}) as log:
        assert (await _event(log))[0] == "open"
        await asyncio.wait_for(cse.stop(), 5.0)  # aiohttp would wait 10 s for the open stream
        assert await asyncio.wait_for(log.content.read(), WAIT) == b""


async def test_feed_bounds_readers_and_never_waits_for_one() -> None:
    feed = RequestFeed(max_clients=2, buffer=3)
    a, b = feed.subscribe(), feed.subscribe()
    with pytest.raises(FeedFull):
        feed.subscribe()
    for i in range(3):
        feed.publish({"n": i})
    assert await a.next(0.01) == [{"n": 0}, {"n": 1}, {"n": 2}]
    feed.publish({"n": 3})  # a has room again; b is full and is dropped
    assert feed.readers == 1 and b.dropped and not a.dropped
    assert await b.next(0.01) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert await b.next(0.01) is None
    assert await a.next(0.01) == [{"n": 3}]
    assert await a.next(0.01) == []  # quiet: nothing, but still open
    feed.subscribe()  # b's place is free


async def test_with_bearer_tokens_the_log_needs_a_token_allowing_the_admin(tmp_path: Path) -> None:
    secret = tmp_path / "hs256.secret"
    secret.write_bytes(b"s" * 40)
    extra = f'\n[auth]\nenabled = true\nhs256_secret_file = "{secret}"\n'
    async with serving(_config(tmp_path, extra)) as (cse, url), aiohttp.ClientSession() as s:
        guard = cse.security.binding.guard if cse.security.binding is not None else None
        assert guard is not None
        for token in (None, guard.mint("Cother", ["Cother"])[0]):
            headers = {"X-M2M-Origin": ADMIN, **({"Authorization": f"Bearer {token}"} if token else {})}
            async with s.get(f"{url}/webui/log", headers=headers) as r:
                assert (r.status, r.headers["X-M2M-RSC"]) == (403, "4103")
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        headers = {"X-M2M-Origin": ADMIN, "Authorization": f"Bearer {guard.mint(ADMIN, [ADMIN])[0]}"}
        async with s.get(f"{url}/webui/log", headers=headers) as log:
            assert log.status == 200
            assert (await _event(log))[0] == "open"

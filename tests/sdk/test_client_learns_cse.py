"""One URL is enough: the SDK learns the CSEBase name and the CSE-ID from the CSE.

Why: ``AEClient("http://127.0.0.1:8082")`` against CSE2 of the pair
(``/id-cse2``, CSEBase ``cse2``) failed with 4004 "ri 'cse-in' does not
exist": the client assumed the single CSE's names. A CSE that is not
``cse-in`` here stands for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ae_sdk import AEClient, SyncAEClient
from cse.app import CSE
from cse.config import load_config
from cse.store.memory import MemoryStore
from tests.conftest import write_config


@contextlib.asynccontextmanager
async def other_cse(tmp_path: Path) -> AsyncIterator[str]:
    cfg = write_config(tmp_path, cse_id="/id-cse2", name="cse2", db=":memory:")
    cse = CSE(load_config(str(cfg)), store=MemoryStore())
    await cse.start()
    try:
        assert cse.http is not None
        yield f"http://127.0.0.1:{cse.http.port}"
    finally:
        await cse.stop()


async def test_a_plain_url_learns_the_names_at_registration(tmp_path: Path) -> None:
    async with other_cse(tmp_path) as url, AEClient(url) as client:
        ae = await client.register("app1", origin="Capp1")
        assert (client.cse_name, client.cse_id) == ("cse2", "/id-cse2")
        assert client.ae_path == "cse2/app1"
        await client.create_container("app1", "data")
        await client.create_content_instance("app1/data", "21.5")
        assert (await client.retrieve("app1/data/la"))["con"] == "21.5"
        assert (await client.retrieve(client.ri_path(ae["ri"])))["rn"] == "app1"
        # an already registered AE given as originator= learns them at its first request
        async with AEClient(url, originator=client.originator) as again:
            assert (await again.retrieve("app1/data/la"))["con"] == "21.5"
            assert again.cse_id == "/id-cse2"
        # and re-registering the same AE-ID (4117, adopted) needs the CSE-ID first
        async with AEClient(url) as third:
            await third.register("app1", origin="Capp1")
            assert third.registration_reused and third.cse_id == "/id-cse2"


async def test_a_url_with_the_csebase_names_it(tmp_path: Path) -> None:
    async with other_cse(tmp_path) as url:
        client = AEClient(url + "/cse2")
        assert client.cse_name == "cse2"
        assert client.cse_id == "/id-in"  # not known yet: the default until registration
        full = AEClient(url + "/~/id-cse2/cse2")
        assert (full.cse_name, full.cse_id) == ("cse2", "/id-cse2")
        async with client:
            await client.register("app2", origin="Capp2")
            assert client.cse_id == "/id-cse2"
        await full.close()
    with pytest.raises(ValueError, match="not a CSE URL"):
        AEClient("http://127.0.0.1:1/a/b")


def test_sync_client_learns_them_too(tmp_path: Path) -> None:
    import asyncio
    import threading

    ready = threading.Event()
    done = threading.Event()
    box: dict[str, str] = {}

    async def serve() -> None:
        async with other_cse(tmp_path) as url:
            box["url"] = url
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 60)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(30)
        with SyncAEClient(box["url"]) as client:
            client.register("app3", origin="Capp3")
            client.create_container("app3", "data")
            assert (client.client.cse_name, client.client.cse_id) == ("cse2", "/id-cse2")
    finally:
        done.set()
        thread.join(60)

"""The blocking facade :class:`ae_sdk.SyncAEClient` against a real CSE process.

Why: scripts that are not async (a cron job, a notebook cell, a test written
as a plain function) should use the SDK without writing an event loop. The
facade runs an AEClient on its own loop in a thread; these tests call every
method from plain test functions, check that errors keep their rsc, that
notification callbacks run in the loop thread (and cannot call back into the
client there), that close() stops the thread, and that it also works from
inside a running event loop.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ae_sdk import M2MResponseError, SDKError, SyncAEClient, notified_resource


@pytest.fixture
async def cse_url(cse_process: Callable[..., Any]) -> str:
    """The URL of a fresh CSE process (IN-CSE /id-in named cse-in)."""
    proc = await cse_process()
    return proc.url


def test_every_method_from_plain_code(cse_url: str) -> None:
    with SyncAEClient(cse_url) as client:
        ae = client.register("syncapp", origin="Csyncapp", lbl=["sync"])
        assert ae["rn"] == "syncapp" and client.originator == ae["aei"] == "Csyncapp"
        assert client.ae is not None and client.ae["rn"] == "syncapp"

        cnt = client.create_container("syncapp", "data", mni=10, lbl=["room:kitchen"])
        assert cnt["mni"] == 10
        again = client.create_container("syncapp", "data", exist_ok=True)
        assert again["ri"] == cnt["ri"]
        other = client.create("syncapp", 3, {"lbl": ["room:hall"]}, rn="other")
        assert other["rn"] == "other"

        got: queue.Queue[dict[str, Any]] = queue.Queue()
        sub = client.subscribe("syncapp/data", got.put, rn="sub1")
        assert sub["rn"] == "sub1"

        cin = client.create_content_instance("syncapp/data", "21.5", cnf="text/plain:0")
        assert cin["con"] == "21.5"
        sgn = got.get(timeout=10)                   # delivered by the CSE process
        assert notified_resource(sgn)["ri"] == cin["ri"]

        assert client.retrieve("syncapp/data/la")["con"] == "21.5"
        assert client.retrieve("syncapp/data", atrl=["cni"]) == {"cni": 1}
        inline = client.retrieve("syncapp/data", rcn=4)
        assert [c["con"] for c in inline["m2m:cin"]] == ["21.5"]

        updated = client.update("syncapp/data", {"mni": 5, "lbl": None})
        assert updated["mni"] == 5 and "lbl" not in updated

        assert sorted(client.discover("syncapp", ty=3)) == ["cse-in/syncapp/data", "cse-in/syncapp/other"]
        assert client.discover("syncapp", ty=3, lbl="room:hall") == ["cse-in/syncapp/other"]
        assert client.discover("syncapp", rn="oth*") == ["cse-in/syncapp/other"]

        client.unsubscribe(sub)
        client.delete("syncapp/other")
        with pytest.raises(M2MResponseError) as err:
            client.retrieve("syncapp/other")
        assert err.value.rsc == 4004
        client.deregister()
        assert client.ae is None
    # the context manager closed it: the loop thread is gone, calls are refused
    assert not client._thread.is_alive() and client.loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        client.retrieve("cse-in")
    client.close()                                  # idempotent


def test_errors_raise_m2m_response_error_with_rsc(cse_url: str) -> None:
    client = SyncAEClient(cse_url)
    try:
        client.register("errapp")
        with pytest.raises(M2MResponseError) as missing:
            client.retrieve("errapp/nothing")
        assert missing.value.rsc == 4004
        client.create_container("errapp", "data")
        with pytest.raises(M2MResponseError) as taken:
            client.create_container("errapp", "data")
        assert taken.value.rsc == 4105
        # the client still works after an error
        assert client.retrieve("errapp/data")["rn"] == "data"
        client.deregister()
    finally:
        client.close()
    assert not client._thread.is_alive()


def test_callbacks_run_in_the_loop_thread(cse_url: str) -> None:
    seen: queue.Queue[tuple[threading.Thread, BaseException | None]] = queue.Queue()
    with SyncAEClient(cse_url) as client:
        client.register("cbapp")
        client.create_container("cbapp", "data")

        def callback(sgn: dict[str, Any]) -> None:
            try:
                client.retrieve("cbapp/data")         # would wait on its own loop
            except RuntimeError as exc:
                seen.put((threading.current_thread(), exc))
            else:
                seen.put((threading.current_thread(), None))

        client.subscribe("cbapp/data", callback)
        client.create_content_instance("cbapp/data", "x")
        thread, exc = seen.get(timeout=10)
        assert thread is client._thread and thread is not threading.current_thread()
        assert isinstance(exc, RuntimeError) and "loop thread" in str(exc)
        client.deregister()


async def test_usable_from_inside_a_running_event_loop(cse_url: str) -> None:
    # blocking calls on the caller's loop are fine for a script; the facade
    # never touches that loop
    with SyncAEClient(cse_url, cse_name="cse-in", cse_id="/id-in") as client:
        client.register("asyncapp")
        client.create_container("asyncapp", "data")
        assert client.create_content_instance("asyncapp/data", 7)["con"] == 7
        assert client.retrieve("asyncapp/data/la")["con"] == 7
        client.deregister()


def test_a_refused_connection_is_an_error_not_a_hang() -> None:
    with socket.socket() as s:                      # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SyncAEClient(f"http://127.0.0.1:{port}", timeout=20) as client:
        with pytest.raises(SDKError):
            client.retrieve("cse-in")

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


# What SyncAEClient leaves out of AEClient's public surface, and why.
NOT_WRAPPED = {
    "build": "builds a Request for AEClient.send: use client.client for raw requests",
    "send": "sends a prepared Request: client.client",
    "request": "raw requests: client.client",
    "target": "plain function of the names: client.client.target",
    "ri_path": "plain function of the names: client.client.ri_path",
    "new_rqi": "a static helper",
    "transport": "the async transport belongs to the loop thread",
    "last_response": "the async client's state: client.client.last_response",
    "registration_reused": "the async client's state: client.client.registration_reused",
    "session_manager": "the async session manager: the session calls are wrapped instead",
}


def test_sync_client_has_every_call_of_the_async_one() -> None:
    """docs/sdk.md says SyncAEClient offers the same calls: hold it to that."""
    from ae_sdk import AEClient

    public = {n for n in dir(AEClient) if not n.startswith("_")}
    public |= {"transport", "last_response", "registration_reused", "originator", "ae"}
    missing = sorted(n for n in public - set(dir(SyncAEClient)) if NOT_WRAPPED.get(n) is None)
    assert missing == [], f"SyncAEClient lacks {missing}"


def test_sessions_and_wait_request_from_plain_code(cse_url: str) -> None:
    with SyncAEClient(cse_url) as a1, SyncAEClient(cse_url) as a2:
        a1.register("sync1", scp=["smg"])
        a2.register("sync2", scp=["smg"])
        a2.create_container("sync2", "data")
        a2.enable_sessions(lambda offer: True)
        s1 = a1.establish(a2.originator or "")
        s2 = a2.next_session(10)
        assert s1.sid == s2.sid and s1.sid in a1.sessions
        s1.create(f"{a2.cse_id}/{a2.cse_name}/sync2/data", 4, {"con": "21.5"})
        assert s2.decrypt_text(a2.retrieve("sync2/data/la")["con"]) == "21.5"
        s1.terminate()
        assert s2.wait_terminated(10) is not None
        ref = a2.create("sync2", 3, {}, rn="later", rt=1)
        ors = a2.wait_request(ref, 10)
        assert ors["rsc"] == 2001

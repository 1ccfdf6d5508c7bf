"""Sessions with both AEs on ONE in-process CSE (a local session: no hops),
and the SDK's session event handling on its own.

The CSE is called in-process (InProcessTransport); its notifications reach
the AEs' notification servers over loopback HTTP, as in production.

Why: the establishment question must be answered by the AE's decision
*before* the notification is acknowledged (accept with epa, reject, time
out), both endpoints must end up with the same sid and key, an accepted
session must be usable the moment it is announced, and termination from
either side must reach the other AE's Session object.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ae_sdk import (
    AEClient,
    Answer,
    InProcessTransport,
    M2MResponseError,
    NotificationServer,
    SDKError,
    Session,
    SessionCryptoError,
    SessionOffer,
    Why,
)
from cse.app import CSE

T = 10.0  # upper bound of every wait (not a performance target)


@pytest.fixture
async def pair(cse_app: CSE) -> AsyncIterator[tuple[AEClient, AEClient]]:
    a1 = AEClient(InProcessTransport(cse_app.handle))
    a2 = AEClient(InProcessTransport(cse_app.handle))
    await a1.register("ae1", scp=["smg"])
    await a2.register("ae2", scp=["smg"])
    try:
        yield a1, a2
    finally:
        await a1.close()
        await a2.close()


async def admin_get(cse: CSE, path: str) -> int:
    client = AEClient(InProcessTransport(cse.handle), originator="CAdmin")
    try:
        await client.retrieve(path)
        return 2000
    except M2MResponseError as exc:
        return exc.rsc


# -- establishment ----------------------------------------------------------------------------

async def test_local_session_both_sides_agree(pair: tuple[AEClient, AEClient], cse_app: CSE) -> None:
    a1, a2 = pair
    offers: list[SessionOffer] = []
    announced: asyncio.Queue[Session] = asyncio.Queue()

    async def decide(offer: SessionOffer) -> dict[str, Any]:
        offers.append(offer)
        return {"role": "sensor"}

    await a2.enable_sessions(decide)
    a2.on_session(announced.put_nowait)
    s1 = await a1.establish(a2.originator or "", epa={"role": "collector"})
    s2 = await asyncio.wait_for(announced.get(), T)
    assert await a2.next_session(T) is s2  # the queue gets it too

    assert s1.sid == s2.sid and s1.key == s2.key and len(s1.key) == 32 and s1.kid == s2.kid
    assert (s1.role, s2.role) == ("initiator", "target")
    assert s1.iep == s2.iep == f"/id-in/{a1.originator}" and s1.tep == s2.tep == f"/id-in/{a2.originator}"
    assert s1.peer == s2.tep and s2.peer == s1.iep
    assert s1.epa == s2.peer_epa == {"role": "collector"}
    assert s2.epa == s1.peer_epa == {"role": "sensor"}
    assert s1.path == f"cse-in/ae1/sessions/ses{s1.sid}"
    assert s2.path == f"/id-in/ses{s2.sid}"  # one copy, under the initiator's AE: reached by its ri
    assert a1.sessions == {s1.sid: s1} and a2.sessions == {s2.sid: s2}
    assert s1.resource["sst"] == 2 and "scr" not in s1.resource and s2.resource["sid"] == s2.sid

    [offer] = offers
    assert (offer.sid, offer.initiator, offer.tep, offer.kid) == (s1.sid, s1.iep, s1.tep, s1.kid)
    assert offer.epa == {"role": "collector"} and offer.alg == "A256GCM"
    assert s1.key.hex() not in repr(s1) and "key" not in repr(offer)

    # the derived keys agree: what one side encrypts the other decrypts
    assert s2.decrypt_text(s1.encrypt("21.5")) == "21.5"
    assert s1.k_mac == s2.k_mac and s1.k_enc == s2.k_enc and s1.k_mac != s1.k_enc

    # the target can use it at once: a policy on the one copy, seen by both
    await s2.add_policy(1, rn="now")
    assert (await s1.policy("now"))["spt"] == 1
    assert await admin_get(cse_app, f"cse-in/ae1/sessions/ses{s1.sid}/sessionPolicies/now") == 2000


async def test_default_on_request_accepts_with_empty_epa(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    s2 = await a2.next_session(T)
    assert s1.peer_epa == {} and s2.epa == {} and s2.peer_epa == {}


async def test_sync_true_accepts(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions(lambda offer: True)
    s1 = await a1.establish(a2.originator or "", epa={"x": 1})
    assert (await a2.next_session(T)).sid == s1.sid


@pytest.mark.parametrize("decision", ["false", "none", "raises", "not-json", "other-type", "timeout"])
async def test_no_acceptance_rejects_with_4103(pair: tuple[AEClient, AEClient], cse_app: CSE,
                                                 decision: str) -> None:
    a1, a2 = pair
    never = asyncio.Event()

    async def decide(offer: SessionOffer) -> Any:
        if decision == "raises":
            raise RuntimeError("boom")
        if decision == "timeout":
            await never.wait()
        return {"false": False, "none": None, "not-json": {"x": object()}, "other-type": 1}[decision]

    await a2.enable_sessions(decide, decision_timeout=0.3)
    with pytest.raises(M2MResponseError) as info:
        await a1.establish(a2.originator or "")
    assert info.value.rsc == 4103, info.value
    assert "reject" in info.value.dbg
    assert a1.sessions == {} and a2.sessions == {}
    assert await a1.discover("ae1/sessions", ty=9002) == []
    with pytest.raises(TimeoutError):
        await a2.next_session(0.05)


async def test_target_without_enable_sessions_is_5103(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    with pytest.raises(M2MResponseError) as info:
        await a1.establish(a2.originator or "")
    assert info.value.rsc == 5103 and "subscription" in info.value.dbg


async def test_target_without_smg_and_unknown_target(cse_app: CSE, pair: tuple[AEClient, AEClient]) -> None:
    a1, _ = pair
    plain = AEClient(InProcessTransport(cse_app.handle))
    await plain.register("plain")
    with pytest.raises(M2MResponseError) as info:
        await a1.establish(plain.originator or "")
    assert info.value.rsc == 5103 and "smg" in info.value.dbg
    with pytest.raises(M2MResponseError) as info:
        await a1.establish("/id-in/Cnobody")
    assert info.value.rsc == 4004
    with pytest.raises(M2MResponseError) as info:
        await a1.establish(a1.originator or "")
    assert info.value.rsc == 4000  # with itself
    # an AE registered without smg has no sessions collection: a clear hint
    with pytest.raises(M2MResponseError) as info:
        await plain.enable_sessions()
    assert info.value.rsc == 4004 and any("scp=['smg']" in n for n in info.value.__notes__)
    await plain.close()


async def test_enable_sessions_needs_a_registered_ae(cse_app: CSE) -> None:
    async with AEClient(InProcessTransport(cse_app.handle)) as c:
        with pytest.raises(SDKError, match="register"):
            await c.enable_sessions()
        with pytest.raises(SDKError, match="register"):
            await c.establish("/id-in/Cx")
        with pytest.raises(ValueError, match="10 s"):
            await AEClient(InProcessTransport(cse_app.handle), originator="Cx").enable_sessions(
                decision_timeout=10)


async def test_client_with_known_originator_finds_its_ae(pair: tuple[AEClient, AEClient], cse_app: CSE) -> None:
    a1, a2 = pair
    again = AEClient(InProcessTransport(cse_app.handle), originator=a2.originator)
    try:
        await again.enable_sessions()  # replaces the subscription of the same name
        s1 = await a1.establish(a2.originator or "")
        assert (await again.next_session(T)).sid == s1.sid
        assert again.ae is not None and again.ae["rn"] == "ae2"
    finally:
        await again.close()


async def test_enable_sessions_twice_replaces_the_subscription(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    first = await a2.enable_sessions(lambda o: False)
    second = await a2.enable_sessions(lambda o: {"v": 2})
    assert first["ri"] != second["ri"] and second["rn"] == "sdk-sessions"
    subs = await a2.discover("ae2/sessions", ty=23)
    assert subs == ["cse-in/ae2/sessions/sdk-sessions"]
    s1 = await a1.establish(a2.originator or "")
    assert s1.peer_epa == {"v": 2}


async def test_establish_with_et_and_sec(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "", sec=0, et=3600)
    assert s1.sec == 0 and s1.resource["sec"] == 0 and s1.resource["et"].startswith("20")
    s2 = await a2.next_session(T)
    assert s2.sid == s1.sid


# -- termination --------------------------------------------------------------------------------

async def test_initiator_terminates_target_is_told(pair: tuple[AEClient, AEClient], cse_app: CSE) -> None:
    a1, a2 = pair
    ended: asyncio.Queue[tuple[Session, int | None]] = asyncio.Queue()
    ended1: list[tuple[Session, int | None]] = []
    await a1.enable_sessions(lambda o: False)
    await a2.enable_sessions()
    a2.on_terminated(lambda s, why: ended.put_nowait((s, why)))
    a1.on_terminated(lambda s, why: ended1.append((s, why)))
    s1 = await a1.establish(a2.originator or "")
    s2 = await a2.next_session(T)
    assert await s1.terminate() is None
    assert s1.terminated and s1.why == Why.DELETED and s1.terminated_here
    assert ended1 == [(s1, 1)] and a1.sessions == {}
    assert await s2.wait_terminated(T) == Why.DELETED
    assert await asyncio.wait_for(ended.get(), T) == (s2, 1)
    assert s2.terminated and not s2.terminated_here and a2.sessions == {}
    assert await admin_get(cse_app, f"cse-in/ae1/sessions/ses{s1.sid}") == 4004
    assert await s1.terminate() is None  # idempotent


async def test_target_terminates_initiator_is_told(pair: tuple[AEClient, AEClient], cse_app: CSE) -> None:
    a1, a2 = pair
    await a1.enable_sessions(lambda o: False)
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    s2 = await a2.next_session(T)
    await s2.terminate()
    assert await s1.wait_terminated(T) == Why.DELETED
    assert a1.sessions == {} and a2.sessions == {}
    assert await admin_get(cse_app, f"cse-in/ae1/sessions/ses{s1.sid}") == 4004
    await s1.terminate()  # already gone at the CSE: no error


async def test_terminate_a_session_the_cse_forgot(pair: tuple[AEClient, AEClient], cse_app: CSE) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    await a2.next_session(T)
    admin = AEClient(InProcessTransport(cse_app.handle), originator="CAdmin")
    await admin.delete(s1.path or "")
    await s1.terminate()  # 4004 at the CSE: just marked terminated
    assert s1.terminated and a1.sessions == {}


async def test_wait_terminated_times_out(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    with pytest.raises(TimeoutError, match="still established"):
        await s1.wait_terminated(0.05)


# -- policies ---------------------------------------------------------------------------------

async def test_policy_crud(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    spo = await s1.add_policy(2, sch="* * 0-5 * * * *", rn="night", mbr=10, ops=4)
    assert (spo["rn"], spo["spt"], spo["sch"], spo["mbr"], spo["ops"]) == ("night", 2, ["* * 0-5 * * * *"], 10, 4)
    upd = await s1.update_policy("night", mbr=20, sch="* * 1-2 * * * *")
    assert upd["mbr"] == 20 and upd["sch"] == ["* * 1-2 * * * *"]
    with pytest.raises(M2MResponseError) as info:
        await s1.add_policy(2, rn="nowindow")  # store-and-forward needs windows
    assert info.value.rsc == 4000
    await s1.delete_policy("night")
    with pytest.raises(M2MResponseError) as info:
        await s1.policy("night")
    assert info.value.rsc == 4004


# -- the notification side on its own -------------------------------------------------------------

async def _notify(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    headers = {"X-M2M-RI": "t1", "X-M2M-RVI": "3", "X-M2M-Origin": "/id-in", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=json.dumps(body), headers=headers) as resp:
            raw = await resp.read()
            return int(resp.headers["X-M2M-RSC"]), (json.loads(raw) if raw else None)


def _sevt(sur: str, **sevt: Any) -> dict[str, Any]:
    net = {1: 3, 2: 1, 3: 4}[sevt["typ"]]
    return {"m2m:sgn": {"nev": {"rep": {"m2m:sevt": sevt}, "net": net}, "sur": sur}}


async def test_establishment_answer_is_synchronous_and_idempotent(pair: tuple[AEClient, AEClient]) -> None:
    _, a2 = pair
    calls: list[SessionOffer] = []

    def decide(offer: SessionOffer) -> dict[str, Any]:
        calls.append(offer)
        return {"n": len(calls)}

    sub = await a2.enable_sessions(decide)
    assert a2.notifications is not None
    url = a2.notifications.url
    scr = {"kid": "k1", "key": "A" * 43, "alg": "A256GCM"}
    body = _sevt(f"/id-in/{sub['ri']}", typ=1, sid="S1", iep="/id-in/Cx", tep="/id-in/Cy", scr=scr, epa={"a": 1})
    assert await _notify(url, body) == (2000, {"m2m:sep": {"epa": {"n": 1}}})
    assert await _notify(url, body) == (2000, {"m2m:sep": {"epa": {"n": 1}}})  # asked again: same answer
    assert len(calls) == 1
    for bad_scr, what in (({"kid": "k", "key": "A" * 42}, "32 bytes"), ({"key": "A" * 43}, "kid"),
                          ({"kid": "k", "key": "A" * 42 + "=="}, "padd"), (None, "scr")):
        rsc, pc = await _notify(url, _sevt("/id-in/x", typ=1, sid="S2", iep="/id-in/Cx", tep="/id-in/Cy",
                                           scr=bad_scr))
        assert rsc == 4000 and pc is not None and what in pc["m2m:dbg"], (bad_scr, pc)
    # other notifications are not questions: plain 2000 without content
    assert await _notify(url, _sevt("/id-in/x", typ=3, sid="S9", why=1)) == (2000, None)


async def test_update_events_reach_the_session(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    sub = await a2.enable_sessions()
    seen: list[tuple[str, str]] = []
    a2.on_session_update(lambda s, sevt: seen.append((s.sid, sevt["res"])))
    s1 = await a1.establish(a2.originator or "")
    s2 = await a2.next_session(T)
    assert a2.notifications is not None
    event = _sevt(f"/id-in/{sub['ri']}", typ=2, sid=s1.sid, iep=s1.iep, tep=s1.tep,
                  res="/id-in/cse-in/ae2/cnt", op=3, rqi="rq9")
    assert (await _notify(a2.notifications.url, event))[0] == 2000
    update = await s2.next_update(T)
    assert update["res"] == "/id-in/cse-in/ae2/cnt" and update["op"] == 3
    assert seen == [(s2.sid, "/id-in/cse-in/ae2/cnt")]


async def test_termination_for_an_unknown_session_is_ignored(pair: tuple[AEClient, AEClient]) -> None:
    _, a2 = pair
    sub = await a2.enable_sessions()
    assert a2.notifications is not None
    assert (await _notify(a2.notifications.url, _sevt(f"/id-in/{sub['ri']}", typ=3, sid="nope", why=2)))[0] == 2000
    assert a2.sessions == {}


async def test_session_decrypt_errors_are_clear(pair: tuple[AEClient, AEClient]) -> None:
    a1, a2 = pair
    await a2.enable_sessions()
    s1 = await a1.establish(a2.originator or "")
    s1b = await a1.establish(a2.originator or "")
    token = s1.encrypt(b"secret")
    with pytest.raises(SessionCryptoError):
        s1b.decrypt(token)  # another session's value
    assert s1.decrypt(token) == b"secret"


# -- NotificationServer responders (generic) ---------------------------------------------------------

async def test_responders_decide_the_answer() -> None:
    async with NotificationServer() as server:
        slow = asyncio.Event()
        seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        server.add_subscription("/id-in/sub1", seen.put_nowait)

        async def responder(sgn: dict[str, Any]) -> Answer | None:
            kind = sgn["nev"]["rep"].get("kind")
            if kind == "slow":
                await slow.wait()
            if kind == "boom":
                raise RuntimeError("boom")
            if kind == "bad":
                return 42  # type: ignore[return-value]
            return Answer(4103, dbg="no") if kind == "no" else (Answer(2000, {"ok": 1}) if kind == "yes" else None)

        server.add_responder(responder, timeout=0.3)

        def sgn(kind: str) -> dict[str, Any]:
            return {"m2m:sgn": {"nev": {"rep": {"kind": kind}, "net": 1}, "sur": "/id-in/sub1"}}
        assert await _notify(server.url, sgn("yes")) == (2000, {"ok": 1})
        assert await _notify(server.url, sgn("no")) == (4103, {"m2m:dbg": "no"})
        assert await _notify(server.url, sgn("pass")) == (2000, None)
        assert (await _notify(server.url, sgn("slow")))[0] == 4008
        assert (await _notify(server.url, sgn("boom")))[0] == 5000
        assert (await _notify(server.url, sgn("bad")))[0] == 5000
        # verification requests are not offered to responders
        assert await _notify(server.url, {"m2m:sgn": {"vrq": True, "sur": "/id-in/sub1"}}) == (2000, None)
        server.remove_responder(responder)
        assert await _notify(server.url, sgn("no")) == (2000, None)
        # every notification still reached its subscription callback, after the answer
        kinds = [(await asyncio.wait_for(seen.get(), T))["nev"]["rep"]["kind"] for _ in range(7)]
        assert kinds == ["yes", "no", "pass", "slow", "boom", "bad", "no"]
        slow.set()


async def test_an_ae_without_session_capability_is_told_how_to_get_it(cse_app: CSE) -> None:
    """establish() from an AE registered without scp ["smg"] used to fail with a
    bare 4004 '.../sessions does not exist'."""
    plain = AEClient(InProcessTransport(cse_app.handle))
    peer = AEClient(InProcessTransport(cse_app.handle))
    try:
        await plain.register("plain")
        await peer.register("peer", scp=["smg"])
        with pytest.raises(SDKError, match=r"without session capability.*scp=\['smg'\]"):
            await plain.establish(peer.originator or "")
        # the CSE's own answer says the same to a client that is not the SDK
        with pytest.raises(M2MResponseError) as info:
            await plain.create("plain/sessions", 9002, {"tep": peer.originator})
        assert info.value.rsc == 4004
        assert 'registered without session capability; register it with scp ["smg"]' in info.value.dbg
    finally:
        await plain.close()
        await peer.close()

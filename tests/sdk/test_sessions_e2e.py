"""Sessions end to end with the SDK: two real CSE processes over loopback HTTP.

CSE1 = ``/id-cse1`` (``cse1``) is the registrar of CSE2 = ``/id-cse2``
(``cse2``). AE1 is registered at CSE1, AE2 at CSE2, both with
``scp=["smg"]``; each talks to its CSE with :class:`HttpTransport` and hears
its session events on its own notification server.

Why: docs/sessions.md flows 1 and 3 as a user of the SDK lives them -- the
establishment question crosses CSE1 -> CSE2 -> AE2 and the answer comes back
with AE2's epa; both AEs hold the same sid and key; a policy added at one end
is held by the other CSE; termination from either end reaches the other AE
and leaves nothing at either CSE; and every failure of the establishment
(reject, nobody listening, no such AE) reaches the initiator as the
documented RSC with nothing left behind. Waits are on events with timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ae_sdk import AEClient, HttpTransport, M2MResponseError, Session, SessionOffer, Why
from tests.conftest import ADMIN, CSEProcess, Http
from tests.waiting import until as _until

T = 15.0  # upper bound of every wait (not a performance target)


def registrar(url: str) -> str:
    return f'[registrar]\ncse_id = "/id-cse1"\nname = "cse1"\npoa = "{url}"\ncheck_interval_s = 0.5\n'


async def poll(check: Callable[[], Any], what: str, timeout: float = T) -> Any:
    """Poll ``check`` until truthy (see tests/waiting.py)."""
    return await _until(check, what, timeout)


@dataclass
class Pair:
    cse1: CSEProcess
    cse2: CSEProcess
    ae1: AEClient
    ae2: AEClient
    http: Http

    @property
    def aei2(self) -> str:
        return f"/id-cse2/{self.ae2.originator}"

    @property
    def aei1(self) -> str:
        return f"/id-cse1/{self.ae1.originator}"

    async def rsc(self, cse: CSEProcess, path: str) -> int:
        """RSC of a RETRIEVE of ``path`` at ``cse`` as the admin."""
        return (await self.http.send("GET", f"{cse.url}/{path}", fr=ADMIN)).rsc

    async def body(self, cse: CSEProcess, path: str) -> dict[str, Any]:
        r = await self.http.send("GET", f"{cse.url}/{path}", fr=ADMIN)
        assert r.rsc == 2000, (path, r.rsc, r.body)
        return dict(next(iter(r.body.values())))

    async def sessions_at(self, cse: CSEProcess, sessions_path: str) -> list[str]:
        r = await self.http.send("GET", f"{cse.url}/{sessions_path}?fu=1&ty=9002", fr=ADMIN)
        assert r.rsc == 2000, r.body
        return list(r.body.get("m2m:uril", []))


@pytest.fixture
async def pair(cse_process: Callable[..., Any], http: Http) -> AsyncIterator[Pair]:
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1")
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2", extra=registrar(cse1.url))

    async def registered() -> bool:
        return (await http.send("GET", f"{cse2.url}/~/id-cse1/cse1", fr=ADMIN)).rsc == 2000
    await poll(registered, "CSE2 registered with CSE1")

    ae1 = AEClient(HttpTransport(cse1.url, timeout=30), cse_name="cse1", cse_id="/id-cse1")
    ae2 = AEClient(HttpTransport(cse2.url, timeout=30), cse_name="cse2", cse_id="/id-cse2")
    try:
        await ae1.register("ae1", scp=["smg"])
        await ae2.register("ae2", scp=["smg"])
        yield Pair(cse1, cse2, ae1, ae2, http)
    finally:
        await ae1.close()
        await ae2.close()


# -- flow 1 + policy + flow 3 -----------------------------------------------------------------

async def test_establish_policy_and_terminate_by_the_initiator(pair: Pair) -> None:
    ae1, ae2 = pair.ae1, pair.ae2
    offers: list[SessionOffer] = []
    accepted: asyncio.Queue[Session] = asyncio.Queue()
    ended2: asyncio.Queue[tuple[Session, int | None]] = asyncio.Queue()

    async def decide(offer: SessionOffer) -> dict[str, Any]:
        offers.append(offer)
        return {"role": "sensor", "unit": "C"}

    await ae1.enable_sessions(lambda offer: False)  # hears terminations; accepts nothing
    await ae2.enable_sessions(decide)
    ae2.on_session(accepted.put_nowait)
    ae2.on_terminated(lambda s, why: ended2.put_nowait((s, why)))

    s1 = await ae1.establish(pair.aei2, epa={"role": "collector"})
    s2 = await asyncio.wait_for(accepted.get(), T)

    # both sides hold the same session
    assert s1.sid == s2.sid and s1.key == s2.key and len(s1.key) == 32 and s1.kid == s2.kid
    assert s1.iep == s2.iep == pair.aei1 and s1.tep == s2.tep == pair.aei2
    assert (s1.role, s2.role) == ("initiator", "target")
    assert s1.peer == pair.aei2 and s2.peer == pair.aei1
    # AE2's on_session saw AE1's epa; AE1 got AE2's answer
    assert s2.peer_epa == {"role": "collector"} and s2.epa == {"role": "sensor", "unit": "C"}
    assert s1.peer_epa == {"role": "sensor", "unit": "C"} and s1.epa == {"role": "collector"}
    assert [o.sid for o in offers] == [s1.sid] and offers[0].initiator == pair.aei1
    # where each copy lives
    assert s1.path == f"cse1/ae1/sessions/ses{s1.sid}"
    assert s2.path == f"cse2/ae2/sessions/ses{s2.sid}"
    assert ae1.sessions == {s1.sid: s1} and ae2.sessions == {s2.sid: s2}
    at1 = await pair.body(pair.cse1, s1.path)
    at2 = await pair.body(pair.cse2, s2.path)
    assert at1["sid"] == at2["sid"] == s1.sid and at1["sst"] == at2["sst"] == 2
    assert "scr" not in at1 and "scr" not in at2  # never in RETRIEVE
    # the keys derived on both sides agree
    assert s2.decrypt_text(s1.encrypt("21.5")) == "21.5"
    assert s1.decrypt(s2.encrypt(b"\x00\x01")) == b"\x00\x01"

    # a policy added by AE1 is held by CSE2 too
    spo = await s1.add_policy(2, sch=["* * 0-5 * * * *"], rn="night", hop="/id-cse1", mbr=50)
    assert spo["rn"] == "night" and spo["spt"] == 2
    at_cse2 = await pair.body(pair.cse2, f"{s2.path}/sessionPolicies/night")
    assert (at_cse2["spt"], at_cse2["sch"], at_cse2["hop"], at_cse2["mbr"]) == (2, ["* * 0-5 * * * *"], "/id-cse1", 50)
    assert (await s2.policy("night"))["mbr"] == 50
    # updated and deleted everywhere
    await s1.update_policy("night", mbr=60)
    assert (await pair.body(pair.cse2, f"{s2.path}/sessionPolicies/night"))["mbr"] == 60
    await s1.delete_policy("night")
    assert await pair.rsc(pair.cse2, f"{s2.path}/sessionPolicies/night") == 4004
    # and the target may add one too
    await s2.add_policy(1, rn="fromtarget")
    assert await pair.rsc(pair.cse1, f"{s1.path}/sessionPolicies/fromtarget") == 2000

    # flow 3: AE1 terminates
    assert await s1.terminate() is None
    assert s1.terminated and s1.terminated_here and ae1.sessions == {}
    assert await s2.wait_terminated(T) == Why.DELETED
    assert await asyncio.wait_for(ended2.get(), T) == (s2, 1)
    assert ae2.sessions == {} and not s2.terminated_here
    assert await pair.rsc(pair.cse2, s2.path) == 4004
    assert await pair.rsc(pair.cse1, s1.path) == 4004


async def test_termination_by_the_target_reaches_the_initiator(pair: Pair) -> None:
    ae1, ae2 = pair.ae1, pair.ae2
    ended1: asyncio.Queue[tuple[Session, int | None]] = asyncio.Queue()
    await ae1.enable_sessions(lambda offer: False)
    ae1.on_terminated(lambda s, why: ended1.put_nowait((s, why)))
    await ae2.enable_sessions()
    s1 = await ae1.establish(pair.aei2)
    s2 = await ae2.next_session(T)
    assert s2.sid == s1.sid

    await s2.terminate()
    assert s2.terminated and ae2.sessions == {}
    assert await s1.wait_terminated(T) == Why.DELETED
    assert await asyncio.wait_for(ended1.get(), T) == (s1, 1)
    assert ae1.sessions == {} and not s1.terminated_here
    assert await pair.rsc(pair.cse1, s1.path or "") == 4004
    assert await pair.rsc(pair.cse2, s2.path or "") == 4004


async def test_several_sessions_are_kept_apart(pair: Pair) -> None:
    ae1, ae2 = pair.ae1, pair.ae2
    await ae1.enable_sessions(lambda offer: False)
    await ae2.enable_sessions(lambda offer: {"n": offer.epa["n"]})
    a = await ae1.establish(pair.aei2, epa={"n": 1})
    b = await ae1.establish(pair.aei2, epa={"n": 2})
    a2, b2 = await ae2.next_session(T), await ae2.next_session(T)
    assert {a2.sid, b2.sid} == {a.sid, b.sid} and a.sid != b.sid and a.key != b.key
    assert a.peer_epa == {"n": 1} and b.peer_epa == {"n": 2}
    await a.terminate()
    target_a = a2 if a2.sid == a.sid else b2
    target_b = b2 if target_a is a2 else a2
    assert await target_a.wait_terminated(T) == Why.DELETED
    assert not target_b.terminated and set(ae2.sessions) == {b.sid}
    assert await pair.rsc(pair.cse2, target_b.path or "") == 2000


# -- establishment failures -----------------------------------------------------------------------

async def test_rejected_by_the_target_is_4103_and_leaves_nothing(pair: Pair) -> None:
    ae1, ae2 = pair.ae1, pair.ae2
    offers: list[SessionOffer] = []

    def decide(offer: SessionOffer) -> bool:
        offers.append(offer)
        return False

    await ae2.enable_sessions(decide)
    with pytest.raises(M2MResponseError) as info:
        await ae1.establish(pair.aei2, epa={"role": "collector"})
    assert info.value.rsc == 4103, info.value
    assert "reject" in info.value.dbg
    assert len(offers) == 1 and offers[0].epa == {"role": "collector"}
    assert ae1.sessions == {} and ae2.sessions == {}
    assert await pair.sessions_at(pair.cse1, "cse1/ae1/sessions") == []
    assert await pair.sessions_at(pair.cse2, "cse2/ae2/sessions") == []
    with pytest.raises(TimeoutError):
        await ae2.next_session(0.05)


async def test_target_not_listening_is_5103(pair: Pair) -> None:
    with pytest.raises(M2MResponseError) as info:
        await pair.ae1.establish(pair.aei2)
    assert info.value.rsc == 5103, info.value
    assert "subscription" in info.value.dbg
    assert await pair.sessions_at(pair.cse1, "cse1/ae1/sessions") == []
    assert await pair.sessions_at(pair.cse2, "cse2/ae2/sessions") == []


async def test_unknown_target_ae_is_4004(pair: Pair) -> None:
    with pytest.raises(M2MResponseError) as info:
        await pair.ae1.establish("/id-cse2/Cnobody")
    assert info.value.rsc == 4004, info.value
    assert pair.ae1.sessions == {}
    assert await pair.sessions_at(pair.cse1, "cse1/ae1/sessions") == []


# -- other ways a session ends ----------------------------------------------------------------------

async def test_admin_deleting_the_session_tells_both_aes(pair: Pair) -> None:
    """docs/sessions.md "Termination": a DELETE at an endpoint's CSE by the admin
    terminates the session; each hop notifies its local endpoint AE."""
    ae1, ae2 = pair.ae1, pair.ae2
    await ae1.enable_sessions(lambda offer: False)
    await ae2.enable_sessions()
    s1 = await ae1.establish(pair.aei2)
    s2 = await ae2.next_session(T)
    r = await pair.http.send("DELETE", f"{pair.cse1.url}/{s1.path}", fr=ADMIN)
    assert r.rsc == 2002, r.body
    assert await s1.wait_terminated(T) == Why.DELETED
    assert await s2.wait_terminated(T) == Why.DELETED
    assert ae1.sessions == {} and ae2.sessions == {}
    assert await pair.rsc(pair.cse2, s2.path or "") == 4004


async def test_expiry_terminates_both_ends_with_why_2(pair: Pair) -> None:
    """docs/sessions.md: "at expiry the session ends as if deleted, and both
    endpoints are told" with ``why`` 2 (expired)."""
    ae1, ae2 = pair.ae1, pair.ae2
    await ae1.enable_sessions(lambda offer: False)
    await ae2.enable_sessions()
    s1 = await ae1.establish(pair.aei2, et=2.0)
    s2 = await ae2.next_session(T)
    assert s1.resource["et"] == (await pair.body(pair.cse2, s2.path or ""))["et"]
    why1, why2 = await asyncio.gather(s1.wait_terminated(T), s2.wait_terminated(T))
    assert (why1, why2) == (Why.EXPIRED, Why.EXPIRED)
    assert ae1.sessions == {} and ae2.sessions == {}
    assert await pair.rsc(pair.cse1, s1.path or "") == 4004
    assert await pair.rsc(pair.cse2, s2.path or "") == 4004

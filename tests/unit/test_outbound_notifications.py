"""What the CSE sends for AEs, in process: the policy, verification, caps, fan-out.

Why (docs/security.md "Outbound requests"): the CSE used to send wherever
it was told -- a subscription's ``nu`` equal to the originator's own AE-ID
(its ``poa``), ``su``, ``X-M2M-RTU`` and relayed NOTIFYs were never
verified, link-local and metadata addresses were dialled, and 5,000 copies
of one target made one event 1,002 POSTs. Now every target passes the
policy, is asked once (per originator) before its first notification, and
each event goes once to each distinct target.

In-process CSE; real receivers on loopback, except where the target is an
address the CSE must never dial: there the outbound port is replaced by a
recorder, so nothing leaves the process whatever the code does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from cse.config import load_config
from cse.core.messages import Operation, Request, Response
from tests.conftest import InProc, started_inproc
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, DELETE, NOTIFY = (Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE,
                                            Operation.DELETE, Operation.NOTIFY)
ADMIN = "CAdmin"
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


class Recorder:
    """Stands in for the outbound HTTP client: records, answers 2000, dials nothing."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Request]] = []

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False) -> Response:
        self.sent.append((poa, req))
        return Response(rsc=2000, rqi=req.rqi)


@pytest.fixture
def recorder(inproc: InProc, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(inproc.cse.outbound, "send", rec.send)
    return rec


def dbg(resp: Response) -> str:
    assert isinstance(resp.pc, dict) and isinstance(resp.pc.get("m2m:dbg"), str), resp.pc
    return str(resp.pc["m2m:dbg"])


async def container(ip: InProc, aei: str, parent: str = "cse-in/app", rn: str = "data") -> None:
    r = await ip.call(CREATE, parent, aei, ty=3, pc={"m2m:cnt": {"rn": rn}})
    assert r.rsc == 2001, r.pc


async def cin(ip: InProc, aei: str, con: str, to: str = "cse-in/app/data") -> None:
    r = await ip.call(CREATE, to, aei, ty=4, pc={"m2m:cin": {"con": con}})
    assert r.rsc == 2001, r.pc


# -- the policy: nothing is dialled ---------------------------------------------------------

async def test_metadata_targets_are_refused_and_never_dialled(inproc: InProc, recorder: Recorder) -> None:
    aei = await inproc.register("app")
    await container(inproc, aei)
    for attrs in ({"nu": [METADATA]}, {"nu": ["http://[::ffff:169.254.169.254]/x"]}, {"nu": ["http://[fe80::1]/x"]}):
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": attrs})
        assert r.rsc == 4000, r.pc
        assert "refused by the outbound policy" in dbg(r), dbg(r)
    # su too
    async with Receiver() as ok:
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [ok.url], "su": METADATA}})
        assert r.rsc == 4000 and "169.254.0.0/16" in dbg(r)
    # X-M2M-RTU: refused before anything is stored
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c2"}}, rt=2, rtu=(METADATA,))
    assert r.rsc == 4000 and "refused by the outbound policy: 169.254.169.254" in dbg(r)
    assert (await inproc.call(RETRIEVE, "cse-in/app/c2", ADMIN)).rsc == 4004
    assert recorder.sent == []


async def test_ae_poa_on_a_metadata_address_is_never_dialled(inproc: InProc, recorder: Recorder) -> None:
    aei = await inproc.register("app", poa=[METADATA])
    await container(inproc, aei)
    # its own AE-ID as nu: the poa is a target like any URL
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [aei]}})
    assert r.rsc == 4000 and "refused by the outbound policy" in dbg(r)
    # a NOTIFY relayed to it (TS-0004 7.4.1.2.4)
    r = await inproc.call(NOTIFY, "cse-in/app", ADMIN, pc={"m2m:sgn": {"sur": "x", "nev": {"net": 1}}})
    assert r.rsc == 4000 and "refused by the outbound policy" in dbg(r)
    # rt=2 results to the originator's poa are not sent there either
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c3"}}, rt=2)
    assert r.rsc == 1002
    await inproc.cse.notifier.drained(5)
    assert recorder.sent == []


# -- verification before the first notification ---------------------------------------------

async def test_own_ae_id_duplicates_are_one_target(inproc: InProc, receiver: Receiver) -> None:
    aei = await inproc.register("app", poa=[receiver.url])
    await container(inproc, aei)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23,
                          pc={"m2m:sub": {"nu": [aei, f"/id-in/{aei}", aei], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.pc
    await cin(inproc, aei, "once")
    await inproc.cse.notifier.drained(5)
    got = receiver.pending()
    assert [g.is_verification for g in got] == [True, False], [g.body for g in got]
    assert got[1].sgn["nev"]["rep"]["m2m:cin"]["con"] == "once"


async def test_a_new_poa_is_verified_before_its_first_notification(inproc: InProc, receiver: Receiver) -> None:
    aei = await inproc.register("app", poa=[receiver.url])
    await container(inproc, aei)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.pc
    sur = f"/id-in/{r.pc['m2m:sub']['ri']}"
    assert (await receiver.next()).is_verification
    await cin(inproc, aei, "one")
    await cin(inproc, aei, "two")
    # remembered: no verification request before each notification
    assert [(await receiver.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] for _ in range(2)] == ["one", "two"]
    async with Receiver() as moved, Receiver(reject_verification=True) as refuses:
        r = await inproc.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"poa": [moved.url]}})
        assert r.rsc == 2004, r.pc
        await cin(inproc, aei, "three")
        first = await moved.next()
        assert first.sgn == {"vrq": True, "sur": sur, "cr": aei}
        assert (await moved.next()).sgn["nev"]["rep"]["m2m:cin"]["con"] == "three"
        # a poa that refuses gets the question and nothing else
        r = await inproc.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"poa": [refuses.url]}})
        assert r.rsc == 2004, r.pc
        failed = inproc.cse.notifier.failed
        await cin(inproc, aei, "four")
        await inproc.cse.notifier.drained(5)
        assert [g.is_verification for g in refuses.pending()] == [True]
        assert inproc.cse.notifier.failed == failed + 1


async def test_relayed_notify_asks_the_poa_once(inproc: InProc, receiver: Receiver) -> None:
    await inproc.register("app", poa=[receiver.url])
    for i in range(2):
        r = await inproc.call(NOTIFY, "cse-in/app", ADMIN, pc={"m2m:sgn": {"sur": "/id-x/sub1", "nev": {"net": i}}})
        assert r.rsc == 2000, r.pc
    got = receiver.pending()
    assert [g.is_verification for g in got] == [True, False, False]
    assert got[0].sgn == {"vrq": True, "sur": "/id-x/sub1"}
    async with Receiver(reject_verification=True) as refuses:
        await inproc.register("other", poa=[refuses.url])
        r = await inproc.call(NOTIFY, "cse-in/other", ADMIN, pc={"m2m:sgn": {"sur": "/id-x/sub1"}})
        assert r.rsc == 5204, r.pc
        assert [g.is_verification for g in refuses.pending()] == [True]


async def test_updating_nu_verifies_the_added_targets(inproc: InProc, receiver: Receiver) -> None:
    aei = await inproc.register("app")
    await container(inproc, aei)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"rn": "s", "nu": [receiver.url]}})
    assert r.rsc == 2001
    assert (await receiver.next()).is_verification
    async with Receiver(reject_verification=True) as refuses, Receiver() as added:
        r = await inproc.call(UPDATE, "cse-in/app/data/s", aei, pc={"m2m:sub": {"nu": [receiver.url, refuses.url]}})
        assert r.rsc == 5204, r.pc
        assert (await refuses.next()).is_verification
        r = await inproc.call(UPDATE, "cse-in/app/data/s", aei, pc={"m2m:sub": {"nu": [receiver.url, added.url]}})
        assert r.rsc == 2004, r.pc
        assert (await added.next()).is_verification
        assert receiver.pending() == []  # already verified: not asked again
        r = await inproc.call(UPDATE, "cse-in/app/data/s", aei, pc={"m2m:sub": {"nu": [METADATA]}})
        assert r.rsc == 4000, r.pc
        r = await inproc.call(UPDATE, "cse-in/app/data/s", aei, pc={"m2m:sub": {"nu": [receiver.url] * 17}})
        assert r.rsc == 4000 and "max_targets" in dbg(r)
    got = await inproc.call(RETRIEVE, "cse-in/app/data/s", aei)
    assert got.pc["m2m:sub"]["nu"] == [receiver.url, added.url]


# -- caps ------------------------------------------------------------------------------------

async def test_nu_and_rtu_caps(inproc: InProc, recorder: Recorder) -> None:
    aei = await inproc.register("app", poa=["http://127.0.0.1:9/notify"])
    await container(inproc, aei)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [aei] * 5000}})
    assert r.rsc == 4000
    assert dbg(r) == "nu lists 5000 targets; at most 16 are allowed ([outbound] max_targets)"
    rtu = tuple(f"http://127.0.0.1:{9000 + i}/r" for i in range(130))
    r = await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "c2"}}, rt=2, rtu=rtu)
    assert r.rsc == 4000
    assert dbg(r) == "X-M2M-RTU lists 130 targets; at most 16 are allowed ([outbound] max_targets)"
    assert (await inproc.call(RETRIEVE, "cse-in/app/c2", ADMIN)).rsc == 4004
    assert recorder.sent == []


@pytest.fixture
async def capped() -> AsyncIterator[InProc]:
    """An in-process CSE allowing 3 subscriptions per originator."""
    from cse.config import OutboundConfig  # here: the other tests of this module also run on older code

    config = replace(load_config(None, db=":memory:"), outbound=OutboundConfig(max_subscriptions=3))
    async with started_inproc(config) as ip:
        yield ip


async def test_subscriptions_per_originator_even_while_verifying(capped: InProc) -> None:
    ip = capped
    aei = await ip.register("app")
    await container(ip, aei)
    async with Receiver(delay=asyncio.Event(), delay_verification=True) as slow:
        # five at once, all waiting for their verification: only three may go on
        creates = [asyncio.ensure_future(ip.call(CREATE, "cse-in/app/data", aei, ty=23,
                                                 pc={"m2m:sub": {"nu": [slow.url]}})) for _ in range(5)]
        await slow.wait_in_flight(3)
        slow.release()
        codes = sorted(r.rsc for r in await asyncio.gather(*creates))
    assert codes == [2001, 2001, 2001, 4103, 4103], codes
    async with Receiver() as rcv:
        r = await ip.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"rn": "more", "nu": [rcv.url]}})
        assert r.rsc == 4103
        assert dbg(r) == (f"originator {aei} already has 3 subscriptions, the most allowed "
                          "([outbound] max_subscriptions)")
        # deleting one makes room; the admin is not capped
        subs = await ip.cse.store.children((await ip.cse.store.get_by_path("cse-in/app/data") or {})["ri"], 23)
        assert (await ip.call(DELETE, subs[0]["ri"], aei)).rsc == 2002
        r = await ip.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"rn": "more", "nu": [rcv.url]}})
        assert r.rsc == 2001, r.pc
        for i in range(4):
            r = await ip.call(CREATE, "cse-in/app/data", ADMIN, ty=23, pc={"m2m:sub": {"rn": f"a{i}", "nu": [rcv.url]}})
            assert r.rsc == 2001, r.pc
        # deleting the parent gives the originator's quota back
        assert (await ip.call(DELETE, "cse-in/app/data", aei)).rsc == 2002
        await container(ip, aei)
        for i in range(3):
            r = await ip.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"rn": f"b{i}", "nu": [rcv.url]}})
            assert r.rsc == 2001, r.pc

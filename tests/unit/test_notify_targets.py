"""How a NOTIFY reaches its target, as the clauses say (cse/csf/notification.py):

* the event category: a subscription's ``nec`` is the request's ``ec``
  (TS-0004 7.2.1.1), ``X-M2M-EC`` over HTTP (TS-0009); under ``ln`` it is
  ``latest`` (4, TS-0001 9.6.8);
* ``nu`` naming an AE resource by its resource ID, structured or not,
  CSE- or SP-relative (TS-0001 9.6.8 notificationURI), reaches that AE's
  ``poa`` like its AE-ID does;
* an AE with ``rr`` false is not reachable (TS-0001 9.6.5): a subscription
  for it is refused (5204), nothing is sent to its ``poa``;
* each target is spoken to in the newest release its ``srv`` shares with
  ours; a release 2 target gets no ``X-M2M-RVI`` (it exists from 2a).

In-process CSE, real HTTP receivers on loopback.
"""

from __future__ import annotations

from typing import Any

from cse.core.messages import Operation, rvi_for
from cse.core.outbox import decode, encode
from cse.core.outcome import Notification
from tests.conftest import InProc
from tests.notify_receiver import Receiver

CREATE, RETRIEVE, UPDATE, NOTIFY = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE, Operation.NOTIFY
ADMIN = "CAdmin"


def dbg(resp: Any) -> str:
    assert isinstance(resp.pc, dict) and isinstance(resp.pc.get("m2m:dbg"), str), resp.pc
    return str(resp.pc["m2m:dbg"])


async def owner_with_container(ip: InProc) -> str:
    aei = await ip.register("app")
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.pc
    return aei


async def add_cin(ip: InProc, aei: str, con: str) -> None:
    r = await ip.call(CREATE, "cse-in/app/data", aei, ty=4, pc={"m2m:cin": {"con": con}})
    assert r.rsc == 2001, r.pc


# -- event category ----------------------------------------------------------------------

async def test_nec_is_sent_as_the_event_category(inproc: InProc, receiver: Receiver) -> None:
    aei = await owner_with_container(inproc)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23,
                          pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}, "nec": 100}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next()).is_verification
    await add_cin(inproc, aei, "x")
    got = await receiver.next()
    assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "x"
    assert got.header("X-M2M-EC") == "100"
    # without nec (and ln) there is none
    r = await inproc.call(UPDATE, r.pc["m2m:sub"]["ri"], aei, pc={"m2m:sub": {"nec": None}})
    assert r.rsc == 2004, r.pc
    await add_cin(inproc, aei, "y")
    got = await receiver.next()
    assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "y"
    assert got.header("X-M2M-EC") is None


async def test_latest_notify_is_event_category_latest(inproc: InProc, receiver: Receiver) -> None:
    aei = await owner_with_container(inproc)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23,
                          pc={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}, "ln": True}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next()).is_verification
    await add_cin(inproc, aei, "x")
    assert (await receiver.next()).header("X-M2M-EC") == "4"


def test_event_category_survives_the_outbox() -> None:
    n = Notification("sub1", "http://127.0.0.1:1/n", {"m2m:sgn": {}}, ec=100, entry="0")
    assert decode("0", encode(n)).ec == 100


# -- nu naming an AE resource -----------------------------------------------------------------

async def test_nu_as_resource_id_of_an_ae_reaches_its_poa(inproc: InProc, receiver: Receiver) -> None:
    await inproc.register("listener", poa=[receiver.url])
    aei = await owner_with_container(inproc)
    for i, nu in enumerate(("cse-in/listener", "/id-in/cse-in/listener")):
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23,
                              pc={"m2m:sub": {"rn": f"s{i}", "nu": [nu], "enc": {"net": [3], "chty": [4]}}})
        assert r.rsc == 2001, (nu, r.pc)
        assert (await receiver.next()).sgn == {"vrq": True, "sur": f"/id-in/{r.pc['m2m:sub']['ri']}", "cr": aei}
    await add_cin(inproc, aei, "x")
    got = [await receiver.next() for _ in range(2)]
    assert [g.sgn["nev"]["rep"]["m2m:cin"]["con"] for g in got] == ["x", "x"]
    # a resource that is not an AE has no address
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": ["cse-in/app/data"]}})
    assert r.rsc == 5204, r.pc
    assert "no reachable http(s) address" in dbg(r)


# -- requestReachability false ----------------------------------------------------------------

async def test_subscription_for_an_ae_with_rr_false_is_5204(inproc: InProc, receiver: Receiver) -> None:
    target = await inproc.register("listener", poa=[receiver.url], rr=False)
    aei = await owner_with_container(inproc)
    for nu in (target, "cse-in/listener"):
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [nu]}})
        assert r.rsc == 5204, r.pc
        assert "rr is false" in dbg(r)
    # its own subscription too, poa or not
    r = await inproc.call(CREATE, "cse-in/listener", target, ty=23, pc={"m2m:sub": {"nu": [target]}})
    assert r.rsc == 5204, r.pc
    nopoa = await inproc.register("quiet", rr=False)
    r = await inproc.call(CREATE, "cse-in/quiet", nopoa, ty=23, pc={"m2m:sub": {"nu": [nopoa]}})
    assert r.rsc == 5204, r.pc
    assert "rr is false" in dbg(r)
    await inproc.cse.notifier.drained(5)
    assert receiver.pending() == []


async def test_no_notification_to_the_poa_of_an_ae_that_turned_rr_false(
        inproc: InProc, receiver: Receiver) -> None:
    target = await inproc.register("listener", poa=[receiver.url])
    aei = await owner_with_container(inproc)
    r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23, pc={"m2m:sub": {"nu": [target], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next()).is_verification
    r = await inproc.call(UPDATE, "cse-in/listener", target, pc={"m2m:ae": {"rr": False}})
    assert r.rsc == 2004, r.pc
    notifier = inproc.cse.notifier
    failed = notifier.failed
    await add_cin(inproc, aei, "x")
    await notifier.drained(5)
    assert receiver.pending() == []
    assert notifier.failed == failed + 1
    # a NOTIFY addressed to it is not relayed either
    r = await inproc.call(NOTIFY, "cse-in/listener", ADMIN, pc={"m2m:sgn": {"sur": "/id-x/sub1"}})
    assert r.rsc == 5103, r.pc
    assert "rr is false" in dbg(r)
    assert receiver.pending() == []


# -- release versions ---------------------------------------------------------------------

def test_newest_common_release() -> None:
    assert rvi_for(["2a", "3", "4"]) == "4"
    assert rvi_for(["3"]) == "3"
    assert rvi_for(["2"]) == ""
    assert rvi_for(["1", "2"]) == ""
    assert rvi_for(["2", "3"]) == "3"
    assert rvi_for(None) is None
    assert rvi_for([]) is None


async def test_notification_speaks_the_targets_newest_release(inproc: InProc) -> None:
    aei = await owner_with_container(inproc)
    async with Receiver() as r4, Receiver() as r2:
        t4 = await inproc.register("four", poa=[r4.url], srv=["2a", "3", "4"])
        t2 = await inproc.register("two", poa=[r2.url], srv=["2"])
        r = await inproc.call(CREATE, "cse-in/app/data", aei, ty=23,
                              pc={"m2m:sub": {"nu": [t4, t2], "enc": {"net": [3]}}})
        assert r.rsc == 2001, r.pc
        await add_cin(inproc, aei, "x")
        for rcv, rvi in ((r4, "4"), (r2, None)):
            got = [await rcv.next() for _ in range(2)]
            assert got[0].is_verification and not got[1].is_verification
            assert [g.header("X-M2M-RVI") for g in got] == [rvi, rvi]


async def test_relayed_notify_speaks_the_aes_release(inproc: InProc, receiver: Receiver) -> None:
    await inproc.register("app", poa=[receiver.url], srv=["2a", "3"])
    r = await inproc.call(NOTIFY, "cse-in/app", ADMIN, rvi="4", pc={"m2m:sgn": {"sur": "/id-x/sub1"}})
    assert r.rsc == 2000, r.pc
    got = [await receiver.next() for _ in range(2)]
    assert got[0].is_verification
    assert [g.header("X-M2M-RVI") for g in got] == ["3", "3"]

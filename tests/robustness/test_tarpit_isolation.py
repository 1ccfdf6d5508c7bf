"""A dead or slow notification target must not delay anybody else's notifications.

Why: notifications are sent by a bounded set of concurrent sends. Each send
to a target that never answers holds one of them until the send timeout
(5 s), so hundreds of subscriptions pointing at one tarpit used to take all
64 of them: an unrelated AE's notification waited behind them for
~50 s. The CSE now bounds the sends in flight per target and per
originator (docs/security.md "Outbound requests"), so a tarpit ties up at
most ``[outbound] max_per_target`` of them, an originator at most
``max_per_originator``, and everybody else's notifications keep flowing.

End to end: a real CSE process with the default configuration, the
attackers' receivers are :class:`tests.robustness.tarpit.Tarpit` (they
consent to verification, then never answer), the unrelated AE's receiver
is a normal loopback receiver. Each test measures how long the unrelated
AE's notification takes while hundreds of sends to the tarpit are pending
(printed; run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import CSEProcess, Http
from tests.notify_receiver import Receiver
from tests.robustness.tarpit import Tarpit

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)

# The unrelated AE's notification must arrive well within the notifier's
# own send timeout (5 s): a send to the tarpit never frees a slot sooner.
BOUND_S = 1.5
MAX_PER_TARGET = 4       # [outbound] max_per_target default
MAX_PER_ORIGINATOR = 16  # [outbound] max_per_originator default


async def register(http: Http, base: str, name: str) -> str:
    aei = f"C{name}"
    r = await http.send("POST", f"{base}/cse-in", fr=aei, ty=2,
                        body={"m2m:ae": {"rn": name, "api": "Ntest", "rr": True, "srv": ["3"]}})
    assert r.rsc == 2001, r.body
    r = await http.send("POST", f"{base}/cse-in/{name}", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.body
    return aei


async def subscribe_many(http: Http, base: str, name: str, aei: str, urls: list[str]) -> None:
    """One subscription per URL on ``name``'s container (not notified of each other: chty 4)."""
    gate = asyncio.Semaphore(16)

    async def one(url: str) -> None:
        async with gate:
            r = await http.send("POST", f"{base}/cse-in/{name}/data", fr=aei, ty=23,
                                body={"m2m:sub": {"nu": [url], "enc": {"net": [3], "chty": [4]}}})
            assert r.rsc == 2001, r.body
    await asyncio.gather(*(one(url) for url in urls))


async def add_cin(http: Http, base: str, name: str, aei: str, con: str) -> None:
    r = await http.send("POST", f"{base}/cse-in/{name}/data", fr=aei, ty=4, body={"m2m:cin": {"con": con}})
    assert r.rsc == 2001, r.body


async def victim_delay(http: Http, base: str, receiver: Receiver) -> float:
    """Create the unrelated AE's contentInstance; seconds until its notification arrived."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await add_cin(http, base, "victim", "Cvictim", "hello")
    got = await receiver.next(timeout=120)
    elapsed = loop.time() - start
    assert got.sgn["nev"]["rep"]["m2m:cin"]["con"] == "hello"
    return elapsed


async def setup_victim(http: Http, base: str, receiver: Receiver) -> None:
    aei = await register(http, base, "victim")
    r = await http.send("POST", f"{base}/cse-in/victim/data", fr=aei, ty=23,
                        body={"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.body
    assert (await receiver.next(timeout=5)).is_verification


async def test_600_sends_to_one_tarpit_do_not_delay_an_unrelated_ae(
        cse_process: Callable[..., Any], http: Http, receiver: Receiver) -> None:
    cse: CSEProcess = await cse_process()
    base = cse.url
    tarpit = await Tarpit().start()
    try:
        await setup_victim(http, base, receiver)
        # six attackers, 100 subscriptions each (within the default per-originator cap), one tarpit
        attackers = [(f"tar{i}", await register(http, base, f"tar{i}")) for i in range(6)]
        for name, aei in attackers:
            await subscribe_many(http, base, name, aei, tarpit.urls * 100)
        for name, aei in attackers:
            await add_cin(http, base, name, aei, "flood")  # 100 notifications each, all to the tarpit
        await tarpit.wait_held(MAX_PER_TARGET)
        elapsed = await victim_delay(http, base, receiver)
        print(f"\nunrelated AE's notification with 600 sends to one tarpit pending: {elapsed * 1000:.1f} ms; "
              f"tarpit held at most {tarpit.most_held} at once")
        assert elapsed < BOUND_S, f"the unrelated notification took {elapsed:.2f} s"
        # the tarpit still holds its sends (nothing was answered), and never more than the per-target bound
        assert tarpit.held >= 1 and tarpit.seen - tarpit.verifications <= 600
        assert tarpit.most_held <= MAX_PER_TARGET, tarpit.most_held
    finally:
        await tarpit.stop()


async def test_one_originator_with_many_tarpits_does_not_delay_an_unrelated_ae(
        cse_process: Callable[..., Any], http: Http, receiver: Receiver) -> None:
    """Per target is not enough: 80 tarpits on 80 ports, one originator."""
    cse: CSEProcess = await cse_process()
    base = cse.url
    tarpit = await Tarpit(ports=80).start()
    try:
        await setup_victim(http, base, receiver)
        aei = await register(http, base, "tar")
        await subscribe_many(http, base, "tar", aei, tarpit.urls)
        await add_cin(http, base, "tar", aei, "flood")  # 80 notifications, one per tarpit
        await tarpit.wait_held(MAX_PER_ORIGINATOR)
        elapsed = await victim_delay(http, base, receiver)
        print(f"\nunrelated AE's notification with 80 sends to 80 tarpits pending: {elapsed * 1000:.1f} ms; "
              f"tarpits held at most {tarpit.most_held} at once")
        assert elapsed < BOUND_S, f"the unrelated notification took {elapsed:.2f} s"
        assert tarpit.most_held <= MAX_PER_ORIGINATOR, tarpit.most_held
    finally:
        await tarpit.stop()

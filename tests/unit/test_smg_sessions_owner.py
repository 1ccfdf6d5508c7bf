"""Session offers carry the session key, so they go only to subscriptions the
AE itself (or the admin) made under its ``sessions`` collection
(docs/sessions.md "Who sees sessions"). Access control refuses anyone
else's subscription there; this checks that one already in the store (made
before that rule, or restored from an old store) is ignored too.
In-process CSE, loopback receivers."""

from __future__ import annotations

from cse.core.messages import Operation
from cse.core.outcome import Outcome
from cse.core.ports import Put
from tests.conftest import InProc
from tests.e2e.test_smg_helpers import SessionAE

CB = "cse-in"


async def test_an_offer_goes_only_to_the_aes_own_subscriptions(inproc: InProc) -> None:
    ip = inproc
    async with SessionAE() as own, SessionAE() as intruder:
        aei1 = await ip.register("ae1", scp=["smg"])
        aei2 = await ip.register("ae2", scp=["smg"])
        sessions = await ip.cse.store.child_by_name(aei2, "sessions")
        assert sessions is not None
        now = ip.cse.ctx.now_ts()
        foreign = {"ty": 23, "ri": "subforeign", "rn": "foreign", "pi": sessions["ri"], "ct": now, "lt": now,
                   "et": sessions["et"], "nu": [intruder.url], "enc": {"net": [1]}, "nct": 1,
                   "_srn": f"{sessions['_srn']}/foreign", "_own": "Cintruder"}
        await ip.cse.ctx.apply(Outcome(ops=[Put(foreign)]))  # first in line, before the AE's own
        r = await ip.call(Operation.CREATE, f"{CB}/ae2/sessions", aei2, ty=23, pc={"m2m:sub": {"nu": [own.url]}})
        assert r.rsc == 2001, r.pc
        assert (await own.next(5)).is_verification
        r = await ip.call(Operation.CREATE, f"{CB}/ae1/sessions", aei1, ty=9002,
                          pc={"m2m:sess": {"tep": f"/id-in/{aei2}"}})
        assert r.rsc == 2001, r.pc
        _, offer = await own.event(1)
        assert offer["sid"] == r.pc["m2m:sess"]["sid"] and "scr" in offer
        r = await ip.call(Operation.DELETE, f"{CB}/ae1/sessions/{r.pc['m2m:sess']['rn']}", aei1)
        assert r.rsc == 2002, r.pc
        await own.event(3)
        await ip.cse.notifier.drained(5)
        assert intruder.received == []

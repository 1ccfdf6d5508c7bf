"""Expiry through the real timer, for resources not created by the data CSF.

Why: every stored resource with an ``et`` must disappear at its ``et``
(TS-0001 9.6.1.3, expirationTime; a ``<request>``'s ``et`` is its request's
Result Expiration Timestamp, the ``X-M2M-RST`` header of TS-0009). The CSE arms
one expiry timer at the soonest ``et`` it knows of. A resource stored
outside the usual create path -- a ``<request>`` of a non-blocking request,
the copy of a session kept at a CSE the session only passes through -- must
still bring that timer forward; otherwise, after an AE with the default
(ten-year) ``et`` armed it, the short-lived resource outlives its ``et``
until the next restart.

Nothing here calls the expiry job by hand: the CSEs run on the wall clock
and the tests wait, with a bounded timeout, for the resource to go.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from cse.app import CSE
from cse.core.messages import Operation, Request, Response
from cse.core.timestamps import format_ts, parse_ts
from tests.conftest import ADMIN, CSEProcess, Http
from tests.e2e.test_intercse_helpers import register_ae
from tests.e2e.test_smg_helpers import (
    SessionAE,
    establish,
    get,
    hop_view,
    smg_ae,
    start_smg_chain,
)
from tests.notify_receiver import Receiver
from tests.waiting import until

CREATE, RETRIEVE = Operation.CREATE, Operation.RETRIEVE
REQUEST_TY = 17
TEN_YEARS_S = 10 * 365 * 86400.0
GRACE_S = 10.0  # how long past its et a resource may linger (not a performance target)


# -- <request> of a non-blocking request (in-process CSE on the wall clock) ------------------

_rqi = itertools.count(1)


async def call(cse: CSE, op: Operation, to: str, fr: str, **kw: Any) -> Response:
    """One request through the CSE's dispatcher (no HTTP)."""
    return await cse.handle(Request(op=op, to=to, fr=fr, rqi=f"exp{next(_rqi)}", **kw))


async def test_request_resource_expires_at_its_rset_after_a_long_lived_ae(cse_app: CSE, receiver: Receiver) -> None:
    # An AE with the default et: the expiry timer is now armed ~10 years ahead.
    r = await call(cse_app, CREATE, "cse-in", "C", ty=2,
                   pc={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
    assert r.rsc == 2001, r.pc
    aei = r.pc["m2m:ae"]["aei"]
    assert parse_ts(r.pc["m2m:ae"]["et"]) > time.time() + TEN_YEARS_S - 86400, r.pc

    # The admin hears of every <request> leaving the CSEBase (net 4: child deleted).
    r = await call(cse_app, CREATE, "cse-in", ADMIN, ty=23, pc={"m2m:sub": {
        "rn": "requestWatch", "nu": [receiver.url], "enc": {"net": [4], "chty": [REQUEST_TY]}}})
    assert r.rsc == 2001, r.pc
    assert (await receiver.next(5)).is_verification

    # A non-blocking RETRIEVE (changes nothing else) whose <request> lives 2 s.
    r = await call(cse_app, RETRIEVE, "cse-in/app", aei, rt=1, rset="2000")
    assert r.rsc == 1001, r.pc
    ri = r.pc["m2m:uri"]
    got = await call(cse_app, RETRIEVE, ri, aei)
    assert got.rsc == 2000, got.pc
    et = got.pc["m2m:req"]["et"]
    assert parse_ts(et) < time.time() + 3, got.pc

    wait = parse_ts(et) - time.time() + GRACE_S
    try:
        note = await receiver.next_notification(wait)
    except TimeoutError:
        still = await call(cse_app, RETRIEVE, ri, ADMIN)
        pytest.fail(f"<request> {ri} with et {et} was not expired by the CSE's expiry timer: "
                    f"{GRACE_S:g} s after its et (now {format_ts(time.time())}) a RETRIEVE answers "
                    f"{still.rsc} and no deletion notification came")
    sgn = note.sgn
    assert sgn["nev"]["net"] == 4, sgn
    assert sgn["nev"]["rep"]["m2m:req"]["ri"] == ri, sgn
    assert (await call(cse_app, RETRIEVE, ri, ADMIN)).rsc == 4004
    # the AE it read is untouched
    assert (await call(cse_app, RETRIEVE, "cse-in/app", aei)).rsc == 2000


# -- a transit session (three CSE processes) -----------------------------------------------

SESSION_LIFETIME_S = 6.0  # establishment and stopping both ends must fit before the et


async def test_transit_session_expires_at_its_et_when_the_ends_are_gone(
        cse_process: Callable[..., Any], http: Http) -> None:
    """AE1@CSE1 -- IN -- AE2@CSE2. The IN keeps its copy of the session,
    stored by the SMG as it passes through, with the session's ``et``. Both
    ends then vanish without a word, so only the IN's own expiry can end its
    copy; an AE there with the default ``et`` has armed that timer years
    ahead."""
    in_cse, cse1, cse2 = await start_smg_chain(cse_process, http)
    far = await register_ae(http, in_cse, "cse-in", "far")
    ae = await get(http, f"{in_cse.url}/cse-in/far", fr=far)
    assert parse_ts(ae.body["m2m:ae"]["et"]) > time.time() + TEN_YEARS_S - 86400, ae.body

    async with SessionAE(epa={"role": "meter"}) as rcv2, SessionAE() as rcv1:
        aei1 = await smg_ae(http, cse1, "cse1", "ae1", rcv1)
        aei2 = await smg_ae(http, cse2, "cse2", "ae2", rcv2)
        sess = await establish(http, cse1, "cse1", "ae1", aei1, f"/id-cse2/{aei2}",
                               et=format_ts(time.time() + SESSION_LIFETIME_S))
        sid, et = sess["sid"], sess["et"]
        transit = await hop_view(http, in_cse, sid)
        assert transit["et"] == et and transit["sst"] == 2, transit
        await _stop_ends(cse1, cse2)
        assert time.time() < parse_ts(et), \
            f"setup took too long: the ends were stopped only after the session's et {et}"

        # The IN is another process and nobody is left to be told of the
        # removal: no event to await, so look again until a deadline.
        async def gone() -> bool:
            return (await get(http, f"{in_cse.url}/ses{sid}")).rsc == 4004
        try:
            await until(gone, f"the transit session {sid[:8]} to leave the IN",
                        timeout=parse_ts(et) - time.time() + GRACE_S, interval=0.2)
        except AssertionError:
            still = await get(http, f"{in_cse.url}/ses{sid}")
            pytest.fail(f"transit session ses{sid} at the IN with et {et} was not expired by the IN's "
                        f"expiry timer: {GRACE_S:g} s after its et (now {format_ts(time.time())}) a "
                        f"RETRIEVE answers {still.rsc}")
    assert (await get(http, f"{in_cse.url}/cse-in/far", fr=far)).rsc == 2000


async def _stop_ends(*ends: CSEProcess) -> None:
    """SIGKILL: the ends go without telling the IN (no termination, no deregistration)."""
    for end in ends:
        await end.kill()

"""Pipeline-level fuzz: random Request objects straight into the dispatcher.

Why: the HTTP fuzz (test_fuzz_http.py) spends most of its time in sockets
and the binding's early checks. Here requests are built from random
attributes in the shapes the binding can hand over (any JSON value as
content, any strings as To/From/timestamps, any query parameters) and go
straight to ``CSE.handle`` in process, so many more reach the CSFs, for
throughput. No answer may be 5000 or a 5xxx outside the documented
not-our-fault set, and every error carries ``m2m:dbg``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cse.app import CSE
from cse.config import load_config
from cse.core.errors import BadRequest
from cse.core.http_wire import parse_json_body
from cse.core.messages import Operation, Request
from cse.store.memory import MemoryStore
from tests.conftest import FakeClock
from tests.robustness.rawhttp import ALLOWED_5XXX, VALID_RSC_HTTP
from tests.robustness.test_fuzz_http import (
    DEAD_URL,
    FIXED_PATHS,
    QUERY_KEYS,
    QUERY_VALUES,
    SPECIAL_STRINGS,
    TYPES,
    json_values,
    resource_bodies,
    text,
)

_rqi = itertools.count()


class Loop:
    """One in-process CSE on its own event loop, driven from sync hypothesis tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        clock = FakeClock()
        self.cse = CSE(load_config(None, db=":memory:"), store=MemoryStore(), clock=clock,
                       wait_until=clock.wait_until)
        self.run(self.cse.start(serve_http=False))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.cse.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def world() -> Iterator[Loop]:
    w = Loop()
    try:
        r = w.run(w.cse.handle(Request(op=Operation.CREATE, to="cse-in", fr="Cfuzz", rqi="s1", ty=2,
                                       pc={"m2m:ae": {"rn": "fz", "api": "Nfz", "rr": True, "srv": ["3"]}})))
        assert r.rsc == 2001, r.pc
        r = w.run(w.cse.handle(Request(op=Operation.CREATE, to="cse-in/fz", fr="Cfuzz", rqi="s2", ty=3,
                                       pc={"m2m:cnt": {"rn": "cnt"}})))
        assert r.rsc == 2001, r.pc
        yield w
        r = w.run(w.cse.handle(Request(op=Operation.RETRIEVE, to="cse-in", fr="CAdmin", rqi="end")))
        assert r.rsc == 2000
    finally:
        w.close()


def _as_binding_would(body: bytes) -> Any:
    """The content the binding hands over for ``body`` (None where it answers 4000 itself)."""
    try:
        return parse_json_body(body)
    except BadRequest:
        return None


@st.composite
def requests(draw: Any) -> Request:
    op = draw(st.sampled_from(list(Operation)))
    to = draw(st.one_of(st.sampled_from([p.lstrip("/") for p in FIXED_PATHS] + ["/id-in/cse-in/fz", "fz"]),
                        text, SPECIAL_STRINGS))
    ty, body = draw(resource_bodies())
    pc = draw(st.one_of(st.none(), json_values, st.just(_as_binding_would(body))))
    query = draw(st.dictionaries(st.sampled_from(QUERY_KEYS[:-1]), st.lists(QUERY_VALUES, min_size=1, max_size=2)
                                 .map(tuple), max_size=4))
    return Request(
        op=op, to=to,
        fr=draw(st.one_of(st.sampled_from(["CAdmin", "Cfuzz", "Cother", "/id-in", "/id-x", "C", None]), text)),
        rqi=draw(st.one_of(st.just(f"p{next(_rqi)}"), text)),
        rvi=draw(st.sampled_from(["2a", "3", "4", "5"])),
        ty=draw(st.one_of(st.none(), st.sampled_from([*sorted(TYPES), 0, 6, 99999]), st.just(ty))),
        pc=pc,
        rcn=draw(st.one_of(st.none(), st.integers(0, 12))),
        rt=draw(st.sampled_from([3, 3, 3, 1, 2, 4, 5])),
        rtu=draw(st.one_of(st.none(), st.just((DEAD_URL,)), st.just(()), st.just(("Cfuzz",)))),
        drt=draw(st.sampled_from([1, 2])),
        atrl=tuple(draw(st.lists(st.sampled_from(["rn", "ri", "lbl", "con", "scr", "x", ""]), max_size=3))),
        ot=draw(st.one_of(st.none(), SPECIAL_STRINGS)),
        rqet=draw(st.one_of(st.none(), SPECIAL_STRINGS, text)),
        rset=draw(st.one_of(st.none(), SPECIAL_STRINGS)),
        oet=draw(st.one_of(st.none(), SPECIAL_STRINGS)),
        rp=draw(st.one_of(st.none(), SPECIAL_STRINGS)),
        ec=draw(st.one_of(st.none(), st.integers(-5, 1000))),
        sid=draw(st.one_of(st.none(), st.none(), st.none(), text)),
        smac=draw(st.one_of(st.none(), text)),
        query=query,
    )


def test_random_requests_through_the_pipeline(world: Loop, long_run: bool) -> None:
    @settings(max_examples=20_000 if long_run else 1000, deadline=None, derandomize=not long_run,
              database=None, suppress_health_check=list(HealthCheck))
    @given(requests())
    def run(req: Request) -> None:
        resp = world.run(world.cse.handle(req))
        assert resp.rsc in VALID_RSC_HTTP, (resp.rsc, resp.pc)
        assert resp.rsc < 5000 or resp.rsc in ALLOWED_5XXX, (resp.rsc, resp.pc, req)
        if resp.rsc >= 4000:
            assert isinstance(resp.pc, dict) and resp.pc.get("m2m:dbg"), resp.pc
    run()

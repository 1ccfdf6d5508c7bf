"""What one client may cost the CSE (docs/security.md "Limits"), in process.

Why: a review found that unrestricted discovery over 20,000 resources held
the event loop long enough to slow every other request 60-fold, that an
originator without any right still paid for walking the whole tree, that a
2,000-level deep tree made rcn=4 answer 5000 (RecursionError), and that
one AE could create 20,000 resources in 5 s. Each test here pins one of
the limits that stop that; the slowloris limits are end to end in
``tests/robustness/test_connection_limits.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cse.app import CSE
from cse.binding.http_mapping import response_to_http
from cse.config import ConfigError, LimitsConfig, load_config
from cse.core.messages import Operation, Request, Response
from cse.core.ports import Doc, Put
from cse.store.memory import MemoryStore
from cse.store.tinydb_store import TinyDBStore
from tests.conftest import ADMIN, FakeClock
from tests.unit.pipeline import dbg

_rqi = itertools.count(1)
R, C, D = Operation.RETRIEVE, Operation.CREATE, Operation.DELETE


class Node:
    """An in-process CSE started from a ``[limits]`` section."""

    def __init__(self, tmp: Path, limits: str, *, store: Any = None, clock: FakeClock | None = None) -> None:
        cfg = tmp / "limits.toml"
        cfg.write_text(f"[limits]\n{limits}\n")
        self.clock = clock or FakeClock()
        self.cse = CSE(load_config(str(cfg), db=":memory:"), store=store or MemoryStore(), clock=self.clock,
                       monotonic=self.clock.monotonic)

    async def call(self, op: Operation, to: str, fr: str | None = ADMIN, *, ty: int | None = None,
                   pc: Any = None, query: dict[str, tuple[str, ...]] | None = None, **kw: Any) -> Response:
        return await self.cse.handle(Request(op=op, to=to, fr=fr, rqi=f"lim{next(_rqi)}", ty=ty, pc=pc,
                                             query=query or {}, **kw))

    async def register(self, rn: str) -> str:
        resp = await self.call(C, "cse-in", "C" + rn, ty=2,
                               pc={"m2m:ae": {"rn": rn, "api": "N" + rn, "rr": False, "srv": ["3"]}})
        assert resp.rsc == 2001, resp.pc
        return str(resp.pc["m2m:ae"]["aei"])

    async def ok(self, op: Operation, to: str, fr: str, want: int, **kw: Any) -> Response:
        resp = await self.call(op, to, fr, **kw)
        assert resp.rsc == want, (op, to, resp.rsc, resp.pc)
        return resp


@pytest.fixture
async def node(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    n = Node(tmp_path, getattr(request, "param", ""))
    await n.cse.start(serve_http=False)
    try:
        yield n
    finally:
        await n.cse.stop()


async def _fill(n: Node, aei: str, containers: int, instances: int) -> None:
    """``containers`` containers ``c<i>`` under ``cse-in/app``, each with ``instances`` instances."""
    for c in range(containers):
        await n.ok(C, "cse-in/app", aei, 2001, ty=3, pc={"m2m:cnt": {"rn": f"c{c}", "lbl": ["k"]}})
        for i in range(instances):
            await n.ok(C, f"cse-in/app/c{c}", aei, 2001, ty=4, pc={"m2m:cin": {"con": str(i)}})


# -- configuration ----------------------------------------------------------------------------

def test_limits_defaults_and_checks(tmp_path: Path) -> None:
    assert load_config(None).limits == LimitsConfig()
    assert LimitsConfig().max_resources_per_originator == 0 and LimitsConfig().requests_per_s == 0  # off
    for text, needle in (("max_depth = 0", "limits.max_depth"), ("max_depth = 257", "1..256"),
                         ("max_result = 0", "limits.max_result"), ("requests_per_s = -1", "requests_per_s"),
                         ("header_timeout_s = 0", "header_timeout_s"), ("max_conections = 3", "unknown key"),
                         ("max_connections_per_peer = true", "must be int")):
        cfg = tmp_path / "bad.toml"
        cfg.write_text(f"[limits]\n{text}\n")
        with pytest.raises(ConfigError, match=needle):
            load_config(str(cfg))


# -- long walks share the event loop ----------------------------------------------------------

async def test_a_long_discovery_lets_other_tasks_run(node: Node) -> None:
    """Before: the in-memory walk never suspended, so a discovery over
    thousands of resources ran start to end while every other request of the
    CSE waited (an unrelated RETRIEVE went from 1.2 ms to 76 ms)."""
    aei = await node.register("app")
    await _fill(node, aei, 3, 700)  # 2,104 resources below the AE
    # cty has no index: the subtree is walked (a label would be answered from the index)
    disc = asyncio.ensure_future(node.call(R, "cse-in/app", aei, query={"fu": ("1",), "cty": ("none/none",)}))
    turns = 0
    while not disc.done():
        turns += 1
        await asyncio.sleep(0)
    resp = disc.result()
    assert resp.rsc == 2000 and resp.pc == {"m2m:uril": []}
    # one turn per WALK_SLICE (128) resources visited; it was 1 (the whole walk at once)
    assert turns >= 2100 // 256, f"the walk let others run only {turns} times"


# -- the result cap and its partial-content indication ------------------------------------------

@pytest.mark.parametrize("node", ["max_result = 5"], indirect=True)
async def test_the_cap_cuts_with_partial_content_and_the_offset_resumes(node: Node) -> None:
    """Before: a result was cut at 10,000 without a word (and rcn=4 of 20k
    resources took 292 ms); now at ``limits.max_result`` with Content
    Status PARTIAL_CONTENT and the Content Offset to go on from."""
    aei = await node.register("app")
    await _fill(node, aei, 3, 2)  # c0 (2 cin), c1 (2 cin), c2 (2 cin): 9 resources
    first = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",)})
    assert first.pc["m2m:uril"] == ["cse-in/app/c0", *first.pc["m2m:uril"][1:3], "cse-in/app/c1",
                                    first.pc["m2m:uril"][4]]
    assert (first.cnst, first.cnot) == (1, 2)  # the 6th result is in c1's subtree, the 2nd child
    status, headers, _ = response_to_http(first, "20300101T000000")
    assert headers["X-M2M-CTS"] == "1" and headers["X-M2M-CTO"] == "2"
    rest = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",), "ofst": ("2",)})
    assert rest.pc["m2m:uril"][0] == "cse-in/app/c1" and len(rest.pc["m2m:uril"]) == 5
    assert (rest.cnst, rest.cnot) == (1, 3)
    last = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",), "ofst": ("3",)})
    assert len(last.pc["m2m:uril"]) == 3 and last.cnst is None and last.cnot is None
    assert "X-M2M-CTS" not in response_to_http(last, "20300101T000000")[1]

    nested = await node.ok(R, "cse-in/app", aei, 2000, rcn=4)
    assert nested.cnst == 1 and len(nested.pc["m2m:ae"]["m2m:cnt"]) == 2  # c0 with 2 cin, c1 with 1 cin
    assert (await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",), "lim": ("50",)})).cnst == 1
    small = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",), "lim": ("2",)})
    assert len(small.pc["m2m:uril"]) == 2 and (small.cnst, small.cnot) == (1, 1)
    exact = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",), "ty": ("3",)})
    assert len(exact.pc["m2m:uril"]) == 3 and exact.cnst is None


# -- rights are checked before a subtree is walked -------------------------------------------

class CountingStore(MemoryStore):
    """Counts the children the walks ask for, per parent."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict[str, int] = {}

    async def children(self, pi: str, ty: int | None = None) -> list[Doc]:
        self.asked[pi] = self.asked.get(pi, 0) + 1
        return await super().children(pi, ty)


async def test_subtrees_the_originator_cannot_see_are_not_walked(tmp_path: Path) -> None:
    """Before: an originator with no rights at all still cost a visit of
    every resource (85 ms per discovery over 20k); now a container it may
    not see is not opened for its instances, while a container below it
    whose own ACP grants is still found."""
    store = CountingStore()
    n = Node(tmp_path, "", store=store)
    await n.cse.start(serve_http=False)
    try:
        owner = await n.register("app")
        other = await n.register("other")
        nobody = await n.register("nobody")  # registered (unknown originators are refused first), no rights
        await _fill(n, owner, 2, 50)
        await n.ok(C, "cse-in/app", owner, 2001, ty=1, pc={"m2m:acp": {
            "rn": "open", "pv": {"acr": [{"acor": [other], "acop": 34}]},
            "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}})
        await n.ok(C, "cse-in/app/c0", owner, 2001, ty=3,
                   pc={"m2m:cnt": {"rn": "shared", "acpi": ["cse-in/app/open"]}})
        c0 = (await n.ok(R, "cse-in/app/c0", owner, 2000)).pc["m2m:cnt"]["ri"]
        store.asked.clear()
        for who in (other, nobody):
            found = await n.ok(R, "cse-in", who, 2000, query={"fu": ("1",), "ty": ("3", "4")})
            want = ["cse-in/app/c0/shared"] if who == other else []
            assert found.pc["m2m:uril"] == want, who
        # c0 had to be opened (it holds a container), but only for its non-instances; c1 never
        c1 = (await n.ok(R, "cse-in/app/c1", owner, 2000)).pc["m2m:cnt"]["ri"]
        assert store.asked.get(c1, 0) == 0, store.asked
        assert store.asked.get(c0, 0) <= 2, store.asked
        everything = await n.ok(R, "cse-in", owner, 2000, query={"fu": ("1",), "ty": ("4",)})
        assert len(everything.pc["m2m:uril"]) == 100  # the owner still sees every instance
    finally:
        await n.cse.stop()


# -- depth ------------------------------------------------------------------------------------

async def test_a_resource_deeper_than_max_depth_is_4000_and_deep_results_encode(node: Node) -> None:
    """Before: a 2,000-level chain of containers could be created, and
    rcn=4/8 on its top answered 5000 (RecursionError while encoding)."""
    aei = await node.register("app")
    path = "cse-in/app"
    for level in range(2, 65):  # the AE is level 1
        await node.ok(C, path, aei, 2001, ty=3, pc={"m2m:cnt": {"rn": f"l{level}"}})
        path += f"/l{level}"
    too_deep = await node.ok(C, path, aei, 4000, ty=3, pc={"m2m:cnt": {"rn": "l65"}})
    assert "65 levels below the CSEBase" in dbg(too_deep) and "limits.max_depth" in dbg(too_deep)
    for rcn in (4, 8):
        resp = await node.ok(R, "cse-in/app", aei, 2000, rcn=rcn)
        assert resp.cnst is None
        status, _, body = response_to_http(resp, "20300101T000000")
        assert status == 200 and body.count(b'"rn":"l') == 63


async def test_a_tree_already_deeper_than_the_limit_still_answers(node: Node) -> None:
    """A store from before the limit (or a lowered ``limits.max_depth``)
    may hold deeper trees: rcn=4/8 stop at the limit, say the content is
    partial, and the answer encodes; no walk recurses per level."""
    aei = await node.register("app")
    parent, srn, chain = aei, "cse-in/app", []
    for level in range(2, 2001):
        srn += f"/d{level}"
        doc = {"ty": 3, "ri": f"cnt-deep{level}", "rn": f"d{level}", "pi": parent, "_srn": srn, "_own": aei,
               "ct": "20300101T000000", "lt": "20300101T000000", "st": 0, "cni": 0, "cbs": 0}
        chain.append(Put(doc))
        parent = doc["ri"]
    await node.cse.store.commit(chain)
    for rcn in (4, 8):
        resp = await node.ok(R, "cse-in/app", aei, 2000, rcn=rcn)
        assert resp.cnst == 1
        status, _, body = response_to_http(resp, "20300101T000000")
        assert status == 200 and body.count(b'"rn":"d') == 64
    found = await node.ok(R, "cse-in/app", aei, 2000, query={"fu": ("1",)})
    assert len(found.pc["m2m:uril"]) == 64 and found.cnst == 1


# -- per-originator quotas ----------------------------------------------------------------------

async def test_resource_quota_counts_what_the_originator_owns_and_survives_restart(tmp_path: Path) -> None:
    """Before: nothing bounded what one AE could create. Now
    ``limits.max_resources_per_originator`` (the AE itself counts), 5207
    with a dbg naming the setting, counted from the store's owner index:
    a restart keeps the count, a delete frees room, the admin has no quota."""
    db = str(tmp_path / "q.db")
    clock = FakeClock()

    async def started() -> Node:
        n = Node(tmp_path, "max_resources_per_originator = 4", store=TinyDBStore(db), clock=clock)
        await n.cse.start(serve_http=False)
        return n

    n = await started()
    try:
        aei = await n.register("app")
        for i in range(3):
            await n.ok(C, "cse-in/app", aei, 2001, ty=3, pc={"m2m:cnt": {"rn": f"c{i}"}})
        refused = await n.ok(C, "cse-in/app", aei, 5207, ty=3, pc={"m2m:cnt": {"rn": "c3"}})
        assert "already holds 4 resources" in dbg(refused) and "limits.max_resources_per_originator" in dbg(refused)
        for i in range(6):  # the admin is never limited, and its resources count for nobody else
            await n.ok(C, "cse-in/app", ADMIN, 2001, ty=3, pc={"m2m:cnt": {"rn": f"adm{i}"}})
    finally:
        await n.cse.stop()
    n = await started()
    try:
        await n.ok(C, "cse-in/app", aei, 5207, ty=3, pc={"m2m:cnt": {"rn": "c3"}})
        await n.ok(D, "cse-in/app/c0", aei, 2002)
        await n.ok(C, "cse-in/app", aei, 2001, ty=3, pc={"m2m:cnt": {"rn": "c3"}})
        other = await n.register("other")  # another originator has its own quota
        await n.ok(C, "cse-in/other", other, 2001, ty=3, pc={"m2m:cnt": {"rn": "x"}})
    finally:
        await n.cse.stop()


@pytest.mark.parametrize("node", ["requests_per_s = 2\nrequest_burst = 3"], indirect=True)
async def test_request_rate_is_a_token_bucket_per_originator(node: Node) -> None:
    """Before: no bound on how fast one originator may send. Now a bucket of
    ``request_burst`` refilled at ``requests_per_s``; the clock is injected,
    so the refill is exact."""
    aei = await node.register("app")  # a request of originator "Capp", the AE-ID it gets
    for _ in range(2):
        await node.ok(R, "cse-in/app", aei, 2000)
    refused = await node.ok(R, "cse-in/app", aei, 5207)
    assert "more than 2 requests per second" in dbg(refused) and "limits.requests_per_s" in dbg(refused)
    assert "retry in 0.50 s" in dbg(refused)
    for _ in range(20):
        await node.ok(R, "cse-in/app", ADMIN, 2000)  # the admin is never limited
    other = await node.register("other")
    await node.ok(R, "cse-in/other", other, 2000)  # nor is another originator by this one's bucket
    node.clock.advance(0.5)
    await node.ok(R, "cse-in/app", aei, 2000)
    await node.ok(R, "cse-in/app", aei, 5207)
    node.clock.advance(10)  # refills to the burst, not beyond
    for _ in range(3):
        await node.ok(R, "cse-in/app", aei, 2000)
    await node.ok(R, "cse-in/app", aei, 5207)
    node.clock.step(86400)  # the wall clock is set a day ahead: no time passed, nothing refilled
    await node.ok(R, "cse-in/app", aei, 5207)

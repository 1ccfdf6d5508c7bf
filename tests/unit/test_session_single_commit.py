"""A session-based change is one commit at the hop that serves it, and its
replay gets exactly the answer the client got (docs/sessions.md
"Store-and-forward", "Replays").

Why: the effect, the session context entry (``hst``, ``rqn``) and the
remembered answer must be durable together, or a crash between two commits
could keep the effect without the memory that stops a redelivery from
executing it again; and one commit instead of two is what a session-based
request costs on top of a plain one. The remembered answer must be the
answer itself (status, content with every generated attribute, location),
not a later reading of the resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cse.core.messages import Operation, Request
from cse.core.ports import CommitResult, KvPut, Op, Put
from cse.csf.smg.history import replay_ns
from tests.flow2_helpers import LocalSession, rqi

CREATE, RETRIEVE, UPDATE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE


class Commits:
    """Every store commit of the in-process CSE, as its list of operations."""

    def __init__(self, ls: LocalSession) -> None:
        self.seen: list[list[Op]] = []
        store = ls.ip.cse.store
        self._commit = store.commit
        store.commit = self  # the executor's one way to the store

    async def __call__(self, ops: Sequence[Op]) -> CommitResult:
        self.seen.append(list(ops))
        result: CommitResult = await self._commit(ops)
        return result


def _request(ls: LocalSession, op: Operation, to: str, pc: Any, *, ty: int | None = None) -> Request:
    """One signed session-based request; sending it again is a redelivery."""
    rq = rqi("one")
    return Request(op=op, to=to, fr=ls.aei1, rqi=rq, ty=ty, pc=pc, **ls.signed(op, to, rq, pc))


async def test_a_session_update_is_one_commit_and_its_replay_is_the_same_answer(ls: LocalSession) -> None:
    to = f"{ls.cb}/AE2/container1"
    commits = Commits(ls)
    req = _request(ls, UPDATE, to, {"m2m:cnt": {"lbl": ["once"]}})
    first = await ls.ip.cse.handle(req)
    assert first.rsc == 2004, first.pc
    # one commit changes anything (an outbox settlement may add one that only deletes entries)
    [ops] = [c for c in commits.seen if any(isinstance(op, (Put, KvPut)) for op in c)]
    puts = {op.doc["ri"]: op.doc for op in ops if isinstance(op, Put)}
    container = first.pc["m2m:cnt"]
    assert puts[container["ri"]]["lbl"] == ["once"]                      # the effect
    assert puts[f"ses{ls.sid}"]["hst"][-1]["rqi"] == req.rqi              # the session context
    memo = [op for op in ops if isinstance(op, KvPut) and op.ns == replay_ns(ls.sid)]
    assert [m.key for m in memo] == [req.rqi]                             # the remembered answer
    assert memo[0].value["pc"] == first.pc and memo[0].value["rsc"] == first.rsc

    ls.ip.clock.advance(5)  # a later redelivery: lt and st would differ if it ran again
    again = await ls.ip.cse.handle(req)
    assert (again.rsc, again.pc, again.location, again.rqi) == (first.rsc, first.pc, first.location, first.rqi)
    now = await ls.ip.call(RETRIEVE, to, ls.aei2)
    assert now.pc["m2m:cnt"]["st"] == container["st"] and now.pc["m2m:cnt"]["lt"] == container["lt"]


async def test_a_replayed_create_returns_the_generated_attributes_of_the_first(ls: LocalSession) -> None:
    to = f"{ls.cb}/AE2/container1"
    req = _request(ls, CREATE, to, {"m2m:cin": {"con": "21.5"}}, ty=4)
    first = await ls.ip.cse.handle(req)
    assert first.rsc == 2001 and first.location, first.pc
    ls.ip.clock.advance(5)
    again = await ls.ip.cse.handle(req)
    assert (again.rsc, again.pc, again.location) == (first.rsc, first.pc, first.location)
    assert again.pc["m2m:cin"]["ri"] == first.pc["m2m:cin"]["ri"]  # generated ri, ct, ... as first answered
    cnt = await ls.ip.call(RETRIEVE, to, ls.aei2)
    assert cnt.pc["m2m:cnt"]["cni"] == 1

"""An outcome that asks a question first (cse/core/outcome.py ``Ask``): the
executor sends it through its ask port, bounds the wait, and the
continuation decides the outcome (docs/architecture.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cse.core.errors import M2MError, NotImplementedOp, RequestTimeout
from cse.core.executor import Executor
from cse.core.messages import Response
from cse.core.outcome import Ask, Outcome
from cse.core.ports import Put
from cse.store.memory import MemoryStore


def asking(seen: list[Any], timeout: float = 5.0) -> Outcome:
    async def then(answer: Response | M2MError) -> Outcome:
        seen.append(answer)
        if isinstance(answer, M2MError):
            raise answer
        doc = {"ri": "x1", "ty": 3, "pi": "cb", "rn": "x1", "_srn": "cse-in/x1"}
        return Outcome(Response(rsc=2004, rqi="r1"), [Put(doc)])
    return Outcome(ask=Ask("http://127.0.0.1:9/n", {"m2m:sgn": {}}, timeout, then, owner="Cme", sur="/id-in/s1"))


async def test_the_answer_decides_and_the_decision_is_committed() -> None:
    store = MemoryStore()
    asked: list[Ask] = []

    async def port(ask: Ask) -> Response:
        asked.append(ask)
        return Response(rsc=2000, rqi="n1")

    ex = Executor(store, ask=port)
    seen: list[Any] = []
    await ex.run(asking(seen))
    assert [a.target for a in asked] == ["http://127.0.0.1:9/n"] and asked[0].owner == "Cme"
    assert seen[0].rsc == 2000
    assert await store.get("x1") is not None


async def test_an_unanswered_question_is_a_timeout_and_nothing_is_committed() -> None:
    store = MemoryStore()

    async def silent(ask: Ask) -> Response:
        await asyncio.Event().wait()  # never answers: the executor's bound ends it
        raise AssertionError("unreachable")

    seen: list[Any] = []
    with pytest.raises(RequestTimeout):
        await Executor(store, ask=silent).settle(asking(seen, timeout=0.05))
    assert isinstance(seen[0], RequestTimeout)
    assert await store.get("x1") is None


async def test_without_an_ask_port_the_continuation_hears_5001() -> None:
    seen: list[Any] = []
    with pytest.raises(NotImplementedOp):
        await Executor(MemoryStore()).settle(asking(seen))
    assert isinstance(seen[0], NotImplementedOp)

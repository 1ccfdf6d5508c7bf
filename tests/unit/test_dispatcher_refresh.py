"""Several workers: when the dispatcher reads the change log first (cse.core.dispatcher).

A request reads the other workers' commits first (``refresh``), except one
that will take the write gate while this worker holds it: the worker synced
when it took the gate, and nobody else commits a gated write meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from cse.app import CSE
from cse.core.dispatcher import Dispatcher
from cse.core.messages import Operation, Request

AE = {"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}}


class Worker:
    """The dispatcher of ``cse`` with a gate that is held or not, counting refreshes."""

    def __init__(self, cse: CSE) -> None:
        self.held = False
        self.refreshes = 0
        self.entered = 0
        self.dispatcher = Dispatcher(cse.ctx, cse.router.handle, cse.executor.run, serialize=self.gate,
                                     refresh=self.refresh, gate_held=lambda: self.held)

    @contextlib.asynccontextmanager
    async def gate(self) -> AsyncIterator[None]:
        self.entered += 1
        yield

    async def refresh(self) -> None:
        self.refreshes += 1


async def test_a_write_while_the_gate_is_held_reads_no_change_log(cse_app: CSE) -> None:
    w = Worker(cse_app)
    r = await w.dispatcher.handle(Request(op=Operation.CREATE, to="cse-in", fr="Capp", rqi="1", ty=2, pc=AE))
    assert r.rsc == 2001, r.pc
    assert (w.refreshes, w.entered) == (1, 1)  # gate not held: the log is read, then the gate taken
    w.held = True
    r = await w.dispatcher.handle(Request(op=Operation.CREATE, to="cse-in/app", fr="Capp", rqi="2", ty=3,
                                          pc={"m2m:cnt": {"rn": "data"}}))
    assert r.rsc == 2001, r.pc
    assert (w.refreshes, w.entered) == (1, 2)  # held: memory has every gated commit already
    r = await w.dispatcher.handle(Request(op=Operation.RETRIEVE, to="cse-in/app/data", fr="Capp", rqi="3"))
    assert r.rsc == 2000, r.pc
    assert (w.refreshes, w.entered) == (2, 2)  # a read still reads the log: it may read what no gate covers
    r = await w.dispatcher.handle(Request(op=Operation.DELETE, to="cse-in/app/data", fr="Capp", rqi="4"))
    assert r.rsc == 2002, r.pc
    assert (w.refreshes, w.entered) == (2, 3)
    w.held = False
    r = await w.dispatcher.handle(Request(op=Operation.DELETE, to="cse-in/app", fr="Capp", rqi="5"))
    assert r.rsc == 2002, r.pc
    assert (w.refreshes, w.entered) == (3, 4)

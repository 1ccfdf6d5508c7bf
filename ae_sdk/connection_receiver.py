"""A notification receiver fed by the AE's own connection to its CSE (docs/sdk.md).

Why: over MQTT and over a WebSocket the CSE's requests to the AE arrive on
the connection the AE already has (a broker subscription, the AE's own
WebSocket), not on a listening socket. :class:`ConnectionReceiver` is what
both receivers share: it serves once the AE has its AE-ID, and answers
each request as the HTTP :class:`~ae_sdk.notify_server.NotificationServer`
would (only NOTIFY, with content; the same verification, callbacks and
rejections). A subclass says how to start and stop serving and what its
``nu`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cse.core.messages import Operation, Request, Response

from .notify_server import Answer, NotificationCallback, NotificationServer, VerifyHook, reject_info

__all__ = ["ConnectionReceiver"]


class ConnectionReceiver(NotificationServer):
    """The part of the MQTT and WebSocket receivers that does not depend on the binding."""

    #: How messages name the connection ("MQTT", "a WebSocket").
    over = "the connection"

    def __init__(self, aei: Callable[[], str | None], *, verify: VerifyHook | None = None,
                 catch_all: NotificationCallback | None = None) -> None:
        super().__init__(verify=verify, catch_all=catch_all)
        self._aei = aei
        self._serving: str | None = None

    @property
    def running(self) -> bool:
        return self._serving is not None

    @property
    def serving(self) -> str:
        """The AE-ID served; RuntimeError before :meth:`start`."""
        if self._serving is None:
            raise RuntimeError(f"the notification receiver over {self.over} is not started: await start() first")
        return self._serving

    async def start(self) -> None:
        """Serve the CSE's requests to the AE; the AE must be registered."""
        if self._serving is not None:
            return
        aei = self._aei()
        if not aei:
            raise RuntimeError(f"notifications over {self.over} need the AE-ID: register the AE first")
        await self._attach(aei)
        self._serving = aei
        self.start_worker()

    async def stop(self) -> None:
        """Stop dispatching (the transport keeps its connection until closed)."""
        self._serving = None
        await self._detach()
        await self.stop_worker()

    async def _attach(self, aei: str) -> None:
        """Have the transport hand the CSE's requests for ``aei`` to :meth:`on_request`."""
        raise NotImplementedError

    async def _detach(self) -> None:
        """Undo :meth:`_attach` (nothing by default)."""

    async def on_request(self, req: Request) -> Response:
        """The answer to one request of the CSE: a NOTIFY's, or why it is refused."""
        if req.op != Operation.NOTIFY:
            return Response(rsc=4005, rqi=req.rqi, pc={"m2m:dbg": f"this AE accepts only NOTIFY over {self.over}"})
        if not isinstance(req.pc, dict):
            return Response(rsc=4000, rqi=req.rqi, pc={"m2m:dbg": "a NOTIFY needs content (m2m:sgn or m2m:rsp)"})
        try:
            answer: Answer = await self.handle_notify(req)
        except Exception as exc:
            info = reject_info(exc)
            if info is None:
                raise
            return Response(rsc=info[0], rqi=req.rqi, pc={"m2m:dbg": info[1]})
        pc: dict[str, Any] | None = answer.pc if answer.pc is not None else (
            {"m2m:dbg": answer.dbg} if answer.dbg is not None else None)
        return Response(rsc=answer.rsc, rqi=req.rqi, pc=pc)

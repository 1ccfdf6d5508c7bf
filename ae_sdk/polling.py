"""Receiving without a port: notifications through a pollingChannel
(docs/sdk.md "Behind NAT: a polling channel"; docs/onem2m.md "pollingChannel").

:class:`PollingReceiver` is a :class:`~ae_sdk.notify_server.NotificationServer`
that opens no socket. :meth:`PollingReceiver.start` creates the AE's
``<pollingChannel>`` (or reuses it), then a loop RETRIEVEs its ``pcu``:
each answer that carries a request primitive (``m2m:rqp``) is handled
exactly as the HTTP server handles a NOTIFY -- verification hook,
subscription callbacks, responders (session establishment offers), result
callbacks -- and the answer goes back as a NOTIFY to ``pcu`` with
``{"m2m:rsp": {"rsc", "rqi", "pc"}}``. An empty poll (4008) is simply
repeated; any other failure is retried after ``retry_s``.

The AE must be registered with ``rr`` false (no ``poa``): the CSE sends
notifications for it to the channel only then. :attr:`PollingReceiver.url`
is the AE-ID, so a subscription made with ``AEClient.subscribe`` names the
AE in ``nu`` and its notifications arrive here.

Bounds: one poll at a time, each waiting at most ``wait_s`` (keep it below
the transport's timeout); at most ``max_parallel`` fetched requests are
handled at once (a responder waiting for a decision does not stop the
polling of the others).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from cse.core.messages import Operation, Request

from .errors import M2MResponseError, SDKError
from .notify_server import Answer, NotificationCallback, NotificationServer, VerifyHook, _Reject
from .requester import Requester

__all__ = ["POLLING_CHANNEL_TY", "PollingReceiver"]

log = logging.getLogger("ae_sdk.polling")

POLLING_CHANNEL_TY = 15


class PollingReceiver(NotificationServer):
    """A notification receiver fed by polling the AE's ``<pollingChannel>`` (module docstring)."""

    def __init__(self, requester: Requester, *, rn: str = "pch", wait_s: float = 5.0, retry_s: float = 1.0,
                 max_parallel: int = 4, verify: VerifyHook | None = None,
                 catch_all: NotificationCallback | None = None,
                 on_result: NotificationCallback | None = None) -> None:
        super().__init__(verify=verify, catch_all=catch_all, on_result=on_result)
        self.requester = requester
        self.rn = rn
        self.wait_s = wait_s
        self.retry_s = retry_s
        self._slots = asyncio.Semaphore(max_parallel)
        self._poller: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self.pcu: str | None = None
        self.polls = 0

    @property
    def url(self) -> str:
        """The AE-ID: the ``nu`` whose notifications come through the channel."""
        if self.requester.originator is None:
            raise SDKError("the polling receiver needs a registered AE")
        return self.requester.originator

    @property
    def running(self) -> bool:
        return self._poller is not None

    async def start(self) -> None:
        """Create (or reuse) the ``<pollingChannel>`` and start polling."""
        if self._poller is not None:
            return
        ae = self.requester.ae
        if self.requester.originator is None or ae is None:
            raise SDKError("a polling channel needs a registered AE: register(..., rr=False) first")
        if ae.get("rr") is not False:
            raise SDKError("a polling channel serves an AE with rr false: the CSE sends to the poa of any other")
        ae_path = self.requester.ri_path(str(ae["ri"]))
        try:
            await self.requester.request(Operation.CREATE, ae_path, ty=POLLING_CHANNEL_TY,
                                         pc={"m2m:pch": {"rn": self.rn}})
        except M2MResponseError as exc:
            if exc.rsc != 4105:  # an earlier run's channel is reused
                raise
        self.pcu = f"{ae_path}/{self.rn}/pcu"
        self._worker = asyncio.get_running_loop().create_task(self._run_callbacks())
        self._poller = asyncio.get_running_loop().create_task(self._poll_loop(self.pcu))

    async def stop(self) -> None:
        """Stop polling, let handled requests and queued callbacks finish."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._handling:
            await asyncio.gather(*list(self._handling), return_exceptions=True)
        await super().stop()

    async def _poll_loop(self, pcu: str) -> None:
        while True:
            req = self.requester.build(Operation.RETRIEVE, pcu)
            req = replace(req, rqet=str(int(self.wait_s * 1000)))  # the CSE waits at most this long
            try:
                resp = await self.requester.send(req)
            except M2MResponseError as exc:
                if exc.rsc != 4008:  # 4008: nothing arrived in time; poll again
                    log.warning("polling %s failed: %s", pcu, exc)
                    await asyncio.sleep(self.retry_s)
                continue
            except (TimeoutError, OSError, SDKError) as exc:
                log.warning("polling %s failed: %s", pcu, exc)
                await asyncio.sleep(self.retry_s)
                continue
            self.polls += 1
            rqp = resp.pc.get("m2m:rqp") if isinstance(resp.pc, dict) else None
            if not isinstance(rqp, dict) or not isinstance(rqp.get("rqi"), str):
                log.warning("polling %s: an answer without a request primitive", pcu)
                continue
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._serve_one(pcu, rqp))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)

    async def _serve_one(self, pcu: str, rqp: dict[str, Any]) -> None:
        try:
            answer = await self._answer(rqp)
            rsp: dict[str, Any] = {"rsc": answer.rsc, "rqi": rqp["rqi"], "rvi": str(rqp.get("rvi", "3"))}
            pc = answer.pc if answer.pc is not None else ({"m2m:dbg": answer.dbg} if answer.dbg else None)
            if pc is not None:
                rsp["pc"] = pc
            await self.requester.request(Operation.NOTIFY, pcu, pc={"m2m:rsp": rsp})
        except (TimeoutError, M2MResponseError, OSError, SDKError) as exc:
            log.warning("answering request %s through %s failed: %s", str(rqp["rqi"])[:64], pcu, exc)
        finally:
            self._slots.release()

    async def _answer(self, rqp: dict[str, Any]) -> Answer:
        """What the HTTP server would answer to the same NOTIFY."""
        if rqp.get("op") != int(Operation.NOTIFY) or not isinstance(rqp.get("pc"), dict):
            return Answer(4005, dbg="this receiver accepts only NOTIFY with content")
        req = Request(op=Operation.NOTIFY, to=str(rqp.get("to", "")), fr=rqp.get("fr") or None,
                      rqi=str(rqp["rqi"]), rvi=str(rqp.get("rvi", "3")), pc=rqp["pc"], ot=rqp.get("ot"))
        try:
            return await self._handle(req)
        except _Reject as exc:
            return Answer(exc.rsc, dbg=exc.message)
        except Exception:  # a bug here: log it, answer 5000 without details
            log.exception("failed to handle a polled request (rqi %s)", req.rqi[:64])
            return Answer(5000, dbg="internal error in the notification receiver (logged)")

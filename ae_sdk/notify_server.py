"""An AE's notification receiver: a small aiohttp server speaking the NOTIFY side
of the oneM2M HTTP binding (TS-0009; TS-0004 7.5.1.2.2; docs/onem2m.md "Subscriptions and notifications").

What it does with each request:

* Parses it like the CSE's binding does (``cse.binding.http_mapping``, which the
  SDK may not import): only POST without ``ty`` (NOTIFY) is accepted (else
  4005); ``X-M2M-RI`` is mandatory (4000); ``X-M2M-RVI`` must be 2a/3/4/5
  (4001); the body must be an object in JSON or CBOR (4015 for other media
  types, 4000 for missing or unparseable bodies). Any path is accepted.
* ``m2m:sgn`` with ``vrq: true`` (subscription verification, 7.1 step 4): answered
  at once, 2000, unless the ``verify`` hook returns False (then 4101).
* ``m2m:sgn`` notification (``nev``) or deletion (``sud``): handed to the handler
  registered for its ``sur`` -- matched in SP-relative (``/id-in/<ri>``),
  absolute and bare (``<ri>``) form. Notifications nobody has claimed yet go to
  the catch-all callback and are also kept briefly, so a subscription that
  registers its callback a moment after the CSE's first notification still
  gets it. ``m2m:agn`` batches are split into their ``m2m:sgn`` members.
* ``m2m:rsp`` (result of an ``rt=2`` non-blocking request, 6.2): handed to the
  callback registered for its ``rqi``, else to the default result callback.
* Answers HTTP 200, ``X-M2M-RSC: 2000``, echoing ``X-M2M-RI`` -- before the
  callbacks run: they run in arrival order on one background task, may be
  plain functions or coroutines, and an exception in one is logged, never
  sent back to the CSE.
* Questions: a notification whose answer matters (a session establishment,
  docs/sessions.md "Session event notifications") is first offered to the *responders* (:meth:`add_responder`),
  in the request's own task, before anything is answered. The first one that
  returns an :class:`Answer` decides the RSC and content of the reply; one
  that returns None passes. A responder that fails is answered 5000, one
  that takes longer than its timeout 4008 (both logged). The notification
  is then recorded and dispatched to the callbacks as usual.

Everything received is also put on a queue for :meth:`NotificationServer.next`.

Example::

    async with NotificationServer() as server:     # 127.0.0.1, a free port
        server.add_subscription("/id-in/sub123", lambda sgn: print(sgn["nev"]["net"]))
        print(server.url)                           # http://127.0.0.1:41234
        event = await server.next(timeout=5)        # the next thing received
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from cse.core.errors import M2MError, http_status
from cse.core.http_wire import decode_body, target_from_path
from cse.core.messages import SUPPORTED_RVI, Operation, Request
from cse.core.timestamps import format_ts

__all__ = [
    "Answer",
    "Notification",
    "NotificationCallback",
    "NotificationServer",
    "Responder",
    "VerifyHook",
    "canonical_id",
]

log = logging.getLogger("ae_sdk.notify")

NotificationCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
VerifyHook = Callable[[dict[str, Any]], Awaitable[bool] | bool]

_MAX_BODY = 1024 * 1024
_PENDING = 64


@dataclass(frozen=True)
class Answer:
    """How the server replies to one NOTIFY: ``rsc``, and optionally a content
    (a JSON object, e.g. ``{"m2m:sep": {"epa": {...}}}``) or a ``dbg`` text
    (sent as ``{"m2m:dbg": ...}`` when there is no content)."""

    rsc: int = 2000
    pc: dict[str, Any] | None = None
    dbg: str | None = None


Responder = Callable[[dict[str, Any]], Awaitable[Answer | None] | Answer | None]


@dataclass(frozen=True)
class Notification:
    """One thing the server received.

    ``kind`` is ``"verification"``, ``"notification"``, ``"deletion"``,
    ``"result"`` (an ``m2m:rsp``) or ``"other"``; ``content`` is the inner
    ``m2m:sgn`` / ``m2m:rsp`` object (the whole body for ``"other"``);
    ``request`` is the parsed NOTIFY request (headers, raw body, path as To).
    """

    kind: str
    content: dict[str, Any]
    request: Request

    @property
    def sur(self) -> str | None:
        """The subscription reference of an ``m2m:sgn``."""
        sur = self.content.get("sur")
        return sur if isinstance(sur, str) else None

    @property
    def net(self) -> int | None:
        """The notification event type (``nev.net``), if any."""
        nev = self.content.get("nev")
        net = nev.get("net") if isinstance(nev, dict) else None
        return net if isinstance(net, int) else None


def canonical_id(resource_id: str) -> str:
    """The CSE-relative part of an ID: ``//sp/id-in/x`` and ``/id-in/x`` -> ``x``.

    Used to match a notification's ``sur`` whatever form the CSE sends it in.
    """
    if resource_id.startswith("//"):
        parts = resource_id[2:].split("/", 2)
        return parts[2] if len(parts) == 3 else resource_id
    if resource_id.startswith("/"):
        parts = resource_id[1:].split("/", 1)
        return parts[1] if len(parts) == 2 else resource_id
    return resource_id


class _Reject(Exception):
    def __init__(self, rsc: int, message: str) -> None:
        super().__init__(message)
        self.rsc = rsc
        self.message = message


def reject_info(exc: BaseException) -> tuple[int, str] | None:
    """``(rsc, message)`` when ``exc`` is the receiver refusing a notification
    (for receivers on other bindings, ``ae_sdk.mqtt_transport``); else None."""
    return (exc.rsc, exc.message) if isinstance(exc, _Reject) else None


@dataclass
class _SubHandler:
    on_notify: NotificationCallback | None
    on_deleted: NotificationCallback | None
    keys: tuple[str, ...]


class NotificationServer:
    """Receives NOTIFY requests for one AE (see the module docstring).

    ``verify`` decides subscription verification requests (default: accept);
    ``catch_all`` gets notifications no subscription callback claims;
    ``on_result`` gets ``m2m:rsp`` results no per-request callback claims.
    ``queue_size`` bounds the :meth:`next` queue (the oldest entry is dropped
    when full).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verify: VerifyHook | None = None,
                 catch_all: NotificationCallback | None = None,
                 on_result: NotificationCallback | None = None, queue_size: int = 1000) -> None:
        self.host = host
        self.port = port
        self.verify = verify
        self.catch_all = catch_all
        self.on_result = on_result
        self._subs: dict[str, _SubHandler] = {}
        self._results: dict[str, NotificationCallback] = {}
        self._pending: deque[Notification] = deque(maxlen=_PENDING)
        self._events: asyncio.Queue[Notification] = asyncio.Queue(maxsize=queue_size)
        self._work: asyncio.Queue[tuple[NotificationCallback, dict[str, Any]] | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.ServerRunner | None = None
        self._responders: list[tuple[Responder, float]] = []

    # -- life cycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (what goes into ``nu``/``poa``)."""
        if self._runner is None:
            raise RuntimeError("the notification server is not started: await start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether :meth:`start` has been called and :meth:`stop` not yet."""
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; with ``port=0`` the OS picks a free port."""
        if self._runner is not None:
            return
        runner = web.ServerRunner(web.Server(self._serve, access_log=None), handle_signals=False,
                                  shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self.port == 0:
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        self._runner = runner
        self.start_worker()

    def start_worker(self) -> None:
        """Start the task that runs the callbacks (a receiver on another binding calls it from ``start``)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_callbacks())

    async def stop(self) -> None:
        """Stop serving, let queued callbacks finish (up to 5 s), release the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.stop_worker()

    async def stop_worker(self) -> None:
        """Let queued callbacks finish (up to 5 s), then stop their task."""
        if self._worker is not None:
            self._work.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), 5.0)
            except TimeoutError:
                self._worker.cancel()
            self._worker = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- registrations --------------------------------------------------------
    def add_subscription(self, sur: str, callback: NotificationCallback | None, *,
                         on_deleted: NotificationCallback | None = None,
                         aliases: tuple[str, ...] = ()) -> None:
        """Route notifications whose ``sur`` names this subscription to ``callback``.

        ``sur`` (and each alias, e.g. the structured path) may be given in any
        ID form. ``on_deleted`` gets the deletion notification (``sud``); the
        registration ends with it. Notifications that arrived for it before
        this call are delivered now.
        """
        keys = tuple(dict.fromkeys(canonical_id(k) for k in (sur, *aliases)))
        handler = _SubHandler(callback, on_deleted, keys)
        for key in keys:
            self._subs[key] = handler
        early = [n for n in self._pending if n.sur is not None and canonical_id(n.sur) in keys]
        for n in early:
            self._pending.remove(n)
            self._dispatch_sgn(n)

    def remove_subscription(self, sur: str, *, keep_deletion: bool = False) -> None:
        """Stop routing notifications for ``sur``; ``keep_deletion`` still
        delivers the coming deletion notification to its ``on_deleted``."""
        handler = self._subs.get(canonical_id(sur))
        if handler is None:
            return
        if keep_deletion and handler.on_deleted is not None:
            handler.on_notify = None
            return
        for key in handler.keys:
            if self._subs.get(key) is handler:
                del self._subs[key]

    def add_responder(self, responder: Responder, *, timeout: float = 5.0) -> None:
        """Let ``responder(sgn)`` decide the answer to notifications (module
        docstring, "Questions"). It gets each ``m2m:sgn`` notification (not
        verifications or deletions) before the reply is sent and returns an
        :class:`Answer` to decide it, or None to pass. It runs in the HTTP
        request's task, so it may await; ``timeout`` bounds it (answer 4008).

        Example::

            def question(sgn: dict) -> Answer | None:
                rep = sgn["nev"]["rep"]
                return Answer(4103, dbg="no") if "m2m:sevt" in rep else None
            server.add_responder(question, timeout=3)
        """
        self.remove_responder(responder)
        self._responders.append((responder, timeout))

    def remove_responder(self, responder: Responder) -> None:
        """Stop asking ``responder`` (no error if it was not added)."""
        self._responders = [(r, t) for r, t in self._responders if r != responder]

    def add_result_callback(self, rqi: str, callback: NotificationCallback) -> None:
        """Deliver the ``m2m:rsp`` whose ``rqi`` is ``rqi`` (one ``rt=2`` request) to ``callback``."""
        self._results[rqi] = callback

    def remove_result_callback(self, rqi: str) -> None:
        """Forget the result callback for ``rqi`` (e.g. the request was rejected)."""
        self._results.pop(rqi, None)

    # -- consumer helper ------------------------------------------------------
    async def next(self, timeout: float = 10.0) -> Notification:
        """The next thing received (verifications included), oldest first.

        Raises TimeoutError when nothing arrives within ``timeout`` seconds.
        """
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"nothing was received at {self.url} within {timeout:g} s") from None

    def received_nowait(self) -> list[Notification]:
        """Everything queued for :meth:`next` right now, emptying the queue."""
        out: list[Notification] = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    # -- HTTP -----------------------------------------------------------------
    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        rqi = request.headers.get("X-M2M-RI", "")[:256]
        rvi = request.headers.get("X-M2M-RVI", "3")
        try:
            body = await self._read_body(request)
            req = _parse(request.method, request.raw_path, request.headers, body)
            answer = await self._handle(req)
            return _answer(answer.rsc, rqi, rvi, answer.dbg, answer.pc)
        except _Reject as exc:
            return _answer(exc.rsc, rqi, rvi if rvi in SUPPORTED_RVI else "3", exc.message)
        except Exception:  # a bug here: log it, answer 5000 without details
            log.exception("failed to handle a NOTIFY (rqi %s)", rqi)
            return _answer(5000, rqi, "3", "internal error in the notification receiver (logged)")

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        if request.content_length is not None and request.content_length > _MAX_BODY:
            raise _Reject(4000, f"notification body exceeds {_MAX_BODY} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.content.iter_chunked(65536):
            total += len(chunk)
            if total > _MAX_BODY:
                raise _Reject(4000, f"notification body exceeds {_MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle_notify(self, req: Request) -> Answer:
        """Handle one parsed NOTIFY (whatever binding it came over): the rules of the module docstring."""
        return await self._handle(req)

    async def _handle(self, req: Request) -> Answer:
        pc = req.pc or {}
        if "m2m:sgn" in pc:
            sgns = [pc["m2m:sgn"]]
        elif isinstance(pc.get("m2m:agn"), dict) and "m2m:sgn" in pc["m2m:agn"]:
            inner = pc["m2m:agn"]["m2m:sgn"]
            sgns = inner if isinstance(inner, list) else [inner]
        elif isinstance(pc.get("m2m:rsp"), dict):
            note = Notification("result", pc["m2m:rsp"], req)
            self._record(note)
            rqi = note.content.get("rqi")
            callback = self._results.pop(rqi, None) if isinstance(rqi, str) else None
            self._schedule(callback or self.on_result, note.content)
            return Answer()
        else:
            note = Notification("other", dict(pc), req)
            self._record(note)
            self._schedule(self.catch_all, note.content)
            return Answer()
        if not all(isinstance(s, dict) for s in sgns):
            raise _Reject(4000, "m2m:sgn must be a JSON object")
        answer: Answer | None = None
        for sgn in sgns:
            if sgn.get("vrq") is True:
                note = Notification("verification", sgn, req)
                self._record(note)
                if not await self._verified(sgn):
                    raise _Reject(4101, "this receiver does not accept notifications "
                                        f"for subscription {str(sgn.get('sur'))[:100]}")
                continue
            kind = "deletion" if sgn.get("sud") is True else "notification"
            if kind == "notification" and answer is None and self._responders:
                answer = await self._ask(sgn)
            note = Notification(kind, sgn, req)
            self._record(note)
            self._dispatch_sgn(note)
        return answer or Answer()

    async def _ask(self, sgn: dict[str, Any]) -> Answer | None:
        for responder, timeout in list(self._responders):
            try:
                result = responder(sgn)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, timeout)
            except TimeoutError:
                log.warning("responder %r did not decide within %g s", responder, timeout)
                return Answer(4008, dbg=f"the receiver did not decide within {timeout:g} s")
            except Exception:
                log.exception("responder %r failed", responder)
                return Answer(5000, dbg="internal error in the notification receiver (logged)")
            if result is not None:
                if not isinstance(result, Answer):
                    log.error("responder %r returned %r, not an Answer or None", responder, result)
                    return Answer(5000, dbg="internal error in the notification receiver (logged)")
                return result
        return None

    async def _verified(self, sgn: dict[str, Any]) -> bool:
        if self.verify is None:
            return True
        try:
            result = self.verify(sgn)
            if inspect.isawaitable(result):
                result = await result
        except Exception:  # a broken hook rejects, and says why in the log
            log.exception("verification hook failed for %s", sgn.get("sur"))
            return False
        return bool(result)

    def _dispatch_sgn(self, note: Notification) -> None:
        handler = self._subs.get(canonical_id(note.sur)) if note.sur else None
        if handler is None:
            if note.sur:
                self._pending.append(note)
            self._schedule(self.catch_all, note.content)
            return
        if note.kind == "deletion":
            for key in handler.keys:
                if self._subs.get(key) is handler:
                    del self._subs[key]
            self._schedule(handler.on_deleted or self.catch_all, note.content)
        else:
            self._schedule(handler.on_notify, note.content)

    def _record(self, note: Notification) -> None:
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(note)

    def _schedule(self, callback: NotificationCallback | None, content: dict[str, Any]) -> None:
        if callback is not None:
            self._work.put_nowait((callback, content))

    async def _run_callbacks(self) -> None:
        while (item := await self._work.get()) is not None:
            callback, content = item
            try:
                result = callback(content)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("notification callback %r failed", callback)


def _parse(method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Request:
    """A NOTIFY Request from HTTP, with the CSE binding's rules (module docstring)."""
    ctype = headers.get("Content-Type") or ""
    media, *params = [p.strip() for p in ctype.split(";")]
    if method != "POST" or any(p.lower().startswith("ty=") for p in params):
        raise _Reject(4005, f"this notification receiver accepts only NOTIFY (POST without ty), not {method[:10]}")
    rqi = headers.get("X-M2M-RI")
    if not rqi:
        raise _Reject(4000, "header X-M2M-RI (request identifier) is missing")
    rvi = headers.get("X-M2M-RVI")
    if rvi not in SUPPORTED_RVI:
        raise _Reject(4001, f"release version X-M2M-RVI '{(rvi or '')[:20]}' is not supported (2a, 3, 4, 5 are)")
    media = media.lower()
    if not body:
        raise _Reject(4000, "a NOTIFY needs content (m2m:sgn or m2m:rsp)")
    try:
        pc = decode_body(body, media)  # JSON or CBOR (docs/onem2m.md "Serializations"); 4015 otherwise
        to = target_from_path(raw_path.partition("?")[0] or "/")
    except M2MError as exc:
        raise _Reject(int(exc.rsc), f"notification: {exc.message}") from None
    except UnicodeDecodeError:
        raise _Reject(4000, "notification path is not valid UTF-8") from None
    if not isinstance(pc, dict):
        raise _Reject(4000, "notification body must be a JSON object")
    return Request(op=Operation.NOTIFY, to=to, fr=headers.get("X-M2M-Origin") or None, rqi=rqi,
                   rvi=rvi, pc=pc, ot=headers.get("X-M2M-OT"), body=body,
                   media=media or "application/json")


def _answer(rsc: int, rqi: str, rvi: str, dbg: str | None = None,
            pc: dict[str, Any] | None = None) -> web.Response:
    headers = {"X-M2M-RSC": str(rsc), "X-M2M-RI": rqi, "X-M2M-RVI": rvi,
               "X-M2M-OT": format_ts(time.time())}
    body = b""
    if pc is None and dbg is not None:
        pc = {"m2m:dbg": dbg}
    if pc is not None:
        body = json.dumps(pc).encode()
        headers["Content-Type"] = "application/json"
    return web.Response(status=http_status(rsc), headers=headers, body=body)

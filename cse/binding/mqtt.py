"""The MQTT binding (TS-0010; docs/bindings.md "MQTT"): the CSE as a client of a broker.

The CSE connects to the broker of ``[mqtt]`` (aiomqtt on paho-mqtt), and
subscribes to

* ``/oneM2M/req/+/<own CSE-ID>/+`` -- requests to it: each payload becomes
  the one :class:`Request` (:mod:`cse.core.mqtt_wire`), goes through the
  same ``handle`` as an HTTP request (rate limit, dispatcher), and the
  answer is published on ``/oneM2M/resp/<originator>/<own CSE-ID>/<format>``
  in the request's format (``json`` or ``cbor``, TS-0010 6.4);
* ``/oneM2M/resp/<own CSE-ID>/+/+`` -- answers to the requests the CSE sends
  over MQTT (:meth:`MqttBinding.request`: notifications, forwarding),
  matched to their request by ``rqi``. A request goes as ``cbor`` when its
  content is CBOR (``Request.media``: a notification target that prefers
  CBOR, a forwarded request that came in CBOR), else as ``json``.

Bounds (docs/bindings.md "Limits"): at most ``max_in_flight`` requests are
handled at once and ``_BACKLOG`` times as many wait for a turn; a request
beyond that is answered 5207 at once. The reader itself never waits for a
turn: it must go on reading the answers that requests in flight may be
waiting for (a request forwarded to a CSE reached over MQTT). A payload
longer than ``max_payload`` is answered 4000 unread, and at most
``_MAX_PENDING`` requests the CSE sent wait for answers at once. A malformed
primitive is answered 4000 (or 4001/4015) with an ``m2m:dbg``, never dropped
silently and never a crash.

When the broker goes away the binding logs it, fails the requests waiting
for answers (5103) and connects again after a delay that doubles from
``reconnect_min_s`` up to ``reconnect_max_s``; :attr:`MqttBinding.connected`
says whether it is connected now.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from cse.core.errors import BadRequest, M2MError, RequestTimeout, TargetNotReachable, UnsupportedMediaType
from cse.core.messages import Request, Response
from cse.core.mqtt_wire import (
    FORMATS,
    encode_request,
    encode_response,
    format_for,
    parse_topic,
    request_from_primitive,
    request_topic,
    response_from_primitive,
    response_topic,
    rqi_of,
    topic_id,
)
from cse.core.timestamps import format_ts

__all__ = ["MqttBinding", "MqttSettings"]

# Small request/answer packets: do not let Nagle hold them for the peer's delayed ACK.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

log = logging.getLogger("cse.mqtt")

Handle = Callable[[Request], Awaitable[Response]]

_MAX_PENDING = 1024  # requests sent over MQTT waiting for their answer
_BACKLOG = 4  # requests received that may wait for a turn, per request handled at once


class _Client(aiomqtt.Client):
    """An aiomqtt client told at construction how many publishes waiting
    for the broker are normal load (aiomqtt has no constructor argument for
    its WARNING threshold, only the attribute)."""

    def __init__(self, pending_calls_threshold: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_calls_threshold = pending_calls_threshold


class MqttSettings:
    """Where the broker is and how to talk to it (``[mqtt]``, docs/configuration.md)."""

    def __init__(self, *, host: str, port: int, username: str | None = None, password: str | None = None,
                 tls: ssl.SSLContext | None = None, client_id: str | None = None, qos: int = 1,
                 keepalive_s: int = 60, timeout_s: float = 10.0, max_payload: int = 1024 * 1024,
                 max_in_flight: int = 64,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls = tls
        self.client_id = client_id
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s  # connecting, subscribing, publishing
        self.max_payload = max_payload
        self.max_in_flight = max_in_flight
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s


class MqttBinding:
    """Serves ``handle`` on the broker for the CSE ``csi`` and sends its requests (module docstring)."""

    def __init__(self, handle: Handle, csi: str, settings: MqttSettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.csi = csi
        self.own = topic_id(csi)
        self.settings = settings
        self.clock = clock
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self.connects = 0  # how many times a connection was made (reconnects show here)

    @property
    def connected(self) -> bool:
        """Whether the binding is connected to the broker now."""
        return self._connected.is_set()

    def serves(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is the broker this binding is connected to."""
        return host == self.settings.host and port == self.settings.port

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a connection; whether there is one."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- life cycle -----------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (and keep connecting: module docstring)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="mqtt")

    async def stop(self) -> None:
        """Disconnect; requests in flight are given up to 5 s to be answered."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
            self._runner = None
        self._fail_pending("the CSE is stopping")

    def _new_client(self) -> aiomqtt.Client:
        s = self.settings
        # answers and requests in flight at once are bounded above (max_in_flight, _BACKLOG, _MAX_PENDING):
        # that many publishes waiting for the broker is load, not a fault to log a WARNING for
        return _Client(s.max_in_flight * (1 + _BACKLOG) + _MAX_PENDING,
                       s.host, s.port, username=s.username, password=s.password,
                       identifier=s.client_id or f"cse-{self.own}"[:64], tls_context=s.tls,
                       keepalive=s.keepalive_s, clean_session=True, timeout=s.timeout_s,
                       socket_options=NO_DELAY)

    async def _run(self) -> None:
        s = self.settings
        delay = s.reconnect_min_s
        while True:
            try:
                async with self._new_client() as client:
                    await client.subscribe(request_topic("+", self.own, "+"), qos=s.qos)
                    await client.subscribe(response_topic(self.own, "+", "+"), qos=s.qos)
                    self._client = client
                    self.connects += 1
                    self._connected.set()
                    log.info("MQTT: connected to %s:%d as %s", s.host, s.port, self.own)
                    delay = s.reconnect_min_s
                    async for message in client.messages:
                        await self._on_message(str(message.topic), message.payload)
                log.warning("MQTT: the broker %s:%d closed the connection", s.host, s.port)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT: no connection to the broker %s:%d (%s); trying again in %.1f s",
                            s.host, s.port, str(exc)[:200], delay)
            finally:
                self._client = None
                self._connected.clear()
                self._fail_pending(f"the connection to the MQTT broker {s.host}:{s.port} was lost")
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_max_s)

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TargetNotReachable(why))
        self._pending.clear()

    # -- receiving ------------------------------------------------------------
    async def _on_message(self, topic: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        parsed = parse_topic(topic)
        if parsed is None:
            return  # not a oneM2M topic: nothing to answer on
        kind, originator, receiver, fmt = parsed
        if kind == "resp":
            self._on_response(data, fmt)
            return
        if receiver != self.own:
            return
        if len(self._tasks) >= self.settings.max_in_flight * (1 + _BACKLOG):
            fmt = fmt if fmt in FORMATS else "json"
            busy = Response(rsc=5207, rqi=rqi_of(data[:65536], fmt),
                            pc={"m2m:dbg": f"{len(self._tasks)} requests over MQTT are in progress or waiting, "
                                           "the limit (mqtt.max_in_flight); try again later"})
            await self._publish(originator, busy, None, fmt)
            return
        task = asyncio.get_running_loop().create_task(self._take_turn(originator, fmt, data), name="mqtt-req")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_turn(self, originator: str, fmt: str, data: bytes) -> None:
        async with self._slots:
            await self._serve(originator, fmt, data)

    def _on_response(self, data: bytes, fmt: str) -> None:
        if len(data) > self.settings.max_payload or fmt not in FORMATS:
            return
        try:
            resp = response_from_primitive(data, fmt)
        except M2MError:
            log.info("MQTT: malformed response primitive ignored")
            return
        future = self._pending.pop(resp.rqi, None)
        if future is not None and not future.done():
            future.set_result(resp)

    async def _serve(self, originator: str, fmt: str, data: bytes) -> None:
        started = time.perf_counter()
        req: Request | None = None
        answer_fmt = fmt if fmt in FORMATS else "json"  # an unsupported format is answered (4015) in JSON
        try:
            if fmt not in FORMATS:
                raise UnsupportedMediaType(f"serialization '{fmt[:20]}' is not supported over MQTT: "
                                           "use json or cbor")
            if len(data) > self.settings.max_payload:
                raise BadRequest(f"request primitive of {len(data)} bytes exceeds the limit of "
                                 f"{self.settings.max_payload} bytes (mqtt.max_payload)")
            req = request_from_primitive(data, fmt)
            resp = await self.handle(req)
        except M2MError as exc:
            resp = Response(rsc=int(exc.rsc), rqi=req.rqi if req else rqi_of(data[:65536], answer_fmt),
                            pc={"m2m:dbg": exc.message})
        except Exception:  # a bug: answered 5000 (logged), the binding goes on
            log.exception("MQTT: failed to handle a request from %s", originator[:100])
            resp = Response(rsc=5000, rqi=req.rqi if req else "", pc={"m2m:dbg": "internal error (logged)"})
        await self._publish(originator, resp, req.fr if req else None, answer_fmt)
        if log.isEnabledFor(logging.INFO):
            log.info("MQTT op %s %s from %s -> %d (%.1f ms)", int(req.op) if req else "-",
                     req.to[:200] if req else "-", originator[:80], resp.rsc,
                     (time.perf_counter() - started) * 1000)

    async def _publish(self, originator: str, resp: Response, to: str | None, fmt: str) -> None:
        """Publish ``resp`` in ``fmt`` on the response topic of ``originator`` (lost, and logged, when
        not connected)."""
        out = encode_response(resp, to=to, fr=self.csi, now_ts=format_ts(self.clock()), fmt=fmt)
        client = self._client
        if client is None:
            log.info("MQTT: answer to %s lost: not connected", originator[:100])
            return
        try:
            await client.publish(response_topic(originator, self.own, fmt), out, qos=self.settings.qos)
        except aiomqtt.MqttError as exc:
            log.info("MQTT: answer to %s not published: %s", originator[:100], exc)

    # -- sending --------------------------------------------------------------
    async def request(self, receiver: str, req: Request, *, timeout: float) -> Response:
        """Publish ``req`` to ``receiver`` (an entity ID) and wait for its answer.

        It goes as ``cbor`` when its content is CBOR, else as ``json``
        (module docstring). Raises 5103 when not connected or when the
        connection is lost while waiting, 4008 when no answer comes within ``timeout``.
        """
        client = self._client
        if client is None:
            raise TargetNotReachable(f"not connected to the MQTT broker {self.settings.host}:{self.settings.port}")
        if len(self._pending) >= _MAX_PENDING:
            raise TargetNotReachable(f"{_MAX_PENDING} requests over MQTT are waiting for answers already")
        if req.rqi in self._pending:
            raise BadRequest(f"a request with rqi '{req.rqi[:60]}' is waiting for its answer already")
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[req.rqi] = future
        try:
            fmt = format_for(req.media)
            await client.publish(request_topic(self.own, topic_id(receiver), fmt), encode_request(req, fmt),
                                 qos=self.settings.qos)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(f"no answer from {receiver[:100]} over MQTT within {timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            raise TargetNotReachable(f"cannot publish to the MQTT broker: {str(exc)[:200]}") from None
        finally:
            if self._pending.get(req.rqi) is future:
                del self._pending[req.rqi]


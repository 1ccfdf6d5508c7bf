"""The oneM2M MQTT binding (TS-0010) for an AE: requests to the CSE and
notifications from it through a broker (docs/bindings.md "MQTT", docs/sdk.md).

:class:`MqttTransport` is a :class:`~ae_sdk.transport.Transport`: each
request is published as a JSON request primitive on
``/oneM2M/req/<originator>/<CSE-ID>/json`` (:mod:`cse.core.mqtt_wire`) and
its answer is the response primitive on ``/oneM2M/resp/<originator>/<CSE-ID>/json``
with the same ``rqi``. With ``serialization="cbor"`` the primitives are CBOR
on the ``.../cbor`` topics instead (TS-0010 6.4), except a session-based
request carrying its signed JSON body, which goes as JSON so the MAC holds.
``<originator>`` is the AE-ID once it has one; before
(the registration, From ``C``/``S``) it is a random ``C...`` tag of this
transport, so parallel registrations do not read each other's answers.

:class:`MqttNotificationReceiver` is the
:class:`~ae_sdk.notify_server.NotificationServer` of an AE on MQTT: it
serves requests published to ``/oneM2M/req/+/<AE-ID>/json`` and ``.../cbor``
(the CSE's notifications, answered in the format they came in) with the same rules and callbacks as the HTTP server, and
its ``url`` -- ``mqtt://host:port/<AE-ID>`` -- is what goes into ``nu``
(the AE's ``poa`` is the plain ``mqtt://host:port``, :attr:`MqttTransport.poa`).

Example::

    transport = MqttTransport("mqtt://127.0.0.1:1883", cse_id="/id-in")
    client = AEClient(transport, cse_id="/id-in")
    await client.register("myapp", poa=transport.poa)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt

from cse.core.errors import M2MError, UnsupportedMediaType
from cse.core.messages import Request, Response
from cse.core.mqtt_wire import (
    FORMATS,
    encode_request,
    encode_response,
    parse_topic,
    request_from_primitive,
    request_topic,
    response_from_primitive,
    response_topic,
    rqi_of,
    topic_id,
)
from cse.core.timestamps import format_ts

from .connection_receiver import ConnectionReceiver
from .errors import TransportError
from .notify_server import NotificationCallback, VerifyHook
from .transport import Serialization

__all__ = ["MqttTransport", "MqttNotificationReceiver"]

# Small request/answer packets: do not let Nagle hold them for the peer's delayed ACK.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

log = logging.getLogger("ae_sdk.mqtt")

_MAX_PAYLOAD = 1024 * 1024
_MANY_PUBLISHES = 10_000  # publishes waiting for the broker before aiomqtt warns (its default: 10)

OnRequest = Callable[[Request], Awaitable[Response]]


class MqttTransport:
    """Requests to the CSE ``cse_id`` through the broker at ``url`` (module docstring).

    ``url`` is ``mqtt://host:port`` (``mqtts://`` with ``ssl``); ``timeout``
    bounds one exchange in seconds; ``serialization`` is ``json`` or ``cbor``
    (module docstring). Connects lazily on the first request; :meth:`close`
    (or ``async with``) disconnects.
    """

    def __init__(self, url: str, *, cse_id: str, timeout: float = 10.0, username: str | None = None,
                 password: str | None = None, ssl: Any = None, client_id: str | None = None,
                 qos: int = 1, serialization: Serialization = "json") -> None:
        if serialization not in ("json", "cbor"):
            raise ValueError(f"serialization must be 'json' or 'cbor', not {serialization!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"'{url}' is not an mqtt URL of a broker, e.g. mqtt://127.0.0.1:1883")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.scheme = parts.scheme
        self.cse = topic_id(cse_id)
        self.timeout = timeout
        self.qos = qos
        self.serialization = serialization
        self._auth = (username, password)
        self._ssl = ssl
        self._client_id = client_id or "ae-" + secrets.token_hex(8)
        self._tag = "C" + secrets.token_hex(6)  # the topic originator before an AE-ID is known
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._subscribed: set[str] = set()
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self._on_request: OnRequest | None = None
        self._served: set[str] = set()
        self._answering: set[asyncio.Task[None]] = set()

    @property
    def poa(self) -> str:
        """``mqtt://host:port``: what to give as the AE's ``poa`` (TS-0010)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def _connect(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            client = aiomqtt.Client(self.host, self.port, username=self._auth[0], password=self._auth[1],
                                    identifier=self._client_id, tls_context=self._ssl, clean_session=True,
                                    timeout=self.timeout,
                              socket_options=NO_DELAY)
            client.pending_calls_threshold = _MANY_PUBLISHES  # concurrent requests are normal, not a warning
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                raise TransportError(f"cannot connect to the MQTT broker {self.poa}: {exc}") from None
            self._client = client
            self._subscribed.clear()
            self._reader = asyncio.get_running_loop().create_task(self._read(client), name="ae-mqtt")
            for receiver in self._served:
                await client.subscribe(request_topic("+", receiver, "+"), qos=self.qos)
            return client

    async def _subscribe(self, client: aiomqtt.Client, topic: str) -> None:
        if topic not in self._subscribed:
            await client.subscribe(topic, qos=self.qos)
            self._subscribed.add(topic)

    async def send(self, req: Request) -> Response:
        """Publish ``req`` and wait for its answer; TransportError when none comes."""
        client = await self._connect()
        fr = req.fr or ""
        origin = topic_id(fr) if fr and fr not in ("C", "S") else self._tag
        fmt = "json" if req.body else self.serialization  # a signed body is JSON bytes: the MAC covers them
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[req.rqi] = future
        try:
            await self._subscribe(client, response_topic(origin, self.cse, fmt))
            await client.publish(request_topic(origin, self.cse, fmt), encode_request(req, fmt), qos=self.qos)
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise TransportError(f"no answer from {self.cse} over MQTT ({self.poa}) within "
                                 f"{self.timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            await self._drop()
            raise TransportError(f"MQTT exchange through {self.poa} failed: {exc}") from None
        finally:
            self._pending.pop(req.rqi, None)

    async def serve(self, receiver: str, on_request: OnRequest) -> None:
        """Answer requests to ``receiver`` (an AE-ID, in any form) with ``on_request``."""
        self._on_request = on_request
        client = await self._connect()
        for form in {topic_id(receiver), topic_id(receiver.rsplit("/", 1)[-1])}:
            self._served.add(form)
            await client.subscribe(request_topic("+", form, "+"), qos=self.qos)

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                data = message.payload if isinstance(message.payload, bytes) else b""
                parsed = parse_topic(str(message.topic))
                if parsed is None or len(data) > _MAX_PAYLOAD:
                    continue
                kind, originator, receiver, fmt = parsed
                if kind == "resp":
                    try:
                        resp = response_from_primitive(data, fmt)
                    except M2MError:
                        continue
                    future = self._pending.get(resp.rqi)
                    if future is not None and not future.done():
                        future.set_result(resp)
                elif receiver in self._served:
                    task = asyncio.get_running_loop().create_task(
                        self._answer(client, originator, receiver, fmt, data))
                    self._answering.add(task)  # held until done (the loop keeps only weak references)
                    task.add_done_callback(self._answering.discard)
        except aiomqtt.MqttError as exc:
            if self._client is client:  # not a close() of ours
                log.warning("MQTT connection to %s lost: %s", self.poa, exc)
        finally:
            if self._client is client:
                self._client = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(TransportError(f"the connection to the MQTT broker {self.poa} was lost"))

    async def _answer(self, client: aiomqtt.Client, originator: str, receiver: str, fmt: str,
                      data: bytes) -> None:
        req: Request | None = None
        answer_fmt = fmt if fmt in FORMATS else "json"
        try:
            if fmt not in FORMATS:
                raise UnsupportedMediaType(f"serialization '{fmt[:20]}' is not supported: use json or cbor")
            req = request_from_primitive(data, fmt)
            handler = self._on_request
            resp = await handler(req) if handler else Response(rsc=5103, rqi=req.rqi)
        except M2MError as exc:
            resp = Response(rsc=int(exc.rsc), rqi=rqi_of(data, answer_fmt), pc={"m2m:dbg": exc.message})
        except Exception:  # a bug in the receiver: logged, answered 5000
            log.exception("failed to handle a request over MQTT")
            resp = Response(rsc=5000, rqi=req.rqi if req else "", pc={"m2m:dbg": "internal error (logged)"})
        out = encode_response(resp, to=req.fr if req else None, fr=receiver, now_ts=format_ts(time.time()),
                              fmt=answer_fmt)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(response_topic(originator, receiver, answer_fmt), out, qos=self.qos)

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if self._reader is not None:
            self._reader.cancel()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def close(self) -> None:
        """Disconnect (the transport connects again on the next request)."""
        await self._drop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"MqttTransport({self.poa!r}, cse={self.cse!r}, serialization={self.serialization!r})"


class MqttNotificationReceiver(ConnectionReceiver):
    """A :class:`NotificationServer` fed by :class:`MqttTransport` instead of a socket (module docstring).

    ``aei`` gives the AE-ID to serve (known after registration); start it
    after :meth:`AEClient.register`.
    """

    over = "MQTT"

    def __init__(self, transport: MqttTransport, aei: Callable[[], str | None], *,
                 verify: VerifyHook | None = None, catch_all: NotificationCallback | None = None) -> None:
        super().__init__(aei, verify=verify, catch_all=catch_all)
        self.transport = transport

    @property
    def url(self) -> str:
        """``mqtt://host:port/<AE-ID>``: the ``nu`` that reaches this AE over MQTT."""
        return f"{self.transport.poa}/{self.serving}"

    async def _attach(self, aei: str) -> None:
        await self.transport.serve(aei, self.on_request)

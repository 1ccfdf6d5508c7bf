"""Composition root: config -> registry -> store -> context -> CSFs -> HTTP.

The only place that knows every concrete class. Everything is built
explicitly here, once, and passed down; nothing is global and nothing is
assigned into an object after it is built: where two parts need each other,
the one built first gets a late-bound callable (a lambda naming the other)
(docs/architecture.md). :class:`CSE` is what ``python -m cse``, the tests
and the benchmarks start.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext

from cse.binding.http_client import HttpOutbound
from cse.binding.http_server import HttpServer
from cse.binding.mqtt import MqttBinding, MqttSettings
from cse.binding.ops_http import OpsEndpoints
from cse.binding.outbound_mux import MqttOutbound, SchemeOutbound
from cse.binding.resolver import resolve_host
from cse.binding.scheduler import DeadlineTimer
from cse.binding.webui_http import WebConsole
from cse.binding.ws import WsBinding, WsSettings
from cse.config import Config, MqttConfig, cse_type_number
from cse.core.context import Context, CSEIdentity, MonotonicClock, SystemClock
from cse.core.dispatcher import Dispatcher, Resolved
from cse.core.events import Event
from cse.core.executor import Executor
from cse.core.ids import normalize_originator
from cse.core.messages import Request, Response
from cse.core.outbox import Outbox
from cse.core.outcome import EXPIRY, STORE_AND_FORWARD, Outcome
from cse.core.ports import Clock, Store
from cse.core.rate import RequestRate
from cse.core.registry import Registry
from cse.csf import originators
from cse.csf.acp import ACP_HOOKS
from cse.csf.clock_guard import ClockGuard
from cse.csf.container import CONTAINER_HOOKS, INSTANCE_HOOKS
from cse.csf.cse_base import ensure_cse_base
from cse.csf.data import DataCSF
from cse.csf.expiry import expire_due
from cse.csf.flex_history import FLEX_HOOKS, FLEX_INSTANCE_HOOKS
from cse.csf.forwarding import Forwarder
from cse.csf.group import GROUP_TY, GroupCSF
from cse.csf.hooks import TypeHooks
from cse.csf.node import NODE_HOOKS
from cse.csf.nonblocking import NonBlockingCSF
from cse.csf.notification import Notifier
from cse.csf.outbound import OutboundPolicy, parse_networks
from cse.csf.outbox_relay import OutboxRelay
from cse.csf.polling import Mailboxes, PollingCSF
from cse.csf.registration import AE_HOOKS
from cse.csf.remote_cse import REMOTE_CSE_HOOKS, RegistrarLink
from cse.csf.router import LocalRouter
from cse.csf.send_slots import SendSlots
from cse.csf.smg import SMG
from cse.csf.smg.model import SESSION_TY, State
from cse.csf.subscription import SUBSCRIPTION_TY, SubscriptionCSF
from cse.csf.timeseries import MISSING_DATA, TimeSeriesCSF
from cse.observe.metrics import Metrics
from cse.observe.requestlog import RequestFeed
from cse.observe.state import Snapshot
from cse.security.binding import build_security
from cse.security.exposure import open_originator_warning
from cse.store.keyfile import StoreKeyError, load_store_key
from cse.store.memory import MemoryStore
from cse.store.pg_coord import LEAD_POLL_S, worker_tag
from cse.store.pg_shared import PgSharedStore
from cse.store.pg_store import PgDirectStore, PostgresStore
from cse.store.tinydb_store import TinyDBStore

__all__ = ["CSE", "build_store", "type_hooks"]

log = logging.getLogger("cse")

_CLOCK_LOOK_S = 60.0  # the longest time between two looks at the clock by the expiry timer
# The collector's youngest-generation threshold once the CSE serves (CPython's
# default is 700). Each HTTP request leaves ~17 tracked objects to the collector
# (aiohttp's and asyncio's), so at 700 a young collection ran every ~40 requests,
# and each costs ~1 ms whatever it finds: ~5% of a request's CPU. At 10,000 one
# runs every few thousand requests, takes a few ms, and the total is ~20x less;
# the garbage it holds meanwhile is a few MB at most. Resources are not the
# issue: stored documents are untracked or frozen (cse.store.indexed).
_GC_YOUNG_THRESHOLD = 10_000
_SESSION_STATES = {State.ESTABLISHING: "establishing", State.ESTABLISHED: "established",
                   State.TERMINATING: "terminating"}


def build_store(config: Config) -> Store:
    """``:memory:`` keeps nothing; ``backend = "postgresql"`` is the store on a
    database (docs/configuration.md "PostgreSQL store"); any other path is
    the durable TinyDB store."""
    if config.store.path == ":memory:":
        return MemoryStore()
    if config.store.backend == "postgresql":
        assert config.store.dsn is not None  # checked by load_config
        if config.store.shared:  # several workers: memory kept current from the change log (docs/scaling.md)
            return PgSharedStore(config.store.dsn, schema=config.store.schema, pool_size=config.store.pool_size)
        return PostgresStore(config.store.dsn, schema=config.store.schema, pool_size=config.store.pool_size)
    return TinyDBStore(config.store.path, fsync=config.store.fsync, compact_bytes=config.store.compact_bytes,
                       allow_empty=config.store.allow_empty)


_MQTT_FIRST_CONNECT_S = 5.0  # how long a start waits for the broker before it goes on without


def mqtt_settings(mq: MqttConfig) -> MqttSettings:
    """``[mqtt]`` as the binding's settings; ``tls`` verifies the broker with ``ca`` (or the system's CAs)."""
    tls = ssl.create_default_context(cafile=mq.ca) if mq.tls else None
    return MqttSettings(host=mq.host, port=mq.port, username=mq.username, password=mq.password, tls=tls,
                        client_id=mq.client_id, qos=mq.qos, keepalive_s=mq.keepalive_s,
                        timeout_s=mq.timeout_s,
                        max_payload=mq.max_payload, max_in_flight=mq.max_in_flight,
                        reconnect_min_s=mq.reconnect_min_s, reconnect_max_s=mq.reconnect_max_s)


def type_hooks() -> dict[int, TypeHooks]:
    """The per-type hooks, by ``ty``."""
    return {1: ACP_HOOKS, 2: AE_HOOKS, 3: CONTAINER_HOOKS, 4: INSTANCE_HOOKS, 14: NODE_HOOKS,
            16: REMOTE_CSE_HOOKS, 28: FLEX_HOOKS, 58: FLEX_INSTANCE_HOOKS}


class CSE:
    """One CSE: its store, pipeline, timers and HTTP server."""

    def __init__(self, config: Config, *, store: Store | None = None, clock: Clock | None = None,
                 registry: Registry | None = None, monotonic: Callable[[], float] = time.monotonic,
                 wait_until: Callable[[float], Awaitable[None]] | None = None) -> None:
        """``clock`` is the wall clock and ``monotonic`` the clock durations
        are measured on; ``wait_until(t)`` returns once ``clock`` reads ``t``
        (holding a request until its X-M2M-OET). All injected by tests."""
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.wait_until = wait_until or self._sleep_until
        self.registry = registry or Registry.load()
        self.store = store or build_store(config)
        # The key wrapping session keys at rest (docs/security.md "Keys at rest"):
        # read now, written on the first start once the store is known to need a new one.
        self.store_key = load_store_key(None if isinstance(self.store, MemoryStore) else config.store.key_path)
        self.security = build_security(config, self.clock.now)  # TLS and tokens (docs/security.md)
        poa = self._poas(config.http.port)
        # Timers and the executor first: they reach the CSFs only through late-bound callables.
        # Several workers on one PostgreSQL store coordinate through it (docs/scaling.md)
        # each request and the write gate first bring the worker's memory up to the other workers' commits
        self.refresh = self.store.sync if isinstance(self.store, PgSharedStore) else None
        self.coord = self.store.coordinator if isinstance(self.store, PgSharedStore) else None
        tag = worker_tag() if self.coord is not None else ""
        self.outbox = Outbox(self.store, tag=tag)  # pending notifications (docs/architecture.md "The outbox")
        # per-CSE metrics, never the process-global registry (docs/configuration.md "[metrics]")
        self.metrics = (Metrics({t.ty: t.sn for t in self.registry.by_ty.values()},
                                {t.root: t.sn for t in self.registry.by_ty.values()})
                        if config.observe.metrics else None)
        self.expiry = DeadlineTimer(EXPIRY, self._expire, self.clock.now, monotonic=monotonic)
        self.sf_timer = DeadlineTimer(STORE_AND_FORWARD, self._flush, self.clock.now, monotonic=monotonic)
        # timeSeries missing-data detection (docs/onem2m.md "timeSeries")
        self.md_timer = DeadlineTimer(MISSING_DATA, self._detect_missing, self.clock.now, monotonic=monotonic)
        self.executor = Executor(
            self.store,
            listeners=(lambda events: self.smg.on_events(events), lambda events: self.subscriptions.on_events(events),
                       self._registrar_events, lambda events: self.timeseries.on_events(events),
                       lambda events: self.groups.on_events(events)),
            # several workers: the outbox leader sends every notification (cse.csf.outbox_relay)
            deliver=None if self.coord is not None else lambda notification: self.notifier.deliver(notification),
            timers={EXPIRY: self.expiry, STORE_AND_FORWARD: self.sf_timer, MISSING_DATA: self.md_timer},
            outbox=self.outbox,
            observe_commit=self.metrics.commit if self.metrics is not None else None,
            # an outcome's question (a blockingUpdate's) is sent now, verified first like any notification
            ask=lambda ask: self.notifier.send_now(ask.target, ask.payload, timeout=ask.timeout,
                                                   owner=ask.owner, sur=ask.sur))
        reg = config.registrar
        self.ctx = Context(
            identity=CSEIdentity(
                csi=config.cse.cse_id, cb_name=config.cse.name, sp_id=config.cse.sp_id,
                cse_type=cse_type_number(config.cse.type), admin=config.cse.admin, poa=poa,
                default_et_s=config.cse.default_et_s, registrar=reg.cse_id if reg else None,
                max_result=config.limits.max_result, max_depth=config.limits.max_depth,
                max_resources_per_originator=config.limits.max_resources_per_originator),
            registry=self.registry, store=self.store, apply=self.executor.run, clock=self.clock)
        out = config.outbound  # docs/security.md "Outbound requests"
        self.policy = OutboundPolicy(allow=out.allow, deny=out.deny, resolve=resolve_host, max_targets=out.max_targets)
        # The MQTT binding (docs/bindings.md "MQTT") serves requests from the broker and
        # carries what the CSE sends to mqtt:// points of access.
        self.mqtt: MqttBinding | None = None
        if config.mqtt.enabled:
            self.mqtt = MqttBinding(self.handle, config.cse.cse_id, mqtt_settings(config.mqtt), clock=self.clock.now)
        self.outbound = SchemeOutbound(
            HttpOutbound(ssl_context=self.security.client_ssl, tokens=self.security.tokens,
                         address_allowed=self.policy.allows),
            MqttOutbound(self.mqtt))
        # AEs with rr false fetch their requests through a pollingChannel (docs/onem2m.md "pollingChannel")
        self.mailboxes = Mailboxes(max_pending=config.limits.max_poll_pending)
        self.polling = PollingCSF(self.ctx, self.mailboxes, max_wait_s=config.limits.poll_wait_s)
        self.notifier = Notifier(self.ctx, self.outbound, forward=lambda req: self.dispatcher.handle(req),
                                 policy=self.policy, channels=self.mailboxes,
                                 slots=SendSlots(total=out.max_in_flight, per_target=out.max_per_target,
                                                 per_originator=out.max_per_originator),
                                 max_per_target=out.max_pending_per_target, max_total=out.max_pending,
                                 outbox=self.outbox, count_down=lambda ri: self.subscriptions.count_down(ri),
                                 attempted=lambda key, target, answered: self.subscriptions.stats.record(
                                     key, target, answered),
                                 serialize=self._gated if self.coord is not None else None)
        self.outbox_relay = (OutboxRelay(self.store, lambda: self._leads("outbox"), self.notifier.deliver,
                                         poll_s=LEAD_POLL_S,
                                         read=self.store.committed_kv_items
                                         if isinstance(self.store, PgSharedStore) else None)
                             if self.coord is not None else None)
        # a session's key is in its creation's answer: never kept in a <request> (docs/security.md "Keys at rest")
        self.nonblocking = NonBlockingCSF(self.ctx, execute=lambda req: self.dispatcher.handle(req), policy=self.policy,
                                          blocking_only=frozenset({SESSION_TY}),
                                          flex_wait_s=config.limits.flex_blocking_s,
                                          max_unanswered=config.limits.max_unanswered)
        self.subscriptions = SubscriptionCSF(self.ctx, self.notifier,
                                             removal=lambda doc, originator: self.data.removal(doc, originator),
                                             max_subscriptions=out.max_subscriptions,
                                             serialize=self._gated if self.coord is not None else None)
        self.timeseries = TimeSeriesCSF(self.ctx,
                                        notify=lambda sub, points: self.subscriptions.missing_data(sub, points))
        self.forwarder = Forwarder(self.ctx, self.outbound, registrar_csi=reg.cse_id if reg else None,
                                   timeout=config.forwarding.timeout_s)
        self.smg = SMG(self.ctx, self.forwarder, self.notifier, self.nonblocking,
                       resolve=lambda target, op: self.dispatcher.resolve(target, op),
                       serve=lambda req, target, grant: self._served(req, target, grant),
                       keyring=self.store_key.keyring(),
                       notify_timeout=config.smg.notify_timeout_s,
                       establish_timeout=config.smg.establish_timeout_s,
                       freshness_s=config.smg.freshness_s, history=config.smg.history,
                       replay_keep=config.smg.replay_keep, monotonic=monotonic, queue_tag=tag,
                       queue_serialize=self._gated if self.coord is not None else None,
                       queue_shared=self.coord is not None)
        # fanOutPoint member requests run through the whole pipeline (docs/security.md "Groups")
        self.groups = GroupCSF(self.ctx, dispatch=lambda req: self.dispatcher.handle(req),
                               resolve=lambda target, op: self.dispatcher.resolve(target, op),
                               max_parallel=config.limits.max_fanout_parallel,
                               notify=lambda req, group: self.subscriptions.group_notification(req, group))
        self.data = DataCSF(self.ctx, {**type_hooks(), SUBSCRIPTION_TY: self.subscriptions.hooks(),
                                       GROUP_TY: self.groups.hooks(), **self.smg.hooks(), **self.timeseries.hooks()},
                            before_update=self.subscriptions.blocking.before_update)
        self.clock_guard = ClockGuard(self.ctx, monotonic, jump_s=config.cse.clock_jump_s,
                                      settle_s=config.cse.clock_settle_s, accept=config.cse.accept_clock_jump)
        self.router = LocalRouter(self.ctx, self.data, self.notifier.relay, fan_out=self.groups.fan_out,
                                  polling=self.polling.handle, retrieved=self.subscriptions.retrieved)
        self.dispatcher = Dispatcher(self.ctx, self.router.handle, self.executor.run, forward=self.smg.forward,
                                     nonblocking=self.nonblocking.accept, session_gate=self.smg.gate.handle,
                                     check_originator=lambda req: originators.check(self.ctx, req),
                                     wait_until=self.wait_until, max_oet_delay_s=config.limits.max_oet_delay_s,
                                     settle=self.executor.settle,
                                     serialize=self.coord.gate if self.coord is not None else None,
                                     refresh=self.refresh)
        self.registrar: RegistrarLink | None = None
        if reg is not None:
            self.registrar = RegistrarLink(
                self.ctx, self.outbound, self.data, registrar_csi=reg.cse_id, registrar_name=reg.name,
                registrar_poa=reg.poa, deregister_on_shutdown=reg.deregister_on_shutdown,
                timeout=reg.timeout_s, check_interval=reg.check_interval_s)
        lim = config.limits
        # a bucket refills over a duration: monotonic time, not a wall clock that may be stepped
        self.rate = RequestRate(lim.requests_per_s, lim.request_burst, MonotonicClock(monotonic),
                                csi=config.cse.cse_id,
                                exempt=frozenset({config.cse.admin, config.cse.cse_id}))
        self.http: HttpServer | None = None
        wui = config.webui  # the console's live request log (docs/webui.md), fed by the HTTP binding
        self.request_feed = (RequestFeed(max_clients=wui.max_log_clients, buffer=wui.log_buffer)
                             if wui.enabled else None)
        self.ws: WsBinding | None = None  # WebSockets on the HTTP port (docs/bindings.md "WebSocket")
        self._registrar_task: asyncio.Task[None] | None = None

    def _ops(self) -> OpsEndpoints | None:
        """/health and /metrics, unless both are switched off (cse.binding.ops_http)."""
        obs = self.config.observe
        if not obs.health and self.metrics is None:
            return None
        return OpsEndpoints(self.snapshot, self.metrics, health=obs.health,
                            metrics_allow=parse_networks(obs.metrics_allow))

    def _console(self) -> WebConsole | None:
        """The web console at /webui and its live request log, unless switched off (docs/webui.md)."""
        if self.request_feed is None:
            return None
        return WebConsole(self.request_feed, admin=self.config.cse.admin, cse_id=self.config.cse.cse_id,
                          cse_name=self.config.cse.name, security=self.security.binding)

    async def snapshot(self) -> Snapshot:
        """The state readiness and the gauges report (cse.observe.state): read
        when /health or /metrics is asked, never on the request path. The
        sessions are counted by a scan of the store (no index by type)."""
        sessions = dict.fromkeys(_SESSION_STATES.values(), 0)
        for doc in await self.store.lookup("ty", SESSION_TY):
            state = _SESSION_STATES.get(doc.get("sst", 0))
            if state is not None:
                sessions[state] += 1
        stats = self.notifier.stats()
        return Snapshot(
            store_writable=bool(getattr(self.store, "writable", True)),  # a store that cannot tell: writable
            registrar=self.registrar.registered.is_set() if self.registrar is not None else None,
            notifications_pending=self.notifier.pending,
            notifications={k: int(stats[k]) for k in ("sent", "failed", "dropped", "coalesced")},
            stored_requests=await self.smg.queue.count(), sessions=sessions,
            resources=await self.store.count(), connections=self.http.limits.open if self.http else 0)

    async def _served(self, req: Request, target: Resolved, grant: frozenset[str] | None) -> Outcome:
        """A session-based request served locally, its questions (if any)
        answered: the SMG reads the response (docs/sessions.md)."""
        return await self.executor.settle(await self.router.handle(req, target, grant))

    async def _registrar_events(self, events: Sequence[Event]) -> None:
        """Remote CSEs that come and go here change the descendants (dcse) we
        announce to our registrar (:meth:`RegistrarLink.on_events`)."""
        if self.registrar is not None:
            await self.registrar.on_events(events)

    async def _sleep_until(self, t: float) -> None:
        """Return once the wall clock reads ``t``: holds a request until its
        X-M2M-OET (the dispatcher bounds how far ahead, limits.max_oet_delay_s)."""
        await asyncio.sleep(max(0.0, t - self.clock.now()))

    def _poas(self, port: int) -> tuple[str, ...]:
        """The CSE's points of access: its HTTP URL, and the broker's when MQTT is on
        (first with ``mqtt.poa_first``: peers try a poa in order, docs/bindings.md "MQTT")."""
        mq = self.config.mqtt
        if not mq.enabled:
            return (self._url(port),)
        host = f"[{mq.host}]" if ":" in mq.host else mq.host
        broker = f"{'mqtts' if mq.tls else 'mqtt'}://{host}:{mq.port}"
        return (broker, self._url(port)) if mq.poa_first else (self._url(port), broker)

    def _url(self, port: int) -> str:
        host = self.config.http.host
        return f"{self.security.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"

    def _websocket(self) -> WsBinding | None:
        """The WebSocket binding on the HTTP port (docs/bindings.md "WebSocket"), unless turned off."""
        ws = self.config.websocket
        if not ws.enabled:
            return None

        async def local_ae(aei: str) -> str | None:  # the ri of the AE with exactly this AE-ID
            ae = await self.notifier.target_ae(aei)
            same = ae is not None and normalize_originator(ae.get("aei"), self.config.cse.cse_id) == aei
            return str(ae["ri"]) if ae is not None and same else None
        return WsBinding(self.handle, self.config.cse.cse_id, self.mailboxes, local_ae,
                         WsSettings(max_connections=ws.max_connections, max_message=ws.max_message,
                                    max_pending=ws.max_pending, heartbeat_s=ws.heartbeat_s),
                         security=self.security.binding, clock=self.clock.now)

    async def handle(self, req: Request) -> Response:
        """Process one request arriving at this CSE (from the HTTP binding or
        the SDK's in-process transport), within its originator's request rate."""
        refused = self.rate.refusal(req)
        if refused is not None:
            return refused
        return await self.dispatcher.handle(req)

    async def start(self, serve_http: bool = True) -> None:
        """Open the store, bootstrap the CSEBase, arm timers, serve HTTP."""
        warning = open_originator_warning(self.config.http.host, self.config.auth.enabled)
        if warning is not None:
            log.warning("%s", warning)
        await self.store.open()
        try:
            if self.coord is not None:
                await self.coord.open()
            # before anything is committed: entries named after these (several workers: the relay sends them)
            pending = await self.notifier.load() if self.coord is None else 0
            key_created = await self._session_keys()
        except BaseException:
            if self.coord is not None:
                await self.coord.close()
            await self.store.close()
            raise
        async with self._gated():
            await ensure_cse_base(self.ctx)
        # The loaded tree is long-lived: move it out of the collector's
        # generations so full collections stop re-walking every resource.
        # After the CSEBase is stored: an empty table is not tracked by the
        # collector, so freezing it then would leave it to be walked by every
        # full collection as the store grows (cse.store.indexed docstring).
        gc.freeze()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        # several workers: a PENDING <request> may be another worker's; it ends with its et (docs/scaling.md)
        failed = (await self.nonblocking.fail_leftovers(keep=await self.smg.queue.request_ris())
                  if self.coord is None else 0)
        if failed:
            log.warning("%d non-blocking request(s) left pending by the previous run marked FAILED", failed)
        if pending:
            log.info("%d notification(s) left pending by the previous run queued again from the outbox", pending)
        trusted = await self.clock_guard.startup(self.clock.now())  # before any duration is measured
        self.notifier.start()
        if self.outbox_relay is not None and self.coord is not None:
            self.coord.on_outbox(self.outbox_relay.wake)
            self.outbox_relay.start()
        self.expiry.start(first=self.clock.now())
        stored = await self.smg.queue.load(trusted)
        if stored:
            log.info("%d stored session request(s) waiting for their window", stored)
        self.sf_timer.start(first=self.clock.now())
        self.md_timer.start(first=await self.timeseries.load())  # detection goes on where it was
        if serve_http:
            self.ws = self._websocket()
            self.http = HttpServer(self.handle, self.config.http.host, self.config.http.port,
                                   max_body=self.config.http.max_body, clock=self.clock.now,
                                   body_timeout=self.config.http.body_timeout_s,
                                   keepalive=self.config.http.keepalive_s,
                                   header_timeout=self.config.limits.header_timeout_s,
                                   max_connections=self.config.limits.max_connections,
                                   max_connections_per_peer=self.config.limits.max_connections_per_peer,
                                   ssl_context=self.security.server_ssl, security=self.security.binding,
                                   ops=self._ops(), feed=self.request_feed, console=self._console(),
                                   websocket=self.ws,
                                   observe=self.metrics.request if self.metrics is not None else None,
                                   reuse_port=self.coord is not None)
            try:
                await self.http.start()
                if self.http.port != self.config.http.port:  # port 0: the OS picked one
                    self.ctx.reachable_at(self._poas(self.http.port))
                    async with self._gated():
                        await ensure_cse_base(self.ctx)
            except BaseException:
                await self.md_timer.stop()
                await self.sf_timer.stop()
                await self.expiry.stop()
                if self.outbox_relay is not None:
                    await self.outbox_relay.stop()
                await self.notifier.stop()
                await self.outbound.close()
                await self.store.close()
                if self.coord is not None:
                    await self.coord.close()
                raise
        if self.mqtt is not None:
            self.mqtt.start()  # connects in the background, and again whenever the broker goes away
            if not await self.mqtt.wait_connected(_MQTT_FIRST_CONNECT_S):  # READY means subscribed, if it can
                log.warning("MQTT: not connected to the broker %s:%d yet; serving HTTP, still trying",
                            self.config.mqtt.host, self.config.mqtt.port)
        if self.registrar is not None:
            if self.coord is None:
                self.registrar.start()
            else:  # one worker registers (docs/scaling.md)
                self._registrar_task = asyncio.get_running_loop().create_task(self._register_when_leading())
        if key_created:  # told once the start-up succeeded: a failed start says one thing only
            log.info("store key file %s created: it unwraps the session keys in the store; keep it, "
                     "apart from the store's backups", self.store_key.path)
        log.info("CSE %s (%s) ready on %s://%s:%s, store %s, %d resources",
                 self.config.cse.cse_id, self.config.cse.name, self.security.scheme, self.config.http.host,
                 self.http.port if self.http else "-",
                 self.store.where if isinstance(self.store, (PostgresStore, PgDirectStore)) else self.config.store.path,
                 await self.store.count())

    async def stop(self) -> None:
        """Finish in-flight requests, stop timers, flush and close the store."""
        if self._registrar_task is not None:
            self._registrar_task.cancel()
            await asyncio.gather(self._registrar_task, return_exceptions=True)
        if self.registrar is not None and (self.coord is None or "registrar" in self.coord.held):
            await self.registrar.stop()
        if self.ws is not None:
            await self.ws.stop()
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.sf_timer.stop()
        await self.md_timer.stop()
        await self.nonblocking.stop()
        await self.expiry.stop()
        await self.clock_guard.record()  # the newest time seen, for the next start's check
        if self.outbox_relay is not None:
            await self.outbox_relay.stop()
        await self.notifier.stop()
        await self.subscriptions.stats.stop()  # the last nsi counts, before the store closes
        await self.outbound.close()
        await self.store.close()
        if self.coord is not None:
            await self.coord.close()  # the job leaderships go with the connection

    async def _session_keys(self) -> bool:
        """Before anything is served: every stored session key must unwrap
        with the store key (a missing, replaced or damaged key file is a
        start-up error, never silent loss of the sessions); then a new key
        file is written, and keys an earlier version stored in plain are
        wrapped (and compacted out of the files) (docs/security.md "Keys at rest").
        Whether a key file was created."""
        check = await self.smg.check_keys()
        where = self.store_key.path
        if check.foreign:
            held = ", ".join(f"{n} wrapped with store key {kid}" for kid, n in sorted(check.foreign.items()))
            if not self.store_key.on_disk:
                raise StoreKeyError(
                    f"store key file '{where}' is missing, but the store holds session keys ({held}): "
                    "restore that key file (or set [store] key_file to it); a new key cannot unwrap them")
            raise StoreKeyError(
                f"store key file '{where}' holds store key {self.smg.keyring.key_id}, but the store holds "
                f"session keys {held}: this is not the store's key file")
        if check.broken:
            raise StoreKeyError(
                f"{len(check.broken)} session key(s) in the store do not unwrap with store key file '{where}' "
                f"(sessions {', '.join(sid[:16] for sid in check.broken[:5])}): the key file or the store "
                "is damaged")
        created = self.store_key.save()
        if check.plain:
            await self.executor.run(check.upgrade)
            log.warning("%d session key(s) stored in plain by an earlier version are now wrapped", check.plain)
            if isinstance(self.store, TinyDBStore):
                await self.store.compact()  # the plain copies leave the snapshot and the journal
        return created

    async def _expire(self, now: float) -> float | None:
        """Expire what is due, unless a clock jump holds expiry; look at
        the clock again at least every ``_CLOCK_LOOK_S`` (docs/troubleshooting.md "Clock jumps")."""
        if not await self.clock_guard.check(now):
            return now + _CLOCK_LOOK_S
        if not await self._leads("expiry"):
            return now + LEAD_POLL_S  # another worker expires; ask again (it may die)
        async with self._gated():
            await self.smg.queue.fail_expired(now)  # a stored request ends recorded, not with its <request>
            nxt = await expire_due(self.ctx, self.data, now)
        # several workers: others store resources with an et this timer never heard of
        look = LEAD_POLL_S if self.coord is not None else _CLOCK_LOOK_S
        return min(nxt, now + look) if nxt is not None else now + look

    async def _flush(self, now: float) -> float | None:
        """Store-and-forward: forward what may go now (in one worker only, docs/scaling.md)."""
        if not await self._leads("store_and_forward"):
            return now + LEAD_POLL_S
        nxt = await self.smg.queue.flush(now)
        if self.coord is None:
            return nxt
        return min(nxt, now + LEAD_POLL_S) if nxt is not None else now + LEAD_POLL_S

    async def _detect_missing(self, now: float) -> float | None:
        """timeSeries missing-data detection (in one worker only, docs/scaling.md)."""
        if not await self._leads("missing_data"):
            return now + LEAD_POLL_S
        async with self._gated():
            nxt = await self.timeseries.detect(now)
        if self.coord is None:
            return nxt
        return min(nxt, now + LEAD_POLL_S) if nxt is not None else now + LEAD_POLL_S

    async def _leads(self, kind: str) -> bool:
        """Whether this process runs job ``kind``: always, unless one of several workers (docs/scaling.md)."""
        return self.coord is None or await self.coord.leads(kind)

    def _gated(self) -> AbstractAsyncContextManager[None]:
        """The write gate of several workers (cse.store.pg_coord); nothing to wait for in one process."""
        return self.coord.gate() if self.coord is not None else nullcontext()

    async def _register_when_leading(self) -> None:
        """Several workers: register with the registrar once this worker leads that job."""
        assert self.registrar is not None
        for _ in itertools.count():  # a poll: leadership frees when another worker's connection dies
            if await self._leads("registrar"):
                self.registrar.start()
                return
            await asyncio.sleep(LEAD_POLL_S)

"""Configuration: the TOML file and command-line overrides (docs/configuration.md).

Read once, validated completely, then passed down by the composition root.
Unknown keys and wrong types are errors naming the key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cse.csf.outbound import DEFAULT_DENY, parse_networks
from cse.security.settings import (
    SECURITY_SECTIONS,
    AuthClientConfig,
    AuthConfig,
    SecurityConfigError,
    TlsConfig,
    parse_security,
)
from cse.store.pg_schema import valid_schema_name

__all__ = ["ConfigError", "CSEConfig", "HttpConfig", "StoreConfig", "RegistrarConfig", "ForwardingConfig",
           "LimitsConfig", "OutboundConfig", "MqttConfig", "WebSocketConfig", "ObserveConfig", "WebUIConfig",
           "Config", "load_config", "shared_store"]


class ConfigError(Exception):
    """A configuration problem; the message names the key or the cause."""


@dataclass(frozen=True)
class CSEConfig:
    cse_id: str = "/id-in"
    name: str = "cse-in"
    sp_id: str | None = None
    type: str = "IN"
    admin: str = "CAdmin"
    default_et_s: float = 10 * 365 * 86400.0
    # docs/troubleshooting.md "Clock jumps": expiry is held after a wall-clock jump larger than this
    clock_jump_s: float = 86400.0
    clock_settle_s: float = 3600.0  # ... until the clock has been consistent this long
    accept_clock_jump: bool = False  # ... or the operator accepts it (--accept-clock-jump)


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body: int = 1024 * 1024
    body_timeout_s: float = 30.0
    keepalive_s: float = 75.0


@dataclass(frozen=True)
class StoreConfig:
    path: str = "var/cse-in.db"
    fsync: bool = False
    key_file: str | None = None  # None: <path>.key (docs/security.md "Keys at rest")
    compact_bytes: int = 64 * 1024 * 1024
    allow_empty: bool = False  # docs/troubleshooting.md "Store damaged or full"
    # docs/configuration.md "PostgreSQL store": "tinydb" (embedded, the default) or "postgresql"
    backend: str = "tinydb"
    dsn: str | None = None  # postgresql://user@host:port/database (backend "postgresql")
    schema: str = "cse"  # the PostgreSQL schema holding this CSE's tables
    pool_size: int = 4  # connections to PostgreSQL
    shared: bool = False  # one of several workers on this PostgreSQL store (docs/scaling.md)

    @property
    def key_path(self) -> str | None:
        """The store key file; None for the memory store, whose key is never written."""
        if self.path == ":memory:":
            return None
        return self.key_file or self.path + ".key"


@dataclass(frozen=True)
class RegistrarConfig:
    cse_id: str
    name: str
    poa: str
    deregister_on_shutdown: bool = False
    check_interval_s: float = 30.0
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ForwardingConfig:
    timeout_s: float = 10.0


@dataclass(frozen=True)
class SMGConfig:
    notify_timeout_s: float = 10.0
    establish_timeout_s: float = 25.0
    freshness_s: float = 300.0
    history: int = 50
    replay_keep: int = 4096


@dataclass(frozen=True)
class LimitsConfig:
    """What one client may cost the CSE (docs/security.md "Limits")."""

    max_result: int = 1000
    max_depth: int = 64
    max_resources_per_originator: int = 0
    requests_per_s: float = 0.0
    request_burst: int = 0
    header_timeout_s: float = 10.0
    max_connections: int = 512
    max_connections_per_peer: int = 128
    max_oet_delay_s: float = 30.0
    max_fanout_parallel: int = 8
    flex_blocking_s: float = 1.0
    max_unanswered: int = 256
    poll_wait_s: float = 30.0
    max_poll_pending: int = 64


# The deepest tree the CSE accepts at all: a result nests two JSON levels per
# tree level, and the JSON encoder recurses (docs/security.md "Limits").
MAX_DEPTH_CEILING = 256


@dataclass(frozen=True)
class OutboundConfig:
    """Where and how much the CSE sends for AEs (docs/security.md "Outbound requests")."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = DEFAULT_DENY
    max_targets: int = 16
    max_subscriptions: int = 100
    max_in_flight: int = 64
    max_per_target: int = 4
    max_per_originator: int = 16
    max_pending_per_target: int = 10_000   # queued (outbox) notifications for one target
    max_pending: int = 100_000             # queued (outbox) notifications in all


#: Who may read /metrics by default: this host only (docs/security.md "Health and metrics").
LOOPBACK_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class ObserveConfig:
    """``[health]`` and ``[metrics]``: the plain-HTTP endpoints for load balancers and Prometheus."""

    health: bool = True
    metrics: bool = True
    metrics_allow: tuple[str, ...] = LOOPBACK_NETWORKS


@dataclass(frozen=True)
class WebUIConfig:
    """``[webui]``: the web console at /webui (docs/webui.md "Switching it off")."""

    enabled: bool = True
    max_log_clients: int = 4  # live request log readers at once
    log_buffer: int = 256     # entries buffered per reader; one that falls further behind is dropped


@dataclass(frozen=True)
class MqttConfig:
    """The MQTT binding (docs/bindings.md "MQTT"): the broker the CSE connects to as a client."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca: str | None = None  # PEM file of the CAs that sign the broker's certificate (tls)
    client_id: str | None = None  # None: derived from the CSE-ID
    qos: int = 1
    keepalive_s: int = 60
    timeout_s: float = 10.0  # connecting, subscribing, publishing
    max_payload: int = 1024 * 1024
    max_in_flight: int = 64  # requests from the broker handled at once
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    poa_first: bool = False  # list the broker before the HTTP URL in the poa: peers try it first


@dataclass(frozen=True)
class WebSocketConfig:
    """The WebSocket binding on the HTTP port (docs/bindings.md "WebSocket")."""

    enabled: bool = True
    max_connections: int = 256  # open WebSockets
    max_message: int = 1024 * 1024  # bytes of one message (primitive)
    max_pending: int = 16  # requests of one connection handled at once
    heartbeat_s: float = 30.0  # ping interval; a peer that does not answer is closed


@dataclass(frozen=True)
class Config:
    cse: CSEConfig = field(default_factory=CSEConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    registrar: RegistrarConfig | None = None
    forwarding: ForwardingConfig = field(default_factory=ForwardingConfig)
    smg: SMGConfig = field(default_factory=SMGConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line, for log shippers
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)  # docs/security.md
    auth: AuthConfig = field(default_factory=AuthConfig)
    auth_client: AuthClientConfig | None = None
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    webui: WebUIConfig = field(default_factory=WebUIConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)


_SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "cse": {"cse_id": (str,), "name": (str,), "sp_id": (str,), "type": (str,), "admin": (str,),
            "default_et_s": (int, float), "clock_jump_s": (int, float), "clock_settle_s": (int, float),
            "accept_clock_jump": (bool,)},
    "http": {"host": (str,), "port": (int,), "max_body": (int,), "body_timeout_s": (int, float),
             "keepalive_s": (int, float)},
    "store": {"path": (str,), "fsync": (bool,), "key_file": (str,), "compact_bytes": (int,),
              "allow_empty": (bool,), "backend": (str,), "dsn": (str,), "schema": (str,), "pool_size": (int,),
              "shared": (bool,)},
    "registrar": {"cse_id": (str,), "name": (str,), "poa": (str,), "deregister_on_shutdown": (bool,),
                  "check_interval_s": (int, float), "timeout_s": (int, float)},
    "forwarding": {"timeout_s": (int, float)},
    "smg": {"notify_timeout_s": (int, float), "establish_timeout_s": (int, float), "freshness_s": (int, float),
            "history": (int,), "replay_keep": (int,)},
    "limits": {"max_result": (int,), "max_depth": (int,), "max_resources_per_originator": (int,),
               "requests_per_s": (int, float), "request_burst": (int,), "header_timeout_s": (int, float),
               "max_connections": (int,), "max_connections_per_peer": (int,),
               "max_oet_delay_s": (int, float), "max_fanout_parallel": (int,), "flex_blocking_s": (int, float),
               "max_unanswered": (int,),
               "poll_wait_s": (int, float), "max_poll_pending": (int,)},
    "outbound": {"allow": (list,), "deny": (list,), "max_targets": (int,), "max_subscriptions": (int,),
                 "max_in_flight": (int,), "max_per_target": (int,), "max_per_originator": (int,),
                 "max_pending_per_target": (int,), "max_pending": (int,)},
    "log": {"level": (str,), "format": (str,)},
    "health": {"enabled": (bool,)},
    "metrics": {"enabled": (bool,), "allow": (list,)},
    "mqtt": {"enabled": (bool,), "host": (str,), "port": (int,), "username": (str,), "password": (str,),
             "tls": (bool,), "ca": (str,), "client_id": (str,), "qos": (int,), "keepalive_s": (int,),
             "timeout_s": (int, float), "max_payload": (int,), "max_in_flight": (int,),
             "reconnect_min_s": (int, float), "reconnect_max_s": (int, float), "poa_first": (bool,)},
    "webui": {"enabled": (bool,), "max_log_clients": (int,), "log_buffer": (int,)},
    "websocket": {"enabled": (bool,), "max_connections": (int,), "max_message": (int,), "max_pending": (int,),
                  "heartbeat_s": (int, float)},
    **SECURITY_SECTIONS,
}
_CSE_TYPES = {"IN": 1, "MN": 2, "ASN": 3}
_LEVELS = {"debug", "info", "warning", "error"}
_LOG_FORMATS = ("text", "json")


def cse_type_number(name: str) -> int:
    """IN -> 1, MN -> 2, ASN -> 3."""
    return _CSE_TYPES[name]


def _check_section(name: str, values: Any) -> dict[str, Any]:
    if name not in _SECTIONS:
        raise ConfigError(f"unknown section [{name}] (known: {', '.join(sorted(_SECTIONS))})")
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table")
    spec = _SECTIONS[name]
    for key, value in values.items():
        if key not in spec:
            raise ConfigError(f"unknown key '{name}.{key}' (known: {', '.join(sorted(spec))})")
        types = spec[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"'{name}.{key}' must be {want}, got {type(value).__name__}")
    return values


def _outbound(values: dict[str, Any]) -> OutboundConfig:
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allow", "deny"):
        if key not in values:
            continue
        entries = values[key]
        bad = [e for e in entries if not isinstance(e, str)]
        if bad:
            raise ConfigError(f"'outbound.{key}' must be a list of str, got {type(bad[0]).__name__} {bad[0]!r}")
        try:
            parse_networks(entries)
        except ValueError as exc:
            raise ConfigError(f"'outbound.{key}': {exc}") from None
        lists[key] = tuple(entries)
    out = OutboundConfig(**{**values, **lists})
    for key in ("max_targets", "max_subscriptions", "max_in_flight", "max_per_target", "max_per_originator",
                "max_pending_per_target", "max_pending"):
        if getattr(out, key) < 1:
            raise ConfigError(f"'outbound.{key}' must be at least 1, got {getattr(out, key)}")
    return out


def load_config(path: str | None, *, http_port: int | None = None, http_host: str | None = None,
                db: str | None = None, log_level: str | None = None) -> Config:
    """Read ``path`` (None: defaults) and apply command-line overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file '{path}' not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from None
    for name, values in raw.items():
        _check_section(name, values)
    cse_raw = dict(raw.get("cse", {}))
    cse = CSEConfig(**cse_raw)
    if not cse.cse_id.startswith("/") or "/" in cse.cse_id[1:] or len(cse.cse_id) < 2:
        raise ConfigError(f"'cse.cse_id' must look like '/id-in', got '{cse.cse_id}'")
    if not cse.name or "/" in cse.name:
        raise ConfigError(f"'cse.name' must be a plain resource name, got '{cse.name}'")
    for key in ("clock_jump_s", "clock_settle_s"):
        if getattr(cse, key) <= 0:
            raise ConfigError(f"'cse.{key}' must be positive, got {getattr(cse, key)}")
    if cse.type not in _CSE_TYPES:
        raise ConfigError(f"'cse.type' must be IN, MN or ASN, got '{cse.type}'")
    if "store" not in raw or "path" not in raw.get("store", {}):
        cse_store = StoreConfig(path=f"var/{cse.name}.db", **raw.get("store", {}))
    else:
        cse_store = StoreConfig(**raw["store"])
    http = HttpConfig(**raw.get("http", {}))
    registrar = None
    forwarding = ForwardingConfig(**raw.get("forwarding", {}))
    smg = SMGConfig(**raw.get("smg", {}))
    limits = _limits(raw.get("limits", {}))
    outbound = _outbound(raw.get("outbound", {}))
    if "registrar" in raw:
        missing = [k for k in ("cse_id", "name", "poa") if not raw["registrar"].get(k)]
        if missing:
            raise ConfigError(f"'registrar.{missing[0]}' is required in [registrar]")
        registrar = RegistrarConfig(**raw["registrar"])
        if not registrar.cse_id.startswith("/"):
            raise ConfigError(f"'registrar.cse_id' must look like '/id-in', got '{registrar.cse_id}'")
        if not registrar.poa.startswith(("http://", "https://", "mqtt://", "mqtts://")):
            raise ConfigError(f"'registrar.poa' must be an http(s) or mqtt(s) URL, got '{registrar.poa}'")
        if registrar.cse_id == cse.cse_id:
            raise ConfigError("'registrar.cse_id' is this CSE's own CSE-ID")
    try:
        tls, auth, auth_client = parse_security(raw, cse.cse_id)
    except SecurityConfigError as exc:
        raise ConfigError(str(exc)) from None
    level = log_level or raw.get("log", {}).get("level", "info")
    if level.lower() not in _LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(sorted(_LEVELS))}, got '{level}'")
    log_format = raw.get("log", {}).get("format", "text")
    if log_format not in _LOG_FORMATS:
        raise ConfigError(f"'log.format' must be text or json, got '{log_format}'")
    observe = _observe(raw.get("health", {}), raw.get("metrics", {}))
    if http_port is not None:
        http = replace(http, port=http_port)
    if http_host is not None:
        http = replace(http, host=http_host)
    if db is not None:
        cse_store = replace(cse_store, path=db)
    if not 0 <= http.port <= 65535:
        raise ConfigError(f"'http.port' must be 0..65535, got {http.port}")
    for name, value in (("registrar.check_interval_s", registrar.check_interval_s if registrar else 1.0),
                        ("registrar.timeout_s", registrar.timeout_s if registrar else 1.0),
                        ("forwarding.timeout_s", forwarding.timeout_s),
                        ("http.body_timeout_s", http.body_timeout_s),
                        ("http.keepalive_s", http.keepalive_s),
                        ("smg.notify_timeout_s", smg.notify_timeout_s),
                        ("smg.establish_timeout_s", smg.establish_timeout_s),
                        ("smg.replay_keep", smg.replay_keep),
                        ("store.compact_bytes", cse_store.compact_bytes)):
        if not value > 0:
            raise ConfigError(f"'{name}' must be positive, got {value}")
    mqtt = _mqtt(raw.get("mqtt", {}))
    if registrar is not None and registrar.poa.startswith(("mqtt://", "mqtts://")):
        _check_mqtt_registrar(registrar.poa, mqtt)
    if mqtt.enabled and auth.enabled:  # requests over MQTT carry no bearer token (docs/bindings.md "MQTT")
        raise ConfigError("'mqtt.enabled' cannot be combined with 'auth.enabled': requests over MQTT "
                          "carry no bearer token, so any client of the broker could act as any originator")
    websocket = WebSocketConfig(**raw.get("websocket", {}))
    for name in ("max_connections", "max_message", "max_pending", "heartbeat_s"):
        if not getattr(websocket, name) > 0:
            raise ConfigError(f"'websocket.{name}' must be positive, got {getattr(websocket, name)}")
    if cse_store.key_file is not None and not cse_store.key_file:
        raise ConfigError("'store.key_file' must name a file")
    _check_backend(cse_store)
    webui = WebUIConfig(**raw.get("webui", {}))
    for name in ("max_log_clients", "log_buffer"):
        if getattr(webui, name) < 1:
            raise ConfigError(f"'webui.{name}' must be at least 1, got {getattr(webui, name)}")
    return Config(cse=cse, http=http, store=cse_store, registrar=registrar, forwarding=forwarding,
                  smg=smg, limits=limits, outbound=outbound, log_level=level.lower(), tls=tls, auth=auth,
                  auth_client=auth_client, mqtt=mqtt, log_format=log_format, observe=observe, webui=webui,
                  websocket=websocket)


def _check_mqtt_registrar(poa: str, mqtt: MqttConfig) -> None:
    """An ``mqtt://`` registrar is reached through the CSE's own broker only (docs/bindings.md "MQTT")."""
    if not mqtt.enabled:
        raise ConfigError("'registrar.poa' is an mqtt URL: it needs [mqtt] enabled")
    parts = urlsplit(poa)
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError(f"'registrar.poa' has an invalid port: '{poa}'") from None
    if (parts.hostname, port) != (mqtt.host.strip("[]"), mqtt.port):
        raise ConfigError(f"'registrar.poa' {poa} names another broker than [mqtt] ({mqtt.host}:{mqtt.port}): "
                          "requests over MQTT go through the broker of [mqtt] only")


def _mqtt(values: dict[str, Any]) -> MqttConfig:
    """``[mqtt]`` with every value in its range (docs/configuration.md)."""
    mqtt = MqttConfig(**values)
    if not 1 <= mqtt.port <= 65535:
        raise ConfigError(f"'mqtt.port' must be 1..65535, got {mqtt.port}")
    if mqtt.qos not in (0, 1, 2):
        raise ConfigError(f"'mqtt.qos' must be 0, 1 or 2, got {mqtt.qos}")
    if not mqtt.host:
        raise ConfigError("'mqtt.host' must name the broker")
    for name in ("keepalive_s", "timeout_s", "max_payload", "max_in_flight", "reconnect_min_s", "reconnect_max_s"):
        if not getattr(mqtt, name) > 0:
            raise ConfigError(f"'mqtt.{name}' must be positive, got {getattr(mqtt, name)}")
    if mqtt.reconnect_max_s < mqtt.reconnect_min_s:
        raise ConfigError("'mqtt.reconnect_max_s' must be at least 'mqtt.reconnect_min_s'")
    if mqtt.password is not None and mqtt.username is None:
        raise ConfigError("'mqtt.password' needs 'mqtt.username'")
    return mqtt


_BACKENDS = ("tinydb", "postgresql")


def shared_store(config: Config) -> Config:
    """``config`` for one of several workers on its store (``--workers N``,
    docs/scaling.md); ConfigError unless the store is PostgreSQL."""
    store = replace(config.store, shared=True)
    _check_backend(store)
    return replace(config, store=store)


def _check_backend(store: StoreConfig) -> None:
    """``[store] backend`` and what the PostgreSQL one needs (docs/configuration.md "PostgreSQL store")."""
    if store.backend not in _BACKENDS:
        raise ConfigError(f"'store.backend' must be one of {', '.join(_BACKENDS)}, got '{store.backend}'")
    if store.backend != "postgresql":
        if store.shared:
            raise ConfigError("several workers on one store ('store.shared', --workers N > 1) need "
                              "'store.backend' = \"postgresql\": the embedded store belongs to one process "
                              "(docs/scaling.md)")
        return
    if not store.dsn or not store.dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError("'store.dsn' must be a postgresql:// URL when 'store.backend' is \"postgresql\"")
    if not valid_schema_name(store.schema):
        raise ConfigError(f"'store.schema' must be a plain SQL name (letters, digits, _), got '{store.schema}'")
    if not 1 <= store.pool_size <= 100:
        raise ConfigError(f"'store.pool_size' must be 1..100, got {store.pool_size}")


def _observe(health: dict[str, Any], metrics: dict[str, Any]) -> ObserveConfig:
    """``[health]`` and ``[metrics]``; ``metrics.allow`` must be IP networks."""
    allow = metrics.get("allow", list(LOOPBACK_NETWORKS))
    bad = [e for e in allow if not isinstance(e, str)]
    if bad:
        raise ConfigError(f"'metrics.allow' must be a list of str, got {type(bad[0]).__name__} {bad[0]!r}")
    try:
        parse_networks(allow)
    except ValueError as exc:
        raise ConfigError(f"'metrics.allow': {exc}") from None
    return ObserveConfig(health=health.get("enabled", True), metrics=metrics.get("enabled", True),
                         metrics_allow=tuple(allow))


def _limits(values: dict[str, Any]) -> LimitsConfig:
    """``[limits]`` with every value in its range (0 switches a quota off)."""
    limits = LimitsConfig(**values)
    if not 1 <= limits.max_depth <= MAX_DEPTH_CEILING:
        raise ConfigError(f"'limits.max_depth' must be 1..{MAX_DEPTH_CEILING}, got {limits.max_depth}")
    for name in ("max_result", "max_connections", "max_connections_per_peer", "max_fanout_parallel",
                 "max_unanswered", "max_poll_pending"):
        if getattr(limits, name) < 1:
            raise ConfigError(f"'limits.{name}' must be at least 1, got {getattr(limits, name)}")
    for name in ("max_resources_per_originator", "requests_per_s", "request_burst", "max_oet_delay_s",
                 "flex_blocking_s", "poll_wait_s"):
        if getattr(limits, name) < 0:
            raise ConfigError(f"'limits.{name}' must be 0 (unlimited) or more, got {getattr(limits, name)}")
    if not limits.header_timeout_s > 0:
        raise ConfigError(f"'limits.header_timeout_s' must be positive, got {limits.header_timeout_s}")
    return limits

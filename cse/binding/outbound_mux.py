"""Outbound by URL scheme: the one :class:`cse.core.ports.Outbound` the CSFs get.

``http://``/``https://`` points of access go to the HTTP client
(:mod:`cse.binding.http_client`), ``mqtt://``/``mqtts://`` ones to the MQTT
binding (:class:`MqttOutbound`, TS-0010). Which URLs may be sent to at all
is the outbound policy's decision (cse/csf/outbound.py), taken before a
send for both schemes alike.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from cse.core.errors import BadRequest, TargetNotReachable
from cse.core.messages import Request, Response
from cse.core.mqtt_wire import topic_id

from .http_client import HttpOutbound
from .mqtt import MqttBinding

__all__ = ["MqttOutbound", "SchemeOutbound", "MQTT_SCHEMES"]

MQTT_SCHEMES = ("mqtt", "mqtts")


class MqttOutbound:
    """:class:`cse.core.ports.Outbound` over the CSE's own MQTT connection.

    ``mqtt://host:port[/<receiver>]``: the request goes to the topic of the
    receiver (TS-0010 6.4) -- the URL's path when it names one, else ``peer``
    (the CSE at that point of access), else the request's To when it is an
    entity ID (an AE whose ``poa`` this is). Only the broker of ``[mqtt]``
    is used: a URL naming another broker is not reachable (5103), so the CSE
    never opens connections to brokers that AEs name (docs/bindings.md "MQTT").
    """

    def __init__(self, binding: MqttBinding | None) -> None:
        self.binding = binding

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response:
        parts = urlsplit(poa)
        try:
            host, port = parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise BadRequest(f"'{poa[:100]}' has an invalid port") from None
        if parts.scheme not in MQTT_SCHEMES or not host:
            raise BadRequest(f"'{poa[:100]}' is not an mqtt URL with a host")
        binding = self.binding
        if binding is None:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: the MQTT binding is not enabled ([mqtt] enabled)")
        if not binding.serves(host, port):
            raise TargetNotReachable(f"cannot reach {poa[:100]}: requests over MQTT go through the broker "
                                     "of [mqtt] only")
        receiver = parts.path.strip("/") or peer or ("" if "://" in req.to else req.to)
        if not receiver:
            raise TargetNotReachable(f"cannot reach {poa[:100]}: no receiver entity for the MQTT topic")
        if "://" in req.to:  # a notification URL as To: the receiver is the entity addressed
            req = replace(req, to=receiver)
        return await binding.request(topic_id(receiver), req, timeout=timeout)


class SchemeOutbound:
    """Sends by the scheme of ``poa`` (module docstring)."""

    def __init__(self, http: HttpOutbound, mqtt: MqttOutbound) -> None:
        self.http = http
        self.mqtt = mqtt

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response:
        if poa.startswith(("mqtt://", "mqtts://")):
            return await self.mqtt.send(poa, req, timeout=timeout, exact=exact, peer=peer)
        return await self.http.send(poa, req, timeout=timeout, exact=exact, peer=peer)

    async def close(self) -> None:
        """Close pooled HTTP connections (the MQTT binding is stopped by its owner)."""
        await self.http.close()

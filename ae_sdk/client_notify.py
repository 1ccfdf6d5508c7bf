"""Subscriptions and the notification server of one AE (docs/sdk.md "The
client"): :class:`Notifications`, the part of an :class:`~ae_sdk.client.AEClient`
behind ``AEClient.start_notifications``, ``AEClient.subscribe``,
``AEClient.unsubscribe`` and ``AEClient.notifications``.

It owns the :class:`~ae_sdk.notify_server.NotificationServer` and creates the
``<subscription>`` resources through a :class:`~ae_sdk.requester.Requester`
(the client), so it knows nothing of the client class.

Example::

    await client.start_notifications()
    sub = await client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)))
    await client.unsubscribe(sub)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cse.core.messages import Operation

from .content import unwrap, wrap
from .errors import M2MResponseError, SDKError
from .notify_server import NotificationCallback, NotificationServer, VerifyHook
from .polling import PollingReceiver
from .requester import Requester

__all__ = ["SUBSCRIPTION_TY", "Notifications", "default_subscription_rn"]

SUBSCRIPTION_TY = 23

#: Makes the receiver for a client whose transport brings its own (``verify``, ``catch_all``):
#: notifications over MQTT (``ae_sdk.mqtt_transport.MqttNotificationReceiver``).
MakeReceiver = Callable[[VerifyHook | None, NotificationCallback | None], NotificationServer]


def default_subscription_rn(originator: str | None, target: str, net: Sequence[int]) -> str | None:
    """The name a subscription gets when none is given: the same for the same
    AE, subscribed resource and events, so a re-run script replaces its
    subscription instead of leaving the old one (whose receiver is gone)
    behind. None before registration (the CSE names it)."""
    if originator is None:
        return None
    digest = hashlib.sha256(f"{originator}|{target}|{sorted(net)}".encode()).hexdigest()[:16]
    return f"sdk-sub-{digest}"


class Notifications:
    """The notification server and subscriptions of the AE ``requester`` acts as.

    The methods are documented on :class:`~ae_sdk.client.AEClient`, which
    delegates to them.
    """

    def __init__(self, requester: Requester, make_receiver: MakeReceiver | None = None) -> None:
        self.requester = requester
        self.make_receiver = make_receiver
        self._server: NotificationServer | None = None
        self.made: dict[str, str] = {}  # ri -> SP-relative address of each subscription made here

    @property
    def server(self) -> NotificationServer | None:
        """The server started by :meth:`start` (None before, and after :meth:`stop`)."""
        return self._server

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, verify: VerifyHook | None = None,
                    catch_all: NotificationCallback | None = None, polling: bool = False) -> NotificationServer:
        """Start the server unless it runs (``AEClient.start_notifications``);
        ``polling``: no port, a :class:`~ae_sdk.polling.PollingReceiver`."""
        if self._server is None or not self._server.running:
            if polling:
                self._server = PollingReceiver(self.requester, verify=verify, catch_all=catch_all)
            elif self.make_receiver is not None:
                self._server = self.make_receiver(verify, catch_all)
            else:
                self._server = NotificationServer(host, port, verify=verify, catch_all=catch_all)
            await self._server.start()
        return self._server

    def require(self, what: str) -> NotificationServer:
        """The running server; SDKError naming ``what`` needs it otherwise."""
        if self._server is None or not self._server.running:
            raise SDKError(f"{what} needs the notification server: await client.start_notifications() first")
        return self._server

    async def stop(self) -> None:
        """Stop the server (the client is closing)."""
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def _create(self, path: str, body: Mapping[str, Any], rn: str | None) -> dict[str, Any]:
        content = wrap(SUBSCRIPTION_TY, {**body, "rn": rn} if rn is not None else body)
        return unwrap((await self.requester.request(Operation.CREATE, path, ty=SUBSCRIPTION_TY, pc=content)).pc)

    async def subscribe(self, path: str, callback: NotificationCallback, *, net: Sequence[int] = (3,),
                        nct: int = 1, rn: str | None = None, via_poa: bool = False,
                        on_deleted: NotificationCallback | None = None, replace: bool = True,
                        **attrs: Any) -> dict[str, Any]:
        """Create a ``<subscription>`` and route its notifications to ``callback``
        (``AEClient.subscribe``)."""
        server = self.require("subscribe()")
        requester = self.requester
        if rn is None and replace:
            rn = default_subscription_rn(requester.originator, requester.target(path), net)
        if via_poa:
            ae = requester.ae
            if requester.originator is None or ae is None:
                raise SDKError("subscribe(via_poa=True) needs a registered AE")
            poa = ae.get("poa") or []
            if server.url not in poa and server.url.rsplit("/", 1)[0] not in poa:  # MQTT: mqtt://host:port
                raise SDKError(f"subscribe(via_poa=True): the AE's poa {ae.get('poa')} does not "
                               f"contain the notification server {server.url}; register(poa=...)")
            target = requester.originator
        else:
            target = server.url
        enc = dict(attrs.pop("enc", None) or {})
        enc.setdefault("net", list(net))
        body: dict[str, Any] = {"nu": [target], "enc": enc, "nct": nct, **attrs}
        if on_deleted is not None:
            body.setdefault("su", target)
        try:
            sub = await self._create(path, body, rn)
        except M2MResponseError as exc:
            if not (replace and rn is not None and exc.rsc == 4105):
                raise
            await requester.request(Operation.DELETE, f"{requester.target(path)}/{rn}")
            sub = await self._create(path, body, rn)
        ri = str(sub["ri"])
        self.made[ri] = requester.ri_path(ri)
        server.add_subscription(requester.ri_path(ri), callback, on_deleted=on_deleted,
                                aliases=(ri, f"{requester.target(path)}/{sub['rn']}"))
        return sub

    async def unsubscribe(self, sub: Mapping[str, Any] | str) -> None:
        """Delete a subscription made by :meth:`subscribe` (``AEClient.unsubscribe``)."""
        ri = str(sub["ri"]) if isinstance(sub, Mapping) else sub
        if self._server is not None:
            self._server.remove_subscription(ri, keep_deletion=True)
        await self.requester.request(Operation.DELETE, self.requester.ri_path(ri))
        self.made.pop(ri, None)

    async def unsubscribe_all(self) -> int:
        """Delete every subscription made by :meth:`subscribe` and not yet
        removed (``AEClient.close(unsubscribe=True)``); one already gone
        (4004) is skipped. How many were deleted."""
        deleted = 0
        for ri in list(self.made):
            try:
                await self.unsubscribe(ri)
                deleted += 1
            except M2MResponseError as exc:
                if exc.rsc != 4004:
                    raise
                self.made.pop(ri, None)
        return deleted

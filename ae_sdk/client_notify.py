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

from collections.abc import Mapping, Sequence
from typing import Any

from cse.core.messages import Operation

from .content import unwrap, wrap
from .errors import M2MResponseError, SDKError
from .notify_server import NotificationCallback, NotificationServer, VerifyHook
from .polling import PollingReceiver
from .requester import Requester

__all__ = ["SUBSCRIPTION_TY", "Notifications"]

SUBSCRIPTION_TY = 23


class Notifications:
    """The notification server and subscriptions of the AE ``requester`` acts as.

    The methods are documented on :class:`~ae_sdk.client.AEClient`, which
    delegates to them.
    """

    def __init__(self, requester: Requester) -> None:
        self.requester = requester
        self._server: NotificationServer | None = None

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
                        on_deleted: NotificationCallback | None = None, replace: bool = False,
                        **attrs: Any) -> dict[str, Any]:
        """Create a ``<subscription>`` and route its notifications to ``callback``
        (``AEClient.subscribe``)."""
        server = self.require("subscribe()")
        requester = self.requester
        if via_poa:
            ae = requester.ae
            if requester.originator is None or ae is None:
                raise SDKError("subscribe(via_poa=True) needs a registered AE")
            if server.url not in (ae.get("poa") or []):
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
        server.add_subscription(requester.ri_path(ri), callback, on_deleted=on_deleted,
                                aliases=(ri, f"{requester.target(path)}/{sub['rn']}"))
        return sub

    async def unsubscribe(self, sub: Mapping[str, Any] | str) -> None:
        """Delete a subscription made by :meth:`subscribe` (``AEClient.unsubscribe``)."""
        ri = str(sub["ri"]) if isinstance(sub, Mapping) else sub
        if self._server is not None:
            self._server.remove_subscription(ri, keep_deletion=True)
        await self.requester.request(Operation.DELETE, self.requester.ri_path(ri))

"""Subscriptions and the notification server of an :class:`~ae_sdk.client.AEClient`
(TS-0004 7.4.8, 7.5.1; docs/onem2m.md "Subscriptions and notifications"): the ``AEClient.start_notifications``,
``AEClient.subscribe`` and ``AEClient.unsubscribe`` methods, kept apart from the
request plumbing of :mod:`ae_sdk.client`.

Example::

    await client.start_notifications()
    sub = await client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)))
    await client.unsubscribe(sub)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import M2MResponseError, SDKError
from .notify_server import NotificationCallback, NotificationServer, VerifyHook

if TYPE_CHECKING:
    from .client import AEClient

__all__ = ["NotificationsMixin"]


class NotificationsMixin:
    """The notification side of :class:`~ae_sdk.client.AEClient`."""

    _server: NotificationServer | None

    @property
    def notifications(self) -> NotificationServer | None:
        """The notification server started by :meth:`start_notifications`."""
        return self._server

    async def start_notifications(self, host: str = "127.0.0.1", port: int = 0, *,
                                  verify: VerifyHook | None = None,
                                  catch_all: NotificationCallback | None = None) -> NotificationServer:
        """Start (once) the server that receives this AE's notifications; its
        ``url`` is what :meth:`subscribe` puts into ``nu`` (and what to give
        as ``poa`` to :meth:`register` for ``via_poa``)."""
        if self._server is None or not self._server.running:
            self._server = NotificationServer(host, port, verify=verify, catch_all=catch_all)
            await self._server.start()
        return self._server

    def _require_server(self, what: str) -> NotificationServer:
        if self._server is None or not self._server.running:
            raise SDKError(f"{what} needs the notification server: await client.start_notifications() first")
        return self._server

    async def subscribe(self: AEClient, path: str, callback: NotificationCallback, *, net: Sequence[int] = (3,),
                        nct: int = 1, rn: str | None = None, via_poa: bool = False,
                        on_deleted: NotificationCallback | None = None, replace: bool = False,
                        **attrs: Any) -> dict[str, Any]:
        """Subscribe to events ``net`` on ``path``; ``callback(sgn)`` gets each
        notification's ``m2m:sgn`` object (``nev.net``, ``nev.rep``, ``sur``).

        ``nu`` is the notification server's URL, or with ``via_poa`` this AE's
        AE-ID (the AE must have been registered with ``poa`` = that URL).
        ``on_deleted`` gets the deletion notification (``sud``); unless ``su``
        is given it is set to the same target. With ``rn`` and ``replace``,
        an existing subscription of that name is deleted and made anew (a
        script re-run). Other attributes (``exc``, ``enc`` members, ``lbl``)
        pass through. Returns the ``<subscription>``'s attributes.

        Example::

            await client.start_notifications()
            await client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)))
        """
        server = self._require_server("subscribe()")
        if via_poa:
            if self.originator is None or self.ae is None:
                raise SDKError("subscribe(via_poa=True) needs a registered AE")
            if server.url not in (self.ae.get("poa") or []):
                raise SDKError(f"subscribe(via_poa=True): the AE's poa {self.ae.get('poa')} does not "
                               f"contain the notification server {server.url}; register(poa=...)")
            target = self.originator
        else:
            target = server.url
        enc = dict(attrs.pop("enc", None) or {})
        enc.setdefault("net", list(net))
        body: dict[str, Any] = {"nu": [target], "enc": enc, "nct": nct, **attrs}
        if on_deleted is not None:
            body.setdefault("su", target)
        try:
            sub = await self.create(path, 23, body, rn=rn)
        except M2MResponseError as exc:
            if not (replace and rn is not None and exc.rsc == 4105):
                raise
            await self.delete(f"{self.target(path)}/{rn}")
            sub = await self.create(path, 23, body, rn=rn)
        ri = str(sub["ri"])
        server.add_subscription(self.ri_path(ri), callback, on_deleted=on_deleted,
                                aliases=(ri, f"{self.target(path)}/{sub['rn']}"))
        return sub

    async def unsubscribe(self: AEClient, sub: Mapping[str, Any] | str) -> None:
        """Delete a subscription made by :meth:`subscribe` (its attributes or
        its ``ri``); its callback stops, its ``on_deleted`` still fires."""
        ri = str(sub["ri"]) if isinstance(sub, Mapping) else sub
        if self._server is not None:
            self._server.remove_subscription(ri, keep_deletion=True)
        await self.delete(self.ri_path(ri))

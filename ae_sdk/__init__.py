"""AE SDK: write oneM2M Application Entities against this CSE (or any CSE
speaking the oneM2M HTTP binding).

Public surface:

* :class:`AEClient` -- registration, CRUD, discovery, non-blocking requests
  (``rt=1``/``rt=2``, :meth:`AEClient.wait_request`) and subscriptions.
* :class:`Transport`, :class:`HttpTransport`, :class:`MqttTransport`, :class:`WsTransport`,
  :class:`InProcessTransport` -- how requests reach the CSE (HTTP, MQTT through a broker,
  a WebSocket, or a direct call for tests).
* :class:`NotificationServer`, :class:`Notification` -- receiving NOTIFY
  requests (verification, notifications, deletion, ``m2m:rsp`` results).
* :class:`SDKError`, :class:`M2MResponseError`, :class:`TransportError`.
* :func:`notified_resource`, :func:`wrap`, :func:`unwrap` -- content helpers.
* M2M service sessions (docs/sessions.md): :meth:`AEClient.enable_sessions`,
  :meth:`AEClient.establish`, :class:`Session` (with session-based
  ``create``/``retrieve``/``update``/``delete``), :class:`SessionOffer`,
  :class:`Why`, :class:`PendingResult` (a request stored for later);
  :mod:`ae_sdk.session_crypto` (HKDF keys, request MAC, AES-256-GCM
  end-to-end encryption, :class:`SessionCryptoError`).
* ``python -m ae_sdk`` (:mod:`ae_sdk.cli`): ``sign`` (session headers for
  curl), ``encrypt``, ``decrypt``, ``token``, ``listen`` (a notification receiver).
* :func:`mint_token` (:mod:`ae_sdk.tokens`) -- a bearer token for a CSE with
  authentication on; ``AEClient(url, token=..., cafile=...)`` for HTTPS
  (docs/security.md).
* :class:`SyncAEClient`, :class:`SyncSession` (:mod:`ae_sdk.sync`) -- the same operations as
  blocking calls, for plain scripts (its own event loop in a thread).
* :class:`Answer`, :data:`Responder` -- deciding a NOTIFY's answer before it
  is sent (used for session establishment).
* :func:`until_stopped` -- wait for Ctrl-C or SIGTERM (:mod:`ae_sdk.stopping` says
  why not ``KeyboardInterrupt``).

The SDK imports nothing from the CSE but ``cse.core`` (docs/architecture.md "Dependency direction").

Example::

    import asyncio
    from ae_sdk import AEClient, notified_resource

    async def main() -> None:
        async with AEClient("http://127.0.0.1:8080") as client:
            await client.start_notifications()
            await client.register("myapp", origin="Cmyapp")
            await client.create_container("myapp", "data", exist_ok=True)
            await client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)))
            await client.create_content_instance("myapp/data", "21.5")
            await asyncio.sleep(1)

    asyncio.run(main())
"""

from __future__ import annotations

from .client import AEClient
from .content import ROOTS, notified_resource, unwrap, wrap
from .errors import M2MResponseError, SDKError, TransportError
from .mqtt_transport import MqttNotificationReceiver, MqttTransport
from .nonblocking import PendingResult
from .notify_server import Answer, Notification, NotificationCallback, NotificationServer, Responder, VerifyHook
from .session import OnRequest, Session, SessionOffer, Why
from .session_crypto import SessionCryptoError
from .session_manager import SessionManager
from .stopping import until_stopped
from .sync import SyncAEClient, SyncSession
from .tokens import mint_token
from .transport import HttpTransport, InProcessTransport, Transport
from .ws_transport import WsNotificationReceiver, WsTransport

__all__ = [
    "ROOTS",
    "AEClient",
    "Answer",
    "HttpTransport",
    "InProcessTransport",
    "M2MResponseError",
    "MqttNotificationReceiver",
    "MqttTransport",
    "WsNotificationReceiver",
    "WsTransport",
    "Notification",
    "NotificationCallback",
    "NotificationServer",
    "OnRequest",
    "PendingResult",
    "Responder",
    "SDKError",
    "Session",
    "SessionCryptoError",
    "SessionManager",
    "SessionOffer",
    "SyncAEClient",
    "SyncSession",
    "Transport",
    "TransportError",
    "VerifyHook",
    "Why",
    "mint_token",
    "notified_resource",
    "until_stopped",
    "unwrap",
    "wrap",
]

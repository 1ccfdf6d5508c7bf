"""A blocking facade over :class:`~ae_sdk.client.AEClient`, for scripts.

:class:`SyncAEClient` owns an event loop running in a background thread; each
method submits the matching :class:`AEClient` coroutine to that loop and waits
for its result. So it works from plain, non-async code -- and also from code
that already runs an event loop of its own (the caller's loop is not used).
Errors are the SDK's: :class:`~ae_sdk.errors.M2MResponseError` (with ``rsc``
and ``dbg``), :class:`~ae_sdk.errors.TransportError`, ...

Notification callbacks given to :meth:`SyncAEClient.subscribe` run in the
loop's thread: keep them short, and do not call the client's blocking
methods from them (that would wait on the very loop running the callback;
it raises :class:`RuntimeError` instead). The same holds for the session
callbacks (``enable_sessions(on_request)``, ``on_session``,
``on_terminated``, ``on_session_update``), which get the async
:class:`~ae_sdk.session.Session`.

Every call of :class:`AEClient` is here with the same name and arguments
(tests/sdk/test_sync_client.py checks the list), blocking; a session that
:meth:`SyncAEClient.establish` or :meth:`SyncAEClient.next_session` returns
is a :class:`SyncSession`: the session's calls, blocking.

Example::

    from ae_sdk import SyncAEClient, notified_resource

    with SyncAEClient("http://127.0.0.1:8080") as client:
        client.register("myapp", origin="Cmyapp")
        client.create_container("myapp", "data", exist_ok=True)
        client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)["con"]))
        client.create_content_instance("myapp/data", "21.5", cnf="text/plain:0")
        print(client.retrieve("myapp/data/la")["con"])
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from .client import AEClient
from .notify_server import NotificationCallback, NotificationServer
from .session import OnRequest, Session, SessionCallback, TerminatedCallback, UpdateCallback
from .transport import Transport

__all__ = ["SyncAEClient", "SyncSession"]

T = TypeVar("T")


class SyncSession:
    """A :class:`~ae_sdk.session.Session` whose coroutine methods block
    (same names and arguments: ``create``, ``retrieve``, ``update``,
    ``delete``, ``terminate``, ``refresh``, ``add_policy`` ...); everything
    else (``sid``, ``key``, ``peer``, ``encrypt`` ...) is the session's own.
    The async session is :attr:`session`."""

    def __init__(self, session: Session, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.session = session
        self._run = run

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.session, name)
        if inspect.iscoroutinefunction(value):
            def blocking(*args: Any, **kw: Any) -> Any:
                return self._run(value(*args, **kw))
            blocking.__doc__ = value.__doc__
            return blocking
        return value

    def __repr__(self) -> str:
        return f"SyncSession({self.session!r})"


class SyncAEClient:
    """A blocking :class:`AEClient` (same arguments: a CSE URL or a transport,
    ``cse_name``, ``cse_id``, ``originator``).

    ``timeout`` bounds each blocking call, in seconds (``None``: no bound);
    when it expires the operation is cancelled and :class:`TimeoutError` is
    raised. :meth:`close` (or leaving the ``with`` block) closes the client
    and stops the loop thread. The underlying :class:`AEClient` is
    :attr:`client` (its coroutines must run on :attr:`loop`).

    Example::

        client = SyncAEClient("http://127.0.0.1:8080", cse_name="cse-in")
        try:
            client.register("myapp")
            cnt = client.create("myapp", 3, {"mni": 10}, rn="data")
            print(client.discover("myapp", ty=3))
        finally:
            client.close()
    """

    def __init__(self, url: Transport | str, *, timeout: float | None = 30.0, **kw: Any) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="SyncAEClient-loop", daemon=True)
        self._closed = False
        self._thread.start()
        try:
            self.client: AEClient = self._run(self._make(url, kw))
        except BaseException:
            self._stop_loop()
            raise

    # -- plumbing ---------------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @staticmethod
    async def _make(url: Transport | str, kw: dict[str, Any]) -> AEClient:
        return AEClient(url, **kw)                  # made on the loop: its transport belongs there

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop thread and wait for its result."""
        if self._closed:
            coro.close()
            raise RuntimeError("this SyncAEClient is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncAEClient methods cannot be called from its own loop thread "
                               "(e.g. inside a notification callback)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"the request did not finish within {self.timeout:g} s") from None

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)  # also fine before run_forever started
        self._thread.join()
        self.loop.close()

    @property
    def originator(self) -> str | None:
        """The AE-ID this client acts as (set by :meth:`register`)."""
        return self.client.originator

    @property
    def ae(self) -> dict[str, Any] | None:
        """The registered AE's attributes, if registered."""
        return self.client.ae

    @property
    def ae_path(self) -> str | None:
        """Structured path of the registered AE (``cse-in/<rn>``), if registered."""
        return self.client.ae_path

    @property
    def cse_name(self) -> str:
        """The CSEBase name (given, or learned at registration)."""
        return self.client.cse_name

    @property
    def cse_id(self) -> str:
        """The CSE-ID (given, or learned at registration)."""
        return self.client.cse_id

    @property
    def notifications(self) -> NotificationServer | None:
        """The notification server, if started."""
        return self.client.notifications

    def connect(self, fr: str | None = None) -> None:
        """Learn the CSEBase name and CSE-ID (see :meth:`AEClient.connect`)."""
        self._run(self.client.connect(fr))

    def require_ae(self) -> dict[str, Any]:
        """The registered AE's attributes (retrieved once for a client given ``originator=``)."""
        return self._run(self.client.require_ae())

    # -- registration and CRUD ----------------------------------------------------------
    def register(self, rn: str, api: str = "Nsdk-app", **kw: Any) -> dict[str, Any]:
        """Register the AE ``rn`` (see :meth:`AEClient.register`); returns its attributes.

        Example: ``client.register("myapp", origin="Cmyapp")``
        """
        return self._run(self.client.register(rn, api, **kw))

    def deregister(self) -> None:
        """Delete the registered AE and everything below it."""
        self._run(self.client.deregister())

    def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], **kw: Any) -> Any:
        """Create a resource of type ``ty`` under ``parent_path`` (see :meth:`AEClient.create`).

        Example: ``client.create("myapp", 3, {"mni": 10}, rn="data")``
        """
        return self._run(self.client.create(parent_path, ty, attrs, **kw))

    def create_container(self, parent: str, rn: str, *, exist_ok: bool = False, **attrs: Any) -> dict[str, Any]:
        """Create ``<container>`` ``rn`` under ``parent`` (``exist_ok``: reuse an existing one)."""
        return self._run(self.client.create_container(parent, rn, exist_ok=exist_ok, **attrs))

    def create_content_instance(self, container_path: str, con: Any, *, cnf: str | None = None,
                                **attrs: Any) -> dict[str, Any]:
        """Add a ``<contentInstance>`` holding ``con`` to ``container_path``.

        Example: ``client.create_content_instance("myapp/data", "21.5", cnf="text/plain:0")``
        """
        return self._run(self.client.create_content_instance(container_path, con, cnf=cnf, **attrs))

    def retrieve(self, path: str, **kw: Any) -> Any:
        """The resource's attributes (``rcn``, ``atrl``, ``rt`` as in :meth:`AEClient.retrieve`).

        Example: ``client.retrieve("myapp/data/la")["con"]``
        """
        return self._run(self.client.retrieve(path, **kw))

    def update(self, path: str, attrs: Mapping[str, Any], **kw: Any) -> Any:
        """Update attributes (``None`` removes one); returns the resource after the update.

        Example: ``client.update("myapp/data", {"mni": 5, "lbl": None}, ty=3)``
        """
        return self._run(self.client.update(path, attrs, **kw))

    def delete(self, path: str, **kw: Any) -> Any:
        """Delete the resource and its subtree."""
        return self._run(self.client.delete(path, **kw))

    def discover(self, path: str, **filters: Any) -> list[str]:
        """Addresses of the resources below ``path`` matching ``filters``.

        Example: ``client.discover("myapp", ty=3, lbl="room:kitchen", lim=10)``
        """
        return self._run(self.client.discover(path, **filters))

    # -- notifications ----------------------------------------------------------------------
    def start_notifications(self, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> NotificationServer:
        """Start (once) the local notification server; :meth:`subscribe` does it when needed."""
        return self._run(self.client.start_notifications(host, port, **kw))

    def subscribe(self, path: str, callback: NotificationCallback, *, net: Sequence[int] = (3,),
                  **kw: Any) -> dict[str, Any]:
        """Subscribe to events ``net`` on ``path``; ``callback(sgn)`` is called, in the
        loop thread, with each notification's ``m2m:sgn`` (see :meth:`AEClient.subscribe`).
        The notification server is started first if it is not running.

        Example::

            got = queue.Queue()
            client.subscribe("myapp/data", got.put)
            client.create_content_instance("myapp/data", "1")
            sgn = got.get(timeout=10)
        """
        async def go() -> dict[str, Any]:
            server = self.client.notifications
            if server is None or not server.running:
                await self.client.start_notifications()
            return await self.client.subscribe(path, callback, net=net, **kw)
        return self._run(go())

    def unsubscribe(self, sub: Mapping[str, Any] | str) -> None:
        """Delete a subscription made by :meth:`subscribe` (its attributes or ``ri``)."""
        self._run(self.client.unsubscribe(sub))

    # -- non-blocking requests --------------------------------------------------------------
    def wait_request(self, ref: str, timeout: float = 30.0, **kw: Any) -> dict[str, Any]:
        """Poll the ``<request>`` ``ref`` until it is no longer pending (see
        :meth:`AEClient.wait_request`); the blocking call's own ``timeout``
        bounds it as well."""
        return self._run(self.client.wait_request(ref, timeout, **kw))

    # -- sessions ------------------------------------------------------------------------------
    @property
    def sessions(self) -> dict[str, SyncSession]:
        """The sessions this AE takes part in, by ``sid`` (blocking wrappers)."""
        return {sid: SyncSession(s, self._run) for sid, s in self.client.sessions.items()}

    def enable_sessions(self, on_request: OnRequest | None = None, **kw: Any) -> dict[str, Any]:
        """Accept session establishment requests (see :meth:`AEClient.enable_sessions`);
        ``on_request`` runs in the loop thread."""
        return self._run(self.client.enable_sessions(on_request, **kw))

    def establish(self, target_ae_id: str, **kw: Any) -> SyncSession:
        """Establish a session with ``target_ae_id`` (see :meth:`AEClient.establish`).

        Example::

            s = client.establish("/id-cse2/Cae2")
            s.create("container1", 4, {"con": "21.5"})
            s.terminate()
        """
        return SyncSession(self._run(self.client.establish(target_ae_id, **kw)), self._run)

    def next_session(self, timeout: float = 10.0) -> SyncSession:
        """The next session another AE established with this one."""
        return SyncSession(self._run(self.client.next_session(timeout)), self._run)

    def on_session(self, callback: SessionCallback) -> SessionCallback:
        """Call ``callback(session)`` (in the loop thread) for each accepted session."""
        return self.client.on_session(callback)

    def on_terminated(self, callback: TerminatedCallback) -> TerminatedCallback:
        """Call ``callback`` (in the loop thread) when a session ends."""
        return self.client.on_terminated(callback)

    def on_session_update(self, callback: UpdateCallback) -> UpdateCallback:
        """Call ``callback`` (in the loop thread) when a session's resource changes."""
        return self.client.on_session_update(callback)

    # -- life cycle -------------------------------------------------------------------------
    def close(self, *, unsubscribe: bool = False) -> None:
        """Close the client (notification server, HTTP session) and stop the loop
        thread (``unsubscribe``: see :meth:`AEClient.close`). Idempotent."""
        if self._closed:
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncAEClient.close() cannot be called from its own loop thread")
        try:
            self._run(self.client.close(unsubscribe=unsubscribe))
        finally:
            self._closed = True
            self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

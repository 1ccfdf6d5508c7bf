"""The AE side of oneM2M Mca as an async API: registration, CRUD, discovery,
non-blocking requests and subscriptions (TS-0004; TS-0009; docs/onem2m.md).

Rules every call follows:

* Paths: ``"myapp/data"`` is under the CSEBase (``cse-in/myapp/data``); a path
  starting with the CSEBase name, ``-``, ``/`` (SP-relative) or ``//``
  (absolute) is used as given. Reach a resource by its ``ri`` with
  :meth:`AEClient.ri_path` (``/id-in/<ri>``).
* Each request gets a fresh ``X-M2M-RI``, ``X-M2M-RVI: 3`` and the client's
  originator (the AE-ID once registered).
* Answers with RSC >= 3000 raise :class:`~ae_sdk.errors.M2MResponseError`
  (``rsc``, ``dbg``); no answer at all raises ``TransportError``.
* Results come back unwrapped: ``{"m2m:cnt": {...}}`` -> ``{...}``.
* ``rt=1``/``rt=2`` make a request non-blocking: the call returns the
  ``<request>`` reference; :meth:`AEClient.wait_request` polls it. With
  ``rt=2`` the CSE also NOTIFYs the result (``m2m:rsp``) to ``rtu`` -- by
  default the notification server if started, else (no RTU) the AE's
  ``poa`` -- and ``on_result=`` receives it.
* ``rt=4`` (flexBlocking) lets the CSE choose: the call returns the result
  when the CSE answered at once, else (1001/1002) the ``<request>``
  reference as for ``rt=1``/``rt=2``. ``rt=5`` (noResponse) returns
  ``None`` as soon as the CSE accepted the request: no result is ever
  returned to the caller (docs/onem2m.md "Non-blocking requests").
* M2M service sessions (docs/sessions.md; :mod:`ae_sdk.session`):
  :meth:`AEClient.enable_sessions`, :meth:`AEClient.establish`,
  :meth:`AEClient.on_session`, :meth:`AEClient.next_session`,
  :meth:`AEClient.on_terminated`, ``client.sessions``; session-based CRUD
  is on the :class:`~ae_sdk.session.Session`.

The client does requests, registration, CRUD and discovery itself and holds
the other parts, each written against the narrow interfaces of
:mod:`ae_sdk.requester` (which the client satisfies) rather than against this
class: a :class:`~ae_sdk.client_notify.Notifications` (notification server,
subscriptions), a :class:`~ae_sdk.session_manager.SessionManager` (sessions,
made on first use); ``wait_request`` is :func:`ae_sdk.nonblocking.wait_request`.
Its methods for those delegate to them, so imports run one way: the parts
never import this module.

Example::

    async with AEClient("http://127.0.0.1:8080") as client:
        await client.register("myapp", origin="Cmyapp")
        await client.create_container("myapp", "data", exist_ok=True)
        await client.create_content_instance("myapp/data", "21.5")
        print((await client.retrieve("myapp/data/la"))["con"])
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Mapping, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Literal, Self, overload
from urllib.parse import urlsplit, urlunsplit

from cse.core.messages import Operation, Request, Response

from .client_notify import Notifications
from .content import is_root, unwrap, wrap
from .errors import M2MResponseError, SDKError
from .mqtt_transport import MqttNotificationReceiver, MqttTransport
from .nonblocking import ACCEPTED_RSCS, reference_of, wait_request
from .notify_server import NotificationCallback, NotificationServer, VerifyHook
from .session import OnRequest, Session, SessionCallback, TerminatedCallback, UpdateCallback
from .session_manager import DEFAULT_SUBSCRIPTION_RN, SessionManager
from .transport import HttpTransport, Serialization, Transport
from .ws_transport import WsNotificationReceiver, WsTransport

__all__ = ["AEClient"]

log = logging.getLogger("ae_sdk.client")

DEFAULT_CSE_NAME = "cse-in"  # the single CSE's names (docs/configuration.md "[cse]"), until learned
DEFAULT_CSE_ID = "/id-in"
NonBlocking = Literal[1, 2]
Blocking = Literal[3] | None
FlexBlocking = Literal[4]
NoResponse = Literal[5]
_RESPONSE_TYPES = (None, 1, 2, 3, 4, 5)
StrList = str | Sequence[str]
_UNSET: Any = object()


def _result(resp: Response, rt: int | None) -> dict[str, Any] | str | None:
    """What a CRUD call returns for ``rt``: the ``<request>`` reference of a
    non-blocking answer (rt 1/2, rt 4 when the CSE chose so), nothing for
    rt 5 (noResponse: the CSE returns no result), else the result."""
    if rt == 5:
        return None
    if rt in (1, 2) or (rt == 4 and resp.rsc in ACCEPTED_RSCS):
        return reference_of(resp)
    return unwrap(resp.pc)


def _strings(value: StrList) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_cse_url(url: str) -> tuple[str, str | None, str | None]:
    """``http://h:p/cse2`` -> (``http://h:p``, None, ``cse2``); ``http://h:p/~/id-cse2/cse2``
    -> (``http://h:p``, ``/id-cse2``, ``cse2``); a URL without a path names neither."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return url, None, None
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    if segments[0] == "~" and len(segments) == 3:
        return base, "/" + segments[1], segments[2]
    if len(segments) == 1 and segments[0] not in ("~", "_", "-"):
        return base, None, segments[0]
    raise ValueError(f"'{url}' is not a CSE URL: give http://host:port, optionally followed by "
                     "/<CSEBase name> or /~/<CSE-ID>/<CSEBase name>")


class AEClient:
    """One AE talking to its registrar CSE through ``transport``.

    ``transport`` is a :class:`~ae_sdk.transport.Transport` or a CSE URL (an
    :class:`~ae_sdk.transport.HttpTransport` is made for it); an HTTP URL may
    end in the CSEBase (``http://127.0.0.1:8082/cse2``). ``cse_name`` and
    ``cse_id`` name the CSE (``cse-in``, ``/id-in``); left out, they are
    learned from the CSE (:meth:`connect`: its CSEBase is retrieved as the
    AE right after :meth:`register`, which itself goes to ``-``, the CSEBase
    of whatever CSE answers (TS-0001 9.3.1); for a client given
    ``originator=``, by :meth:`require_ae` and so the session calls, or
    call :meth:`connect` first). Until then they are the single CSE's
    defaults. ``originator`` is an already registered AE-ID to act as, if
    any. With a URL, ``token`` (a bearer token), ``cafile`` or ``ssl``
    configure the HTTPS transport (docs/security.md), ``serialization="cbor"``
    makes it speak CBOR (docs/onem2m.md "Serializations"; register with
    ``csz=["application/cbor"]`` to be notified in CBOR too). For a broker
    URL ``mqtt://host:port`` an :class:`~ae_sdk.mqtt_transport.MqttTransport`
    to ``cse_id`` (default ``/id-in``) is made, whose notifications arrive over
    MQTT too (docs/bindings.md); ``serialization="cbor"`` makes it publish CBOR
    primitives on the ``.../cbor`` topics. For ``ws://host:port`` (``wss://``) a
    :class:`~ae_sdk.ws_transport.WsTransport` is made (``token``, ``cafile``,
    ``ssl`` and ``serialization`` go to it): requests and notifications share
    one WebSocket, no port is opened and no ``poa`` is needed (docs/bindings.md
    "WebSocket").
    """

    def __init__(self, transport: Transport | str, *, cse_name: str | None = None, cse_id: str | None = None,
                 originator: str | None = None, token: str | None = None, cafile: str | None = None,
                 ssl: SSLContext | None = None, serialization: Serialization = "json") -> None:
        if isinstance(transport, str) and transport.startswith(("mqtt://", "mqtts://")):
            if token is not None or cafile is not None:
                raise ValueError("token and cafile are for HTTP: requests over MQTT carry no token")
            transport = MqttTransport(transport, cse_id=cse_id or DEFAULT_CSE_ID, ssl=ssl,
                                      serialization=serialization)
        elif isinstance(transport, str) and transport.startswith(("ws://", "wss://")):
            transport = WsTransport(transport, token=token, cafile=cafile, ssl=ssl, serialization=serialization)
        elif isinstance(transport, str):
            base, in_url_id, in_url_name = _split_cse_url(transport)
            cse_name = cse_name or in_url_name
            cse_id = cse_id or in_url_id
            transport = HttpTransport(base, token=token, cafile=cafile, ssl=ssl, serialization=serialization)
        elif token is not None or cafile is not None or ssl is not None or serialization != "json":
            raise ValueError("token, cafile, ssl and serialization go to the transport when one is given")
        self.transport: Transport = transport
        self._cse_name = cse_name
        self._cse_id = (cse_id if cse_id.startswith("/") else "/" + cse_id) if cse_id else None
        self._learning = False
        self._learn_tried: set[str] = set()
        self.originator = originator
        self._initial_originator = originator
        self.ae: dict[str, Any] | None = None
        self.registration_reused = False
        self.last_response: Response | None = None
        mqtt = transport if isinstance(transport, MqttTransport) else None
        ws = transport if isinstance(transport, WsTransport) else None
        self._notify = Notifications(self, None if mqtt is None else (
            lambda verify, catch_all: MqttNotificationReceiver(mqtt, lambda: self.originator, verify=verify,
                                                               catch_all=catch_all)))
        if ws is not None:
            self._notify.make_receiver = lambda verify, catch_all: WsNotificationReceiver(
                ws, lambda: self.originator, self._announce, verify=verify, catch_all=catch_all)
        self._smg: SessionManager | None = None

    async def _announce(self) -> None:
        """Tell the CSE which AE this WebSocket speaks for (TS-0020 6.4): a
        RETRIEVE of the AE itself, as the AE (docs/bindings.md "WebSocket")."""
        if self.originator is None or self.ae is None:
            raise SDKError("a WebSocket is associated with a registered AE: register first")
        req = self.build(Operation.RETRIEVE, self.ri_path(str(self.ae["ri"])))
        resp = await self.transport.send(req)
        if not resp.ok:
            raise M2MResponseError(resp, req)

    # -- the CSE ------------------------------------------------------------------
    @property
    def cse_name(self) -> str:
        """The CSEBase name: given, or learned by :meth:`connect`; until then the
        single CSE's default, ``cse-in``."""
        return self._cse_name or DEFAULT_CSE_NAME

    @property
    def cse_id(self) -> str:
        """The CSE-ID: given, or learned by :meth:`connect`; until then the
        single CSE's default, ``/id-in``."""
        return self._cse_id or DEFAULT_CSE_ID

    async def connect(self, fr: str | None = None) -> None:
        """Learn the CSEBase name and CSE-ID by retrieving the CSEBase (``-``)
        as ``fr`` (default: this client's AE-ID; on the CSEBase, registered
        originators may RETRIEVE, docs/security.md "Access control").
        Nothing happens when both are known; a refusal raises."""
        if self._cse_name is not None and self._cse_id is not None:
            return
        who = fr or self.originator
        if who is None or who in ("C", "S"):
            raise SDKError("connect() needs an AE-ID: register first (the CSEBase is readable by registered AEs)")
        req = self.build(Operation.RETRIEVE, "-", fr=who)
        resp = await self.transport.send(req)
        self.last_response = resp
        if not resp.ok:
            raise M2MResponseError(resp, req)
        cb = unwrap(resp.pc)
        if not isinstance(cb, dict) or not isinstance(cb.get("rn"), str) or not isinstance(cb.get("csi"), str):
            raise SDKError("the CSE's answer to RETRIEVE - is not a CSEBase with rn and csi")
        self._cse_name = self._cse_name or cb["rn"]
        csi = cb["csi"]
        self._cse_id = self._cse_id or (csi if csi.startswith("/") else "/" + csi)

    async def _learn_quietly(self, fr: str) -> None:
        """:meth:`connect` once, before the first request of a known AE; a
        failure leaves the names unknown (paths keep going to ``-``)."""
        if self._learning or fr in self._learn_tried or (self._cse_name is not None and self._cse_id is not None):
            return
        self._learning = True
        self._learn_tried.add(fr)  # once per originator: a refusal is not asked again on every request
        try:
            await self.connect(fr)
        except (M2MResponseError, SDKError) as exc:
            log.debug("could not learn the CSE's names as %s: %s", fr, exc)
        finally:
            self._learning = False

    # -- plumbing ---------------------------------------------------------------
    def target(self, path: str) -> str:
        """The To value for ``path`` (see the module docstring)."""
        if not path:
            raise ValueError("empty resource path")
        name = self.cse_name
        if path.startswith(("/", name + "/", "-/")) or path in (name, "-"):
            return path
        return f"{name}/{path}"

    def ri_path(self, ri: str) -> str:
        """SP-relative address of the resource whose ``ri`` is ``ri`` (``/id-in/<ri>``)."""
        return f"{self.cse_id}/{ri}"

    @property
    def ae_path(self) -> str | None:
        """Structured path of the registered AE (``cse-in/<rn>``), if registered."""
        return f"{self.cse_name}/{self.ae['rn']}" if self.ae else None

    @staticmethod
    def new_rqi() -> str:
        """A fresh request identifier."""
        return "sdk-" + secrets.token_hex(8)

    def build(self, op: Operation, path: str, *, ty: int | None = None, pc: Any = None,
              rcn: int | None = None, rt: int | None = None, rtu: Sequence[str] | None = None,
              atrl: StrList = (), query: Mapping[str, Sequence[str]] | None = None, drt: int = 1,
              fr: str | None = _UNSET) -> Request:
        """A Request from this client (fresh RI, RVI 3, the originator unless ``fr``)."""
        if rt not in _RESPONSE_TYPES:
            raise ValueError(f"rt={rt} is not a response type (use 1, 2, 3, 4 or 5)")
        return Request(op=op, to=self.target(path), fr=self.originator if fr is _UNSET else fr,
                       rqi=self.new_rqi(), rvi="3", ty=ty, pc=pc, rcn=rcn, rt=rt or 3,
                       rtu=tuple(rtu) if rtu is not None else None, drt=drt, atrl=tuple(_strings(atrl)),
                       query={k: tuple(v) for k, v in (query or {}).items()})

    async def send(self, req: Request) -> Response:
        """Send a prepared request; error RSCs raise :class:`M2MResponseError`."""
        resp = await self.transport.send(req)
        if resp.rsc == 4004 and req.fr not in (None, "C", "S") and (again := await self._retarget(req)):
            req = again  # the defaults were not this CSE's names: learned, sent once more
            resp = await self.transport.send(req)
        self.last_response = resp
        if not resp.ok:
            raise M2MResponseError(resp, req)
        return resp

    async def _retarget(self, req: Request) -> Request | None:
        """``req`` addressed with the learned names, when it went to the
        defaults (``cse-in``, ``/id-in``) before they were learned and the CSE
        has other names (:meth:`connect`); else None."""
        if self._cse_name is not None and self._cse_id is not None:
            return None
        to = req.to
        for default in (DEFAULT_CSE_NAME, DEFAULT_CSE_ID):
            if to == default or to.startswith(default + "/"):
                break
        else:
            return None
        assert req.fr is not None
        await self._learn_quietly(req.fr)
        new = default.replace(DEFAULT_CSE_NAME, self.cse_name) if default == DEFAULT_CSE_NAME else self.cse_id
        if new == default:
            return None
        return dataclasses.replace(req, to=new + to[len(default):], rqi=self.new_rqi())

    async def request(self, op: Operation, path: str, **kw: Any) -> Response:
        """Build (see :meth:`build`) and send any request; returns the Response."""
        return await self.send(self.build(op, path, **kw))

    async def _call(self, op: Operation, path: str, rt: int | None, rtu: Sequence[str] | None,
                    on_result: NotificationCallback | None, **kw: Any) -> Response:
        server = self._notify.server
        if rt == 2 and rtu is None and server is not None and server.running:
            rtu = (server.url,)
        req = self.build(op, path, rt=rt, rtu=rtu if rt in (2, 4) else None, **kw)
        if on_result is None:
            return await self.send(req)
        if rt != 2:
            raise ValueError("on_result needs rt=2 (non-blocking asynchronous)")
        server = self._notify.require("on_result")
        server.add_result_callback(req.rqi, on_result)
        try:
            return await self.send(req)
        except BaseException:
            server.remove_result_callback(req.rqi)
            raise

    # -- registration -------------------------------------------------------------
    async def register(self, rn: str, api: str = "Nsdk-app", *, poa: StrList | None = None,
                       srv: Sequence[str] = ("3",), rr: bool | None = None, scp: StrList | None = None,
                       origin: str = "C", **attrs: Any) -> dict[str, Any]:
        """Create the ``<AE>`` named ``rn`` and act as its AE-ID from now on.

        ``origin`` is the From of the registration: ``"C"``/``"S"`` let the
        CSE assign a new AE-ID; a full stem (``"Cmyapp"``) asks for that one.
        ``rr`` defaults to whether a ``poa`` is given. Extra attributes
        (``apn``, ``lbl``, ...) go into the AE as they are.

        Re-running a script: when the originator is known -- given to the
        constructor, or a full stem in ``origin`` -- and the CSE answers 4117
        (AE-ID already registered) or 4105 (``rn`` taken), the existing AE is
        retrieved with that originator and adopted if it is this ``rn`` with
        this AE-ID; ``registration_reused`` is then True and a different
        ``poa`` is updated. Otherwise the original error is raised.

        Example::

            ae = await client.register("myapp", origin="Cmyapp", poa=server.url)
        """
        poa_list = _strings(poa) if poa is not None else None
        body: dict[str, Any] = {"rn": rn, "api": api, "rr": bool(poa_list) if rr is None else rr,
                                "srv": list(srv), **attrs}
        if poa_list is not None:
            body["poa"] = poa_list
        if scp is not None:
            body["scp"] = _strings(scp)
        known = self.originator or (origin if origin not in ("", "C", "S") else None)
        req = self.build(Operation.CREATE, self._cse_name or "-", ty=2, pc={"m2m:ae": body},
                         fr=known or origin or None)
        try:
            ae = unwrap((await self.send(req)).pc)
            reused = False
        except M2MResponseError as exc:
            if known is None or exc.rsc not in (4117, 4105):
                raise
            ae = await self._adopt(known, rn, exc)
            reused = True
        self.originator = str(ae["aei"])
        await self._learn_quietly(self.originator)  # the CSE's names, when not given (connect())
        if reused and poa_list is not None and ae.get("poa") != poa_list:
            ae = await self.update(self.ri_path(ae["ri"]), {"poa": poa_list}, ty=2)
        self.ae = ae
        self.registration_reused = reused
        return ae

    async def _adopt(self, known: str, rn: str, exc: M2MResponseError) -> dict[str, Any]:
        stem = known.rsplit("/", 1)[-1]
        await self._learn_quietly(known)  # ri_path needs the CSE-ID
        path = self.ri_path(stem) if exc.rsc == 4117 else f"{self._cse_name or '-'}/{rn}"
        try:
            ae = unwrap((await self.request(Operation.RETRIEVE, path, fr=known)).pc)
        except M2MResponseError as err:
            exc.add_note(f"re-registration: retrieving {path} as {known} failed: {err}")
            raise exc from None
        if ae.get("aei") != stem or ae.get("rn") != rn:
            exc.add_note(f"re-registration: the existing AE (rn '{ae.get('rn')}', aei "
                         f"'{ae.get('aei')}') is not '{rn}' registered as {known}")
            raise exc
        log.info("AE %s already registered as %s: reusing it", rn, stem)
        return ae

    async def require_ae(self) -> dict[str, Any]:
        """The registered AE's attributes: from :meth:`register`, or retrieved
        once for a client constructed with ``originator=``."""
        if self.ae is not None:
            return self.ae
        if self.originator is None:
            raise SDKError("this client has no AE: await client.register(...) first")
        await self._learn_quietly(self.originator)  # ri_path needs the CSE-ID
        stem = self.originator.rsplit("/", 1)[-1]
        ae = unwrap((await self.request(Operation.RETRIEVE, self.ri_path(stem))).pc)
        if ae.get("ty", 2) != 2 or "rn" not in ae:
            raise SDKError(f"{self.ri_path(stem)} is not an AE")
        self.ae = ae
        return ae

    async def deregister(self) -> None:
        """Delete the ``<AE>`` (and everything under it); the client forgets it."""
        if self.originator is None:
            raise SDKError("deregister(): this client has no AE-ID (register first)")
        stem = (self.ae or {}).get("ri") or self.originator.rsplit("/", 1)[-1]
        await self.delete(self.ri_path(stem))
        self.ae = None
        self.originator = self._initial_originator if self._initial_originator != self.originator else None

    # -- CRUD -----------------------------------------------------------------------
    @overload
    async def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], *, rn: str | None = ...,
                     rcn: int | None = ..., rt: Blocking = ...) -> dict[str, Any]: ...

    @overload
    async def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], *, rn: str | None = ...,
                     rcn: int | None = ..., rt: NonBlocking, rtu: Sequence[str] | None = ...,
                     on_result: NotificationCallback | None = ...) -> str: ...

    @overload
    async def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], *, rn: str | None = ...,
                     rcn: int | None = ..., rt: FlexBlocking, rtu: Sequence[str] | None = ...
                     ) -> dict[str, Any] | str: ...

    @overload
    async def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], *, rn: str | None = ...,
                     rcn: int | None = ..., rt: NoResponse) -> None: ...

    async def create(self, parent_path: str, ty: int, attrs: Mapping[str, Any], *, rn: str | None = None,
                     rcn: int | None = None, rt: int | None = None, rtu: Sequence[str] | None = None,
                     on_result: NotificationCallback | None = None) -> dict[str, Any] | str | None:
        """Create a resource of type ``ty`` under ``parent_path``.

        ``attrs`` are the attributes (or the content already wrapped,
        ``{"m2m:xyz": {...}}``); returns the created resource's attributes as
        the CSE answered them (``rcn`` 1 by default; ``{}`` for ``rcn=0``), or
        with ``rt`` 1/2 the ``<request>`` reference (``rt`` 4: either, as the
        CSE chose; ``rt`` 5: None).

        Example::

            cnt = await client.create("myapp", 3, {"mni": 10}, rn="data")
        """
        content = wrap(ty, attrs)
        if rn is not None:
            inner = next(iter(content.values()))
            content = {next(iter(content)): {**inner, "rn": rn}}
        resp = await self._call(Operation.CREATE, parent_path, rt, rtu, on_result, ty=ty, pc=content, rcn=rcn)
        return _result(resp, rt)

    async def create_container(self, parent: str, rn: str, *, exist_ok: bool = False,
                               **attrs: Any) -> dict[str, Any]:
        """Create ``<container>`` ``rn`` under ``parent``; with ``exist_ok`` an
        existing one (4105) is retrieved instead."""
        try:
            return await self.create(parent, 3, attrs, rn=rn)
        except M2MResponseError as exc:
            if not exist_ok or exc.rsc != 4105:
                raise
            return await self.retrieve(f"{self.target(parent)}/{rn}")

    async def create_content_instance(self, container_path: str, con: Any, *, cnf: str | None = None,
                                      **attrs: Any) -> dict[str, Any]:
        """Add a ``<contentInstance>`` with content ``con`` (and ``cnf``, e.g.
        ``"text/plain:0"``) to the container at ``container_path``."""
        body = {"con": con, **attrs}
        if cnf is not None:
            body["cnf"] = cnf
        return await self.create(container_path, 4, body)

    @overload
    async def retrieve(self, path: str, *, rcn: int | None = ..., atrl: StrList | None = ...,
                       rt: Blocking = ...) -> dict[str, Any]: ...

    @overload
    async def retrieve(self, path: str, *, rcn: int | None = ..., atrl: StrList | None = ...,
                       rt: NonBlocking, rtu: Sequence[str] | None = ...,
                       on_result: NotificationCallback | None = ...) -> str: ...

    @overload
    async def retrieve(self, path: str, *, rcn: int | None = ..., atrl: StrList | None = ...,
                       rt: FlexBlocking, rtu: Sequence[str] | None = ...) -> dict[str, Any] | str: ...

    @overload
    async def retrieve(self, path: str, *, rcn: int | None = ..., atrl: StrList | None = ...,
                       rt: NoResponse) -> None: ...

    async def retrieve(self, path: str, *, rcn: int | None = None, atrl: StrList | None = None,
                       rt: int | None = None, rtu: Sequence[str] | None = None,
                       on_result: NotificationCallback | None = None) -> dict[str, Any] | str | None:
        """The resource's attributes (only those in ``atrl``, if given; with
        ``rcn`` 4/5/6/8 also its children as the CSE shapes them)."""
        resp = await self._call(Operation.RETRIEVE, path, rt, rtu, on_result, rcn=rcn, atrl=atrl or ())
        return _result(resp, rt)

    @overload
    async def update(self, path: str, attrs: Mapping[str, Any], *, ty: int | None = ...,
                     rcn: int | None = ..., rt: Blocking = ...) -> dict[str, Any]: ...

    @overload
    async def update(self, path: str, attrs: Mapping[str, Any], *, ty: int | None = ...,
                     rcn: int | None = ..., rt: NonBlocking, rtu: Sequence[str] | None = ...,
                     on_result: NotificationCallback | None = ...) -> str: ...

    @overload
    async def update(self, path: str, attrs: Mapping[str, Any], *, ty: int | None = ...,
                     rcn: int | None = ..., rt: FlexBlocking, rtu: Sequence[str] | None = ...
                     ) -> dict[str, Any] | str: ...

    @overload
    async def update(self, path: str, attrs: Mapping[str, Any], *, ty: int | None = ...,
                     rcn: int | None = ..., rt: NoResponse) -> None: ...

    async def update(self, path: str, attrs: Mapping[str, Any], *, ty: int | None = None,
                     rcn: int | None = None, rt: int | None = None, rtu: Sequence[str] | None = None,
                     on_result: NotificationCallback | None = None) -> dict[str, Any] | str | None:
        """Update attributes (``None`` deletes one); returns the resource after
        the update. The content needs the resource's JSON root: give ``ty``,
        or wrapped ``attrs``, or the SDK asks the CSE first (a partial RETRIEVE
        of ``ty``)."""
        if len(attrs) == 1 and is_root(next(iter(attrs))):
            content = dict(attrs)
        elif ty is not None:
            content = wrap(ty, attrs)
        else:
            probe = await self.request(Operation.RETRIEVE, path, atrl=("ty",))
            root = next(iter(probe.pc)) if isinstance(probe.pc, dict) and len(probe.pc) == 1 else None
            if root is None or not is_root(root):
                raise SDKError(f"cannot tell the resource type of {path}: pass ty=")
            content = {root: dict(attrs)}
        resp = await self._call(Operation.UPDATE, path, rt, rtu, on_result, pc=content, rcn=rcn)
        return _result(resp, rt)

    @overload
    async def delete(self, path: str, *, rt: Blocking = ...) -> None: ...

    @overload
    async def delete(self, path: str, *, rt: NonBlocking, rtu: Sequence[str] | None = ...,
                     on_result: NotificationCallback | None = ...) -> str: ...

    @overload
    async def delete(self, path: str, *, rt: FlexBlocking, rtu: Sequence[str] | None = ...) -> str | None: ...

    @overload
    async def delete(self, path: str, *, rt: NoResponse) -> None: ...

    async def delete(self, path: str, *, rt: int | None = None, rtu: Sequence[str] | None = None,
                     on_result: NotificationCallback | None = None) -> str | None:
        """Delete the resource and its subtree (``rt`` 1/2, or 4 when the CSE
        chose non-blocking: the ``<request>`` reference)."""
        resp = await self._call(Operation.DELETE, path, rt, rtu, on_result)
        return reference_of(resp) if rt in (1, 2) or (rt == 4 and resp.rsc in ACCEPTED_RSCS) else None

    async def discover(self, path: str, **filters: Any) -> list[str]:
        """Addresses of the resources below ``path`` matching ``filters``.

        Keys are query keys (``ty``, ``lbl``, ``lim``, ``lvl``, ``cra``,
        attribute names; pass ``**{"c.lbl": ...}`` for dotted ones); list
        values are joined with ``+`` (ORed by the CSE); ``drt=2`` asks for
        resource IDs; ``fu=1`` is added.

        Example::

            cins = await client.discover("myapp", ty=4, lbl=["room:kitchen", "room:hall"], lim=10)
        """
        rcn = filters.pop("rcn", None)
        drt = int(filters.pop("drt", 1))
        filters.pop("fu", None)
        query: dict[str, tuple[str, ...]] = {}
        for key, value in filters.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple, set, frozenset)):
                query[key] = ("+".join(_query_text(v) for v in value),)
            else:
                query[key] = (_query_text(value),)
        query["fu"] = ("1",)
        pc = (await self.request(Operation.RETRIEVE, path, query=query, rcn=rcn, drt=drt)).pc or {}
        if isinstance(pc.get("m2m:uril"), list):
            return [str(u) for u in pc["m2m:uril"]]
        rrl = pc.get("m2m:rrl")
        if isinstance(rrl, dict):
            return [str(r["val"]) for r in rrl.get("rrf", []) if isinstance(r, dict) and "val" in r]
        return []

    # -- notifications and subscriptions (a Notifications part) ------------------------------
    @property
    def notifications(self) -> NotificationServer | None:
        """The notification server started by :meth:`start_notifications`."""
        return self._notify.server

    async def start_notifications(self, host: str = "127.0.0.1", port: int = 0, *,
                                  verify: VerifyHook | None = None,
                                  catch_all: NotificationCallback | None = None,
                                  polling: bool = False) -> NotificationServer:
        """Start (once) the server that receives this AE's notifications; its
        ``url`` is what :meth:`subscribe` puts into ``nu`` (and what to give
        as ``poa`` to :meth:`register` for ``via_poa``). ``polling``: open
        no port; an AE registered with ``rr=False`` fetches them through a
        pollingChannel (:mod:`ae_sdk.polling`, docs/sdk.md)."""
        return await self._notify.start(host, port, verify=verify, catch_all=catch_all, polling=polling)

    async def subscribe(self, path: str, callback: NotificationCallback, *, net: Sequence[int] = (3,),
                        nct: int = 1, rn: str | None = None, via_poa: bool = False,
                        on_deleted: NotificationCallback | None = None, replace: bool = True,
                        **attrs: Any) -> dict[str, Any]:
        """Subscribe to events ``net`` on ``path``; ``callback(sgn)`` gets each
        notification's ``m2m:sgn`` object (``nev.net``, ``nev.rep``, ``sur``).

        Re-running a script: with ``replace`` (the default) the subscription
        has a name -- ``rn``, or one derived from the AE-ID, the resource and
        ``net`` (``sdk-sub-...``) -- and one of that name already there (the
        previous run's, whose notification server is gone) is deleted and
        made anew, so dead subscriptions do not pile up. ``replace=False``
        and no ``rn``: the CSE names it, every call makes another one.
        ``close(unsubscribe=True)`` deletes the subscriptions on the way out.

        ``nu`` is the notification server's URL, or with ``via_poa`` this AE's
        AE-ID (the AE must have been registered with ``poa`` = that URL).
        ``on_deleted`` gets the deletion notification (``sud``); unless ``su``
        is given it is set to the same target. Other attributes (``exc``, ``enc`` members, ``lbl``)
        pass through. Returns the ``<subscription>``'s attributes.

        Example::

            await client.start_notifications()
            await client.subscribe("myapp/data", lambda sgn: print(notified_resource(sgn)))
        """
        return await self._notify.subscribe(path, callback, net=net, nct=nct, rn=rn, via_poa=via_poa,
                                            on_deleted=on_deleted, replace=replace, **attrs)

    async def unsubscribe(self, sub: Mapping[str, Any] | str) -> None:
        """Delete a subscription made by :meth:`subscribe` (its attributes or
        its ``ri``); its callback stops, its ``on_deleted`` still fires."""
        await self._notify.unsubscribe(sub)

    # -- non-blocking requests ----------------------------------------------------------------
    async def wait_request(self, ref: str, timeout: float = 30.0, *, interval: float = 0.05,
                           max_interval: float = 1.0) -> dict[str, Any]:
        """Poll the ``<request>`` ``ref`` (from an ``rt=1`` call) until its
        ``rs`` is no longer 3 (PENDING) and return its ``ors`` (operation
        result: ``rsc``, ``rqi``, ``pc``, ``to``, ``fr``). A failed operation
        is returned too (look at ``ors["rsc"]``). Polls start ``interval``
        apart and back off to ``max_interval``; TimeoutError after ``timeout``.

        Example::

            ref = await client.create("myapp", 3, {}, rn="slow", rt=1)
            ors = await client.wait_request(ref, 10)
            assert ors["rsc"] == 2001
        """
        return await wait_request(self, ref, timeout, interval=interval, max_interval=max_interval)

    # -- sessions (a SessionManager part, made on first use) ----------------------------------
    @property
    def session_manager(self) -> SessionManager:
        """This AE's session state (made on first use)."""
        if self._smg is None:
            self._smg = SessionManager(self)
        return self._smg

    @property
    def sessions(self) -> dict[str, Session]:
        """The established sessions of this AE, by ``sid`` (terminated ones are removed)."""
        return self.session_manager.sessions

    async def enable_sessions(self, on_request: OnRequest | None = None, *, decision_timeout: float = 5.0,
                              confirm_timeout: float = 30.0, rn: str = DEFAULT_SUBSCRIPTION_RN) -> dict[str, Any]:
        """Hear this AE's session events and answer establishment requests.

        Starts the notification server if needed, creates (or replaces) the
        subscription ``rn`` under the AE's ``sessions`` collection (the AE
        must be registered with ``scp=["smg"]``) and returns it. From then on:

        * each establishment request is decided by ``on_request(offer)``
          (a :class:`~ae_sdk.session.SessionOffer`; plain function or
          coroutine) *before* the CSE gets its answer: ``True`` or a dict
          (the AE's endpoint attributes ``epa``) accepts, ``False`` rejects
          (the initiator gets 4103). Without ``on_request`` every request is
          accepted with an empty ``epa``. No decision within
          ``decision_timeout`` s (under the CSE's 10 s), an exception, or
          any other value (``None`` too) rejects;
        * an accepted session is announced to :meth:`on_session` callbacks
          and :meth:`next_session` once the CSE has stored it (within
          ``confirm_timeout`` s);
        * terminations (by the peer, expiry) mark the :class:`Session`
          terminated, remove it from :attr:`sessions` and run
          :meth:`on_terminated` callbacks.

        An initiating AE should enable sessions too, to hear when the peer
        ends a session (it may reject every request: ``lambda offer: False``).

        Example::

            await client.register("ae2", scp=["smg"])
            await client.enable_sessions(lambda offer: {"unit": "C"} if offer.initiator.startswith("/id-cse1/")
                                         else False)
            session = await client.next_session(timeout=60)
        """
        return await self.session_manager.enable(on_request, decision_timeout=decision_timeout,
                                                 confirm_timeout=confirm_timeout, rn=rn)

    async def establish(self, target_ae_id: str, *, epa: Mapping[str, Any] | None = None, sec: int = 1,
                        et: str | float | None = None) -> Session:
        """Establish a session with the AE ``target_ae_id`` (SP-relative,
        ``/id-cse2/Cae2``; a bare AE-ID is one at this CSE) and return it.

        ``epa`` are this AE's endpoint attributes (the target sees them in its
        offer), ``sec`` the security mode (1: MAC required, 0: none), ``et``
        the expiration (a oneM2M timestamp, or seconds from now). Raises
        :class:`M2MResponseError`: 4103 the target rejected, 5103 it could not
        be reached (offline, not subscribed to its session events, no answer
        in time), 4004 no such AE -- ``dbg`` says which.

        Example::

            s = await client.establish("/id-cse2/Cae2", epa={"role": "collector"}, et=3600)
            print(s.sid, s.peer_epa)
        """
        return await self.session_manager.establish(target_ae_id, epa=epa, sec=sec, et=et)

    def on_session(self, callback: SessionCallback) -> SessionCallback:
        """Call ``callback(session)`` for each accepted incoming session (also
        usable as a decorator). Needs :meth:`enable_sessions`."""
        return self.session_manager.on_session(callback)

    def on_terminated(self, callback: TerminatedCallback) -> TerminatedCallback:
        """Call ``callback(session, why)`` when one of this AE's sessions ends:
        told by the CSE (typ 3: ``why`` 1 deleted by the peer, 2 expired, 3
        peer lost) or ended by :meth:`Session.terminate` here (``why`` 1,
        ``session.terminated_here`` True)."""
        return self.session_manager.on_terminated(callback)

    def on_session_update(self, callback: UpdateCallback) -> UpdateCallback:
        """Call ``callback(session, sevt)`` for each session event typ 2 (a
        session-based request changed ``sevt["res"]``)."""
        return self.session_manager.on_update(callback)

    async def next_session(self, timeout: float = 10.0) -> Session:
        """The next accepted incoming session (oldest first); TimeoutError
        after ``timeout`` seconds."""
        return await self.session_manager.next_session(timeout)

    # -- life cycle -----------------------------------------------------------------------
    async def close(self, *, unsubscribe: bool = False) -> None:
        """Stop the notification server and close the transport (sessions stay
        established at the CSE). ``unsubscribe``: first delete the
        subscriptions :meth:`subscribe` made (else they stay, and a re-run
        replaces them)."""
        if unsubscribe:
            await self._notify.unsubscribe_all()
        if self._smg is not None:
            await self._smg.close()
        await self._notify.stop()
        close = getattr(self.transport, "close", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

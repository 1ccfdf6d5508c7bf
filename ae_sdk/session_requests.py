"""Session-based requests from an endpoint AE (docs/sessions.md "Marking a request as
session-based", "Request MAC", "What a session authorizes", "End-to-end
encryption", "Flow 2: session-based request"): the CRUD methods of
:class:`~ae_sdk.session.Session`.

Each request

* carries ``X-M2M-SID: <sid>``; with ``sec`` 1 also ``X-M2M-OT`` (now) and
  ``X-M2M-SMAC``, the MAC over the canonical string of that request: the
  operation, the SP-relative target without query, the sid, the request ID,
  the OT as sent and the SHA-256 of the body. The body is serialized once,
  signed, and those same bytes are what the transport sends;
* addresses SP-relative targets (:meth:`SessionRequests.target`): a
  relative path such as ``"container1"`` is below the *peer* AE
  (:attr:`~SessionRequests.peer_ae_path`, by default its unstructured
  address ``/<peer csi>/<peer AE-ID>``, which the CSE resolves); ``/...`` is
  used as given (``/id-cse2/cse2/AE2/container1``); a path starting with the
  own CSEBase name (``cse2/AE2/container1``) is at the own CSE;
* encrypts the attributes named in ``encrypt`` (``con`` of a
  contentInstance by default) with the session's ``K_enc``
  (``sess1.<kid>.<nonce>.<ct>``); :meth:`~SessionRequests.retrieve`
  decrypts ``sess1.`` values of ``con`` (or the attributes named in
  ``decrypt``) and raises :class:`~ae_sdk.session_crypto.SessionCryptoError`
  when one was tampered with.

Answers: the resource (unwrapped) as the CSE answered it; 1001/1002 (the
request was stored for a store-and-forward window, or ``rt`` 1/2) gives a
:class:`~ae_sdk.nonblocking.PendingResult` (``await pending.result(timeout)``);
an error raises :class:`~ae_sdk.errors.M2MResponseError` (``rsc``, ``dbg``).

Example::

    s = await ae1.establish("/id-cse2/Cae2")
    await s.update("container1", {"lbl": ["seen"]}, ty=3)
    cin = await s.create("container1", 4, {"cnf": "text/plain:0", "con": "21.5"})
    print((await s.retrieve("container1/la"))["con"])          # "21.5"
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cse.core.messages import Operation, Request, Response
from cse.core.timestamps import format_ts

from .content import is_root, unwrap, wrap
from .errors import SDKError
from .nonblocking import ACCEPTED_RSCS, PendingResult, reference_of
from .requester import Requester
from .session_crypto import canonical, is_token, mac, sp_relative_to

__all__ = ["SessionRequests", "body_bytes"]

Names = Sequence[str]
Result = dict[str, Any] | PendingResult


_compact = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps builds one per call


def body_bytes(pc: Mapping[str, Any] | None) -> bytes:
    """The exact body bytes of a content (compact JSON, as the HTTP binding sends it)."""
    return b"" if pc is None else _compact(pc).encode("utf-8")


def _names(value: bool | Names) -> tuple[str, ...]:
    if value is True:
        return ("con",)
    if value is False or value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class SessionRequests(ABC):
    """CRUD through a session (module docstring): the base of
    :class:`~ae_sdk.session.Session`, which supplies the session's identity,
    keys and own resource (the abstract members below)."""

    client: Requester
    sid: str
    sec: int
    terminated: bool
    _peer_ae_path: str | None

    @property
    @abstractmethod
    def peer(self) -> str:
        """The other endpoint's AE-ID (SP-relative)."""

    @property
    @abstractmethod
    def k_mac(self) -> bytes:
        """The key for request MACs."""

    @abstractmethod
    def encrypt(self, plaintext: bytes | str) -> str:
        """``plaintext`` encrypted under the session's key."""

    @abstractmethod
    def decrypt(self, token: str) -> bytes:
        """The plaintext of a value encrypted in this session."""

    @abstractmethod
    async def refresh(self) -> dict[str, Any]:
        """The session resource at the own CSE now."""

    # -- addressing -------------------------------------------------------------------
    @property
    def peer_ae_path(self) -> str:
        """SP-relative address of the peer AE, below which relative paths point.

        By default the unstructured form ``/<peer csi>/<peer AE-ID>`` (the
        CSE resolves it); set the structured one (``/id-cse2/cse2/ae2``) when
        known, e.g. from discovery.
        """
        if self._peer_ae_path is not None:
            return self._peer_ae_path
        peer = self.peer
        return peer if peer.startswith("/") else f"{self.client.cse_id}/{peer}"

    @peer_ae_path.setter
    def peer_ae_path(self, value: str | None) -> None:
        if value is not None and (not value.startswith("/") or value.startswith("//") or "?" in value):
            raise ValueError(f"peer_ae_path '{value}' must be SP-relative (/<cse-id>/...), without a query")
        self._peer_ae_path = value.rstrip("/") if value else None

    @property
    def own_ae_path(self) -> str:
        """SP-relative structured address of this AE (``/<csi>/<cse>/<ae-rn>``),
        or its unstructured one when the client does not know its ``rn``."""
        client = self.client
        if client.ae is not None and "rn" in client.ae:
            return f"{client.cse_id}/{client.cse_name}/{client.ae['rn']}"
        return f"{client.cse_id}/{(client.originator or '').rsplit('/', 1)[-1]}"

    def target(self, path: str) -> str:
        """The SP-relative (or absolute) To for ``path`` (module docstring)."""
        if not isinstance(path, str) or not path.strip("/"):
            raise ValueError("empty resource path")
        if "?" in path:
            raise ValueError(f"'{path}': pass query parameters as arguments, not in the path")
        if path.startswith("/"):
            return path
        name = self.client.cse_name
        if path == name or path.startswith(name + "/"):
            return f"{self.client.cse_id}/{path}"
        if path == "-" or path.startswith("-/"):
            return f"{self.client.cse_id}/{name}{path[1:]}"
        return f"{self.peer_ae_path}/{path}"

    # -- signing ------------------------------------------------------------------------
    def signed_request(self, op: Operation, path: str, *, ty: int | None = None,
                       pc: Mapping[str, Any] | None = None, rcn: int | None = None, rt: int | None = None,
                       rtu: Sequence[str] | None = None, atrl: Sequence[str] = (),
                       ot: str | None = None) -> Request:
        """The session-based request for ``op`` on ``path``, ready to send:
        ``X-M2M-SID``, and with ``sec`` 1 ``X-M2M-OT`` (``ot`` or now) and the
        ``X-M2M-SMAC`` over exactly ``Request.body``, the bytes sent."""
        if self.terminated:
            raise SDKError(f"session {self.sid[:10]}... is terminated: it carries no more requests")
        to = self.target(path)
        if rt == 2 and rtu is None:
            server = self.client.notifications
            if server is not None and server.running:
                rtu = (server.url,)
        content = dict(pc) if pc is not None else None
        req = self.client.build(op, to, ty=ty, pc=content, rcn=rcn, rt=rt, rtu=rtu if rt == 2 else None,
                                atrl=tuple(atrl))
        body = body_bytes(content)
        if self.sec != 1:
            return replace(req, sid=self.sid, body=body)
        ot = ot or format_ts(time.time())
        text = canonical(op.name, sp_relative_to(to, self.client.cse_id), self.sid, req.rqi, ot, body)
        return replace(req, sid=self.sid, body=body, ot=ot, smac=mac(self.k_mac, text))

    async def send(self, req: Request) -> Response:
        """Send a request from :meth:`signed_request`; error RSCs raise
        :class:`~ae_sdk.errors.M2MResponseError`."""
        return await self.client.send(req)

    # -- content encryption ---------------------------------------------------------------
    def _encrypt_value(self, value: Any) -> Any:
        if value is None or is_token(value):
            return value
        if isinstance(value, (str, bytes)):
            return self.encrypt(value)
        if isinstance(value, list):
            return [self._encrypt_value(v) for v in value]
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def _decrypt_value(self, value: Any) -> Any:
        if is_token(value):
            raw = self.decrypt(value)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw
        if isinstance(value, list):
            return [self._decrypt_value(v) for v in value]
        return value

    def encrypt_attrs(self, attrs: Mapping[str, Any], names: Names = ("con",)) -> dict[str, Any]:
        """``attrs`` with the values of ``names`` encrypted (strings as their
        UTF-8, list items one by one, other values as their JSON text; values
        already encrypted are kept). Wrapped content stays wrapped."""
        if len(attrs) == 1 and is_root(next(iter(attrs))):
            root, inner = next(iter(attrs.items()))
            return {root: self.encrypt_attrs(inner, names)}
        return {k: (self._encrypt_value(v) if k in names else v) for k, v in attrs.items()}

    def decrypt_attrs(self, attrs: Mapping[str, Any], names: Names = ("con",)) -> dict[str, Any]:
        """``attrs`` with the ``sess1.`` values of ``names`` decrypted (to text,
        or bytes when not UTF-8); :class:`SessionCryptoError` if one was
        altered or belongs to another session. Wrapped content stays wrapped."""
        if len(attrs) == 1 and is_root(next(iter(attrs))):
            root, inner = next(iter(attrs.items()))
            if isinstance(inner, Mapping):
                return {root: self.decrypt_attrs(inner, names)}
        return {k: (self._decrypt_value(v) if k in names else v) for k, v in attrs.items()}

    # -- CRUD -------------------------------------------------------------------------------
    async def _exchange(self, req: Request, decrypt: Names = ()) -> Result:
        resp = await self.send(req)
        if resp.rsc in ACCEPTED_RSCS:
            def transform(ors: dict[str, Any]) -> dict[str, Any]:
                pc = ors.get("pc")
                if decrypt and isinstance(pc, Mapping):
                    ors = {**ors, "pc": self.decrypt_attrs(pc, decrypt)}
                return ors
            return PendingResult(self.client, reference_of(resp), rsc=resp.rsc, request=req, transform=transform)
        resource = unwrap(resp.pc)
        return self.decrypt_attrs(resource, decrypt) if decrypt else resource

    async def create(self, path: str, ty: int, attrs: Mapping[str, Any], *, encrypt: Names = ("con",),
                     rcn: int | None = None, rt: int | None = None, rtu: Sequence[str] | None = None) -> Result:
        """Create a resource of type ``ty`` under ``path`` through the session,
        with the attributes in ``encrypt`` encrypted end to end. Returns the
        created resource as the CSE answered it (encrypted values as stored),
        or a :class:`PendingResult` when the CSE accepted it for later.

        Example::

            await session.create("container1", 4, {"cnf": "text/plain:0", "con": "21.5"})
        """
        content = self.encrypt_attrs(wrap(ty, attrs), _names(encrypt))
        req = self.signed_request(Operation.CREATE, path, ty=ty, pc=content, rcn=rcn, rt=rt, rtu=rtu)
        return await self._exchange(req)

    async def retrieve(self, path: str | None = None, *, decrypt: bool | Names = True, rcn: int | None = None,
                       rt: int | None = None, rtu: Sequence[str] | None = None) -> Result:
        """The resource at ``path`` through the session, with the ``sess1.``
        values of ``con`` decrypted (``decrypt=False``: none; a list: those
        attributes). Without ``path``: the session resource at the own CSE
        (:meth:`Session.refresh`, not session-based).

        Example::

            cin = await session.retrieve("cse2/ae2/container1/la")   # the own container
            print(cin["con"])
        """
        if path is None:
            return await self.refresh()
        req = self.signed_request(Operation.RETRIEVE, path, rcn=rcn, rt=rt, rtu=rtu)
        return await self._exchange(req, _names(decrypt))

    async def update(self, path: str, attrs: Mapping[str, Any], *, encrypt: Names = (), ty: int | None = None,
                     rcn: int | None = None, rt: int | None = None, rtu: Sequence[str] | None = None) -> Result:
        """Update attributes of the resource at ``path`` through the session
        (``None`` deletes one), those in ``encrypt`` encrypted. The content
        needs the resource's JSON root: give ``ty`` or wrapped ``attrs``, or
        the SDK first asks (a session-based RETRIEVE of ``ty``)."""
        if len(attrs) == 1 and is_root(next(iter(attrs))):
            content = dict(attrs)
        elif ty is not None:
            content = wrap(ty, attrs)
        else:
            probe = await self._exchange(self.signed_request(Operation.RETRIEVE, path, atrl=("ty",)))
            if isinstance(probe, PendingResult) or not isinstance(probe.get("ty"), int):
                raise SDKError(f"cannot tell the resource type of {path} through the session: pass ty=")
            content = wrap(probe["ty"], attrs)
        content = self.encrypt_attrs(content, _names(encrypt))
        req = self.signed_request(Operation.UPDATE, path, pc=content, rcn=rcn, rt=rt, rtu=rtu)
        return await self._exchange(req)

    async def delete(self, path: str, *, rt: int | None = None,
                     rtu: Sequence[str] | None = None) -> PendingResult | None:
        """Delete the resource at ``path`` (and its subtree) through the session.
        A session never deletes an endpoint AE or its ``sessions`` (4103)."""
        result = await self._exchange(self.signed_request(Operation.DELETE, path, rt=rt, rtu=rtu))
        return result if isinstance(result, PendingResult) else None

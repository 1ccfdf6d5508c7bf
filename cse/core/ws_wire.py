"""Pure pieces of the oneM2M WebSocket binding (TS-0020) shared by the CSE and the AE SDK.

TS-0020 (clause 6.2) opens a WebSocket with ``GET /`` and one of the
subprotocols :data:`SUBPROTOCOLS`; every WebSocket message then carries one
whole request or response primitive (TS-0004 7.2.1), in either direction:

* ``oneM2M.json`` -- the JSON primitive with short names, exactly as the
  MQTT binding writes it (:mod:`cse.core.mqtt_wire` is the one primitive
  codec: ``op``, ``to``, ``fr``, ``rqi``, ``rvi``, ``pc``, ``sid``,
  ``smac``, ...), in a text message (a binary one holding the same UTF-8
  text is read too);
* ``oneM2M.cbor`` -- the same primitive as CBOR (TS-0004 8.3;
  :mod:`cse.core.serialization` admits only what JSON could carry), in a
  binary message. It is read by turning it into the JSON primitive, so
  both subprotocols go through the same checks.

A message is a request when it has ``op`` and a response when it has
``rsc`` (:func:`kind_of`). No sockets here (the SDK may import only
``cse.core``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import cbor2

from .errors import BadRequest
from .messages import Request, Response
from .mqtt_wire import (
    encode_request as _encode_request_json,
    encode_response as _encode_response_json,
    request_from_primitive as _request_from_json,
    response_from_primitive as _response_from_json,
    rqi_of as _rqi_of_json,
)
from .serialization import decode_cbor

__all__ = ["JSON_PROTOCOL", "CBOR_PROTOCOL", "SUBPROTOCOLS", "Kind", "WS_PATH", "TOKEN_FIELD", "choose_protocol",
           "kind_of", "request_from_message", "response_from_message", "encode_request", "encode_response",
           "access_token", "rqi_of"]

JSON_PROTOCOL = "oneM2M.json"
CBOR_PROTOCOL = "oneM2M.cbor"
#: The subprotocols this binding speaks, in order of preference (TS-0020 6.2.2).
SUBPROTOCOLS = (JSON_PROTOCOL, CBOR_PROTOCOL)
#: The request target of the opening handshake (TS-0020 6.2.2.1).
WS_PATH = "/"
#: The response field with the token of a new AE-ID (:func:`encode_response`).
TOKEN_FIELD = "atk"

Kind = Literal["request", "response"]


def choose_protocol(offered: str | None) -> str | None:
    """The subprotocol to answer a ``Sec-WebSocket-Protocol`` header with
    (the client's first one we speak), or None when it offers none of ours."""
    names = [p.strip() for p in (offered or "").split(",")]
    return next((p for p in names if p in SUBPROTOCOLS), None)


def _as_json(data: bytes | str, protocol: str) -> bytes:
    """The JSON bytes of a message (CBOR is transcoded; bad CBOR is 4000)."""
    if isinstance(data, str):
        if protocol == CBOR_PROTOCOL:
            raise BadRequest("a text message on the oneM2M.cbor subprotocol: send CBOR in binary messages")
        return data.encode("utf-8", "surrogatepass")
    if protocol == CBOR_PROTOCOL:
        value = decode_cbor(data)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return data


def kind_of(data: bytes | str, protocol: str) -> tuple[Kind, bytes]:
    """Whether a message is a request or a response primitive, and its JSON bytes.

    Raises BadRequest (4000) for a message that is neither (not an object,
    or with both or none of ``op`` and ``rsc``)."""
    raw = _as_json(data, protocol)
    try:
        prim = json.loads(raw)
    except (ValueError, RecursionError):
        return "request", raw  # request_from_primitive names the problem
    if isinstance(prim, dict) and "rsc" in prim and "op" not in prim:
        return "response", raw
    return "request", raw


def request_from_message(raw_json: bytes) -> Request:
    """The :class:`Request` of a message's JSON bytes (checks of :mod:`cse.core.mqtt_wire`)."""
    return _request_from_json(raw_json)


def response_from_message(raw_json: bytes) -> Response:
    """The :class:`Response` of a message's JSON bytes."""
    return _response_from_json(raw_json)


def rqi_of(data: bytes | str, protocol: str) -> str:
    """The ``rqi`` of a (maybe malformed) message, for the answer to it; '' if none."""
    try:
        return _rqi_of_json(_as_json(data, protocol)[:65536])
    except BadRequest:
        return ""


def _out(json_bytes: bytes, protocol: str) -> bytes | str:
    if protocol == CBOR_PROTOCOL:
        value: Any = json.loads(json_bytes)
        return cbor2.dumps(value)
    return json_bytes.decode("utf-8")


def encode_request(req: Request, protocol: str) -> bytes | str:
    """A request primitive as a message: text for JSON, bytes for CBOR."""
    return _out(_encode_request_json(req), protocol)


def encode_response(resp: Response, protocol: str, *, to: str | None, fr: str, now_ts: str,
                    token: str | None = None) -> bytes | str:
    """A response primitive as a message: text for JSON, bytes for CBOR.

    ``token``: the access token minted for the AE-ID a registration just
    got, in :data:`TOKEN_FIELD` -- what the ``X-Access-Token`` header carries
    over HTTP (docs/security.md "Bearer tokens"; an extension of this CSE,
    as that header is)."""
    out = _encode_response_json(resp, to=to, fr=fr, now_ts=now_ts)
    if token:
        prim = json.loads(out)
        prim[TOKEN_FIELD] = token
        out = json.dumps(prim, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _out(out, protocol)


def access_token(raw_json: bytes) -> str | None:
    """The :data:`TOKEN_FIELD` of a response primitive's JSON bytes, if any."""
    if TOKEN_FIELD.encode() not in raw_json:
        return None
    try:
        prim = json.loads(raw_json)
    except (ValueError, RecursionError):
        return None
    token = prim.get(TOKEN_FIELD) if isinstance(prim, dict) else None
    return token if isinstance(token, str) and token else None

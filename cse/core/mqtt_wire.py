"""Pure pieces of the oneM2M MQTT binding (TS-0010) shared by the CSE and the AE SDK.

TS-0010 carries whole request and response primitives (TS-0004 7.2.1, the
JSON serialization of TS-0004 8.3 with short names: ``op``, ``to``, ``fr``,
``rqi``, ``ty``, ``pc``, ``rvi``, ...; ``sid`` and ``smac`` carry the session
headers of docs/sessions.md) as MQTT payloads on these topics
(TS-0010 6.4):

* requests: ``/oneM2M/req/<originator>/<receiver>/<format>``
* responses: ``/oneM2M/resp/<originator>/<receiver>/<format>`` -- the same
  originator and receiver as the request's topic.

``<originator>`` and ``<receiver>`` are entity IDs without their leading
``/`` and with any other ``/`` replaced by ``:`` (:func:`topic_id`);
``<format>`` is ``json`` or ``cbor`` (TS-0010 6.4; XML is answered with
4015). A ``cbor`` primitive is the same map of short names as one CBOR data
item, decoded as strictly as a CBOR body over HTTP
(:func:`cse.core.serialization.decode_cbor`); the answer goes in the
request's format. Every function below takes the format as ``fmt``.

Receiving: :func:`request_from_primitive` builds the one :class:`Request`
from a payload (malformed input raises :class:`BadRequest`, 4000, naming the
problem); :func:`encode_response` writes a :class:`Response`. Sending:
:func:`encode_request` and :func:`response_from_primitive`. No sockets here
(the SDK may import only ``cse.core``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import BadRequest, ReleaseVersionNotSupported
from .http_wire import parse_json_body
from .messages import SUPPORTED_RVI, Operation, Request, Response
from .serialization import CBOR, CBOR_TYPES, JSON, decode_cbor, encode_body

__all__ = ["FORMATS", "topic_id", "request_topic", "response_topic", "parse_topic", "request_from_primitive",
           "encode_request", "encode_response", "response_from_primitive", "rqi_of", "format_for"]

#: Serializations this binding reads and writes (TS-0010 6.4 ``<format>``).
FORMATS = frozenset({"json", "cbor"})

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MAX_ID = 1024  # longest originator/receiver/rqi/to accepted (docs/bindings.md "MQTT")


def topic_id(entity: str) -> str:
    """An entity ID as a topic level (TS-0010 6.4): no leading ``/``, ``/`` -> ``:``."""
    return entity.lstrip("/").replace("/", ":")


def request_topic(originator: str, receiver: str, fmt: str = "json") -> str:
    """``/oneM2M/req/<originator>/<receiver>/<format>`` (IDs already topic levels)."""
    return f"/oneM2M/req/{originator}/{receiver}/{fmt}"


def response_topic(originator: str, receiver: str, fmt: str = "json") -> str:
    """``/oneM2M/resp/<originator>/<receiver>/<format>`` (IDs already topic levels)."""
    return f"/oneM2M/resp/{originator}/{receiver}/{fmt}"


def format_for(media: str) -> str:
    """The topic ``<format>`` that carries a content of ``media``: ``cbor`` for CBOR, else ``json``."""
    return "cbor" if media in CBOR_TYPES else "json"


def _load(payload: bytes, fmt: str) -> Any:
    """A primitive's bytes as a value (4000 naming the problem when they are not ``fmt``)."""
    return decode_cbor(payload) if fmt == "cbor" else parse_json_body(payload)


def _dump(prim: dict[str, Any], fmt: str) -> bytes:
    return encode_body(prim, CBOR) if fmt == "cbor" else _compact(prim).encode("utf-8")


def parse_topic(topic: str) -> tuple[str, str, str, str] | None:
    """``(kind, originator, receiver, format)`` of a oneM2M topic (kind ``req`` or
    ``resp``), or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] or parts[1] != "oneM2M" or parts[2] not in ("req", "resp"):
        return None
    if not all(parts[3:]):
        return None
    return parts[2], parts[3], parts[4], parts[5]


# -- receiving requests -------------------------------------------------------------------

def _text(prim: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = prim.get(key)
    if value is None:
        if required:
            raise BadRequest(f"request primitive lacks '{key}'")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"request primitive '{key}' must be a string, got {type(value).__name__}")
    if len(value) > _MAX_ID:
        raise BadRequest(f"request primitive '{key}' is longer than {_MAX_ID} characters")
    return value


def _int(prim: Mapping[str, Any], key: str, allowed: range | None = None) -> int | None:
    value = prim.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)  # some clients send numbers as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"request primitive '{key}' must be an integer, got {type(value).__name__}")
    if allowed is not None and value not in allowed:
        raise BadRequest(f"request primitive '{key}'={value} is out of range ({allowed.start}..{allowed.stop - 1})")
    return value


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise BadRequest(f"filter criterion '{key}' must be a string, number or list of them")


def _filter_query(fc: Any) -> dict[str, tuple[str, ...]]:
    """``fc`` (filterCriteria, TS-0004 7.3.3.17) as the query parameters the
    HTTP binding would carry: the pipeline reads filter criteria from there."""
    if not isinstance(fc, dict):
        raise BadRequest("request primitive 'fc' must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in fc.items():
        if key == "atr":  # attribute filters: [{"nm": name, "val": value}]
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, dict) or not isinstance(item.get("nm"), str) or "val" not in item:
                    raise BadRequest("filter criterion 'atr' must list objects with 'nm' and 'val'")
                out.setdefault(item["nm"], []).append(_scalar(item["nm"], item["val"]))
            continue
        values = value if isinstance(value, list) else [value]
        out.setdefault(key, []).extend(_scalar(key, v) for v in values)
    return {k: tuple(v) for k, v in out.items()}


def request_from_primitive(payload: bytes, fmt: str = "json") -> Request:
    """A :class:`Request` from a request primitive in ``fmt`` (module docstring).

    The checks follow the HTTP binding's (``cse.binding.http_mapping``):
    ``op``, ``to``, ``rqi`` and ``rvi`` are mandatory, ``ty`` only with CREATE;
    a malformed primitive raises 4000 (a release version not supported: 4001).
    """
    prim = _load(payload, fmt)
    if not isinstance(prim, dict):
        raise BadRequest("request primitive must be a JSON object" if fmt == "json" else
                         "request primitive must be a CBOR map")
    op_value = _int(prim, "op", range(1, 6))
    if op_value is None:
        raise BadRequest("request primitive lacks 'op'")
    op = Operation(op_value)
    to = _text(prim, "to", required=True)
    rqi = _text(prim, "rqi", required=True)
    assert to is not None and rqi is not None
    if not to or not rqi:
        raise BadRequest("request primitive 'to' and 'rqi' must not be empty")
    rvi = _text(prim, "rvi")
    if rvi is None:
        raise ReleaseVersionNotSupported("request primitive lacks 'rvi' (release 1 is not supported); "
                                         "send 2a, 3, 4 or 5")
    if rvi not in SUPPORTED_RVI:
        raise ReleaseVersionNotSupported(f"release version '{rvi[:20]}' is not supported (2a, 3, 4, 5 are)")
    ty = _int(prim, "ty")
    if op == Operation.CREATE and ty is None:
        raise BadRequest("a CREATE request primitive needs 'ty'")
    pc = prim.get("pc")
    if pc is not None and not isinstance(pc, dict):
        raise BadRequest("request primitive 'pc' must be a JSON object")
    if op in (Operation.RETRIEVE, Operation.DELETE):
        pc = None
    rt = 3
    rtu: tuple[str, ...] | None = None
    rt_raw = prim.get("rt")
    if rt_raw is not None:
        if not isinstance(rt_raw, dict):
            raise BadRequest("request primitive 'rt' must be an object {\"rtv\": n, \"nu\": [...]}")
        rt = _int(rt_raw, "rtv", range(1, 6)) or 3
        nu = rt_raw.get("nu")
        if nu is not None:
            if not isinstance(nu, list) or not all(isinstance(u, str) for u in nu):
                raise BadRequest("request primitive 'rt.nu' must be a list of strings")
            rtu = tuple(nu)
    atrl_raw = prim.get("atrl")
    atrl: tuple[str, ...] = ()
    if atrl_raw is not None:
        if not isinstance(atrl_raw, list) or not all(isinstance(a, str) for a in atrl_raw):
            raise BadRequest("request primitive 'atrl' must be a list of attribute names")
        atrl = tuple(atrl_raw)
    query = _filter_query(prim["fc"]) if prim.get("fc") is not None else {}
    return Request(op=op, to=to, fr=_text(prim, "fr") or None, rqi=rqi, rvi=rvi, ty=ty, pc=pc,
                   rcn=_int(prim, "rcn", range(13)), rt=rt, rtu=rtu, drt=_int(prim, "drt", range(1, 3)) or 1,
                   atrl=atrl, ot=_text(prim, "ot"), rqet=_text(prim, "rqet"), rset=_text(prim, "rset"),
                   oet=_text(prim, "oet"), rp=_text(prim, "rp"), ec=_int(prim, "ec"), vsi=_text(prim, "vsi"),
                   sid=_text(prim, "sid"), smac=_text(prim, "smac"), query=query,
                   # a session-based request's MAC covers the content as the HTTP binding sends it
                   # (compact JSON, or CBOR; docs/bindings.md "Sessions over MQTT")
                   body=_session_body(pc, fmt) if prim.get("sid") is not None else b"",
                   media=CBOR if fmt == "cbor" else JSON)


def _session_body(pc: Any, fmt: str) -> bytes:
    if pc is None:
        return b""
    return encode_body(pc, CBOR) if fmt == "cbor" else json.dumps(pc, separators=(",", ":")).encode("utf-8")


def rqi_of(payload: bytes, fmt: str = "json") -> str:
    """The ``rqi`` of a (maybe malformed) primitive, for the answer to it; '' if none."""
    try:
        prim = _load(payload, fmt)
    except (BadRequest, ValueError, RecursionError):
        return ""
    rqi = prim.get("rqi") if isinstance(prim, dict) else None
    return rqi[:_MAX_ID] if isinstance(rqi, str) else ""


def encode_response(resp: Response, *, to: str | None, fr: str, now_ts: str, fmt: str = "json") -> bytes:
    """The response primitive for ``resp`` in ``fmt`` (``to``: the request's originator)."""
    prim: dict[str, Any] = {"rsc": resp.rsc, "rqi": resp.rqi, "rvi": resp.rvi, "ot": now_ts, "fr": fr}
    if to:
        prim["to"] = to
    if resp.pc is not None:
        prim["pc"] = resp.pc
    if resp.cnst is not None:
        prim["cnst"] = resp.cnst
        if resp.cnot is not None:
            prim["cnot"] = resp.cnot
    return _dump(prim, fmt)


# -- sending requests ---------------------------------------------------------------------

def encode_request(req: Request, fmt: str = "json") -> bytes:
    """The request primitive for ``req`` in ``fmt`` (the inverse of :func:`request_from_primitive`)."""
    prim: dict[str, Any] = {"op": int(req.op), "to": req.to, "rqi": req.rqi, "rvi": req.rvi}
    if req.fr:
        prim["fr"] = req.fr
    if req.ty is not None:
        prim["ty"] = req.ty
    if req.pc is not None:
        prim["pc"] = req.pc
    if req.rcn is not None:
        prim["rcn"] = req.rcn
    if req.rt != 3 or req.rtu is not None:
        prim["rt"] = {"rtv": req.rt, **({"nu": list(req.rtu)} if req.rtu is not None else {})}
    if req.drt != 1:
        prim["drt"] = req.drt
    if req.atrl:
        prim["atrl"] = list(req.atrl)
    for key in ("ot", "rqet", "rset", "oet", "rp", "ec", "vsi", "sid", "smac"):
        value = getattr(req, key)
        if value is not None:
            prim[key] = value
    fc: dict[str, Any] = {}
    for key, values in req.query.items():
        if key in ("rcn", "rt", "drt", "atrl"):
            continue
        fc[key] = list(values) if len(values) > 1 else values[0]
    if fc:
        prim["fc"] = fc
    return _dump(prim, fmt)


def response_from_primitive(payload: bytes, fmt: str = "json") -> Response:
    """A :class:`Response` from a response primitive in ``fmt``; BadRequest when it is not one."""
    prim = _load(payload, fmt)
    if not isinstance(prim, dict):
        raise BadRequest("response primitive must be a JSON object")
    rsc = prim.get("rsc")
    if isinstance(rsc, str) and rsc.isascii() and rsc.isdigit() and len(rsc) < 6:
        rsc = int(rsc)
    if isinstance(rsc, bool) or not isinstance(rsc, int):
        raise BadRequest("response primitive lacks an integer 'rsc'")
    rqi = prim.get("rqi")
    rvi = prim.get("rvi")
    ot = prim.get("ot")
    cnst, cnot = prim.get("cnst"), prim.get("cnot")
    return Response(rsc=rsc, rqi=rqi if isinstance(rqi, str) else "", pc=prim.get("pc"),
                    ot=ot if isinstance(ot, str) else None, rvi=rvi if isinstance(rvi, str) else "3",
                    cnst=cnst if isinstance(cnst, int) and not isinstance(cnst, bool) else None,
                    cnot=cnot if isinstance(cnot, int) and not isinstance(cnot, bool) else None)

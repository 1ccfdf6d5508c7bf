"""oneM2M HTTP binding (TS-0009; docs/onem2m.md "Headers") as pure mapping functions.

:func:`request_from_http` turns method, raw path, headers and body bytes into
a :class:`Request`; :func:`response_to_http` turns a :class:`Response` into
status, headers and body bytes. No sockets and no aiohttp here, so every
rule of the binding is testable directly. Malformed input raises an
:class:`M2MError` (4000, 4001, 4015, 5207) naming the problem.
Bodies are JSON or CBOR both ways (TS-0009 media types; :mod:`cse.core.serialization`):
the request's by its Content-Type, the answer's by :func:`response_media`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote_plus

from multidict import istr

from cse.core.errors import (
    BadRequest,
    M2MError,
    OperationNotAllowed,
    ReleaseVersionNotSupported,
    http_status,
)
from cse.core.http_wire import decode_body, target_from_path
from cse.core.messages import SUPPORTED_RVI, Operation, Request, Response
from cse.core.serialization import JSON, content_type, encode_body, negotiate

__all__ = ["request_from_http", "response_to_http", "response_media", "parse_query"]

_METHODS = {"GET": Operation.RETRIEVE, "PUT": Operation.UPDATE, "DELETE": Operation.DELETE}
_MAX_HEADER = 4096


def parse_query(qs: str) -> dict[str, tuple[str, ...]]:
    """``a=1&ty=2+3&ty=4`` -> ``{"a": ("1",), "ty": ("2 3", "4")}``."""
    out: dict[str, list[str]] = {}
    if not qs:
        return {}
    for part in qs.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = unquote_plus(key, errors="strict")
        if not key:
            raise BadRequest(f"query parameter without a name: '{part[:60]}'")
        out.setdefault(key, []).append(unquote_plus(value, errors="strict") if sep else "")
    return {k: tuple(v) for k, v in out.items()}


def _one(query: Mapping[str, tuple[str, ...]], key: str) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"query parameter '{key}' given more than once")
    return values[0]


def _int(key: str, value: str | None, allowed: range | None = None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 18:
        raise BadRequest(f"'{key}' must be an integer, got '{value[:40]}'")
    n = int(value)
    if allowed is not None and n not in allowed:
        raise BadRequest(f"'{key}'={n} is out of range ({allowed.start}..{allowed.stop - 1})")
    return n


def _media(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    parts = [p.strip() for p in content_type.split(";")]
    params: dict[str, str] = {}
    for p in parts[1:]:
        if "=" in p:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].lower(), params


# The request headers the binding reads, in the order request_from_http unpacks them.
# As ``istr`` (multidict's case-insensitive string, aiohttp's header keys): a
# lookup in aiohttp's headers then skips case-folding the name, half the cost
# of reading these 14 headers on every request. Equal to (and hashed as) the
# plain strings, so any other mapping finds them as before.
_HEADERS = tuple(istr(name) for name in (
    "Content-Type", "X-M2M-RI", "X-M2M-RVI", "Accept", "X-M2M-RTU", "X-M2M-SID", "X-M2M-Origin",
    "X-M2M-OT", "X-M2M-RET", "X-M2M-RST", "X-M2M-OET", "X-M2M-EC", "X-M2M-VSI", "X-M2M-SMAC"))


_NO_QUERY: Mapping[str, tuple[str, ...]] = MappingProxyType({})


def request_from_http(method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Request:
    """Build a Request from an HTTP request (headers: case-insensitive map)."""
    path, _, qs = raw_path.partition("?")
    try:
        to = target_from_path(path)
        query = parse_query(qs) if qs else _NO_QUERY
    except UnicodeDecodeError:
        raise BadRequest("the request path or query is not valid UTF-8 after percent-decoding") from None
    hget = headers.get
    values = [hget(name) for name in _HEADERS]
    for name, value in zip(_HEADERS, values, strict=True):
        if value is not None and len(value) > _MAX_HEADER:
            raise BadRequest(f"header {name} is longer than {_MAX_HEADER} characters")
    (ctype, rqi, rvi, accept, rtu_raw, sid_h, origin, ot, ret, rst, oet, ec, vsi, smac) = values
    media, params = _media(ctype)
    ty = _int("ty (in Content-Type)", params.get("ty")) if params else None
    if method == "POST":
        op = Operation.CREATE if ty is not None else Operation.NOTIFY
    elif method in _METHODS:
        op = _METHODS[method]
    else:
        raise OperationNotAllowed(f"HTTP method {method[:10]} is not part of the oneM2M binding")
    if not rqi:
        raise BadRequest("header X-M2M-RI (request identifier) is missing")
    if rvi is None:
        raise ReleaseVersionNotSupported(
            "header X-M2M-RVI is missing (release 1 is not supported); send 2a, 3, 4 or 5")
    if rvi not in SUPPORTED_RVI:
        raise ReleaseVersionNotSupported(
            f"release version X-M2M-RVI '{rvi[:20]}' is not supported (2a, 3, 4, 5 are)")
    if accept:
        negotiate(accept)  # 5207 now when no serialization it accepts is one we speak
    pc: Any = None
    if body and op != Operation.DELETE:
        pc = decode_body(body, media)  # JSON or CBOR; 4015 for any other media type
        if op == Operation.RETRIEVE:
            pc = None  # checked, then ignored: no attribute list in a body (atrl is supported)
    rcn = rt = drt = rqet_q = rset_q = oet_q = rp = sid_q = None
    atrl: tuple[str, ...] = ()
    if query:
        rcn = _int("rcn", _one(query, "rcn"), range(13))
        rt = _int("rt", _one(query, "rt"), range(1, 6))
        drt = _int("drt", _one(query, "drt"), range(1, 3))
        atrl_raw = " ".join(query.get("atrl", ()))
        atrl = tuple(a for a in atrl_raw.replace("+", " ").split() if a) if atrl_raw else ()
        rqet_q, rset_q, oet_q = _one(query, "rqet"), _one(query, "rset"), _one(query, "oet")
        rp = _one(query, "rp")
        sid_q = _one(query, "sessionID")
        if sid_q is not None and sid_h is not None and sid_q != sid_h:
            raise BadRequest("X-M2M-SID header and sessionID query parameter disagree")
    return Request(
        op=op,
        to=to,
        fr=origin or None,
        rqi=rqi,
        rvi=rvi,
        ty=ty,
        pc=pc,
        rcn=rcn,
        rt=rt or 3,
        rtu=tuple(u for u in rtu_raw.split("&") if u) if rtu_raw is not None else None,
        drt=drt or 1,
        atrl=atrl,
        ot=ot,
        rqet=ret or rqet_q,
        rset=rst or rset_q,
        oet=oet or oet_q,
        rp=rp,
        ec=_int("X-M2M-EC", ec) if ec is not None else None,
        vsi=vsi,
        sid=sid_h if sid_h is not None else sid_q,
        smac=smac,
        query=query,
        body=body,
        media=media or "application/json",
    )


def response_media(headers: Mapping[str, str], request_media: str | None) -> str:
    """The media type of the answer: what ``Accept`` prefers, else the request
    body's serialization (``request_media``; None when the request was not
    parsed). An Accept that names nothing we speak gets the error answer in JSON."""
    if request_media is None:  # an error before parsing: answer in the body's serialization if we speak it
        request_media, _ = _media(headers.get("Content-Type", "")[:_MAX_HEADER])
    accept = headers.get("Accept")
    try:
        return negotiate(accept[:_MAX_HEADER] if accept else None, request_media)
    except M2MError:
        return JSON


def response_to_http(resp: Response, now_ts: str, media: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for ``resp`` (body serialized as ``media``: JSON or CBOR)."""
    headers = {
        "X-M2M-RSC": str(resp.rsc),
        "X-M2M-RI": resp.rqi,
        "X-M2M-RVI": resp.rvi,
        "X-M2M-OT": now_ts,
    }
    body = b""
    if resp.pc is not None:
        body = encode_body(resp.pc, media)
        headers["Content-Type"] = content_type(media)
    if resp.location:
        headers["Content-Location"] = resp.location
    if resp.cnst is not None:  # TS-0009 6.4.20 / 6.4.21
        headers["X-M2M-CTS"] = str(resp.cnst)
        if resp.cnot is not None:
            headers["X-M2M-CTO"] = str(resp.cnot)
    return http_status(resp.rsc), headers, body

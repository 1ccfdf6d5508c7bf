"""Pure pieces of the oneM2M HTTP binding shared by the CSE and the AE SDK.

Sending: :func:`encode_request` turns a :class:`Request` into method,
path+query, headers and body for any HTTP client; :func:`decode_response`
turns what came back into a :class:`Response` (the CSE's outbound client,
the SDK's transport). Receiving: :func:`target_from_path`,
:func:`parse_json_body`, :func:`decode_body` and :data:`JSON_TYPES`, used by the CSE's binding
(``cse.binding.http_mapping``) and the SDK's notification server, so both
apply the same rules. The SDK may import only ``cse.core``. Bodies are JSON
or CBOR by ``Request.media`` / Content-Type (:mod:`cse.core.serialization`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from .errors import BadRequest
from .messages import Operation, Request, Response
from .serialization import CBOR_TYPES, JSON_TYPES, MAX_JSON_DEPTH, check_media, decode_cbor, encode_body

__all__ = ["encode_request", "decode_response", "path_for", "METHODS", "JSON_TYPES", "target_from_path",
           "parse_json_body", "decode_body", "MAX_JSON_DEPTH"]

METHODS = {
    Operation.CREATE: "POST", Operation.RETRIEVE: "GET", Operation.UPDATE: "PUT",
    Operation.DELETE: "DELETE", Operation.NOTIFY: "POST",
}
_TYPED_KEYS = ("rcn", "rt", "drt", "atrl")
# built once, not per request; no cycle check (cse.store.journal: content is never cyclic)
_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_CBOR_RES = "application/vnd.onem2m-res+cbor"


def path_for(to: str) -> str:
    """To -> request-target path (TS-0009 6.2.2.1), percent-encoded."""
    if to.startswith("//"):
        raw = "/_/" + to[2:]
    elif to.startswith("/"):
        raw = "/~" + to
    else:
        raw = "/" + to
    return quote(raw, safe="/-._~!$'()*,;:@")


def _query(req: Request) -> str:
    pairs: list[tuple[str, str]] = []
    if req.rcn is not None:
        pairs.append(("rcn", str(req.rcn)))
    if req.rt != 3:
        pairs.append(("rt", str(req.rt)))
    if req.drt != 1:
        pairs.append(("drt", str(req.drt)))
    if req.atrl:
        pairs.append(("atrl", "+".join(req.atrl)))
    for key, values in req.query.items():
        if key in _TYPED_KEYS:
            continue
        for v in values:
            pairs.append((key, v))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=':*+')}" for k, v in pairs)


def encode_request(req: Request) -> tuple[str, str, dict[str, str], bytes]:
    """(method, path?query, headers, body) for ``req``."""
    headers: dict[str, str] = {"X-M2M-RI": req.rqi}
    if req.rvi:  # none for a release 1/2 peer (cse.core.messages.rvi_for)
        headers["X-M2M-RVI"] = req.rvi
    if req.fr:
        headers["X-M2M-Origin"] = req.fr
    optional = (("X-M2M-OT", req.ot), ("X-M2M-RET", req.rqet), ("X-M2M-RST", req.rset),
                ("X-M2M-OET", req.oet), ("X-M2M-VSI", req.vsi), ("X-M2M-SID", req.sid),
                ("X-M2M-SMAC", req.smac))
    for name, value in optional:
        if value is not None:
            headers[name] = value
    if req.ec is not None:
        headers["X-M2M-EC"] = str(req.ec)
    if req.rtu is not None:
        headers["X-M2M-RTU"] = "&".join(req.rtu)
    body = req.body
    cbor = req.media in CBOR_TYPES
    if not body and req.pc is not None:
        body = encode_body(req.pc, req.media) if cbor else _compact(req.pc).encode("utf-8")
    ctype = req.media if cbor else "application/json"
    if req.op == Operation.CREATE:
        headers["Content-Type"] = f"{ctype};ty={req.ty}"
    elif body:
        headers["Content-Type"] = ctype
    if cbor:  # answer in the serialization we speak (TS-0009 Accept header)
        headers["Accept"] = _CBOR_RES
    qs = _query(req)
    path = path_for(req.to) + (f"?{qs}" if qs else "")
    return METHODS[req.op], path, headers, body


def decode_response(status: int, headers: Mapping[str, str], body: bytes, rqi: str = "") -> Response:
    """A Response from an HTTP answer; a missing or bad X-M2M-RSC is 5000."""
    raw_rsc = headers.get("X-M2M-RSC")
    pc: Any = None
    if body:
        media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media in CBOR_TYPES:
            try:
                pc = decode_cbor(body)
            except BadRequest as exc:
                pc = {"m2m:dbg": f"peer answered HTTP {status} with CBOR we refuse: {exc.message}"}
        else:
            try:
                pc = json.loads(body)
            except ValueError:
                pc = {"m2m:dbg": f"peer answered HTTP {status} with a body that is not JSON"}
    try:
        rsc = int(raw_rsc) if raw_rsc is not None else 5000
    except ValueError:
        rsc = 5000
    if raw_rsc is None and pc is None:
        pc = {"m2m:dbg": f"peer answered HTTP {status} without X-M2M-RSC"}
    return Response(rsc=rsc, rqi=headers.get("X-M2M-RI", rqi), pc=pc, ot=headers.get("X-M2M-OT"),
                    location=headers.get("Content-Location"), rvi=headers.get("X-M2M-RVI", "3"),
                    cnst=_header_int(headers, "X-M2M-CTS"), cnot=_header_int(headers, "X-M2M-CTO"))


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer header (Content Status/Offset, TS-0009 6.4.20-21); None when absent or malformed."""
    raw = headers.get(name)
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() and len(raw) < 12 else None


# -- receiving ------------------------------------------------------------------


def target_from_path(path: str) -> str:
    """Decode the request-target path into a To value (TS-0009 6.2.2.1).

    Drop the first ``/``; ``~/`` means SP-relative, ``_/`` absolute;
    percent-decoding happens exactly once.
    """
    if not path.startswith("/"):
        raise BadRequest("the request path must start with '/'")
    decoded = unquote(path[1:], errors="strict")
    if decoded.startswith("~/"):
        return decoded[1:]
    if decoded.startswith("_/"):
        return "/" + decoded[1:]
    return decoded


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if depth > limit:
            return True
        children = cur.values() if isinstance(cur, dict) else cur
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


# One decoder for every body: json.loads with a hook builds a new one per call.
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def parse_json_body(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no lone surrogates, at most
    :data:`MAX_JSON_DEPTH` levels of nesting (the two byte counts make the
    walk happen only for bodies with that many brackets at all).

    Anything accepted here can be stored and sent back as valid UTF-8 JSON.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8") from None
    try:
        pc = _decode(text)
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth_over(pc, MAX_JSON_DEPTH):
        raise BadRequest(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(text):
        try:  # surrogate pairs are fine; a lone one cannot be encoded
            json.dumps(pc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("request body contains an unpaired UTF-16 surrogate escape") from None
    return pc


def decode_body(body: bytes, media: str) -> Any:
    """A request body by its media type: CBOR (:func:`cse.core.serialization.decode_cbor`)
    or strict JSON (:func:`parse_json_body`; also when ``media`` is empty);
    4015 naming the supported types for anything else (e.g. XML)."""
    if media in CBOR_TYPES:
        return decode_cbor(body)
    check_media(media)
    return parse_json_body(body)

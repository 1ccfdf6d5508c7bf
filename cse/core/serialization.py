"""Content serializations of primitives: JSON and CBOR (TS-0004 clause 8; TS-0009 media types).

One place that knows the media types and turns a primitive content (``pc``)
into bytes and back, shared by the CSE's HTTP binding, its outbound client
and the AE SDK (which may import only ``cse.core``):

* :func:`decode_cbor` -- CBOR bytes to a value (``cse.core.http_wire.decode_body``
  picks it or the strict JSON parser by media type); it admits only what JSON could carry (maps
  with text keys, arrays, text, integers, finite floats, booleans, null: no
  tags, byte strings, undefined or simple values, no duplicate keys, no
  trailing bytes, at most :data:`MAX_JSON_DEPTH` levels), so the rest of the
  pipeline sees the same values whichever serialization arrived;
* :func:`encode_body` -- a value to bytes of a media type;
* :func:`negotiate` -- the serialization an ``Accept`` header asks for;
* :func:`preferred` -- the first serialization of a ``csz`` list we speak
  (what a notification target gets: the contentSerialization attribute, TS-0004).

XML is not supported (docs/onem2m.md "Serializations"): a body in it is 4015.
The codec is the ``cbor2`` package, not hand-written CBOR.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import cbor2

from .errors import BadRequest, NotAcceptable, UnsupportedMediaType

# No oneM2M resource is nested anywhere near this deep; the limit keeps every
# later recursive walk (validation, copies, serialization) far from Python's
# recursion limit, whatever a client sends (JSON and CBOR alike).
MAX_JSON_DEPTH = 64

__all__ = ["JSON", "CBOR", "CBOR_TYPES", "JSON_TYPES", "SUPPORTED_TYPES", "SUPPORTED_TEXT", "MAX_JSON_DEPTH",
           "is_cbor", "decode_cbor", "encode_body", "negotiate", "preferred", "content_type", "check_media"]

JSON = "application/json"
CBOR = "application/vnd.onem2m-res+cbor"

# The oneM2M CBOR media types (TS-0009) and the generic one of RFC 8949.
CBOR_TYPES = frozenset({
    "application/cbor",
    "application/vnd.onem2m-res+cbor",
    "application/vnd.onem2m-ntfy+cbor",
    "application/vnd.onem2m-preq+cbor",
    "application/vnd.onem2m-prsp+cbor",
})
JSON_TYPES = frozenset({
    "application/json",
    "application/vnd.onem2m-res+json",
    "application/vnd.onem2m-ntfy+json",
    "application/vnd.onem2m-preq+json",
    "application/vnd.onem2m-prsp+json",
})
SUPPORTED_TYPES = JSON_TYPES | CBOR_TYPES
SUPPORTED_TEXT = ("application/json, application/vnd.onem2m-res+json, application/cbor "
                  "or application/vnd.onem2m-res+cbor")

# csz entries (TS-0004 contentSerialization: a list of media types) we can send -> the type we send them as.
_CSZ_SPOKEN = {"application/json": JSON, "application/vnd.onem2m-res+json": JSON,
               "application/cbor": CBOR, "application/vnd.onem2m-res+cbor": CBOR}


def is_cbor(media: str) -> bool:
    """Whether ``media`` (lower case, no parameters) is a CBOR media type."""
    return media in CBOR_TYPES


# -- decoding -------------------------------------------------------------------

class _TagRefused(ValueError):
    """A CBOR tag in a body (none maps to a JSON value; value sharing could build cycles)."""


def _refuse_tag(number: int) -> Callable[[Any], Any]:
    def refuse(_decoder: Any) -> Any:
        raise _TagRefused(f"CBOR tag {number} is not allowed (only values that JSON can carry are)")
    return refuse


def _refuse_unknown_tag(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    raise _TagRefused(f"CBOR tag {tag.tag} is not allowed (only values that JSON can carry are)")


# The tags cbor2 decodes itself (dates, bignums, decimals, value sharing, ...): every one is refused,
# before its content is read. Other tags reach the tag hook, which refuses them too.
_BUILTIN_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
                 43000, 55799)
_SEMANTIC = {n: _refuse_tag(n) for n in _BUILTIN_TAGS}
_SCALARS = (str, bool, int, type(None))


def _not_json(value: Any) -> str | None:
    """What in ``value`` has no JSON equivalent (iterative; the tree is no larger than the body), or None."""
    stack = [value]
    while stack:
        cur = stack.pop()
        if isinstance(cur, _SCALARS):
            continue
        if isinstance(cur, float):
            if not math.isfinite(cur):
                return f"the number {cur} (JSON has no NaN or Infinity)"
        elif isinstance(cur, dict):
            for key in cur:
                if not isinstance(key, str):
                    return f"a map key of type {_cbor_kind(key)} (keys must be text strings)"
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
        else:
            return f"a value of type {_cbor_kind(cur)}"
    return None


def _cbor_kind(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "byte string"
    if value is cbor2.undefined:
        return "undefined"
    if isinstance(value, cbor2.CBORSimpleValue):
        return "simple value"
    return type(value).__name__


def _reason(exc: BaseException) -> str:
    """Our own words when a tag was refused (wherever cbor2 chained it), else cbor2's."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, _TagRefused):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "semantic tag" in text:
        return f"{text} (CBOR tags are not allowed: only values that JSON can carry are)"
    return text


def decode_cbor(body: bytes) -> Any:
    """One CBOR data item holding only JSON-compatible values (module docstring); 4000 otherwise."""
    stream = io.BytesIO(body)
    decoder = cbor2.CBORDecoder(stream, tag_hook=_refuse_unknown_tag, semantic_decoders=_SEMANTIC,
                                max_depth=MAX_JSON_DEPTH, allow_duplicate_keys=False,
                                strict_hashable_types=True)
    try:
        value = decoder.decode()
    except cbor2.CBORDecodeEOF:
        raise BadRequest("request body is not valid CBOR: it ends in the middle of a data item") from None
    except (cbor2.CBORDecodeError, RecursionError) as exc:
        reason = _reason(exc)
        if "depth" in reason:
            reason = f"it is nested more than {MAX_JSON_DEPTH} levels deep"
        raise BadRequest(f"request body is not valid CBOR: {reason[:200]}") from None
    if stream.tell() != len(body):
        raise BadRequest(f"request body is not valid CBOR: {len(body) - stream.tell()} byte(s) "
                         "after the first data item")
    bad = _not_json(value)
    if bad is not None:
        raise BadRequest(f"request body holds {bad}, which has no JSON equivalent")
    return value


# -- encoding -------------------------------------------------------------------

# no cycle check (cse.store.journal: content is never cyclic): every answer body is encoded here
_compact_utf8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def encode_body(pc: Any, media: str) -> bytes:
    """``pc`` as bytes of ``media`` (CBOR for a CBOR type, compact UTF-8 JSON otherwise)."""
    if media in CBOR_TYPES:
        return cbor2.dumps(pc)
    try:
        return _compact_utf8(pc).encode("utf-8")
    except UnicodeEncodeError:  # never expected (input is checked); stay valid JSON anyway
        return json.dumps(pc, separators=(",", ":")).encode("ascii")


def content_type(media: str) -> str:
    """The Content-Type to label a body of ``media`` with (JSON family -> as given or application/json)."""
    if media in CBOR_TYPES or media == "application/vnd.onem2m-res+json":
        return media
    return JSON


# -- negotiation ------------------------------------------------------------------

_FAST_ACCEPT = {"application/json": JSON, "application/vnd.onem2m-res+json": "application/vnd.onem2m-res+json",
                "application/cbor": "application/cbor", CBOR: CBOR}


def negotiate(accept: str | None, request_media: str = JSON) -> str:
    """The media type of the answer to a request with ``Accept: accept`` whose
    body was ``request_media``: the supported type with the highest ``q``
    (ties: the first listed); ``*/*``, ``application/*`` or no header answer in
    the request's serialization (JSON when it had no body). Nothing supported:
    5207 (HTTP 406) naming what is."""
    if not accept:
        return request_media if request_media in SUPPORTED_TYPES else JSON
    fast = _FAST_ACCEPT.get(accept)
    if fast is not None:
        return fast
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(accept.split(",")):
        kind, *params = [p.strip() for p in item.split(";")]
        kind = kind.lower()
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not q > 0.0:
            continue
        if kind in ("*/*", "application/*"):
            chosen = request_media if request_media in SUPPORTED_TYPES else JSON
        elif kind in SUPPORTED_TYPES:
            chosen = kind
        else:
            continue
        if best is None or q > best[0]:
            best = (q, index, chosen)
    if best is None:
        raise NotAcceptable(f"cannot answer in {accept[:80]}: the supported serializations are {SUPPORTED_TEXT}")
    return best[2]


def preferred(csz: Iterable[Any] | None) -> str:
    """The first ``csz`` entry we can send (JSON or CBOR), JSON when none is or ``csz`` is absent."""
    for entry in csz or ():
        spoken = _CSZ_SPOKEN.get(str(entry).strip().lower())
        if spoken is not None:
            return spoken
    return JSON


def check_media(media: str) -> None:
    """4015 naming what is supported when ``media`` (a body's type) is neither JSON nor CBOR."""
    if media and media not in SUPPORTED_TYPES:
        raise UnsupportedMediaType(f"content type '{media[:60]}' is not supported: use {SUPPORTED_TEXT}")

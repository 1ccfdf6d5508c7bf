"""Bad input at a live CSE: thousands of malformed requests, zero 5000s.

Why (bad input): a CSE faces whatever bytes reach its port.
Whatever they are -- a broken request line, garbage X-M2M-* headers,
invalid Content-Type ``ty``, invalid or wrongly shaped JSON (or CBOR) for every
resource type, deep nesting, bodies over the limit, non-UTF-8 bytes,
percent-encoding garbage, repeated or invalid query parameters, session
headers -- the answer must be a valid oneM2M error (``X-M2M-RSC``, the
TS-0009 HTTP status, ``m2m:dbg``), never 5000, never a crash, never a hang,
and the CSE must keep serving. Each example is checked by
:func:`tests.robustness.rawhttp.check_reply`; the module ends by retrieving
the CSEBase and stopping the CSE cleanly (exit code 0) with no traceback in
its log.

One CSE process serves the whole module (starting one per example would
measure process start-up, not robustness). Admin is the usual originator,
so requests get past access control and reach validation and the store;
other originators are mixed in. Every URL the fuzz can make the CSE contact
(``nu``, ``poa``, ``X-M2M-RTU``) is a closed loopback port: random text
never contains ``:``, so it can never form a URL.

CI: derandomized, a bit under 2,000 examples in all. ``--long``: random,
over 20,000.
"""

from __future__ import annotations

import json
import socket
import string
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.notify_receiver import closed_url
from tests.robustness.rawhttp import SyncCSE, check_reply, exchange, read_reply, request_bytes

ADMIN = "CAdmin"
MAX_BODY = 65536  # small limit for the fuzz CSE: oversized bodies stay cheap to send
DEAD_URL = closed_url("/fuzz")

# resource short names (resources/types/*.json) and their attributes
TYPES: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("acp", ("pv", "pvs")),
    2: ("ae", ("api", "aei", "apn", "rr", "srv", "poa", "csz", "nl", "or", "regs", "scp")),
    3: ("cnt", ("mni", "mbs", "mia", "cni", "cbs", "li", "disr", "or")),
    4: ("cin", ("cnf", "cs", "con", "conr", "or")),
    5: ("cb", ("cst", "csi", "srt", "poa", "nl", "csz", "srv", "scp", "ctm")),
    16: ("csr", ("cb", "csi", "cst", "rr", "srv", "poa", "dcse", "csz", "nl", "scp")),
    17: ("req", ("op", "tg", "org", "rid", "mi", "pc", "rs", "ors")),
    23: ("sub", ("nu", "enc", "nct", "exc", "su", "ln", "bn", "nec")),
    9001: ("sesc", ()),
    9002: ("sess", ("sid", "iep", "tep", "sst", "sec", "scr", "hst", "rqn", "epa")),
    9003: ("sep", ("aei", "csi", "rol", "epa")),
    9004: ("nhp", ("csi", "poa", "aei", "nst")),
    9005: ("spc", ()),
    9006: ("spo", ("spt", "sch", "hop", "aep", "ops", "mbd", "mbr")),
}
UNIVERSAL = ("ty", "ri", "rn", "pi", "ct", "lt", "et", "lbl", "acpi", "cr", "st")
ALL_ATTRS = sorted({a for _, attrs in TYPES.values() for a in attrs} | set(UNIVERSAL)
                   | {"acr", "acor", "acop", "acco", "actw", "net", "atr", "chty", "num", "dur", "sce", "se"})

# -- strategies ----------------------------------------------------------------------

SAFE_TEXT = string.ascii_letters + string.digits + " -_.~*+!$'(),;=@[]{}\"\\#?&%é€😀\u0000\t"
text = st.text(alphabet=SAFE_TEXT, max_size=40)
# values that mean something to the CSE, to get past the first checks
SPECIAL_STRINGS = st.sampled_from([
    "", "CAdmin", "C", "Cfuzz", "/id-in", "/id-in/Cfuzz", "/id-other", "cse-in", "cse-in/fz",
    "20301231T000000", "19700101T000000", "PT1S", "1000", "-1", "smg", "3", "2a", "application/json",
    "text/plain:0", DEAD_URL, "* * * * * * *", "99 99 99 99 99 99 99", "la", "ol", "..", ".", "/",
    "a" * 5000,
])
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-3, 70000)
           | st.floats(allow_nan=False, allow_infinity=False) | text | SPECIAL_STRINGS)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(ALL_ATTRS) | text, inner, max_size=4),
    max_leaves=12)


@st.composite
def resource_bodies(draw: Any) -> tuple[int | None, bytes]:
    """(ty for Content-Type, body): a resource of some type with attributes
    of the wrong (or right) shape, or something that is not a resource."""
    ty = draw(st.sampled_from(sorted(TYPES)))
    sn, attrs = TYPES[ty]
    kind = draw(st.integers(0, 9))
    if kind <= 5:  # the right root, random attribute values
        names = st.sampled_from(attrs + UNIVERSAL) if attrs else st.sampled_from(UNIVERSAL)
        content = draw(st.dictionaries(names | text, json_values, max_size=6))
        doc: Any = {f"m2m:{sn}": content}
    elif kind == 6:  # a different root or several roots
        doc = draw(st.dictionaries(st.sampled_from([f"m2m:{s}" for s, _ in TYPES.values()]) | text,
                                   json_values, max_size=3))
    elif kind == 7:  # not an object at all
        doc = draw(json_values)
    elif kind == 8:  # deep nesting inside an attribute
        depth = draw(st.sampled_from([10, 63, 64, 65, 100, 500, 900, 990, 1100, 5000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        attr = draw(st.sampled_from((*attrs, "lbl") if attrs else ("lbl",)))
        raw = f'{{"m2m:{sn}":{{"{attr}":{inner}}}}}'
        return ty, raw.encode()
    else:  # a big attribute value, below or above the body limit
        size = draw(st.sampled_from([1000, MAX_BODY - 100, MAX_BODY + 1, 3 * MAX_BODY]))
        attr = draw(st.sampled_from(("con", "lbl", "rn", "api")))
        doc = {f"m2m:{sn}": {attr: "x" * size}}
    return ty, json.dumps(doc).encode()


raw_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.sampled_from([b"{", b"}", b"null", b"[]", b"NaN", b'{"m2m:cnt": NaN}', b'{"m2m:cnt": Infinity}',
                     b'{"m2m:cnt": {"lbl": ["\\ud800"]}}', b'{"m2m:cnt": {"rn": "\\u0000"}}',
                     b"\xff\xfe{\x00}", '{"m2m:cnt":{"rn":"é"}}'.encode("latin-1"),
                     b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", b" " * 1000, b"1e999999"]),
)

FIXED_PATHS = ["/cse-in", "/cse-in/fz", "/cse-in/fz/cnt", "/cse-in/fz/cnt/la", "/cse-in/fz/cnt/ol",
               "/cse-in/fz/acp", "/cse-in/fz/sessions", "/cse-in/sessions", "/-/fz/cnt", "/~/id-in/cse-in/fz",
               "/_/sp.example/id-in/cse-in", "/~/id-other/cse-x/y", "/~/id-in", "/~/", "/_/", "/", "//",
               "/cse-in//fz", "/cse-in/./fz", "/cse-in/../x", "/cse-in/fz/cnt/la/x", "/id-in", "/cse-in/fz/sub"]


@st.composite
def paths(draw: Any) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind <= 2:
        path = draw(st.sampled_from(FIXED_PATHS))
    elif kind == 3:  # percent-encoding garbage
        parts = draw(st.lists(st.one_of(
            st.binary(min_size=1, max_size=3).map(lambda b: "".join(f"%{c:02X}" for c in b)),
            st.sampled_from(["%", "%2", "%zz", "%00", "%2F", "%C0%AF", "%ED%A0%80", "~", "_", ".", ".."]),
            st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/", max_size=8)),
            max_size=6))
        path = "/" + draw(st.sampled_from(["", "cse-in/", "~/id-in/", "_/"])) + "".join(parts)
    else:
        path = "/" + draw(st.text(alphabet=string.ascii_letters + string.digits + "-._~/%", max_size=60))
    return path.encode()


QUERY_KEYS = ["rcn", "fu", "lim", "ty", "cra", "crb", "ms", "us", "exa", "exb", "sts", "stb", "sza", "szb",
              "lbl", "drt", "rt", "lvl", "ofst", "fo", "cty", "arp", "atrl", "rp", "rqet", "rset", "oet",
              "sessionID", "rn", "con", "da", "smf", "c.rn", "p.rn", "x", ""]
QUERY_VALUES = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "8", "9", "11", "12", "13", "-1", "", "+", "1+2",
                     "2 3", "99999999999999999999", "abc", "20300101T000000", "*", "room:kitchen", "la",
                     "%ff", "%", "%zz", "1.5", "0x10", "١", "²"]),
    st.integers(-5, 100).map(str),
    st.text(alphabet=string.ascii_letters + string.digits + "%+*:-.", max_size=20))


@st.composite
def queries(draw: Any) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=6))
    qs = "&".join(f"{k}={v}" if draw(st.booleans()) or v else k for k, v in pairs)
    return (("?" + qs) if qs or draw(st.booleans()) else "").encode()


def header_value(*valid: str) -> Any:
    """Absent (None), a valid value, or garbage (text, huge, non-UTF-8 bytes)."""
    return st.one_of(
        st.none(), st.sampled_from(valid).map(str.encode), text.map(lambda t: t.encode()),
        st.sampled_from([b"", b"\xff\xfe", b"caf\xe9", b"\xc3\x28", b"a" * 5000, b"a" * 9000,
                         "é€".encode(), b" padded ", b"\x7f"]))


@st.composite
def m2m_headers(draw: Any) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """X-M2M-* and content headers; returns them and the X-M2M-RI sent."""
    hdrs: list[tuple[bytes, bytes]] = []
    fields: list[tuple[bytes, Any]] = [
        (b"X-M2M-Origin", st.one_of(st.just(ADMIN.encode()), header_value(
            ADMIN, "C", "Cfuzz", "Cnobody", "/id-in", "/id-other", "/id-in/Cfuzz", "S", "//sp/id-in/C"))),
        (b"X-M2M-RI", st.one_of(st.from_regex(r"\Afz[0-9]{1,6}\Z").map(str.encode), header_value("1"))),
        (b"X-M2M-RVI", st.one_of(st.just(b"3"), header_value("1", "2", "2a", "3", "4", "5", "6"))),
        (b"X-M2M-RTU", header_value(DEAD_URL, "", "&&", "Cfuzz", DEAD_URL + "&" + DEAD_URL)),
        (b"X-M2M-RET", header_value("PT1S", "20300101T000000", "19700101T000000", "1000", "-1", "99999999999")),
        (b"X-M2M-RST", header_value("PT1S", "20300101T000000", "19700101T000000", "1000", "-1")),
        # a near OET is waited for (real time, on this live CSE): keep it short
        (b"X-M2M-OET", header_value("PT0.02S", "20300101T000000", "20", "-1")),
        (b"X-M2M-OT", header_value("20300101T000000", "19700101T000000", "now")),
        (b"X-M2M-EC", header_value("2", "3", "4", "100", "999", "0", "-1", "1e3")),
        (b"X-M2M-VSI", header_value("v")),
        (b"X-M2M-SID", header_value("abc", "", "x" * 64)),
        (b"X-M2M-SMAC", header_value("abc", "")),
        (b"X-M2M-GID", header_value("g1")),
        (b"Accept", header_value("application/json", "*/*", "text/html", "application/xml",
                                 "application/json;q=0", "application/vnd.onem2m-res+json, text/plain",
                                 "application/cbor", "application/vnd.onem2m-res+cbor;q=0.5, application/json",
                                 "application/cbor;q=0")),
        (b"Content-Encoding", st.one_of(st.none(), st.none(), st.none(),
                                        st.sampled_from([b"gzip", b"deflate", b"br", b"identity", b"zz"]))),
    ]
    for name, strategy in fields:
        value = draw(strategy)
        if value is not None:
            hdrs.append((name, value))
    rqi = next((v for n, v in hdrs if n == b"X-M2M-RI"), None)
    sent_rqi = rqi.decode() if rqi is not None and rqi.isascii() and rqi.isalnum() else None
    return hdrs, sent_rqi


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "application/vnd.onem2m-res+json", "text/plain", "application/xml",
                     "application/cbor", "", ";", "application/json;ty=", "application/json;ty=abc",
                     "application/json;ty=-1", "application/json;ty=99999999999999999999",
                     "application/json; ty = 3", "application/json;ty=3;ty=4", "application/json;ty=\"3\"",
                     "application/json;charset=latin-1;ty=3", "APPLICATION/JSON;TY=3", "application/json;ty=0",
                     "application/json;ty=١", "application/vnd.onem2m-res+cbor", "application/cbor;ty=2",
                     "application/vnd.onem2m-res+cbor;ty=abc", "application/vnd.onem2m-res+xml;ty=3"]),
    st.sampled_from([*sorted(TYPES), 0, 6, 15, 18, 9000, 9007]).map(lambda t: f"application/json;ty={t}"),
    st.sampled_from([*sorted(TYPES), 0, 9007]).map(lambda t: f"application/vnd.onem2m-res+cbor;ty={t}"),
)
METHODS = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]),
                    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH",
                                     b"TRACE", b"get", b"FOO", b"M-SEARCH", b"PROPFIND"]))


def _as_cbor(body: bytes, damage: int) -> bytes:
    """The same content as CBOR (when it is JSON at all), then cut, padded or tagged."""
    try:
        data = cbor2.dumps(json.loads(body))
    except ValueError:
        return body
    if damage == 1:
        return data[: max(1, len(data) // 2)]      # truncated
    if damage == 2:
        return data + b"\x00"                       # trailing bytes
    if damage == 3:
        return b"\xc1" + data                       # wrapped in a tag (an epoch date of a map)
    return data


@st.composite
def m2m_requests(draw: Any) -> tuple[bytes, bytes, str | None]:
    """A well-framed HTTP request with bad (or good) oneM2M content."""
    method = draw(METHODS)
    target = draw(paths()) + draw(queries())
    hdrs, rqi = draw(m2m_headers())
    ty, body = draw(resource_bodies() | raw_bodies.map(lambda b: (None, b)))
    ctype = draw(CONTENT_TYPES)
    if ctype is None and ty is not None and draw(st.booleans()):
        ctype = f"application/json;ty={ty}"
    if ctype is not None and "cbor" in ctype and draw(st.booleans()):
        body = _as_cbor(body, draw(st.integers(0, 3)))
    if ctype is not None:
        hdrs.append((b"Content-Type", ctype.encode()))
    if method in (b"GET", b"DELETE", b"HEAD") and draw(st.booleans()):
        body = b""
    return method, request_bytes(method, target, hdrs, body), rqi


# Broken HTTP: the parser's own rejections must be oneM2M errors too.
GOOD_HEAD = b"X-M2M-Origin: CAdmin\r\nX-M2M-RI: fz1\r\nX-M2M-RVI: 3\r\n"
BROKEN = [
    b"\x00\x01\x02 hello\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /cse-in\r\n\r\n",
    b"GET /cse-in HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /cse-in XTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET  /cse-in  HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\n" + GOOD_HEAD + b"Bad Header\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\n" + GOOD_HEAD + b"X-M2M-Origin : CAdmin\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\n" + GOOD_HEAD + b" folded: x\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CA\x00dmin\r\nX-M2M-RI: 1\r\nX-M2M-RVI: 3\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-RI: 1\x01\r\nX-M2M-RVI: 3\r\n\r\n",
    b"GET /cse-in/\xff HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"\r\n",
    b"GET /cse-in/a b HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"\r\n",
    b"GET http://127.0.0.1/cse-in HTTP/1.1\r\n" + GOOD_HEAD + b"\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"\r\n",
    b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Content-Length: abc\r\n\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Content-Length: -5\r\n\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD
    + b"Content-Type: application/json;ty=3\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD
    + b"Content-Type: application/json;ty=3\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD
    + b"Content-Type: application/json;ty=3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD
    + b"Content-Type: application/json;ty=3\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % (MAX_BODY + 10) + b"a" * (MAX_BODY + 10) + b"\r\n0\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /cse-in?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"\r\n",
    b"GET /cse-in?" + b"&".join(b"k%d=1" % i for i in range(1500)) + b" HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD
    + b"\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"".join(b"X-H%d: 1\r\n" % i for i in range(300))
    + b"\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /cse-in HTTP/1.1\r\nHost: x\r\n" + GOOD_HEAD + b"Expect: 100-continue\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
]


@st.composite
def broken_requests(draw: Any) -> bytes:
    base = draw(st.sampled_from(BROKEN))
    if draw(st.booleans()):
        return base
    # mutate: flip, insert or delete a few bytes of a well-formed request
    data = bytearray(request_bytes(b"POST", b"/cse-in/fz", [
        (b"X-M2M-Origin", b"CAdmin"), (b"X-M2M-RI", b"fz1"), (b"X-M2M-RVI", b"3"),
        (b"Content-Type", b"application/json;ty=3")], b'{"m2m:cnt":{}}'))
    head_end = data.index(b"\r\n\r\n")
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, head_end - 1))
        action = draw(st.integers(0, 2))
        byte = draw(st.integers(0, 255))
        if action == 0:
            data[pos] = byte
        elif action == 1:
            data.insert(pos, byte)
        else:
            del data[pos]
        head_end = data.find(b"\r\n\r\n")
        if head_end <= 0:
            break
    return bytes(data)


# -- the live CSE --------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncCSE]:
    cse = SyncCSE(tmp_path_factory.mktemp("fuzz-cse"), max_body=MAX_BODY)
    cse.start()
    ensure_fixtures(cse)
    try:
        yield cse
        assert cse.alive, "the CSE exited during the fuzz:\n" + "".join(cse.lines[-40:])
        final = exchange(cse.port, request_bytes(b"GET", b"/cse-in", [
            (b"X-M2M-Origin", b"CAdmin"), (b"X-M2M-RI", b"final"), (b"X-M2M-RVI", b"3")]))
        assert check_reply(final, sent_rqi="final") == 2000
    finally:
        code = cse.stop()
    assert code == 0, "".join(cse.lines[-40:])
    assert not cse.tracebacks(), "internal errors logged:\n" + "".join(cse.lines[-80:])


def _send(cse: SyncCSE, method: bytes, path: str, body: Any = None, ty: int | None = None,
          fr: str = ADMIN) -> int:
    hdrs = [(b"X-M2M-Origin", fr.encode()), (b"X-M2M-RI", b"setup"), (b"X-M2M-RVI", b"3")]
    if ty is not None:
        hdrs.append((b"Content-Type", f"application/json;ty={ty}".encode()))
    elif body is not None:
        hdrs.append((b"Content-Type", b"application/json"))
    data = json.dumps(body).encode() if body is not None else b""
    return check_reply(exchange(cse.port, request_bytes(method, path.encode(), hdrs, data)), method=method)


def ensure_fixtures(cse: SyncCSE) -> None:
    """AE ``fz`` (AE-ID ``Cfuzz``) with a container holding an instance and an
    ACP, so paths reach real resources; idempotent (4105/4117: already there)."""
    assert _send(cse, b"POST", "/cse-in", {"m2m:ae": {"rn": "fz", "api": "Nfz", "rr": True, "srv": ["3"],
                                                      "poa": [DEAD_URL], "scp": ["smg"]}},
                 ty=2, fr="Cfuzz") in (2001, 4105, 4117)
    assert _send(cse, b"POST", "/cse-in/fz", {"m2m:cnt": {"rn": "cnt", "mni": 5}}, ty=3) in (2001, 4105)
    assert _send(cse, b"POST", "/cse-in/fz/cnt", {"m2m:cin": {"con": "1"}}, ty=4) == 2001
    assert _send(cse, b"POST", "/cse-in/fz", {"m2m:acp": {
        "rn": "acp", "pv": {"acr": [{"acor": ["all"], "acop": 2}]},
        "pvs": {"acr": [{"acor": ["Cfuzz"], "acop": 63}]}}}, ty=1) in (2001, 4105)


def _examples(long_run: bool, ci: int, long: int) -> settings:
    return settings(max_examples=long if long_run else ci, deadline=None, derandomize=not long_run,
                    database=None, suppress_health_check=list(HealthCheck))


class TestFuzzHttp:
    """The counts: CI 1,200 + 400 + 300 = 1,900 examples; --long 14,000 + 4,000 + 3,000 = 21,000."""

    def test_well_framed_requests_with_bad_onem2m_content(self, live: SyncCSE, long_run: bool) -> None:
        @_examples(long_run, 1200, 14000)
        @given(m2m_requests())
        def run(case: tuple[bytes, bytes, str | None]) -> None:
            method, data, rqi = case
            rsc = check_reply(exchange(live.port, data, head=method == b"HEAD"), method=method, sent_rqi=rqi)
            if method == b"DELETE" and rsc == 2002:
                ensure_fixtures(live)  # keep something to aim at
            assert not live.tracebacks(), "".join(live.lines[-30:])
        run()

    def test_broken_http_is_answered_as_onem2m_error(self, live: SyncCSE, long_run: bool) -> None:
        @_examples(long_run, 400, 4000)
        @given(broken_requests())
        def run(data: bytes) -> None:
            check_reply(exchange(live.port, data), method=data.split(b" ", 1)[0])
            assert not live.tracebacks(), "".join(live.lines[-30:])
        run()

    def test_pipelined_and_repeated_requests_on_one_connection(self, live: SyncCSE, long_run: bool) -> None:
        """Several requests on one keep-alive connection: each answered, in order."""
        @_examples(long_run, 300, 3000)
        @given(st.lists(m2m_requests(), min_size=2, max_size=4))
        def run(cases: list[tuple[bytes, bytes, str | None]]) -> None:
            with socket.create_connection(("127.0.0.1", live.port), timeout=15) as sock:
                for method, data, rqi in cases:
                    keep = data.replace(b"Connection: close\r\n", b"", 1)
                    sock.sendall(keep)
                    reply = read_reply(sock, head=method == b"HEAD")
                    rsc = check_reply(reply, method=method, sent_rqi=rqi)
                    if method == b"DELETE" and rsc == 2002:
                        ensure_fixtures(live)
                    if reply.headers.get("connection", "").lower() == "close" or reply.version == "HTTP/1.0":
                        break  # the server ends the connection after a parse error: fine
        run()

"""Request size limits, each answered with a clear oneM2M error.

Why: a limit that is hit must be a 4000 (or 5207 where the
resource itself says "too big") with an ``m2m:dbg`` naming the limit -- not
a crash, a bare 413, a hang or a 5000. The limits in effect (see
docs/troubleshooting.md "Limits"):

* body: ``http.max_body`` (default 1 MiB), with or without Content-Length;
* request line (URL with query): 8190 bytes; one header line: 8190 bytes;
  at most 128 header lines (aiohttp's parser limits, answered 4000);
* an ``X-M2M-*`` (or Content-Type/Accept) header value: 4096 characters;
* JSON nesting: 64 levels (``cse.core.http_wire.MAX_JSON_DEPTH``);
* the number of query parameters: bounded by the URL limit;
* an attribute value (``con``): bounded by the body limit, and by the
  container's ``mbs`` (5207).

Also the regressions of the bugs the fuzz found: an undecodable body
(bad ``Content-Encoding``) was a 5000 and kept the connection, malformed
HTTP was logged at ERROR with a traceback.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.robustness.rawhttp import SyncCSE, check_reply, exchange, read_reply, request_bytes

MIB = 1024 * 1024
H = [(b"X-M2M-Origin", b"CAdmin"), (b"X-M2M-RI", b"lim"), (b"X-M2M-RVI", b"3")]


@pytest.fixture(scope="module")
def cse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncCSE]:
    proc = SyncCSE(tmp_path_factory.mktemp("limits"))  # default config: max_body 1 MiB
    proc.start()
    try:
        setup = [(b"Content-Type", b"application/json;ty=3")]
        body = json.dumps({"m2m:cnt": {"rn": "big", "mbs": 2 * MIB}}).encode()
        assert check_reply(exchange(proc.port, request_bytes(b"POST", b"/cse-in", H + setup, body))) == 2001
        body = json.dumps({"m2m:cnt": {"rn": "small", "mbs": 100}}).encode()
        assert check_reply(exchange(proc.port, request_bytes(b"POST", b"/cse-in", H + setup, body))) == 2001
        yield proc
        assert proc.alive
    finally:
        assert proc.stop() == 0
    assert not proc.tracebacks(), "".join(proc.lines[-40:])


def dbg(reply: object) -> str:
    return str(json.loads(reply.body)["m2m:dbg"])  # type: ignore[attr-defined]


def cin(con: str) -> bytes:
    return json.dumps({"m2m:cin": {"con": con}}).encode()


CIN = [(b"Content-Type", b"application/json;ty=4")]


def test_body_at_the_limit_is_taken_and_one_byte_more_is_4000(cse: SyncCSE) -> None:
    at = cin("x" * (MIB - len(cin(""))))
    assert len(at) == MIB
    ok = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN, at))
    assert check_reply(ok) == 2001

    over = cin("x" * (MIB - len(cin("")) + 1))
    reply = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN, over))
    assert check_reply(reply) == 4000
    assert "exceeds the limit of 1048576 bytes" in dbg(reply)
    assert reply.headers.get("connection", "").lower() == "close"  # the rest is not read


def test_chunked_body_over_the_limit_is_4000(cse: SyncCSE) -> None:
    data = cin("y" * (MIB + 10))
    chunks = b"".join(b"%x\r\n" % len(data[i:i + 65536]) + data[i:i + 65536] + b"\r\n"
                      for i in range(0, len(data), 65536)) + b"0\r\n\r\n"
    raw = request_bytes(b"POST", b"/cse-in/big", H + CIN + [(b"Transfer-Encoding", b"chunked")], b"",
                        content_length=False) + chunks
    reply = exchange(cse.port, raw)
    assert check_reply(reply) == 4000
    assert "exceeds the limit" in dbg(reply)


def test_con_larger_than_the_container_mbs_is_5207(cse: SyncCSE) -> None:
    reply = exchange(cse.port, request_bytes(b"POST", b"/cse-in/small", H + CIN, cin("z" * 101)))
    assert check_reply(reply) == 5207
    assert "mbs" in dbg(reply) or "100" in dbg(reply)


@pytest.mark.parametrize("what, raw, needle", [
    ("URL over 8190 bytes", b"GET /cse-in?lbl=" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n", b"8190"),
    ("1,500 query parameters", b"GET /cse-in?" + b"&".join(b"lbl=%d" % i for i in range(1500))
     + b" HTTP/1.1\r\nHost: x\r\n", b"8190"),
    ("a header line over 8190 bytes", b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 8200 + b"\r\n",
     b"8190"),
    ("129 header lines", b"GET /cse-in HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(129)),
     b"headers"),
])
def test_http_parser_limits_are_4000(cse: SyncCSE, what: str, raw: bytes, needle: bytes) -> None:
    head = b"X-M2M-Origin: CAdmin\r\nX-M2M-RI: lim\r\nX-M2M-RVI: 3\r\n"
    reply = exchange(cse.port, raw + head + b"\r\n")
    assert check_reply(reply) == 4000, what
    assert needle.decode() in dbg(reply), (what, dbg(reply))


def test_onem2m_header_value_over_4096_characters_is_4000(cse: SyncCSE) -> None:
    reply = exchange(cse.port, request_bytes(b"GET", b"/cse-in", [
        (b"X-M2M-Origin", b"C" + b"a" * 4100), (b"X-M2M-RI", b"lim"), (b"X-M2M-RVI", b"3")]))
    assert check_reply(reply) == 4000
    assert "X-M2M-Origin" in dbg(reply) and "4096" in dbg(reply)


def test_json_nesting_deeper_than_64_levels_is_4000(cse: SyncCSE) -> None:
    def nested(levels: int) -> bytes:  # the whole body nests `levels` deep
        inner = levels - 2  # {"m2m:cin": {"con": ...}} is two levels
        return b'{"m2m:cin":{"con":' + b"[" * inner + b"1" + b"]" * inner + b"}}"
    ok = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN, nested(64)))
    assert check_reply(ok) == 2001
    for levels in (65, 900, 5000):
        reply = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN, nested(levels)))
        assert check_reply(reply) == 4000, levels
        assert "nested" in dbg(reply), dbg(reply)


def test_body_with_an_undecodable_content_encoding_is_4000_and_closes(cse: SyncCSE) -> None:
    """Regression: aiohttp's decoding error escaped the handler as a 5000."""
    with socket.create_connection(("127.0.0.1", cse.port), timeout=15) as sock:
        sock.sendall(request_bytes(b"POST", b"/cse-in/big", H + CIN + [(b"Content-Encoding", b"gzip")],
                                   b"not gzip", version=b"HTTP/1.1").replace(b"Connection: close\r\n", b""))
        reply = read_reply(sock)
        assert check_reply(reply) == 4000
        assert "content-encoding" in dbg(reply).lower()
        assert reply.headers.get("connection", "").lower() == "close"
        assert sock.recv(10) == b""  # and the server did close it


def test_a_gzip_encoded_body_is_decoded_and_limited_by_its_decoded_size(cse: SyncCSE) -> None:
    """The body arrives whole with the headers (the fast path): it is the
    decoded body that is parsed and held to max_body."""
    small = gzip.compress(cin("zipped"))
    reply = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN + [(b"Content-Encoding", b"gzip")],
                                             small))
    assert check_reply(reply, method=b"POST") == 2001 and json.loads(reply.body)["m2m:cin"]["con"] == "zipped"
    bomb = gzip.compress(cin("x" * (MIB + 10)))  # ~1 KiB on the wire, over 1 MiB decoded
    reply = exchange(cse.port, request_bytes(b"POST", b"/cse-in/big", H + CIN + [(b"Content-Encoding", b"gzip")],
                                             bomb))
    assert check_reply(reply, method=b"POST") == 4000 and "limit" in dbg(reply), dbg(reply)


def test_malformed_http_is_not_logged_as_an_error(cse: SyncCSE) -> None:
    """Regression: every bad request line was an ERROR log with a traceback."""
    for raw in (b"GET /cse-in HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"\x00\x01 x\r\n\r\n",
                b"GET /a\xff HTTP/1.1\r\nHost: x\r\n\r\n"):
        assert check_reply(exchange(cse.port, raw)) == 4000
    final = exchange(cse.port, request_bytes(b"GET", b"/cse-in", H))
    assert check_reply(final) == 2000
    assert not cse.tracebacks(), "".join(cse.lines[-20:])


def test_limits_documented() -> None:
    """The numbers above are the ones the troubleshooting guide states."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    for needle in ("max_body", "8190", "128", "4096", "64 levels"):
        assert needle in text, needle


def test_a_body_that_stops_arriving_is_a_4008_and_the_connection_closes(tmp_path: Path) -> None:
    """Headers promise 100 bytes, 10 come, then nothing: without a body
    timeout the connection (and its task) would be held forever."""
    proc = SyncCSE(tmp_path / "slow", extra="")
    proc.extra_http = lambda: "body_timeout_s = 0.5\nkeepalive_s = 5\n"  # type: ignore[method-assign]
    proc.start()
    try:
        full = request_bytes(b"POST", b"/cse-in", [*H, (b"Content-Type", b"application/json;ty=3")], b"{" * 100)
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(full[:-90])  # the headers and 10 of the 100 body bytes
            reply = read_reply(sock)
            assert reply.rsc == 4008 and "not received within 0.5 s" in dbg(reply), reply
            # the rest of that body can never be framed: the connection ends
            # (aiohttp lingers up to 10 s for the remaining bytes, then closes)
            assert reply.headers.get("connection", "").lower() == "close", reply.headers
        assert proc.alive
    finally:
        assert proc.stop() == 0

"""Idle and slow connections cannot lock clients out (docs/security.md "Limits").

Why: about 1,200 idle connections made a CSE unreachable for ~75 s. Every
connection holds a file descriptor until aiohttp's keep-alive timeout; once
the process ran out of them, ``accept`` failed for everybody (asyncio logged
"socket.accept() out of system resource") until the idle ones timed out.
Now a request head must be complete within ``limits.header_timeout_s``,
connections are counted per peer address and in total, and one beyond a
limit is answered at once with HTTP 503 and ``X-M2M-RSC: 5207`` and closed.

End to end against a real CSE process. The attacker's connections come
from ``127.0.0.2`` (still loopback; the CSE listens on 127.0.0.1) where a
test needs a normal client at another address than the attacker.
"""

from __future__ import annotations

import json
import resource
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.robustness.rawhttp import SyncCSE, exchange, read_reply, request_bytes

H = [(b"X-M2M-Origin", b"CAdmin"), (b"X-M2M-RI", b"conn"), (b"X-M2M-RVI", b"3")]
GET = request_bytes(b"GET", b"/cse-in", H)
ATTACKER = "127.0.0.2"


@pytest.fixture
def cse(tmp_path: Path) -> Iterator[SyncCSE]:
    proc = SyncCSE(tmp_path / "conn", extra=("\n[limits]\nheader_timeout_s = 1.0\nmax_connections = 60\n"
                                             "max_connections_per_peer = 30\n"))
    proc.start()
    try:
        yield proc
        assert proc.alive
    finally:
        assert proc.stop() == 0
    assert not proc.tracebacks(), "".join(proc.lines[-40:])


def _open(port: int, n: int, stack: ExitStack, source: str = "127.0.0.1") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)))
        socks.append(s)
    return socks


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` for the server to close ``sock`` (EOF)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_connection_beyond_the_per_address_limit_gets_a_clean_503_until_idle_ones_time_out(cse: SyncCSE) -> None:
    with ExitStack() as stack:
        idle = _open(cse.port, 30, stack)  # the most one address may hold
        with socket.create_connection(("127.0.0.1", cse.port), timeout=10) as extra:
            extra.sendall(GET)
            reply = read_reply(extra)
        assert reply.status == 503 and reply.rsc == 5207, reply
        assert reply.headers.get("retry-after") == "1" and reply.headers.get("connection") == "close"
        assert "limits.max_connections_per_peer" in json.loads(reply.body)["m2m:dbg"]
        # the idle connections never sent a request head: closed after header_timeout_s (1 s)
        assert all(_closed_by_server(s, 10) for s in idle)
    assert exchange(cse.port, GET).rsc == 2000


def test_a_slow_request_head_is_cut_at_the_header_timeout(cse: SyncCSE) -> None:
    """A slowloris client sends a byte now and then: the clock runs from
    the first byte, not the last, so trickling does not keep it open."""
    with socket.create_connection(("127.0.0.1", cse.port), timeout=10) as sock:
        sent = 0
        for byte in GET[:-4]:  # never the blank line that ends the head
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if _closed_by_server(sock, 0.1):  # waits 0.1 s per byte: 1 s are ~10 bytes
                break
        else:
            pytest.fail("the CSE kept a connection open for a whole trickled head")
        assert sent < 40, f"closed only after {sent} bytes"
    assert exchange(cse.port, GET).rsc == 2000


def test_the_total_limit_refuses_cleanly_and_service_returns(cse: SyncCSE) -> None:
    with ExitStack() as stack:
        held = _open(cse.port, 30, stack, ATTACKER) + _open(cse.port, 30, stack)  # 60 open: the CSE is full
        with socket.create_connection(("127.0.0.1", cse.port), timeout=10) as extra:
            extra.sendall(GET)
            reply = read_reply(extra)
        assert reply.status == 503 and reply.rsc == 5207
        assert "limits.max_connections)" in json.loads(reply.body)["m2m:dbg"]
        # the held ones time out (1 s), and a fresh client is served again
        assert all(_closed_by_server(s, 10) for s in held)
    assert exchange(cse.port, GET).rsc == 2000


def test_a_flood_of_idle_connections_does_not_lock_out_other_clients(tmp_path: Path) -> None:
    """The reported attack, with the CSE's open-file limit lowered to 384
    (``max_connections`` 100 plus what the CSE keeps in reserve, 256): before,
    400 idle connections used up the descriptors and the next client got no
    answer; now the attacker's address holds at most 30 and the rest are
    refused (and closed), so a client elsewhere is served."""
    proc = SyncCSE(tmp_path / "flood", extra="\n[limits]\nmax_connections = 100\nmax_connections_per_peer = 30\n")
    proc.start()
    try:
        assert proc.proc is not None
        resource.prlimit(proc.proc.pid, resource.RLIMIT_NOFILE, (384, 384))
        with ExitStack() as stack:
            flood = _open(proc.port, 400, stack, ATTACKER)
            reply = exchange(proc.port, GET, timeout=10)  # from 127.0.0.1
            assert reply.rsc == 2000, reply
            assert proc.fd_count() < 256
            refused = 0
            for sock in flood[30:]:
                sock.settimeout(10)
                try:
                    head = sock.recv(64)
                except ConnectionResetError:
                    head = b"reset"  # closed at once during the flood (no linger for them)
                refused += head.startswith((b"HTTP/1.1 503", b"reset")) or head == b""
            assert refused == 370
        assert proc.alive
    finally:
        assert proc.stop() == 0
    assert not any("out of system resource" in line for line in proc.lines), "".join(proc.lines[-20:])

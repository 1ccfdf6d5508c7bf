"""Raw HTTP against a live CSE, and the checks every answer must pass.

Why raw sockets: the fuzz must send bytes no HTTP client library would
produce (broken request lines, non-UTF-8 header bytes, bad framing), and
hypothesis drives synchronous test functions, so a blocking socket per
example keeps the exact bytes under the test's control and needs no event
loop. ``SyncCSE`` starts ``python -m cse`` the same way the ``cse_process``
fixture does, but synchronously, so one process can serve a whole module.

The oneM2M expectations (which RSCs exist, their HTTP status, which 5xxx a
CSE may legitimately answer to bad input) are written here from
TS-0009 Table 6.3.2-1 (docs/onem2m.md), not taken from the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cbor2

from tests.childenv import checkout_first

__all__ = ["RawReply", "SyncCSE", "exchange", "check_reply", "request_bytes", "read_reply", "VALID_RSC_HTTP",
           "ALLOWED_5XXX"]

# RSC -> HTTP status, TS-0009 Table 6.3.2-1
# (the codes a CSE of this feature set can produce or relay).
VALID_RSC_HTTP: dict[int, int] = {
    1000: 202, 1001: 202, 1002: 202,
    2000: 200, 2001: 201, 2002: 200, 2004: 200,
    4000: 400, 4001: 501, 4004: 404, 4005: 405, 4008: 504, 4015: 415,
    4101: 403, 4102: 400, 4103: 403, 4104: 409, 4105: 409, 4106: 403, 4107: 403, 4108: 403,
    4117: 403,
    5103: 404, 5105: 403, 5106: 409, 5107: 404, 5203: 403, 5204: 500, 5205: 403, 5206: 501,
    5207: 406, 5220: 409,
}

# 5xxx codes that are not "the CSE broke" but "something else is not there":
# 5103 TARGET_NOT_REACHABLE (a peer CSE or an AE's poa that nobody listens on),
# 5204 SUBSCRIPTION_VERIFICATION_INITIATION_FAILED (the notification target
# did not confirm), 5203 TARGET_NOT_SUBSCRIBABLE (the parent type takes no
# subscription: a fact about the resource, not a failure), 5207 NOT_ACCEPTABLE
# (Accept names a serialization we do not offer, or a buffer/size is full).
# 5000 (and every other 5xxx) is a bug.
ALLOWED_5XXX = frozenset({5103, 5203, 5204, 5207})


@dataclass
class RawReply:
    """One HTTP answer as read off the socket."""

    version: str
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def rsc(self) -> int | None:
        raw = self.headers.get("x-m2m-rsc")
        return int(raw) if raw is not None and raw.isdigit() else None


class NoAnswer(AssertionError):
    """The CSE closed the connection or stayed silent instead of answering."""


def read_reply(sock: socket.socket, *, head: bool = False) -> RawReply:
    """Read one answer (``head``: the answer to a HEAD, which has no body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise NoAnswer(f"connection closed before a complete answer (got {buf[:200]!r})")
        buf += chunk
    top, _, rest = buf.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    version, _, status_rest = lines[0].partition(" ")
    status = int(status_rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise NoAnswer(f"connection closed inside the body ({len(rest)} of {length} bytes)")
        rest += chunk
    return RawReply(version, status, headers, rest[:length])


def exchange(port: int, data: bytes, timeout: float = 15.0, *, head: bool = False) -> RawReply:
    """Send ``data`` on a fresh connection and read one answer.

    A silent server is a hang: the socket timeout turns it into a failure.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything (oversized input)
        try:
            return read_reply(sock, head=head)
        except TimeoutError:
            raise NoAnswer(f"no answer within {timeout:g} s") from None
        except ConnectionResetError:
            raise NoAnswer("connection reset instead of an answer") from None


def request_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"",
                  *, version: bytes = b"HTTP/1.1", content_length: bool = True) -> bytes:
    """A well-framed HTTP/1.1 request (``Connection: close``) with exactly these parts."""
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length and (body or method in (b"POST", b"PUT")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_reply(reply: RawReply, *, method: bytes = b"GET", sent_rqi: str | None = None) -> int:
    """Assert ``reply`` is a valid oneM2M answer; return its RSC.

    Every answer: ``X-M2M-RSC`` present and a real code, the HTTP status
    TS-0009 gives that code, no 5000 and no 5xxx outside
    :data:`ALLOWED_5XXX`; every error carries a JSON body with a non-empty
    ``m2m:dbg`` (CBOR when the answer's Content-Type says so; except for HEAD,
    whose answers have no body by HTTP rules).
    """
    rsc = reply.rsc
    assert rsc is not None, f"no valid X-M2M-RSC header: {reply.headers!r} {reply.body[:200]!r}"
    assert rsc in VALID_RSC_HTTP, f"X-M2M-RSC {rsc} is not a oneM2M code we expect: {reply.body[:300]!r}"
    assert rsc < 5000 or rsc in ALLOWED_5XXX, f"server-side failure {rsc}: {reply.body[:500]!r}"
    assert reply.status == VALID_RSC_HTTP[rsc], f"RSC {rsc} sent with HTTP {reply.status}"
    if sent_rqi is not None and rsc != 4000 and len(sent_rqi) <= 256:  # longer ones are clipped in errors
        assert reply.headers.get("x-m2m-ri") == sent_rqi, (sent_rqi[:80], reply.headers.get("x-m2m-ri", "")[:80])
    if method == b"HEAD":
        return rsc
    ctype = reply.headers.get("content-type", "")
    load = cbor2.loads if "cbor" in ctype else json.loads  # the serialization the client asked for
    if rsc >= 4000:
        assert ctype.startswith("application/"), reply.headers
        doc = load(reply.body)
        assert isinstance(doc, dict) and isinstance(doc.get("m2m:dbg"), str) and doc["m2m:dbg"], doc
    elif reply.body:
        load(reply.body)  # any content must be JSON, or CBOR when labelled so
    return rsc


@dataclass
class SyncCSE:
    """A ``python -m cse`` subprocess started and stopped synchronously."""

    directory: Path
    cse_id: str = "/id-in"
    name: str = "cse-in"
    extra: str = ""
    max_body: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 20.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        cfg = self.directory / f"{self.name}.toml"
        cfg.write_text(f'[cse]\ncse_id = "{self.cse_id}"\nname = "{self.name}"\nadmin = "CAdmin"\n\n'
                       f'[http]\nhost = "127.0.0.1"\nport = 0\n{self.extra_http()}\n'
                       f'[store]\npath = "{self.directory / (self.name + ".db")}"\n{self.extra}')
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cse", "--config", str(cfg), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(self.directory),
            env={**checkout_first(), "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("CSE did not print READY:\n" + "".join(self.lines))
        if self.port == 0:
            raise RuntimeError("CSE exited before READY:\n" + "".join(self.lines))

    def extra_http(self) -> str:
        return f"max_body = {self.max_body}\n" if self.max_body is not None else ""

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if line.startswith("READY "):
                self.port = int(line.rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def fd_count(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)

    def tracebacks(self) -> list[str]:
        """Log lines of internal errors (a logged traceback is a bug even if
        the answer looked fine, e.g. in a background task)."""
        return [ln for ln in self.lines if "Traceback" in ln or " ERROR " in ln]

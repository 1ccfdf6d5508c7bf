"""Helpers for the flow-2 (session-based request) tests; no tests here.

* :func:`start_pair` -- CSE1 (``/id-cse1``, ``cse1``) and CSE2 (``/id-cse2``,
  ``cse2``, registered with CSE1), each with its own extra config;
* :class:`Flow2` -- two session-capable AEs (AE1 at CSE1, AE2 at CSE2, each
  with a loopback receiver as ``poa`` and a subscription under its
  ``sessions``), an established session and its keys, and a way to send
  *signed* session-based requests (``X-M2M-SID`` or ``?sessionID=``,
  ``X-M2M-OT``, ``X-M2M-SMAC`` over the canonical string of
  :mod:`cse.core.session_crypto`);
* :func:`window_sch` -- a store-and-forward window as fully qualified
  schedule entries (one per UTC minute it touches, so a window across a
  minute, hour or day boundary is still exact); :data:`NEVER` -- a window
  that never opens while the tests run;
* :func:`poll_request` -- RETRIEVE a ``<request>`` until a condition holds,
  with a deadline (waiting for a window to open = polling, never sleeping
  blind).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cse.core.session_crypto import canonical, decrypt, derive_keys, encrypt, sign, sp_relative_target, unb64u
from cse.core.timestamps import format_ts
from tests.conftest import ADMIN, CSEProcess, Http, HttpReply
from tests.e2e.test_intercse_helpers import register_ae, registrar_toml, until, wait_csr, wait_registered
from tests.notify_receiver import Receiver, sevt_of

CSI1, CSI2 = "/id-cse1", "/id-cse2"
CB1, CB2 = "cse1", "cse2"
CNT_TO = f"{CSI2}/{CB2}/AE2/container1"      # SP-relative target of AE1's requests
UPDATE_OP, CREATE_OP, RETRIEVE_OP, DELETE_OP = 3, 1, 2, 4  # Operation values (op in hst, sevt)
PENDING, COMPLETED, FAILED = 3, 1, 2
NEVER = ["* * * * * * 2099"]                 # a window far beyond any test run

_seq = iter(range(1, 1 << 30))


def rqi(prefix: str = "f2") -> str:
    return f"{prefix}-{next(_seq)}-{time.monotonic_ns() % 10**9}"


def smg_toml(*, freshness_s: float | None = None, forwarding_timeout_s: float | None = 3.0) -> str:
    text = ""
    if freshness_s is not None:
        text += f"\n[smg]\nfreshness_s = {freshness_s}\n"
    if forwarding_timeout_s is not None:
        text += f"\n[forwarding]\ntimeout_s = {forwarding_timeout_s}\n"
    return text


async def start_pair(cse_process: Callable[..., Any], http: Http, *, cse1_extra: str = "",
                     cse2_extra: str = "", cse1_env: dict[str, str] | None = None, cse1_store: str = "",
                     cse1_args: Sequence[str] = ()) -> tuple[CSEProcess, CSEProcess]:
    """CSE1 and CSE2 (registered with CSE1), each knowing the other; ``cse1_env``:
    more environment for CSE1's process (e.g. libfaketime's); ``cse1_store``:
    more ``[store]`` lines for CSE1 (tests.pg.store_toml); ``cse1_args``: more
    command-line arguments for it (``--workers 2``)."""
    cse1 = await cse_process(cse_id=CSI1, name=CB1, subdir="cse1", extra=cse1_store + smg_toml() + cse1_extra,
                             env=cse1_env, start=False)
    cse1.extra_args = [*cse1.extra_args, *cse1_args]
    await cse1.start(timeout=40.0 if cse1_args else 20.0)
    cse2 = await cse_process(cse_id=CSI2, name=CB2, subdir="cse2",
                             extra=registrar_toml(CSI1, CB1, cse1.url) + smg_toml() + cse2_extra)
    await wait_registered(http, cse2, CSI1, CB1)
    await wait_csr(http, cse1, f"{CB1}/id-cse2")
    await wait_csr(http, cse2, f"{CB2}/id-cse1")
    return cse1, cse2


# -- schedules ----------------------------------------------------------------------------

def window_sch(start: float, end: float) -> list[str]:
    """Entries open exactly for the whole seconds [floor(start), floor(end)] (UTC)."""
    s, e = math.floor(start), math.floor(end)
    assert e >= s
    out: list[str] = []
    t = s
    while t <= e:
        tm = time.gmtime(t)
        minute_end = t - tm.tm_sec + 59
        last = min(e, minute_end)
        out.append(f"{tm.tm_sec}-{time.gmtime(last).tm_sec} {tm.tm_min} {tm.tm_hour} {tm.tm_mday} "
                   f"{tm.tm_mon} * {tm.tm_year}")
        t = last + 1
    return out


def window_ahead(lead: float, length: float = 120.0) -> tuple[float, list[str]]:
    """A window opening ``lead`` s from now (rounded up to a whole second) and
    staying open ``length`` s; returns (opening epoch, sch)."""
    opens = math.ceil(time.time() + lead)
    return float(opens), window_sch(opens, opens + length)


# -- sevt -----------------------------------------------------------------------------------

async def next_sevt(rcv: Receiver, typ: int, timeout: float = 5.0) -> dict[str, Any]:
    """The next session event of type ``typ`` at ``rcv`` (other requests skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"no m2m:sevt typ {typ} within {timeout:g} s")
        item = await rcv.next(left)
        sevt = sevt_of(item)
        if sevt is not None and sevt.get("typ") == typ:
            return sevt


def sevts(rcv: Receiver, typ: int) -> list[dict[str, Any]]:
    out = []
    for item in rcv.received:
        s = sevt_of(item)
        if s is not None and s.get("typ") == typ:
            out.append(s)
    return out


async def next_rsp(rcv: Receiver, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``m2m:rsp`` (non-blocking result notification) at ``rcv``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"no m2m:rsp within {timeout:g} s")
        item = await rcv.next(left)
        if isinstance(item.body, dict) and "m2m:rsp" in item.body:
            return dict(item.body["m2m:rsp"])


# -- the flow ---------------------------------------------------------------------------------

@dataclass
class Flow2:
    """The pair, the AEs and their established session (module docstring)."""

    http: Http
    cse1: CSEProcess
    cse2: CSEProcess
    rcv1: Receiver
    rcv2: Receiver
    aei1: str = ""
    aei2: str = ""
    sess: dict[str, Any] = field(default_factory=dict)
    sid: str = ""
    kid: str = ""
    k_mac: bytes = b""
    k_enc: bytes = b""

    @property
    def rn(self) -> str:
        return str(self.sess["rn"])

    @property
    def ses1(self) -> str:
        """CSE-relative path of the session at CSE1."""
        return f"{CB1}/AE1/sessions/{self.rn}"

    @property
    def ses2(self) -> str:
        """CSE-relative path of the session at CSE2 (by its ri, the same at every hop)."""
        return f"ses{self.sid}"

    async def setup(self, *, sec: int | None = None, with_container: bool = True) -> Flow2:
        http = self.http
        self.aei1 = await register_ae(http, self.cse1, CB1, "AE1", scp=["smg"], poa=[self.rcv1.url])
        self.aei2 = await register_ae(http, self.cse2, CB2, "AE2", scp=["smg"], poa=[self.rcv2.url])
        for cse, cb, rn, aei, rcv in ((self.cse1, CB1, "AE1", self.aei1, self.rcv1),
                                      (self.cse2, CB2, "AE2", self.aei2, self.rcv2)):
            r = await http.send("POST", f"{cse.url}/{cb}/{rn}/sessions", fr=aei, ty=23,
                                body={"m2m:sub": {"rn": "sesSub", "nu": [rcv.url]}})
            assert r.rsc == 2001, (r.rsc, r.body)
            assert (await rcv.next(5)).is_verification
        if with_container:
            r = await http.send("POST", f"{self.cse2.url}/{CB2}/AE2", fr=self.aei2, ty=3,
                                body={"m2m:cnt": {"rn": "container1"}})
            assert r.rsc == 2001, r.body
        attrs: dict[str, Any] = {"tep": f"{CSI2}/{self.aei2}", "epa": {"app": "flow2"}}
        if sec is not None:
            attrs["sec"] = sec
        r = await http.send("POST", f"{self.cse1.url}/{CB1}/AE1/sessions", fr=self.aei1, ty=9002,
                            body={"m2m:sess": attrs})
        assert r.rsc == 2001, (r.rsc, r.body)
        self.sess = dict(r.body["m2m:sess"])
        assert self.sess["sst"] == 2, self.sess
        self.sid = self.sess["sid"]
        self.kid = self.sess["scr"]["kid"]
        self.k_mac, self.k_enc = derive_keys(unb64u(self.sess["scr"]["key"]), self.sid)
        sevt = await next_sevt(self.rcv2, 1)  # the establishment question AE2 answered
        assert sevt["sid"] == self.sid
        return self

    # -- crypto ----------------------------------------------------------------
    def enc(self, plaintext: str) -> str:
        return encrypt(self.k_enc, self.sid, self.kid, plaintext)

    def dec(self, token: str) -> str:
        return decrypt(self.k_enc, self.sid, token, self.kid).decode("utf-8")

    def sign_headers(self, op: str, to: str, rq: str, body: bytes, *, receiving_csi: str,
                     ot: str | None = None, sid_in: str = "header", k_mac: bytes | None = None,
                     sid: str | None = None) -> dict[str, str]:
        sid = sid if sid is not None else self.sid
        ot = ot if ot is not None else format_ts(time.time())
        mac = sign(k_mac or self.k_mac, canonical(op, sp_relative_target(to, receiving_csi), sid, rq, ot, body))
        h = {"X-M2M-OT": ot, "X-M2M-SMAC": mac}
        if sid_in == "header":
            h["X-M2M-SID"] = sid
        return h

    async def send(self, method: str, cse: CSEProcess, to: str, fr: str, *, body: Any = None,
                   ty: int | None = None, rq: str | None = None, sid_in: str = "header",
                   signed: bool = True, ot: str | None = None, query: str = "",
                   headers: dict[str, str] | None = None, sid: str | None = None,
                   k_mac: bytes | None = None, mutate: Callable[[dict[str, str]], None] | None = None
                   ) -> HttpReply:
        """A session-based request ``method`` to ``to`` (the To: SP-relative
        ``/id-...`` or CSE-relative) at ``cse``."""
        rq = rq or rqi()
        raw = json.dumps(body).encode() if body is not None else b""
        op = {"POST": "CREATE", "GET": "RETRIEVE", "PUT": "UPDATE", "DELETE": "DELETE"}[method]
        csi = CSI1 if cse is self.cse1 else CSI2
        sid = sid if sid is not None else self.sid
        h: dict[str, str] = {}
        if signed:
            h.update(self.sign_headers(op, to, rq, raw, receiving_csi=csi, ot=ot, sid_in=sid_in,
                                       k_mac=k_mac, sid=sid))
        elif sid_in == "header":
            h["X-M2M-SID"] = sid
        h.update(headers or {})
        if mutate is not None:
            mutate(h)
        qs = [query] if query else []
        if sid_in == "query":
            qs.append(f"sessionID={sid}")
        path = f"/~{to}" if to.startswith("/") else f"/{to}"
        url = cse.url + path + (("?" + "&".join(qs)) if qs else "")
        return await self.http.send(method, url, fr=fr, ty=ty, raw=raw if body is not None else None,
                                    rqi=rq, headers=h)

    # -- reads -------------------------------------------------------------------
    async def session_at(self, cse: CSEProcess) -> dict[str, Any]:
        path = self.ses1 if cse is self.cse1 else f"{CB2}/AE2/sessions/{self.rn}"
        fr = self.aei1 if cse is self.cse1 else self.aei2
        r = await self.http.send("GET", f"{cse.url}/{path}", fr=fr)
        assert r.rsc == 2000, (r.rsc, r.body)
        return dict(r.body["m2m:sess"])

    async def container(self) -> dict[str, Any]:
        r = await self.http.send("GET", f"{self.cse2.url}/{CB2}/AE2/container1", fr=self.aei2)
        assert r.rsc == 2000, (r.rsc, r.body)
        return dict(r.body["m2m:cnt"])

    async def instances(self) -> list[dict[str, Any]]:
        """The contentInstances of container1 at CSE2, in the CSE's child order."""
        r = await self.http.send("GET", f"{self.cse2.url}/{CB2}/AE2/container1?rcn=4", fr=self.aei2)
        assert r.rsc == 2000, (r.rsc, r.body)
        return [dict(c) for c in r.body["m2m:cnt"].get("m2m:cin", [])]

    async def policy(self, sch: list[str] | None, *, spt: int = 2, rn: str = "sf", hop: str | None = CSI1,
                     **attrs: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"rn": rn, "spt": spt, **attrs}
        if sch is not None:
            body["sch"] = sch
        if hop is not None:
            body["hop"] = hop
        r = await self.http.send("POST", f"{self.cse1.url}/{self.ses1}/sessionPolicies", fr=self.aei1,
                                 ty=9006, body={"m2m:spo": body})
        assert r.rsc == 2001, (r.rsc, r.body)
        return dict(r.body["m2m:spo"])

    async def request_res(self, ri: str, fr: str | None = None) -> dict[str, Any]:
        r = await self.http.send("GET", f"{self.cse1.url}/{ri}", fr=fr or self.aei1)
        assert r.rsc == 2000, (r.rsc, r.body)
        return dict(r.body["m2m:req"])

    async def poll_request(self, ri: str, cond: Callable[[dict[str, Any]], bool], what: str,
                           timeout: float = 20.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            req = await self.request_res(ri)
            return req if cond(req) else None
        return dict(await until(check, what, timeout))

    async def hop_nst(self) -> int:
        r = await self.http.send("GET", f"{self.cse1.url}/{self.ses1}/nhp-id-cse2", fr=self.aei1)
        assert r.rsc == 2000, (r.rsc, r.body)
        return int(r.body["m2m:nhp"]["nst"])


def dbg(reply: HttpReply) -> str:
    body = reply.body
    return str(body.get("m2m:dbg", "")) if isinstance(body, dict) else ""




# -- in-process (tests/unit) --------------------------------------------------------------

@dataclass
class LocalSession:
    """Two AEs on one in-process CSE (``/id-in``, ``cse-in``) and a session
    between them: establishment is local, no next hop."""

    ip: Any                      # tests.conftest.InProc
    aei1: str
    aei2: str
    sess: dict[str, Any]
    sid: str
    kid: str
    k_mac: bytes
    k_enc: bytes

    @property
    def csi(self) -> str:
        return str(self.ip.cse.config.cse.cse_id)

    @property
    def cb(self) -> str:
        return str(self.ip.cse.config.cse.name)

    @property
    def ses_path(self) -> str:
        return f"{self.cb}/AE1/sessions/{self.sess['rn']}"

    async def doc(self) -> dict[str, Any]:
        d = await self.ip.cse.store.get(f"ses{self.sid}")
        assert d is not None
        return dict(d)

    def signed(self, op: Any, to: str, rq: str, pc: Any, *, ot: str | None = None, k_mac: bytes | None = None,
               target_line: str | None = None, body: bytes | None = None, sid: str | None = None
               ) -> dict[str, Any]:
        """kwargs for InProc.call: sid, ot, smac, body (the bytes the MAC covers)."""
        raw = body if body is not None else (json.dumps(pc).encode() if pc is not None else b"")
        ot = ot if ot is not None else format_ts(self.ip.clock.now())
        sid = sid or self.sid
        line = target_line if target_line is not None else sp_relative_target(to, self.csi)
        mac = sign(k_mac or self.k_mac, canonical(op.name, line, sid, rq, ot, raw))
        return {"sid": sid, "ot": ot, "smac": mac, "body": raw}

    async def call(self, op: Any, to: str, fr: str, *, pc: Any = None, ty: int | None = None,
                   rq: str | None = None, sign_it: bool = True, **over: Any) -> Any:
        """A session-based request through the in-process CSE's dispatcher."""
        from cse.core.messages import Request
        rq = rq or rqi("u")
        kw: dict[str, Any] = {}
        if sign_it:
            kw = self.signed(op, to, rq, pc, **{k: over.pop(k) for k in
                                                ("ot", "k_mac", "target_line", "body", "sid") if k in over})
        else:
            kw = {"sid": over.pop("sid", self.sid)}
        kw.update(over)
        req = Request(op=op, to=to, fr=fr, rqi=rq, ty=ty, pc=pc, **kw)
        return await self.ip.cse.handle(req)


async def local_session(ip: Any, rcv2: Receiver, *, sec: int | None = None, container: bool = True,
                        stop_sf_timer: bool = True) -> LocalSession:
    """AE1 and AE2 (with a subscription to ``rcv2`` under its sessions) on
    ``ip``, AE2's ``container1``, and an established session AE1 -> AE2.
    The store-and-forward timer is stopped, so tests drive ``flush`` by hand."""
    from cse.core.messages import Operation
    cse = ip.cse
    if stop_sf_timer:
        await cse.sf_timer.stop()
    cb = cse.config.cse.name
    csi = cse.config.cse.cse_id
    aei1 = await ip.register("AE1", scp=["smg"])
    aei2 = await ip.register("AE2", scp=["smg"])
    r = await ip.call(Operation.CREATE, f"{cb}/AE2/sessions", aei2, ty=23,
                      pc={"m2m:sub": {"rn": "sesSub", "nu": [rcv2.url]}})
    assert r.rsc == 2001, r.pc
    assert (await rcv2.next(5)).is_verification
    if container:
        r = await ip.call(Operation.CREATE, f"{cb}/AE2", aei2, ty=3, pc={"m2m:cnt": {"rn": "container1"}})
        assert r.rsc == 2001, r.pc
    attrs: dict[str, Any] = {"tep": f"{csi}/{aei2}"}
    if sec is not None:
        attrs["sec"] = sec
    r = await ip.call(Operation.CREATE, f"{cb}/AE1/sessions", aei1, ty=9002, pc={"m2m:sess": attrs})
    assert r.rsc == 2001, r.pc
    sess = dict(r.pc["m2m:sess"])
    assert sess["sst"] == 2
    sid = sess["sid"]
    k_mac, k_enc = derive_keys(unb64u(sess["scr"]["key"]), sid)
    await next_sevt(rcv2, 1)
    return LocalSession(ip, aei1, aei2, sess, sid, sess["scr"]["kid"], k_mac, k_enc)


__all__ = ["ADMIN", "Flow2", "start_pair", "window_sch", "window_ahead", "NEVER", "next_sevt", "sevts",
           "next_rsp", "dbg", "rqi", "until", "CNT_TO", "CSI1", "CSI2", "CB1", "CB2", "smg_toml",
           "PENDING", "COMPLETED", "FAILED", "LocalSession", "local_session"]

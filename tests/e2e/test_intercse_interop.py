"""Registration both ways with a strict release 5 peer, replayed at wire level.

Why: a widely used open-source CSE checks every attribute of a received
``<remoteCSE>`` against TS-0001 9.6.4 and answers 4000 for anything else;
our ``scp`` in the CREATE made our MN retry its registration forever. And a
release 5 CSE registering with us sends ``X-M2M-RVI: 5`` and ``spi``, which
we refused although our CSEBase advertises release 5. No such CSE installs
from the package registries, so :class:`StrictPeer` plays one on loopback
(aiohttp): it answers exactly what a strict peer answers -- 4000 ``unknown
attribute: <sn> in resource: m2m:csr`` for a non-standard remoteCSE
attribute, its CSEBase without ``scp`` -- and records every request, so the
test sees the bytes our CSE sends. Then forwarding must work both ways.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import ADMIN, Http
from tests.e2e.test_intercse_helpers import registrar_toml, until, wait_csr, wait_registered
from tests.notify_receiver import http_status

# TS-0001 9.6.4 remoteCSE attributes (release 4) with the universal/common ones; release 5 adds spi.
STANDARD_CSR = frozenset({
    "rn", "ty", "ri", "pi", "ct", "lt", "et", "lbl", "acpi", "daci", "at", "aa", "ast", "cstn", "cr", "loc",
    "cst", "poa", "cb", "csi", "mei", "tri", "rr", "nl", "csz", "esi", "trn", "dcse", "mtcc", "egid", "tren",
    "ape", "srv", "spi"})


@dataclass
class StrictPeer:
    """A release 5 CSE ``csi`` (CSEBase ``cb``) on loopback that knows only standard attributes."""

    csi: str
    cb: str
    csrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def base(self) -> dict[str, Any]:
        return {"ty": 5, "ri": self.csi[1:], "rn": self.cb, "pi": "", "csi": self.csi, "cst": 1,
                "srt": [1, 2, 3, 4, 5, 16, 23], "poa": [self.url], "srv": ["2a", "3", "4", "5"]}

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        headers = dict(request.headers)
        self.seen.append((request.method, request.path, headers, body))
        path = request.path
        prefix = f"/~{self.csi}"
        if path.startswith(prefix):
            path = path[len(prefix):]
        parts = [p for p in path.split("/") if p]
        rqi = request.headers.get("X-M2M-RI", "")
        origin = request.headers.get("X-M2M-Origin", "")

        def reply(rsc: int, pc: Any = None) -> web.Response:
            return web.Response(status=http_status(rsc), body=json.dumps(pc).encode() if pc is not None else b"",
                                headers={"X-M2M-RSC": str(rsc), "X-M2M-RI": rqi, "X-M2M-RVI": "5",
                                         "Content-Type": "application/json"})

        if not parts or parts[0] != self.cb:
            return reply(4004, {"m2m:dbg": f"resource not found: {request.path}"})
        if request.method == "GET" and len(parts) == 1:
            return reply(2000, {"m2m:cb": self.base()})
        if request.method in ("POST", "PUT") and isinstance(body, dict) and "m2m:csr" in body:
            attrs = body["m2m:csr"]
            for sn in attrs:
                if sn not in STANDARD_CSR:
                    self.refused.append(sn)
                    return reply(4000, {"m2m:dbg": f"unknown attribute: {sn} in resource: m2m:csr"})
            if request.method == "POST":
                ri = origin.lstrip("/")
                self.csrs[ri] = {**attrs, "ty": 16, "ri": ri, "rn": attrs.get("rn", ri), "pi": self.csi[1:]}
                return reply(2001, {"m2m:csr": self.csrs[ri]})
            if len(parts) == 2 and parts[1] in self.csrs:
                self.csrs[parts[1]].update(attrs)
                return reply(2004, {"m2m:csr": self.csrs[parts[1]]})
        if request.method == "GET" and len(parts) == 2 and parts[1] in self.csrs:
            return reply(2000, {"m2m:csr": self.csrs[parts[1]]})
        if request.method == "GET" and parts[1:] == ["data"]:
            return reply(2000, {"m2m:cnt": {"rn": "data", "ty": 3, "ri": "cnt1", "pi": self.csi[1:], "cni": 0}})
        return reply(4004, {"m2m:dbg": f"resource not found: {request.path}"})


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[str, str], Any]]:
    started: list[StrictPeer] = []

    async def make(csi: str, cb: str) -> StrictPeer:
        peer = StrictPeer(csi, cb)
        await peer.start()
        started.append(peer)
        return peer
    try:
        yield make
    finally:
        for peer in started:
            await peer.stop()


async def test_our_mn_registers_with_a_strict_release_5_in(cse_process: Callable[..., Any], http: Http,
                                                           peers: Callable[[str, str], Any]) -> None:
    """TS-0004 7.4.4.2.1 with a registrar that refuses non-standard attributes."""
    fin = await peers("/id-fin", "fin")
    mn = await cse_process(cse_id="/id-mn", name="mn", subdir="mn",
                           extra=registrar_toml("/id-fin", "fin", fin.url))
    await wait_registered(http, mn, "/id-fin", "fin")
    assert fin.refused == []
    creates = [(p, h, b) for m, p, h, b in fin.seen if m == "POST"]
    assert len(creates) == 1, creates
    _, headers, body = creates[0]
    assert headers["X-M2M-Origin"] == "/id-mn" and "ty=16" in headers["Content-Type"]
    assert set(body["m2m:csr"]) <= STANDARD_CSR
    assert not [m for m, *_ in fin.seen if m == "PUT"]  # no scp UPDATE: its CSEBase shows no sessions
    # our record of it: its poa and srv, and no session capability
    held = await wait_csr(http, mn, "mn/id-fin")
    assert held["poa"] == [fin.url] and held["srv"] == ["2a", "3", "4", "5"]
    assert "scp" not in held

    # forwarding both ways: MN -> IN ...
    there = await http.send("GET", f"{mn.url}/~/id-fin/fin/data", fr=ADMIN, rqi="interop-1")
    assert there.rsc == 2000 and there.body["m2m:cnt"]["rn"] == "data", there.body
    method, path, headers, _ = fin.seen[-1]
    assert (method, path) == ("GET", "/~/id-fin/fin/data")
    assert headers["X-M2M-Origin"] == f"/id-mn/{ADMIN}" and headers["X-M2M-RI"] == "interop-1"
    # ... and IN -> MN, with the IN's own originator
    back = await http.send("GET", f"{mn.url}/~/id-mn/mn", fr="/id-fin", rvi="5")
    assert back.rsc == 2000 and back.body["m2m:cb"]["csi"] == "/id-mn", back.body


async def test_a_release_5_mn_with_spi_registers_with_us(cse_process: Callable[..., Any], http: Http,
                                                         peers: Callable[[str, str], Any]) -> None:
    """The exact CREATE a release 5 MN sends (RVI 5, spi) is accepted; then forwarding both ways."""
    ours = await cse_process(cse_id="/id-in", name="cse-in", subdir="in")
    r5 = await peers("/id-r5", "r5")
    body = {"m2m:csr": {"rn": "id-r5", "cb": "/id-r5/r5", "csi": "/id-r5", "cst": 2, "rr": True,
                        "poa": [r5.url], "srv": ["2a", "3", "4", "5"], "spi": "//sp.example", "csz": [
                            "application/json"], "dcse": []}}
    made = await http.send("POST", f"{ours.url}/cse-in", fr="/id-r5", ty=16, body=body, rvi="5")
    assert made.rsc == 2001, made.body
    assert made.body["m2m:csr"]["spi"] == "//sp.example"
    assert made.headers.get("X-M2M-RVI") == "5"
    # the second step of its registration: our CSEBase, as it reads it
    cb = await http.send("GET", f"{ours.url}/cse-in", fr="/id-r5", rvi="5")
    assert cb.rsc == 2000 and "5" in cb.body["m2m:cb"]["srv"], cb.body

    # us -> it
    there = await http.send("GET", f"{ours.url}/~/id-r5/r5", fr=ADMIN)
    assert there.rsc == 2000 and there.body["m2m:cb"]["csi"] == "/id-r5", there.body
    assert r5.seen[-1][1] == "/~/id-r5/r5"
    # it -> us: an AE of its own works on our tree as /id-r5/<ae>
    ae = await http.send("POST", f"{ours.url}/cse-in", fr="C", ty=2, body={"m2m:ae": {
        "rn": "owner", "api": "Nowner", "rr": False, "srv": ["5"]}}, rvi="5")
    assert ae.rsc == 2001, ae.body
    seen = await http.send("GET", f"{ours.url}/cse-in/owner", fr="/id-r5/Cdevice", rvi="5")
    assert seen.rsc == 4103, seen.body  # known originator, but no privilege: access control decides
    unknown = await http.send("GET", f"{ours.url}/cse-in", fr="/id-nobody/Cx", rvi="5")
    assert unknown.rsc == 4103, unknown.body  # not registered anywhere we know: refused

    async def still_there() -> bool:
        r = await http.send("GET", f"{ours.url}/cse-in/id-r5", fr=ADMIN)
        return r.rsc == 2000 and r.body["m2m:csr"]["spi"] == "//sp.example"
    assert await until(still_there, "the stored spi")

"""Shared helpers for the SMG end-to-end tests (no tests here).

* :class:`SessionAE` -- a loopback receiver playing a session-capable AE's
  notification endpoint: it answers establishment notifications (``m2m:sevt``
  typ 1) with 2000 and ``{"m2m:sep": {"epa": ...}}``, or with a configured
  4xxx, optionally after a delay; every other request gets 2000.
* starting a pair / chain of real CSEs with SMG settings, registering a
  session-capable AE with its subscription under ``sessions`` (flow 1 steps 2-5),
  establishing a session, reading a hop's copy of a session, counting the SMG
  resources a CSE holds.

Named ``test_smg_*`` only because the test files of this area must be; it
holds no test functions.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.conftest import ADMIN, CSEProcess, Http, HttpReply
from tests.e2e.test_intercse_helpers import (
    register_ae,
    registrar_toml,
    until,
    wait_csr,
    wait_registered,
)
from tests.notify_receiver import Received, Receiver, http_status, sevt_of

SMG_TYS = (9002, 9003, 9004, 9005, 9006)
SID_RE = re.compile(r"^[A-Za-z0-9_-]{22,}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def smg_toml(*, notify_timeout_s: float | None = None, establish_timeout_s: float | None = None,
             forwarding_timeout_s: float | None = 3.0) -> str:
    text = ""
    if notify_timeout_s is not None or establish_timeout_s is not None:
        text += "\n[smg]\n"
        if notify_timeout_s is not None:
            text += f"notify_timeout_s = {notify_timeout_s}\n"
        if establish_timeout_s is not None:
            text += f"establish_timeout_s = {establish_timeout_s}\n"
    if forwarding_timeout_s is not None:
        text += f"\n[forwarding]\ntimeout_s = {forwarding_timeout_s}\n"
    return text


class SessionAE(Receiver):
    """A session-capable AE's notification endpoint (see module docstring)."""

    def __init__(self, *, epa: dict[str, Any] | None = None, establish_rsc: int = 2000,
                 establish_delay: float | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.epa = epa if epa is not None else {}
        self.establish_rsc = establish_rsc
        self.establish_delay = establish_delay

    async def _handle(self, request: web.Request) -> web.Response:
        item = await self._record(request)
        headers = {"X-M2M-RSC": "2000", "X-M2M-RVI": request.headers.get("X-M2M-RVI", "3")}
        ri = request.headers.get("X-M2M-RI")
        if ri is not None:
            headers["X-M2M-RI"] = ri
        sevt = sevt_of(item)
        if sevt is not None and sevt.get("typ") == 1:
            if self.establish_delay:
                self.in_flight += 1
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.establish_delay)
                except TimeoutError:
                    pass
                finally:
                    self.in_flight -= 1
            rsc = self.establish_rsc
            headers["X-M2M-RSC"] = str(rsc)
            if rsc == 2000:
                headers["Content-Type"] = "application/json"
                return web.Response(status=200, headers=headers,
                                    body=json.dumps({"m2m:sep": {"epa": self.epa}}).encode())
            return web.Response(status=http_status(rsc), headers=headers,
                                body=json.dumps({"m2m:dbg": "no thanks"}).encode())
        if item.is_verification and self.reject_verification:
            headers["X-M2M-RSC"] = "4103"
            return web.Response(status=403, headers=headers)
        return web.Response(status=200, headers=headers)

    async def event(self, typ: int, timeout: float = 5.0) -> tuple[Received, dict[str, Any]]:
        """The next session event of type ``typ`` (other requests are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"receiver {self.port}: no session event typ {typ} within {timeout:g} s")
            item = await self.next(left)
            sevt = sevt_of(item)
            if sevt is not None and sevt.get("typ") == typ:
                return item, sevt

    def events(self, typ: int | None = None) -> list[dict[str, Any]]:
        """Every session event received so far (of type ``typ``)."""
        out = []
        for item in self.received:
            sevt = sevt_of(item)
            if sevt is not None and (typ is None or sevt.get("typ") == typ):
                out.append(sevt)
        return out


# -- CSEs ------------------------------------------------------------------------------

async def start_smg_pair(cse_process: Callable[..., Any], http: Http, *, cse1_extra: str = "",
                         cse2_extra: str = "", cse1_store: str = "", cse2_store: str = ""
                         ) -> tuple[CSEProcess, CSEProcess]:
    """CSE1 (/id-cse1, cse1) and CSE2 (/id-cse2, cse2) registered with CSE1;
    ``cseN_store``: more ``[store]`` keys (the PostgreSQL backend)."""
    cse1 = await cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1",
                             extra=cse1_store + smg_toml() + cse1_extra)
    cse2 = await cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                             extra=cse2_store + registrar_toml("/id-cse1", "cse1", cse1.url) + smg_toml()
                             + cse2_extra)
    await wait_registered(http, cse2, "/id-cse1", "cse1")
    await wait_csr(http, cse1, "cse1/id-cse2")
    await wait_csr(http, cse2, "cse2/id-cse1")
    return cse1, cse2


async def start_smg_chain(cse_process: Callable[..., Any], http: Http, *, extra: str = ""
                          ) -> tuple[CSEProcess, CSEProcess, CSEProcess]:
    """IN (/id-in, cse-in); CSE1 and CSE2 both registered with the IN only."""
    in_cse = await cse_process(cse_id="/id-in", name="cse-in", subdir="in", extra=smg_toml() + extra)
    cse1, cse2 = await asyncio.gather(
        cse_process(cse_id="/id-cse1", name="cse1", subdir="cse1",
                    extra=registrar_toml("/id-in", "cse-in", in_cse.url) + smg_toml() + extra),
        cse_process(cse_id="/id-cse2", name="cse2", subdir="cse2",
                    extra=registrar_toml("/id-in", "cse-in", in_cse.url) + smg_toml() + extra))
    await wait_registered(http, cse1, "/id-in", "cse-in")
    await wait_registered(http, cse2, "/id-in", "cse-in")
    await wait_csr(http, in_cse, "cse-in/id-cse1")
    await wait_csr(http, in_cse, "cse-in/id-cse2")
    return in_cse, cse1, cse2


# -- AEs and sessions ----------------------------------------------------------------------

async def smg_ae(http: Http, cse: CSEProcess, cb: str, rn: str, rcv: Receiver | None,
                 *, subscribe: bool = True) -> str:
    """Flow 1 steps 2-5: a session-capable AE (poa = the receiver) and, when
    ``subscribe``, a verified subscription under its ``sessions``."""
    attrs: dict[str, Any] = {"scp": ["smg"]}
    if rcv is not None:
        attrs["poa"] = [rcv.url]
    aei = await register_ae(http, cse, cb, rn, **attrs)
    if subscribe:
        assert rcv is not None
        r = await http.send("POST", f"{cse.url}/{cb}/{rn}/sessions", fr=aei, ty=23,
                            body={"m2m:sub": {"rn": "sesSub", "nu": [rcv.url]}})
        assert r.rsc == 2001, (r.rsc, r.body)
        ver = await rcv.next(5)
        assert ver.is_verification, ver.body
    return aei


async def establish(http: Http, cse: CSEProcess, cb: str, rn: str, aei: str, tep: str,
                    **attrs: Any) -> dict[str, Any]:
    """Flow 1 steps 7-17 from the initiator's side: the created session (2001)."""
    r = await http.send("POST", f"{cse.url}/{cb}/{rn}/sessions", fr=aei, ty=9002,
                        body={"m2m:sess": {"tep": tep, **attrs}})
    assert r.rsc == 2001, (r.rsc, r.body)
    return dict(r.body["m2m:sess"])


async def get(http: Http, url: str, fr: str = ADMIN) -> HttpReply:
    return await http.send("GET", url, fr=fr)


async def hop_view(http: Http, cse: CSEProcess, sid: str) -> dict[str, Any]:
    """A hop's copy of the session ``sid`` (by its ri ``ses<sid>``), with its
    descendants nested (rcn 4), read by the admin."""
    r = await http.send("GET", f"{cse.url}/ses{sid}?rcn=4", fr=ADMIN)
    assert r.rsc == 2000, (cse.url, r.rsc, r.body)
    return dict(r.body["m2m:sess"])


async def smg_resources(http: Http, cse: CSEProcess, cb: str) -> list[str]:
    """Every session resource (ty 9002-9006) the CSE holds, by admin discovery."""
    r = await http.send("GET", f"{cse.url}/{cb}?fu=1&ty={'+'.join(map(str, SMG_TYS))}", fr=ADMIN)
    assert r.rsc == 2000, (r.rsc, r.body)
    return list(r.body["m2m:uril"])


async def sessions_in(http: Http, cse: CSEProcess, path: str) -> list[str]:
    """The sessions under one ``sessions`` collection (child references)."""
    r = await http.send("GET", f"{cse.url}/{path}?rcn=6", fr=ADMIN)
    assert r.rsc == 2000, (path, r.rsc, r.body)
    return [c["val"] for c in r.body["m2m:rrl"].get("rrf", []) if c.get("typ") == 9002]


async def wait_gone(http: Http, cse: CSEProcess, cb: str, timeout: float = 10.0) -> None:
    """Poll until the CSE holds no session resource at all."""
    async def check() -> bool:
        return not await smg_resources(http, cse, cb)
    await until(check, f"no session resources left at {cse.url}", timeout)


def check_established_copy(view: dict[str, Any], *, sid: str, iep: str, tep: str,
                           epa1: dict[str, Any], epa2: dict[str, Any], hops: dict[str, list[str]]) -> None:
    """One hop's copy after establishment: state 2, both endpoints, the
    expected nextHops (csi -> poa), a sessionPolicies collection, no scr."""
    assert view["sid"] == sid and view["ri"] == f"ses{sid}", view
    assert view["iep"] == iep and view["tep"] == tep, view
    assert view["sst"] == 2, view
    assert "scr" not in view, view
    seps = sorted(view.get("m2m:sep", []), key=lambda s: s["rol"])
    assert [s["rol"] for s in seps] == [1, 2], view
    assert seps[0]["aei"] == iep and seps[0]["csi"] == iep.rsplit("/", 1)[0], seps
    assert seps[1]["aei"] == tep and seps[1]["csi"] == tep.rsplit("/", 1)[0], seps
    assert seps[0]["epa"] == epa1, seps
    assert seps[1]["epa"] == epa2, seps
    for s in seps:
        assert s["ty"] == 9003, s
    nhps = {h["csi"]: h for h in view.get("m2m:nhp", [])}
    assert set(nhps) == set(hops), view.get("m2m:nhp")
    for csi, poa in hops.items():
        assert nhps[csi]["poa"] == poa, nhps[csi]
        assert nhps[csi]["ty"] == 9004 and nhps[csi]["nst"] == 1, nhps[csi]
    spc = view.get("m2m:spc", [])
    assert len(spc) == 1 and spc[0]["rn"] == "sessionPolicies" and spc[0]["ty"] == 9005, spc

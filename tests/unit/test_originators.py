"""Which originators a CSE accepts, and who changes a remoteCSE (docs/security.md
"Originators and remote CSEs").

Why: an originator starting with ``/`` used to count as registered, so
``/id-zz/Cfoo`` -- a CSE nobody registered -- could discover AEs; an
unregistered AE-ID was forwarded to the next CSE in this CSE's name
(``/id-in/Cnobody``); and anyone an ACP let UPDATE a ``<remoteCSE>`` could
move its ``poa`` (where this CSE forwards) or claim descendants (``dcse``)
to take over routes. Now only AEs registered here and originators a
registered remote CSE leads to are accepted (4000 malformed, 4103 unknown,
never forwarded), a remoteCSE is changed only by its CSE (or the admin),
and its ``dcse`` cannot claim a route this CSE already has.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from cse.app import CSE
from cse.config import RegistrarConfig, load_config
from cse.core.messages import Operation, Request
from cse.csf import access
from cse.security.exposure import is_loopback, open_originator_warning
from cse.store.memory import MemoryStore
from tests.conftest import ADMIN, InProc
from tests.e2e.test_intercse_helpers import free_port
from tests.unit.pipeline import dbg
from tests.unit.test_forwarding_registrar import answer, fake, register_cse

CREATE, RETRIEVE, UPDATE, DELETE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE, Operation.DELETE
CB = "cse-in"


# -- originators ------------------------------------------------------------------------

async def test_an_unregistered_cse_s_originator_cannot_discover_on_a_fresh_cse(inproc: InProc) -> None:
    aei = await inproc.register("target", scp=["smg"])
    for fr in ("/id-zz/Cfoo", "/id-zz"):
        r = await inproc.call(RETRIEVE, CB, fr, query={"fu": ("1",), "ty": ("2",)})
        assert r.rsc == 4103, (fr, r.pc)
        assert "CSE /id-zz is not registered here" in dbg(r)
    # the access decision itself no longer trusts the leading slash
    ae = await inproc.cse.store.get(aei)
    assert ae is not None
    assert not await access.allowed(inproc.cse.ctx, "/id-zz/Cfoo", access.Permission.DISCOVER, ae)
    await register_cse(inproc, "/id-zz", "cse-zz")
    r = await inproc.call(RETRIEVE, CB, "/id-zz/Cfoo", query={"fu": ("1",), "ty": ("2",)})
    # SP-relative: the originator is another CSE's (docs/onem2m.md "Forwarding")
    assert r.rsc == 2000 and r.pc["m2m:uril"] == [f"/id-in/{CB}/target"], r.pc


async def test_only_an_ae_resource_makes_an_ae_id_registered(inproc: InProc) -> None:
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, f"{CB}/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    cnt_ri = r.pc["m2m:cnt"]["ri"]
    assert (await inproc.call(RETRIEVE, CB, aei)).rsc == 2000
    r = await inproc.call(RETRIEVE, CB, cnt_ri)  # a container's ri is no AE-ID
    assert r.rsc == 4103 and f"originator '{cnt_ri}' is not registered" in dbg(r), r.pc


@pytest.mark.parametrize("fr", ["Cnobody", "/id-zz/Cx", "/id-zz"])
async def test_unknown_originators_are_not_forwarded(inproc: InProc, fr: str) -> None:
    await register_cse(inproc)
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", fr)
    assert r.rsc == 4103, r.pc
    assert out.sent == []
    # nor accepted as a non-blocking request (no <request> stored for it)
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", fr, rt=1)
    assert r.rsc == 4103, r.pc
    found = await inproc.call(RETRIEVE, CB, ADMIN, query={"fu": ("1",), "ty": ("17",)})
    assert found.pc["m2m:uril"] == []
    # a registered AE still is
    aei = await inproc.register("app")
    assert (await inproc.call(RETRIEVE, "/id-mn/cse-mn", aei)).rsc == 2000
    assert out.sent[-1][1].fr == f"/id-in/{aei}"


async def test_session_based_requests_from_unknown_originators_are_refused_first(inproc: InProc) -> None:
    r = await inproc.call(RETRIEVE, CB, "/id-zz/Cfoo", sid="ses-none")
    assert r.rsc == 4103 and "/id-zz" in dbg(r), r.pc


@pytest.mark.parametrize("fr", ["/", "/id-mn//x", "/id-mn/", "//", "//sp", "//sp//Cx"])
async def test_malformed_originators_are_4000(inproc: InProc, fr: str) -> None:
    await register_cse(inproc)
    r = await inproc.call(RETRIEVE, CB, fr)
    assert r.rsc == 4000 and "is not a valid ID" in dbg(r), (fr, r.pc)


async def test_originators_a_registered_remote_cse_leads_to(inproc: InProc) -> None:
    await register_cse(inproc, dcse=["/id-asn"])
    for fr, rsc in (("/id-mn", 2000), ("/id-mn/Cae", 2000), ("/id-asn/Cae", 2000), ("//sp.example/id-mn/Cae", 2000),
                    ("/id-other/Cae", 4103), (f"/id-in/{CB}", 4103)):
        r = await inproc.call(RETRIEVE, CB, fr)
        assert r.rsc == rsc, (fr, r.pc)


async def test_registrations_are_not_refused(inproc: InProc) -> None:
    assert (await inproc.call(CREATE, CB, "C", ty=2, pc={"m2m:ae": {
        "rn": "new", "api": "Nnew", "rr": True, "srv": ["3"]}})).rsc == 2001
    assert (await register_cse(inproc, "/id-fresh", "cse-fresh")).rsc == 2001


async def test_behind_the_registrar_everything_else_is_known() -> None:
    """A registree's registrar stands for every CSE above it (once it is registered there)."""
    config = load_config(None, db=":memory:")
    config = replace(config, registrar=RegistrarConfig(
        cse_id="/id-up", name="cse-up", poa=f"http://127.0.0.1:{free_port()}", check_interval_s=60))
    cse = CSE(config, store=MemoryStore())
    await cse.start(serve_http=False)
    try:
        req = Request(op=RETRIEVE, to=CB, fr="/id-far/Cae", rqi="r1")
        assert (await cse.handle(req)).rsc == 4103  # the registrar is not registered yet
        made = await cse.handle(Request(op=CREATE, to=CB, fr="/id-up", rqi="r2", ty=16,
                                        pc={"m2m:csr": {"cb": "/id-up/cse-up", "rr": True}}))
        assert made.rsc == 2001, made.pc
        assert (await cse.handle(replace(req, rqi="r3"))).rsc == 2000
    finally:
        await cse.stop()


# -- remoteCSE: changed by its CSE only; dcse -------------------------------------------

async def test_an_acp_does_not_let_others_change_or_delete_a_remote_cse(inproc: InProc) -> None:
    await register_cse(inproc)
    evil = await inproc.register("evil")
    r = await inproc.call(CREATE, CB, ADMIN, ty=1, pc={"m2m:acp": {
        "rn": "open", "pv": {"acr": [{"acor": ["all"], "acop": 63}]}, "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    r = await inproc.call(UPDATE, f"{CB}/id-mn", ADMIN, pc={"m2m:csr": {"acpi": [r.pc["m2m:acp"]["ri"]]}})
    assert r.rsc == 2004, r.pc
    for fr in (evil, "/id-mn/Cae"):
        u = await inproc.call(UPDATE, f"{CB}/id-mn", fr, pc={"m2m:csr": {"poa": ["http://127.0.0.1:9"]}})
        assert u.rsc == 4103 and "only that CSE" in dbg(u), (fr, u.pc)
        d = await inproc.call(DELETE, f"{CB}/id-mn", fr)
        assert d.rsc == 4103, (fr, d.pc)
    assert (await inproc.call(RETRIEVE, f"{CB}/id-mn", evil)).rsc == 2000  # reading is what the ACP grants
    g = await inproc.call(RETRIEVE, f"{CB}/id-mn", ADMIN)
    assert g.pc["m2m:csr"]["poa"] == ["http://id-mn.example:8081"]
    # the CSE itself and the admin still may
    assert (await inproc.call(UPDATE, f"{CB}/id-mn", "/id-mn", pc={"m2m:csr": {"rr": False}})).rsc == 2004
    assert (await inproc.call(UPDATE, f"{CB}/id-mn", ADMIN, pc={"m2m:csr": {"rr": True}})).rsc == 2004


async def test_descendants_cannot_take_over_known_routes(inproc: InProc) -> None:
    await register_cse(inproc, dcse=["/id-asn"])
    for dcse, why in ((["/id-in"], "that is this CSE"), (["/id-evil"], "that is the remote CSE itself"),
                      (["/id-mn"], "registered here itself"), (["/id-asn"], "already a descendant of /id-mn")):
        r = await register_cse(inproc, "/id-evil", "cse-evil", dcse=dcse)
        assert r.rsc == 4103 and why in dbg(r), (dcse, r.pc)
    assert await inproc.cse.store.get("id-evil") is None
    assert (await register_cse(inproc, "/id-evil", "cse-evil", dcse=["/id-leaf"])).rsc == 2001
    # an UPDATE of dcse is held to the same rules
    r = await inproc.call(UPDATE, f"{CB}/id-evil", "/id-evil", pc={"m2m:csr": {"dcse": ["/id-leaf", "/id-mn"]}})
    assert r.rsc == 4103, r.pc
    r = await inproc.call(UPDATE, f"{CB}/id-mn", "/id-mn", pc={"m2m:csr": {"dcse": ["/id-asn", "/id-asn2"]}})
    assert r.rsc == 2004, r.pc


async def test_the_registrar_cannot_be_claimed_as_a_descendant() -> None:
    config = load_config(None, db=":memory:")
    config = replace(config, registrar=RegistrarConfig(
        cse_id="/id-up", name="cse-up", poa=f"http://127.0.0.1:{free_port()}", check_interval_s=60))
    cse = CSE(config, store=MemoryStore())
    await cse.start(serve_http=False)
    try:
        r = await cse.handle(Request(op=CREATE, to=CB, fr="/id-child", rqi="r1", ty=16, pc={"m2m:csr": {
            "cb": "/id-child/cb", "rr": True, "dcse": ["/id-up"]}}))
        assert r.rsc == 4103 and "this CSE's registrar" in r.pc["m2m:dbg"], r.pc
    finally:
        await cse.stop()


# -- the start-up warning -----------------------------------------------------------------

@pytest.mark.parametrize("host,auth,warns", [
    ("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False), ("127.0.0.2", False, False),
    ("0.0.0.0", False, True), ("::", False, True), ("", False, True), ("192.0.2.7", False, True),
    ("cse.example", False, True), ("0.0.0.0", True, False)])
def test_open_originator_warning(host: str, auth: bool, warns: bool) -> None:
    text = open_originator_warning(host, auth)
    assert (text is not None) == warns, (host, auth, text)
    if text is not None:
        assert "anyone who can reach it can claim any originator" in text
    assert is_loopback(host) == (host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))


async def test_the_cse_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """Logged when the CSE starts, whether or not HTTP is served in-process (no socket here)."""
    for host, expected in (("0.0.0.0", True), ("127.0.0.1", False)):
        caplog.clear()
        cse = CSE(load_config(None, db=":memory:", http_host=host), store=MemoryStore())
        with caplog.at_level(logging.WARNING, logger="cse"):
            await cse.start(serve_http=False)
        await cse.stop()
        hits = [r for r in caplog.records if r.levelno == logging.WARNING and "claim any originator" in r.message]
        assert bool(hits) == expected, (host, caplog.text)

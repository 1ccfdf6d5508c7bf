"""Registration with any conformant CSE, in process (TS-0001 9.6.4, TS-0004 7.4.4.2.1).

Why: a registrar that follows TS-0001 9.6.4 to the letter refuses any
attribute of ``<remoteCSE>`` it does not know (4000), and ``scp`` is this
CSE's own extension -- so the registration we send carries only standard
attributes, and the peer's session capability is learned from its CSEBase
(``scp`` there, or ``srt`` listing the session types) instead. A release 5
registree may send ``spi``; we keep ours and refuse another provider's
(5001: no Mcc'). A CSE announces the CSEs below it (``dcse``) so its
registrar can route to them. The registree side runs against a fake
registrar (:class:`Registrar` below), so no socket is opened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cse.config import load_config
from cse.core.events import Event, EventKind
from cse.core.messages import Operation, Request, Response
from cse.csf.remote_cse import RegistrarLink, session_capable
from tests.conftest import ADMIN, InProc, started_inproc

CREATE, RETRIEVE, UPDATE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE
CB = "cse-in"

# TS-0001 9.6.4 (release 4 table) plus the universal/common attributes a remoteCSE carries;
# release 5 adds spi. Anything else is what a strict registrar answers 4000 for.
STANDARD_CSR = frozenset({
    "rn", "ty", "ri", "pi", "ct", "lt", "et", "lbl", "acpi", "daci", "at", "aa", "ast", "cstn", "cr", "loc",
    "cst", "poa", "cb", "csi", "mei", "tri", "rr", "nl", "csz", "esi", "trn", "dcse", "mtcc", "egid", "tren",
    "ape", "srv", "spi"})


@dataclass
class Registrar:
    """A strict registrar ``/id-up`` (CSEBase ``up``): 4000 for any attribute of
    m2m:csr outside :data:`STANDARD_CSR` unless ``knows_scp``; remembers what it got."""

    cb: dict[str, Any]
    knows_scp: bool = False
    held: dict[str, Any] = field(default_factory=dict)
    seen: list[Request] = field(default_factory=list)

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response:
        self.seen.append(req)
        if req.op == RETRIEVE and req.to == "/id-up/up":
            return Response(rsc=2000, rqi=req.rqi, pc={"m2m:cb": self.cb})
        if req.op == RETRIEVE:
            return Response(rsc=2000, rqi=req.rqi, pc={"m2m:csr": self.held})
        body = (req.pc or {}).get("m2m:csr") or {}
        allowed = STANDARD_CSR | ({"scp"} if self.knows_scp else set())
        unknown = sorted(set(body) - allowed)
        if unknown:
            return Response(rsc=4000, rqi=req.rqi,
                            pc={"m2m:dbg": f"unknown attribute: {unknown[0]} in resource: m2m:csr"})
        self.held.update(body)
        return Response(rsc=2001 if req.op == CREATE else 2004, rqi=req.rqi, pc={"m2m:csr": dict(self.held)})

    async def close(self) -> None:
        pass


STANDARD_CB = {"ty": 5, "ri": "id-up", "rn": "up", "csi": "/id-up", "cst": 1, "srv": ["2a", "3", "4"],
               "poa": ["http://127.0.0.1:9"], "srt": [1, 2, 3, 4, 5, 16, 23]}


def link(ip: InProc, registrar: Registrar) -> RegistrarLink:
    cse = ip.cse
    return RegistrarLink(cse.ctx, registrar, cse.data, registrar_csi="/id-up", registrar_name="up",
                         registrar_poa="http://127.0.0.1:9")


async def local_csr(ip: InProc, ri: str = "id-up") -> dict[str, Any]:
    r = await ip.call(RETRIEVE, f"{CB}/{ri}", ADMIN)
    assert r.rsc == 2000, r.pc
    return dict(r.pc["m2m:csr"])


# -- registree side -------------------------------------------------------------------------

async def test_registration_with_a_strict_standard_registrar(inproc: InProc) -> None:
    """TS-0004 7.4.4.2.1: the CREATE carries only remoteCSE attributes; the peer's CSEBase
    shows no sessions, so it never sees scp and our record of it has none."""
    up = Registrar(dict(STANDARD_CB))
    await link(inproc, up).register_once()
    creates = [r for r in up.seen if r.op == CREATE]
    assert len(creates) == 1
    sent = creates[0].pc["m2m:csr"]
    assert set(sent) <= STANDARD_CSR, sent
    assert sent["csi"] == "/id-in" and sent["cb"] == "/id-in/cse-in" and sent["rr"] is True
    assert not [r for r in up.seen if r.op == UPDATE]
    mine = await local_csr(inproc)
    assert mine["csi"] == "/id-up" and mine["srv"] == ["2a", "3", "4"]
    assert "scp" not in mine


async def test_session_capable_registrar_learns_scp_by_update(inproc: InProc) -> None:
    """A registrar whose CSEBase shows smg is a CSE that knows scp: it gets ours in an
    UPDATE after the (standard) CREATE, and we record its capability."""
    up = Registrar({**STANDARD_CB, "scp": ["smg"]}, knows_scp=True)
    await link(inproc, up).register_once()
    create = next(r for r in up.seen if r.op == CREATE)
    assert "scp" not in create.pc["m2m:csr"]
    updates = [r.pc["m2m:csr"] for r in up.seen if r.op == UPDATE]
    assert updates == [{"scp": ["smg"]}]
    assert up.held["scp"] == ["smg"]
    assert (await local_csr(inproc))["scp"] == ["smg"]


async def test_session_types_in_srt_also_mean_session_capable(inproc: InProc) -> None:
    cb = {**STANDARD_CB, "srt": [*STANDARD_CB["srt"], 9001, 9002, 9003, 9004, 9005, 9006]}
    assert session_capable(cb) and not session_capable(STANDARD_CB)
    assert not session_capable({**STANDARD_CB, "srt": [9002]})  # one type alone is not the SMG
    up = Registrar(cb, knows_scp=True)
    await link(inproc, up).register_once()
    assert (await local_csr(inproc))["scp"] == ["smg"]


async def test_re_registration_at_a_strict_registrar_updates_only_standard_attributes(inproc: InProc) -> None:
    up = Registrar(dict(STANDARD_CB))
    first = link(inproc, up)
    await first.register_once()

    async def taken(poa: str, req: Request, **kw: Any) -> Response:
        if req.op == CREATE:
            return Response(rsc=4117, rqi=req.rqi, pc={"m2m:dbg": "already registered"})
        return await Registrar.send(up, poa, req, **kw)
    up.send = taken  # type: ignore[method-assign]
    up.seen.clear()
    await link(inproc, up).register_once()
    update = next(r for r in up.seen if r.op == UPDATE)
    assert set(update.pc["m2m:csr"]) <= STANDARD_CSR and "poa" in update.pc["m2m:csr"]


async def test_descendants_are_the_cses_registered_here_and_theirs(inproc: InProc) -> None:
    """TS-0001 9.6.4 descendantCSEs: what this CSE can reach below it, not its registrar."""
    up = Registrar(dict(STANDARD_CB))
    lk = link(inproc, up)
    await lk.register_once()
    assert "dcse" not in next(r for r in up.seen if r.op == CREATE).pc["m2m:csr"]
    body = {"cb": "/id-mn3/cse3", "csi": "/id-mn3", "rr": True, "poa": ["http://127.0.0.1:9"],
            "dcse": ["/id-asn4"]}
    r = await inproc.call(CREATE, CB, "/id-mn3", ty=16, pc={"m2m:csr": body})
    assert r.rsc == 2001, r.pc
    assert await lk.descendants() == ["/id-asn4", "/id-mn3"]
    await lk._sync_descendants(dict(up.held))
    assert up.held["dcse"] == ["/id-asn4", "/id-mn3"]
    up.seen.clear()
    await lk._sync_descendants(dict(up.held))  # nothing changed: nothing sent
    assert up.seen == []


async def test_a_remote_cse_event_wakes_the_registrar_link(inproc: InProc) -> None:
    lk = link(inproc, Registrar(dict(STANDARD_CB)))
    assert not lk._wake.is_set()
    r = await inproc.call(CREATE, CB, "/id-mn3", ty=16, pc={"m2m:csr": {
        "cb": "/id-mn3/cse3", "csi": "/id-mn3", "rr": True, "poa": ["http://127.0.0.1:9"]}})
    assert r.rsc == 2001
    doc = await inproc.cse.store.get("id-mn3")
    assert doc is not None
    await lk.on_events([Event(EventKind.CREATE_CHILD, doc, parent={"ri": "id-in"})])
    assert lk._wake.is_set()


# -- registrar side: a release 5 registree ---------------------------------------------------

def rel5_csr(spi: str, csi: str = "/id-mn5") -> dict[str, Any]:
    return {"m2m:csr": {"rn": csi[1:], "cb": f"{csi}/cse", "csi": csi, "cst": 2, "rr": True,
                        "poa": ["http://127.0.0.1:9"], "srv": ["2a", "3", "4", "5"], "spi": spi}}


async def test_release_5_registree_with_spi_is_accepted_and_spi_kept(inproc: InProc) -> None:
    r = await inproc.call(CREATE, CB, "/id-mn5", ty=16, pc=rel5_csr("//sp.example"), rvi="5")
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:csr"]["spi"] == "//sp.example"
    assert (await local_csr(inproc, "id-mn5"))["spi"] == "//sp.example"
    bad = await inproc.call(CREATE, CB, "/id-mn6", ty=16, pc=rel5_csr("sp.example", "/id-mn6"), rvi="5")
    assert bad.rsc == 4000 and "spi" in str(bad.pc), bad.pc


async def test_our_own_scp_on_a_received_remote_cse_stays_accepted(inproc: InProc) -> None:
    body = rel5_csr("//sp.example")
    body["m2m:csr"]["scp"] = ["smg"]
    r = await inproc.call(CREATE, CB, "/id-mn5", ty=16, pc=body, rvi="5")
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:csr"]["scp"] == ["smg"]


@pytest.fixture
async def with_sp() -> AsyncIterator[InProc]:
    base = load_config(None, db=":memory:")
    config = dataclasses.replace(base, cse=dataclasses.replace(base.cse, sp_id="//sp.example"))
    async with started_inproc(config) as ip:
        yield ip


async def test_spi_of_another_service_provider_is_5001(with_sp: InProc) -> None:
    ours = await with_sp.call(CREATE, CB, "/id-mn5", ty=16, pc=rel5_csr("//sp.example"), rvi="5")
    assert ours.rsc == 2001, ours.pc
    other = await with_sp.call(CREATE, CB, "/id-mn6", ty=16, pc=rel5_csr("//other.example", "/id-mn6"),
                                rvi="5")
    assert other.rsc == 5001, other.pc
    assert "//other.example" in str(other.pc.get("m2m:dbg")) and "Mcc'" in str(other.pc.get("m2m:dbg"))
    assert await with_sp.cse.store.get("id-mn6") is None


async def test_a_refused_dcse_does_not_undo_the_registration(inproc: InProc) -> None:
    """The registrar may refuse a descendant it already routes elsewhere (4103): the
    registration itself stands, and the CREATE never carried dcse."""
    r = await inproc.call(CREATE, CB, "/id-mn3", ty=16, pc={"m2m:csr": {
        "cb": "/id-mn3/cse3", "csi": "/id-mn3", "rr": True, "poa": ["http://127.0.0.1:9"]}})
    assert r.rsc == 2001, r.pc
    up = Registrar(dict(STANDARD_CB))

    async def no_dcse(poa: str, req: Request, **kw: Any) -> Response:
        if req.op == UPDATE and "dcse" in ((req.pc or {}).get("m2m:csr") or {}):
            up.seen.append(req)
            return Response(rsc=4103, rqi=req.rqi, pc={"m2m:dbg": "already a descendant of /id-other"})
        return await Registrar.send(up, poa, req, **kw)
    up.send = no_dcse  # type: ignore[method-assign]
    lk = link(inproc, up)
    await lk.register_once()
    assert lk.registered.is_set()
    assert "dcse" not in next(r for r in up.seen if r.op == CREATE).pc["m2m:csr"]
    assert [r.pc["m2m:csr"] for r in up.seen if r.op == UPDATE] == [{"dcse": ["/id-mn3"]}]

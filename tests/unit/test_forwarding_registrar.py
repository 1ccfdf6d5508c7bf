"""Inter-CSE registration and forwarding, in process (TS-0004 7.4.4.2.1, 7.3.2.6, 7.3.2.8).

Why: the registrar side of a remoteCSE registration decides who may join
(only a CSE, never itself, never twice, only under its own CSE-ID) and who
may change the record afterwards (the registered CSE, not another one); the
forwarder decides where a request for another CSE goes (its remoteCSE, a
``dcse`` entry, else the registrar, never bounced back to where it came
from), rewrites a local originator to SP-relative form, keeps the request
ID, turns a dead peer into 5103 and a silent one into 4008, and refuses a
request that comes back to it while it is still forwarding it (a loop).
These tests drive the in-process CSE (``inproc``, IN-CSE ``/id-in``,
CSEBase ``cse-in``) with a fake outbound transport, so no socket is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from cse.core.errors import RequestTimeout, TargetNotReachable
from cse.core.messages import Operation, Request, Response
from tests.conftest import ADMIN, InProc

CREATE, RETRIEVE, UPDATE, DELETE, NOTIFY = (Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE,
                                            Operation.DELETE, Operation.NOTIFY)
CB = "cse-in"


def csr_body(csi: str = "/id-mn", name: str = "cse-mn", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"rn": csi.lstrip("/"), "cb": f"{csi}/{name}", "csi": csi, "cst": 2, "rr": True,
                            "poa": [f"http://{csi.lstrip('/')}.example:8081"], "srv": ["3"]}
    body.update(extra)
    return {"m2m:csr": body}


async def register_cse(ip: InProc, csi: str = "/id-mn", name: str = "cse-mn", **extra: Any) -> Response:
    return await ip.call(CREATE, CB, csi, ty=16, pc=csr_body(csi, name, **extra))


def dbg(resp: Response) -> str:
    return str((resp.pc or {}).get("m2m:dbg", "")) if isinstance(resp.pc, dict) else ""


# -- registrar side ------------------------------------------------------------------

async def test_cse_registers_and_csi_is_the_originator(inproc: InProc) -> None:
    r = await register_cse(inproc)
    assert r.rsc == 2001, r.pc
    csr = r.pc["m2m:csr"]
    assert csr["csi"] == "/id-mn"
    assert csr["cb"] == "/id-mn/cse-mn"
    assert csr["ri"] == "id-mn" and csr["rn"] == "id-mn"
    assert csr["poa"] == ["http://id-mn.example:8081"]
    g = await inproc.call(RETRIEVE, f"{CB}/id-mn", ADMIN)
    assert g.rsc == 2000 and g.pc["m2m:csr"]["csi"] == "/id-mn"


async def test_csi_is_set_from_the_originator_when_omitted(inproc: InProc) -> None:
    body = csr_body()
    del body["m2m:csr"]["csi"]
    r = await inproc.call(CREATE, CB, "/id-mn", ty=16, pc=body)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:csr"]["csi"] == "/id-mn"


async def test_registered_ae_cannot_create_a_remote_cse(inproc: InProc) -> None:
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, CB, aei, ty=16, pc=csr_body())
    assert r.rsc == 4005, r.pc
    assert await inproc.cse.store.get("id-mn") is None


@pytest.mark.parametrize("fr", ["Cunknown", "Snobody", "/id-mn/Cae1"],
                         ids=["C-stem", "S-stem", "AE of another CSE"])
async def test_ae_originators_cannot_create_a_remote_cse(inproc: InProc, fr: str) -> None:
    r = await inproc.call(CREATE, CB, fr, ty=16, pc=csr_body())
    assert r.rsc == 4005, r.pc


async def test_own_cse_id_cannot_register(inproc: InProc) -> None:
    r = await inproc.call(CREATE, CB, "/id-in", ty=16, pc=csr_body("/id-in", "cse-in"))
    assert r.rsc == 4000, r.pc


async def test_second_registration_of_the_same_cse_id_is_4117(inproc: InProc) -> None:
    assert (await register_cse(inproc)).rsc == 2001
    again = await register_cse(inproc)
    assert again.rsc == 4117, again.pc
    # ...also under another resource name: the CSE-ID decides, not the rn
    other_rn = await register_cse(inproc, rn="another-name")
    assert other_rn.rsc == 4117, other_rn.pc
    found = await inproc.call(RETRIEVE, CB, ADMIN, query={"fu": ("1",), "ty": ("16",)})
    assert found.rsc == 2000
    assert found.pc["m2m:uril"] == [f"{CB}/id-mn"]


async def test_csi_not_matching_the_originator_is_4000(inproc: InProc) -> None:
    r = await inproc.call(CREATE, CB, "/id-mn", ty=16, pc=csr_body("/id-other", "cse-mn"))
    assert r.rsc == 4000, r.pc
    assert await inproc.cse.store.get("id-mn") is None
    assert await inproc.cse.store.get("id-other") is None


async def test_registered_cse_may_update_and_delete_its_remote_cse(inproc: InProc) -> None:
    assert (await register_cse(inproc)).rsc == 2001
    u = await inproc.call(UPDATE, f"{CB}/id-mn", "/id-mn",
                          pc={"m2m:csr": {"poa": ["http://moved.example:9000"], "scp": ["smg"]}})
    assert u.rsc == 2004, u.pc
    g = await inproc.call(RETRIEVE, f"{CB}/id-mn", ADMIN)
    assert g.pc["m2m:csr"]["poa"] == ["http://moved.example:9000"]
    assert g.pc["m2m:csr"]["scp"] == ["smg"]
    d = await inproc.call(DELETE, f"{CB}/id-mn", "/id-mn")
    assert d.rsc == 2002, d.pc
    assert (await inproc.call(RETRIEVE, f"{CB}/id-mn", ADMIN)).rsc == 4004
    # deregistered: it may register again
    assert (await register_cse(inproc)).rsc == 2001


async def test_another_cse_may_not_update_or_delete_a_remote_cse(inproc: InProc) -> None:
    assert (await register_cse(inproc)).rsc == 2001
    assert (await register_cse(inproc, "/id-other", "cse-other")).rsc == 2001
    u = await inproc.call(UPDATE, f"{CB}/id-mn", "/id-other", pc={"m2m:csr": {"poa": ["http://evil.example"]}})
    assert u.rsc == 4103, u.pc
    d = await inproc.call(DELETE, f"{CB}/id-mn", "/id-other")
    assert d.rsc == 4103, d.pc
    aei = await inproc.register("app")
    assert (await inproc.call(DELETE, f"{CB}/id-mn", aei)).rsc == 4103
    g = await inproc.call(RETRIEVE, f"{CB}/id-mn", ADMIN)
    assert g.rsc == 2000 and g.pc["m2m:csr"]["poa"] == ["http://id-mn.example:8081"]


async def test_transit_cse_refuses_registrations(inproc: InProc) -> None:
    """A CREATE of an AE or remoteCSE addressed to another CSE is 4000 (TS-0004 7.3.2.8)."""
    await register_cse(inproc)
    calls: list[Any] = []
    inproc.cse.forwarder.outbound = FakeOutbound(lambda poa, req: _record(calls, poa, req))
    ae = await inproc.call(CREATE, "/id-mn/cse-mn", "C", ty=2,
                           pc={"m2m:ae": {"rn": "x", "api": "Nx", "rr": True, "srv": ["3"]}})
    assert ae.rsc == 4000, ae.pc
    csr = await inproc.call(CREATE, "/id-mn/cse-mn", "/id-asn", ty=16, pc=csr_body("/id-asn", "cse-asn"))
    assert csr.rsc == 4000, csr.pc
    assert calls == []


# -- forwarding with a fake transport --------------------------------------------------

@dataclass
class FakeOutbound:
    handler: Callable[[str, Request], Any]
    sent: list[tuple[str, Request, float]] = field(default_factory=list)

    async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                   peer: str | None = None) -> Response:
        self.sent.append((poa, req, timeout))
        result = self.handler(poa, req)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    async def close(self) -> None:
        pass


async def _record(calls: list[Any], poa: str, req: Request) -> Response:
    calls.append((poa, req))
    return Response(rsc=2000, rqi=req.rqi, pc={"m2m:cb": {"csi": "/id-mn"}})


def answer(rsc: int = 2000, pc: Any = None) -> Callable[[str, Request], Response]:
    return lambda poa, req: Response(rsc=rsc, rqi=req.rqi, pc=pc if pc is not None else {"m2m:cnt": {"rn": "x"}})


def fake(ip: InProc, handler: Callable[[str, Request], Any]) -> FakeOutbound:
    out = FakeOutbound(handler)
    ip.cse.forwarder.outbound = out
    return out


async def test_forwarded_request_goes_to_the_peer_poa_with_sp_relative_originator(inproc: InProc) -> None:
    await register_cse(inproc)
    aei = await inproc.register("app")
    out = fake(inproc, answer(2000, {"m2m:cnt": {"rn": "data"}}))
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn/ae/data", aei)
    assert r.rsc == 2000 and r.pc == {"m2m:cnt": {"rn": "data"}}
    assert len(out.sent) == 1
    poa, req, _ = out.sent[0]
    assert poa == "http://id-mn.example:8081"
    assert req.fr == f"/id-in/{aei}"
    assert req.to == "/id-mn/cse-mn/ae/data"
    assert req.op == RETRIEVE
    assert r.rqi == req.rqi


async def test_forwarding_keeps_the_request_id_and_body(inproc: InProc) -> None:
    await register_cse(inproc)
    out = fake(inproc, answer(2001, {"m2m:cin": {"con": "21"}}))
    req = Request(op=CREATE, to="/id-mn/cse-mn/ae/data", fr=ADMIN, rqi="keep-this-ri-7", ty=4,
                  pc={"m2m:cin": {"con": "21"}})
    r = await inproc.cse.handle(req)
    assert r.rsc == 2001
    assert r.rqi == "keep-this-ri-7"
    sent = out.sent[0][1]
    assert sent.rqi == "keep-this-ri-7"
    assert sent.fr == f"/id-in/{ADMIN}"
    assert sent.ty == 4 and sent.pc == {"m2m:cin": {"con": "21"}}


async def test_already_sp_relative_originator_is_kept(inproc: InProc) -> None:
    await register_cse(inproc)
    await register_cse(inproc, "/id-other", "cse-other")
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", "/id-other/Cfar")
    assert r.rsc == 2000
    assert out.sent[0][1].fr == "/id-other/Cfar"


async def test_next_hop_by_descendant_cse(inproc: InProc) -> None:
    await register_cse(inproc, dcse=["/id-asn"])
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-asn/cse-asn", ADMIN)
    assert r.rsc == 2000, r.pc
    assert out.sent[0][0] == "http://id-mn.example:8081"
    assert out.sent[0][1].to == "/id-asn/cse-asn"


async def test_unknown_cse_without_registrar_is_4004(inproc: InProc) -> None:
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-nowhere/cse-x", ADMIN)
    assert r.rsc == 4004, r.pc
    assert out.sent == []


async def test_unknown_cse_goes_to_the_registrar_but_never_back_to_it(inproc: InProc) -> None:
    """A registree sends what it cannot route to its registrar; what comes
    from the registrar and is unroutable is 4004, not bounced back."""
    await register_cse(inproc, "/id-up", "cse-up")
    inproc.cse.forwarder.registrar_csi = "/id-up"
    out = fake(inproc, answer())
    aei = await inproc.register("app")
    r = await inproc.call(RETRIEVE, "/id-nowhere/cse-x", aei)
    assert r.rsc == 2000, r.pc
    assert out.sent[0][0] == "http://id-up.example:8081"
    assert out.sent[0][1].fr == f"/id-in/{aei}"
    for fr in ("/id-up", "/id-up/Cfar"):
        back = await inproc.call(RETRIEVE, "/id-nowhere/cse-x", fr)
        assert back.rsc == 4004, (fr, back.pc)
    assert len(out.sent) == 1


async def test_refused_connection_is_5103(inproc: InProc) -> None:
    await register_cse(inproc)

    def refuse(poa: str, req: Request) -> Response:
        raise TargetNotReachable(f"cannot reach {poa}: ClientConnectorError")
    fake(inproc, refuse)
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN)
    assert r.rsc == 5103, r.pc
    assert "id-mn" in dbg(r)


async def test_no_answer_in_time_is_4008(inproc: InProc) -> None:
    await register_cse(inproc)

    def silent(poa: str, req: Request) -> Response:
        raise RequestTimeout(f"no answer from {poa} within 1 s")
    out = fake(inproc, silent)
    inproc.cse.forwarder.timeout = 1.0
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN)
    assert r.rsc == 4008, r.pc
    assert out.sent[0][2] == 1.0


async def test_second_poa_is_tried_when_the_first_is_unreachable(inproc: InProc) -> None:
    await register_cse(inproc, poa=["http://dead.example:1", "http://alive.example:2"])

    def first_dead(poa: str, req: Request) -> Response:
        if "dead" in poa:
            raise TargetNotReachable("refused")
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:cb": {}})
    out = fake(inproc, first_dead)
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN)
    assert r.rsc == 2000
    assert [p for p, _, _ in out.sent] == ["http://dead.example:1", "http://alive.example:2"]


async def test_peer_without_http_or_mqtt_poa_is_5103(inproc: InProc) -> None:
    await register_cse(inproc, poa=["coap://127.0.0.1:5683"])
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN)
    assert r.rsc == 5103, r.pc
    assert out.sent == []


async def test_peer_with_an_mqtt_poa_is_forwarded_to_it(inproc: InProc) -> None:
    """TS-0010: a <remoteCSE> reachable over MQTT only; the outbound picks the binding by scheme."""
    await register_cse(inproc, poa=["coap://127.0.0.1:5683", "mqtt://127.0.0.1:1883"])
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN)
    assert r.rsc == 2000, r.pc
    assert [poa for poa, _, _ in out.sent] == ["mqtt://127.0.0.1:1883"]


async def test_expired_request_is_4008_and_not_forwarded(inproc: InProc) -> None:
    await register_cse(inproc)
    out = fake(inproc, answer())
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", ADMIN, rqet="20000101T000000")
    assert r.rsc == 4008, r.pc
    assert out.sent == []


async def test_request_coming_back_while_forwarded_is_a_loop_5103(inproc: InProc) -> None:
    """The peer routes the request straight back here: the second copy is
    refused with 5103 naming the loop, and that answer travels back."""
    await register_cse(inproc, dcse=["/id-x"])
    inner: list[Response] = []

    async def bounce(poa: str, req: Request) -> Response:
        # what the peer does: forward it (same originator and RI) back to us
        resp = await inproc.cse.handle(req)
        inner.append(resp)
        return resp
    out = fake(inproc, bounce)
    aei = await inproc.register("app")
    r = await asyncio.wait_for(inproc.call(RETRIEVE, "/id-x/cse-x", aei), 5)
    assert r.rsc == 5103, r.pc
    assert "loop" in dbg(r).lower()
    assert len(out.sent) == 1
    assert inner and inner[0].rsc == 5103
    # the loop bookkeeping is released: a later request is forwarded again
    out.handler = answer()
    again = await inproc.call(RETRIEVE, "/id-x/cse-x", aei)
    assert again.rsc == 2000


async def test_the_same_ri_from_different_originators_is_not_a_loop(inproc: InProc) -> None:
    await register_cse(inproc)
    gate = asyncio.Event()

    async def slow(poa: str, req: Request) -> Response:
        await gate.wait()
        return Response(rsc=2000, rqi=req.rqi, pc={"m2m:cb": {}})
    fake(inproc, slow)
    a = await inproc.register("a")
    b = await inproc.register("b")
    ra = asyncio.ensure_future(inproc.cse.handle(Request(op=RETRIEVE, to="/id-mn/cse-mn", fr=a, rqi="same")))
    rb = asyncio.ensure_future(inproc.cse.handle(Request(op=RETRIEVE, to="/id-mn/cse-mn", fr=b, rqi="same")))
    await asyncio.sleep(0)
    gate.set()
    done = await asyncio.wait_for(asyncio.gather(ra, rb), 5)
    assert [d.rsc for d in done] == [2000, 2000]


async def test_notify_to_a_local_ae_from_a_peer_cse_is_relayed_to_its_poa(inproc: InProc) -> None:
    """A peer CSE notifying ``/id-in/<aei>`` reaches the AE's poa (the
    Hosting CSE relays), with the answer of the AE coming back."""
    aei = await inproc.register("app", poa=["http://127.0.0.1:7000/notify"])
    r = await inproc.call(CREATE, "cse-in", "/id-mn", ty=16,
                          pc={"m2m:csr": {"cb": "/id-mn/cse-mn", "rr": True}})
    assert r.rsc == 2001, r.pc  # the peer is registered here: only then are its originators accepted
    relayed: list[tuple[str, Request, bool]] = []

    class NotifyOut:
        async def send(self, poa: str, req: Request, *, timeout: float, exact: bool = False,
                       peer: str | None = None) -> Response:
            relayed.append((poa, req, exact))
            return Response(rsc=2000, rqi=req.rqi)

        async def close(self) -> None:
            pass
    inproc.cse.notifier.outbound = NotifyOut()
    r = await inproc.call(NOTIFY, f"/id-in/{aei}", "/id-mn", pc={"m2m:sgn": {"vrq": True, "sur": "/id-mn/sub1"}})
    assert r.rsc == 2000, r.pc
    assert len(relayed) == 1
    poa, req, exact = relayed[0]
    assert poa == "http://127.0.0.1:7000/notify"
    assert req.pc == {"m2m:sgn": {"vrq": True, "sur": "/id-mn/sub1"}}


async def test_forwarded_discovery_answer_comes_back_sp_relative(inproc: InProc) -> None:
    """A CSE-relative ID of the far CSE means nothing here: the references of a
    relayed discovery (``m2m:uril``) or child-reference (``m2m:rrl``) answer
    come back SP-relative for the CSE that hosts them (TS-0004 7.3.2.8); those
    already SP-relative or absolute, and other content, stay as they were."""
    await register_cse(inproc)
    aei = await inproc.register("app")
    fake(inproc, answer(2000, {"m2m:uril": ["cse-mn/ae/data", "cnt123", "/id-x/cse-x/a", "//sp/id-y/b"]}))
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn", aei, query={"fu": ("1",)})
    assert r.rsc == 2000, r.pc
    assert r.pc == {"m2m:uril": ["/id-mn/cse-mn/ae/data", "/id-mn/cnt123", "/id-x/cse-x/a", "//sp/id-y/b"]}
    fake(inproc, answer(2000, {"m2m:rrl": {"rrf": [{"nm": "data", "typ": 3, "val": "cse-mn/ae/data"}]}}))
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn/ae", aei, rcn=6)
    assert r.pc == {"m2m:rrl": {"rrf": [{"nm": "data", "typ": 3, "val": "/id-mn/cse-mn/ae/data"}]}}
    fake(inproc, answer(2000, {"m2m:cnt": {"rn": "data", "pi": "ae1"}}))
    r = await inproc.call(RETRIEVE, "/id-mn/cse-mn/ae/data", aei)
    assert r.pc == {"m2m:cnt": {"rn": "data", "pi": "ae1"}}


async def test_discovery_by_another_cses_originator_is_sp_relative(inproc: InProc) -> None:
    """As hosting CSE: an originator of another CSE gets SP-relative
    references; a local one keeps the CSE-relative form."""
    await register_cse(inproc)
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, f"{CB}/app", aei, ty=1, pc={"m2m:acp": {
        "rn": "open", "pv": {"acr": [{"acor": ["all"], "acop": 63}]}, "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    acp = r.pc["m2m:acp"]["ri"]
    r = await inproc.call(CREATE, f"{CB}/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data", "lbl": ["x"], "acpi": [acp]}})
    assert r.rsc == 2001, r.pc
    ri = r.pc["m2m:cnt"]["ri"]
    q = {"fu": ("1",), "lbl": ("x",)}
    r = await inproc.call(RETRIEVE, CB, ADMIN, query=q)
    assert r.pc == {"m2m:uril": [f"{CB}/app/data"]}
    for fr in ("/id-mn", f"/id-mn/{ADMIN}"):
        r = await inproc.call(RETRIEVE, CB, fr, query=q)
        assert r.rsc == 2000, (fr, r.pc)
        assert r.pc == {"m2m:uril": [f"/id-in/{CB}/app/data"]}, fr
    r = await inproc.call(RETRIEVE, CB, "/id-mn", query=q, drt=2)
    assert r.pc == {"m2m:uril": [f"/id-in/{ri}"]}
    r = await inproc.call(CREATE, f"{CB}/app/data", aei, ty=4, pc={"m2m:cin": {"rn": "i", "con": "1"}})
    assert r.rsc == 2001, r.pc
    r = await inproc.call(RETRIEVE, f"{CB}/app/data", "/id-mn", rcn=6)
    assert r.rsc == 2000, r.pc
    assert [x["val"] for x in r.pc["m2m:rrl"]["rrf"]] == [f"/id-in/{CB}/app/data/i"]

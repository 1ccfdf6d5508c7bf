"""Who may change ``acpi`` (TS-0001 9.6.1.3.2; docs/security.md "Access control").

Why: ``acpi`` decides every other right on a resource. Anyone holding
UPDATE in an ACP's ``pv`` could rewrite it alongside harmless attributes,
point it at an ACP of their own, or remove it (``acpi: null``) to fall
back to the owner's default policy -- each a way to take a resource over or
to widen the owner's rights past what the ACP's controller allowed. The
rule: ``acpi`` is the only attribute of such an UPDATE, and it needs UPDATE
in the ``pvs`` of one of the ACPs the resource references now (without
``acpi``: its owner); the admin always may.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.conftest import ADMIN, InProc
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE
CNT = "cse-in/owner/cnt"


async def acp(ip: InProc, fr: str, rn: str, pv: list[str], pvs: list[str], parent: str = "cse-in/owner") -> str:
    r = await ip.call(CREATE, parent, fr, ty=1, pc={"m2m:acp": {
        "rn": rn, "pv": {"acr": [{"acor": pv, "acop": 63}]}, "pvs": {"acr": [{"acor": pvs, "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    return str(r.pc["m2m:acp"]["ri"])


@pytest.fixture
async def world(inproc: InProc) -> dict[str, Any]:
    """AE ``owner`` with container ``cnt`` protected by ACP ``guard``: its
    ``pv`` gives the owner and ``writer`` everything, its ``pvs`` only
    ``keeper`` (an AE that controls the policy). ``writer`` also has an ACP
    of its own (``mine``, under the owner, where the owner lets it)."""
    owner = await inproc.register("owner")
    writer = await inproc.register("writer")
    keeper = await inproc.register("keeper")
    r = await inproc.call(CREATE, "cse-in/owner", owner, ty=3, pc={"m2m:cnt": {"rn": "cnt"}})
    assert r.rsc == 2001, r.pc
    guard = await acp(inproc, owner, "guard", [owner, writer], [keeper])
    mine = await acp(inproc, owner, "mine", [writer], [writer])
    r = await inproc.call(UPDATE, CNT, owner, pc={"m2m:cnt": {"acpi": [guard]}})
    assert r.rsc == 2004, r.pc  # no acpi yet: the owner sets the first one
    return {"ip": inproc, "owner": owner, "writer": writer, "keeper": keeper, "guard": guard, "mine": mine}


async def acpi_of(ip: InProc) -> Any:
    r = await ip.call(RETRIEVE, CNT, ADMIN)
    return r.pc["m2m:cnt"].get("acpi")


async def test_acpi_with_other_attributes_is_4000_for_everyone(world: dict[str, Any]) -> None:
    ip = world["ip"]
    for fr in (world["writer"], world["keeper"], ADMIN):
        r = await ip.call(UPDATE, CNT, fr, pc={"m2m:cnt": {"lbl": ["a"], "acpi": [world["mine"]]}})
        assert r.rsc == 4000, (fr, r.pc)
        assert "acpi must be the only attribute" in dbg(r) and "lbl" in dbg(r)
    assert await acpi_of(ip) == [world["guard"]]
    # the other attributes alone are a plain UPDATE, governed by pv
    r = await ip.call(UPDATE, CNT, world["writer"], pc={"m2m:cnt": {"lbl": ["a"]}})
    assert r.rsc == 2004, r.pc


async def test_pv_update_does_not_allow_changing_acpi(world: dict[str, Any]) -> None:
    ip, writer, owner = world["ip"], world["writer"], world["owner"]
    for who in (writer, owner):  # both hold UPDATE in guard's pv, neither in its pvs
        r = await ip.call(UPDATE, CNT, who, pc={"m2m:cnt": {"acpi": [world["mine"]]}})
        assert r.rsc == 4103, (who, r.pc)
        assert "selfPrivileges (pvs)" in dbg(r) and world["guard"] in dbg(r)
    assert await acpi_of(ip) == [world["guard"]]


@pytest.mark.parametrize("removal", [None, []])
async def test_removing_acpi_needs_the_same_right(world: dict[str, Any], removal: Any) -> None:
    """``acpi: null`` would hand the resource to the owner's default policy."""
    ip = world["ip"]
    r = await ip.call(UPDATE, CNT, world["owner"], pc={"m2m:cnt": {"acpi": removal}})
    assert r.rsc == 4103, r.pc
    assert await acpi_of(ip) == [world["guard"]]
    r = await ip.call(UPDATE, CNT, world["keeper"], pc={"m2m:cnt": {"acpi": removal}})
    assert r.rsc == 2004, r.pc
    assert not await acpi_of(ip)


async def test_pvs_update_on_a_referenced_acp_allows_it(world: dict[str, Any]) -> None:
    ip, keeper = world["ip"], world["keeper"]
    r = await ip.call(UPDATE, CNT, keeper, pc={"m2m:cnt": {"acpi": [world["guard"], world["mine"]]}})
    assert r.rsc == 2004, r.pc
    # now writer holds UPDATE in the pvs of one referenced ACP (mine): enough
    r = await ip.call(UPDATE, CNT, world["writer"], pc={"m2m:cnt": {"acpi": [world["mine"]]}})
    assert r.rsc == 2004, r.pc
    assert await acpi_of(ip) == [world["mine"]]


async def test_without_acpi_only_the_owner_may_set_it(world: dict[str, Any]) -> None:
    ip, owner, writer = world["ip"], world["owner"], world["writer"]
    r = await ip.call(CREATE, "cse-in/owner", owner, ty=3, pc={"m2m:cnt": {"rn": "open"}})
    assert r.rsc == 2001, r.pc
    r = await ip.call(UPDATE, "cse-in/owner/open", writer, pc={"m2m:cnt": {"acpi": [world["mine"]]}})
    assert r.rsc == 4103 and "only its owner" in dbg(r), r.pc
    r = await ip.call(UPDATE, "cse-in/owner/open", owner, pc={"m2m:cnt": {"acpi": [world["mine"]]}})
    assert r.rsc == 2004, r.pc


async def test_the_ae_resource_itself(inproc: InProc) -> None:
    """An AE that an admin-controlled ACP restricts cannot free itself."""
    ae = await inproc.register("boxed")
    r = await inproc.call(CREATE, "cse-in", ADMIN, ty=1, pc={"m2m:acp": {
        "rn": "box", "pv": {"acr": [{"acor": [ae], "acop": 63}]}, "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}}})
    assert r.rsc == 2001, r.pc
    box = r.pc["m2m:acp"]["ri"]
    r = await inproc.call(UPDATE, "cse-in/boxed", ADMIN, pc={"m2m:ae": {"acpi": [box]}})
    assert r.rsc == 2004, r.pc
    r = await inproc.call(UPDATE, "cse-in/boxed", ae, pc={"m2m:ae": {"acpi": None}})
    assert r.rsc == 4103, r.pc
    r = await inproc.call(UPDATE, "cse-in/boxed", ae, pc={"m2m:ae": {"lbl": ["still", "mine"]}})
    assert r.rsc == 2004, r.pc  # pv UPDATE still covers the other attributes


async def test_dangling_references_fall_back_to_the_owner(world: dict[str, Any]) -> None:
    """When every referenced ACP is gone nobody holds its pvs: the owner may repair it."""
    ip, owner = world["ip"], world["owner"]
    r = await ip.call(UPDATE, CNT, world["keeper"], pc={"m2m:cnt": {"acpi": ["acpGone1234"]}})
    assert r.rsc == 2004, r.pc
    r = await ip.call(UPDATE, CNT, world["writer"], pc={"m2m:cnt": {"acpi": [world["mine"]]}})
    assert r.rsc == 4103, r.pc
    r = await ip.call(UPDATE, CNT, owner, pc={"m2m:cnt": {"acpi": [world["guard"]]}})
    assert r.rsc == 2004, r.pc

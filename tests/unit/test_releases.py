"""What each advertised release may send us (docs/releases.md; TS-0001 9.6, TS-0004 7.4).

Why: the CSEBase ``srv`` promises releases 2a, 3, 4 and 5. A peer of any of
them may send the optional attributes its release defines for the types we
support; an unknown-attribute 4000 for a standard attribute breaks
interoperability (a release 5 CSE's ``spi`` did). So every such attribute is
either accepted and stored (pure data: ``mei``, ``tri``, ``spi``, ``dgt``...)
or -- when its value asks for behaviour this CSE does not implement
(announcement, dynamic authorization, custodian, group or cross-resource
subscriptions...) -- accepted only inert and otherwise answered 5001 naming
the attribute. docs/releases.md lists every refused one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cse.core.messages import Operation
from cse.core.registry import Registry
from tests.conftest import ADMIN, InProc

CREATE, RETRIEVE, UPDATE = Operation.CREATE, Operation.RETRIEVE, Operation.UPDATE
DOCS = Path(__file__).resolve().parents[2] / "docs" / "releases.md"

# A value of each refused attribute that asks for its behaviour (valid per its schema).
ENGAGED: dict[str, Any] = {
    "at": ["/id-other"], "aa": ["lbl"], "ast": 1, "daci": ["acp1"], "cstn": "Ccustodian",
    "rl": {"maxN": 1}, "psn": 1, "pn": 1, "nsp": 1,
    "acrs": ["crs1"], "mni": 5, "mbs": 5, "mia": 5,
}
INERT: dict[str, Any] = {"at": [], "aa": [], "daci": [], "acrs": []}


async def parents(ip: InProc) -> dict[str, tuple[str, str]]:
    """Where each creatable type goes, and as whom: {type name: (parent path, originator)}."""
    aei = await ip.register("app")
    r = await ip.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.pc
    return {"AE": ("cse-in", "C"), "container": ("cse-in/app", aei), "contentInstance": ("cse-in/app/data", aei),
            "accessControlPolicy": ("cse-in/app", aei), "subscription": ("cse-in/app/data", aei),
            "remoteCSE": ("cse-in", "/id-mn"), "node": ("cse-in", ADMIN), "flexContainer": ("cse-in/app", aei),
            "group": ("cse-in/app", aei), "timeSeries": ("cse-in/app", aei)}


def body(name: str, aei: str) -> dict[str, Any]:
    return {"AE": {"api": "Nrel", "rr": False, "srv": ["5"]},
            "container": {},
            "contentInstance": {"con": "x"},
            "accessControlPolicy": {"pv": {"acr": []}, "pvs": {"acr": [{"acor": [aei], "acop": 63}]}},
            "subscription": {"nu": [aei]},
            "remoteCSE": {"cb": "/id-mn/mn", "rr": True, "poa": ["http://127.0.0.1:9"]},
            "node": {"ni": "urn:dev:1"},
            "flexContainer": {"cnd": "com.example.x"},
            "group": {"mt": 3, "mid": ["cse-in/app/data"]},
            "timeSeries": {}}[name]


REFUSED = sorted((t.name, t.ty, sn) for t in Registry.load().by_ty.values() if t.can_create
                 for sn, p in t.attributes.items() if p.unsupported is not None)


def test_every_refused_attribute_is_covered_and_documented() -> None:
    assert REFUSED, "no attribute is declared unsupported"
    text = DOCS.read_text()
    for name, _, sn in REFUSED:
        assert sn in ENGAGED, f"{name}.{sn}: add an engaging value to the test"
        assert f"`{sn}`" in text, f"docs/releases.md does not list {name}.{sn}"


@pytest.mark.parametrize(("name", "ty", "sn"), REFUSED, ids=[f"{n}.{sn}" for n, _, sn in REFUSED])
async def test_behaviour_we_do_not_implement_is_5001_and_inert_is_accepted(
        inproc: InProc, name: str, ty: int, sn: str) -> None:
    where = await parents(inproc)
    assert name in where, f"{name}: add where it is created to parents()"
    path, fr = where[name]
    aei = where["container"][1]
    root = Registry.load().by_ty[ty].root
    refused = await inproc.call(CREATE, path, fr, ty=ty, pc={root: {**body(name, aei), sn: ENGAGED[sn]}}, rvi="5")
    assert refused.rsc == 5001, refused.pc
    assert f"'{sn}'" in refused.pc["m2m:dbg"] and "not implemented" in refused.pc["m2m:dbg"]
    if sn in INERT:
        ok = await inproc.call(CREATE, path, fr, ty=ty, pc={root: {**body(name, aei), sn: INERT[sn]}}, rvi="5")
        assert ok.rsc == 2001, ok.pc


async def test_release_4_and_5_data_attributes_are_stored(inproc: InProc) -> None:
    ae = await inproc.call(CREATE, "cse-in", "C", ty=2, rvi="4", pc={"m2m:ae": {
        "rn": "r4", "api": "Nr4", "rr": False, "srv": ["4"], "mei": "ext-1@example", "tri": 7, "tren": False,
        "esi": {"esct": [1]}, "ape": [{"dur": "PT1M"}]}})
    assert ae.rsc == 2001, ae.pc
    got = await inproc.call(RETRIEVE, "cse-in/r4", ADMIN)
    assert {k: got.pc["m2m:ae"][k] for k in ("mei", "tri", "tren", "esi", "ape")} == {
        "mei": "ext-1@example", "tri": 7, "tren": False, "esi": {"esct": [1]}, "ape": [{"dur": "PT1M"}]}

    csr = await inproc.call(CREATE, "cse-in", "/id-mn", ty=16, rvi="5", pc={"m2m:csr": {
        "cb": "/id-mn/mn", "rr": True, "poa": ["http://127.0.0.1:9"], "spi": "//sp.example", "mei": "m",
        "tri": 1, "trn": 2, "egid": "g", "tren": True, "mtcc": [1], "ape": [], "esi": {}}})
    assert csr.rsc == 2001, csr.pc
    held = (await inproc.call(RETRIEVE, "cse-in/id-mn", ADMIN)).pc["m2m:csr"]
    assert held["spi"] == "//sp.example" and held["trn"] == 2 and held["egid"] == "g"
    changed = await inproc.call(UPDATE, "cse-in/id-mn", "/id-mn", pc={"m2m:csr": {"spi": "//else"}})
    assert changed.rsc == 4000, changed.pc  # spi is fixed at registration

    aei = await inproc.register("app")
    assert (await inproc.call(CREATE, "cse-in/app", aei, ty=3, pc={"m2m:cnt": {"rn": "d"}})).rsc == 2001
    cin = await inproc.call(CREATE, "cse-in/app/d", aei, ty=4, rvi="4",
                            pc={"m2m:cin": {"con": "21", "dgt": "20260101T000000"}})
    assert cin.rsc == 2001 and cin.pc["m2m:cin"]["dgt"] == "20260101T000000", cin.pc


async def test_cse_base_advertises_the_releases_documented(inproc: InProc) -> None:
    cb = (await inproc.call(RETRIEVE, "cse-in", ADMIN)).pc["m2m:cb"]
    text = DOCS.read_text()
    for release in cb["srv"]:
        assert f"## Release {release}" in text, f"docs/releases.md has no section for release {release}"

"""AE registration through the in-process pipeline (TS-0004 7.4.5.2.1; docs/onem2m.md "AE registration").

AE-ID assignment from the originator, 4117 on an already registered stem,
bad originators, App-ID prefixes per release, mandatory attributes, ``scp``,
and the own-CSE SP-relative originator form.
"""

from __future__ import annotations

from typing import Any

import pytest

from cse.core.messages import Operation
from tests.unit.pipeline import dbg

CREATE, RETRIEVE, UPDATE, DELETE = (Operation.CREATE, Operation.RETRIEVE,
                                    Operation.UPDATE, Operation.DELETE)


def ae_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"api": "Napp", "rr": True, "srv": ["3"]}
    body.update(kw)
    return {"m2m:ae": {k: v for k, v in body.items() if v is not _DROP}}


_DROP = object()


async def register(ip: Any, fr: str | None, rvi: str = "3", **kw: Any) -> Any:
    return await ip.call(CREATE, "cse-in", fr, ty=2, pc=ae_body(**kw), rvi=rvi)


def is_stem(value: str, prefix: str) -> bool:
    return value.startswith(prefix) and len(value) > 1 and "/" not in value


@pytest.mark.parametrize("fr", [None, ""])
async def test_register_without_originator(inproc: Any, fr: str | None) -> None:
    r = await register(inproc, fr, rn="anon")
    assert r.rsc == 2001, r.pc
    ae = r.pc["m2m:ae"]
    assert is_stem(ae["aei"], "C")
    assert ae["ri"] == ae["aei"]
    assert ae["rn"] == "anon"
    assert ae["pi"] == "id-in"
    assert ae["ty"] == 2
    assert ae["api"] == "Napp"
    assert ae["rr"] is True
    assert ae["srv"] == ["3"]
    # the AE can use its new AE-ID right away
    r = await inproc.call(RETRIEVE, "cse-in/anon", ae["aei"])
    assert r.rsc == 2000
    assert r.pc["m2m:ae"]["aei"] == ae["aei"]


async def test_register_c_assigns_fresh_stems(inproc: Any) -> None:
    r1 = await register(inproc, "C", rn="one")
    r2 = await register(inproc, "C", rn="two")
    assert r1.rsc == r2.rsc == 2001
    a1, a2 = r1.pc["m2m:ae"]["aei"], r2.pc["m2m:ae"]["aei"]
    assert is_stem(a1, "C") and is_stem(a2, "C")
    assert a1 != a2
    assert a1 != "C"


async def test_register_s_assigns_s_stem(inproc: Any) -> None:
    r = await register(inproc, "S", rn="sapp")
    assert r.rsc == 2001, r.pc
    aei = r.pc["m2m:ae"]["aei"]
    assert is_stem(aei, "S")
    assert aei != "S"
    assert r.pc["m2m:ae"]["ri"] == aei


@pytest.mark.parametrize("stem", ["Cmine", "Smine", "C-my_app.1"])
async def test_register_full_stem_used_as_given(inproc: Any, stem: str) -> None:
    r = await register(inproc, stem)
    assert r.rsc == 2001, r.pc
    ae = r.pc["m2m:ae"]
    assert ae["aei"] == stem
    assert ae["ri"] == stem
    assert ae["rn"] == stem  # default rn is the stem
    r = await inproc.call(RETRIEVE, f"cse-in/{stem}", stem)
    assert r.rsc == 2000, r.pc
    r = await inproc.call(RETRIEVE, stem, stem)
    assert r.rsc == 2000, r.pc


@pytest.mark.parametrize("stem", ["Cmine", "Smine"])
async def test_reregister_existing_stem(inproc: Any, stem: str) -> None:
    assert (await register(inproc, stem, rn="first")).rsc == 2001
    r = await register(inproc, stem, rn="second")
    assert r.rsc == 4117, r.pc
    assert stem in dbg(r)
    r = await register(inproc, stem, rn="first")
    assert r.rsc == 4117, r.pc
    # the second attempt created nothing
    assert (await inproc.call(RETRIEVE, "cse-in/second", "CAdmin")).rsc == 4004


async def test_reregister_after_delete(inproc: Any) -> None:
    assert (await register(inproc, "Cmine")).rsc == 2001
    assert (await inproc.call(DELETE, "cse-in/Cmine", "Cmine")).rsc == 2002
    r = await register(inproc, "Cmine")
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:ae"]["aei"] == "Cmine"


@pytest.mark.parametrize("fr", ["/id-x/foo", "admin", "/id-in/foo", "xCabc", "Cab/cd",
                                "C a", "//sp/id-x/Cabc", "Cab!c", "/id-x/Cabc", "1C"])
async def test_bad_originator(inproc: Any, fr: str) -> None:
    r = await register(inproc, fr, rn="bad")
    assert r.rsc == 4000, (fr, r.rsc, r.pc)
    dbg(r)
    assert (await inproc.call(RETRIEVE, "cse-in/bad", "CAdmin")).rsc == 4004


@pytest.mark.parametrize("fr", ["Cé", "C温度", "Sü"])
async def test_non_ascii_stem_rejected(inproc: Any, fr: str) -> None:
    """AE-IDs end up in HTTP headers (X-M2M-Origin) and as the default rn;
    the CSE's own rule is 'letters, digits, -, _ and .' (ASCII, like rn)."""
    r = await register(inproc, fr)
    assert r.rsc == 4000, (fr, r.rsc, r.pc)
    dbg(r)


@pytest.mark.parametrize("api", ["Napp", "Rorg.example.app", "N0", "Rx"])
async def test_api_r_n_accepted(inproc: Any, api: str) -> None:
    r = await register(inproc, "C", api=api)
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:ae"]["api"] == api


@pytest.mark.parametrize("api", ["Xapp", "napp", "app", "1app", " Napp", "éNapp"])
async def test_api_bad_prefix(inproc: Any, api: str) -> None:
    r = await register(inproc, "C", api=api, rn="badapi")
    assert r.rsc == 4000, (api, r.pc)
    assert "api" in dbg(r)
    assert (await inproc.call(RETRIEVE, "cse-in/badapi", "CAdmin")).rsc == 4004


@pytest.mark.parametrize("rvi,ok", [("2a", True), ("3", True), ("4", False), ("5", False)])
async def test_api_lowercase_r_only_for_2a_and_3(inproc: Any, rvi: str, ok: bool) -> None:
    r = await register(inproc, "C", rvi=rvi, api="rlegacy", rn="legacy")
    if ok:
        assert r.rsc == 2001, r.pc
        assert r.pc["m2m:ae"]["api"] == "rlegacy"
    else:
        assert r.rsc == 4000, r.pc
        assert "api" in dbg(r)


@pytest.mark.parametrize("missing", ["api", "rr", "srv"])
async def test_missing_mandatory(inproc: Any, missing: str) -> None:
    r = await register(inproc, "C", rn="incomplete", **{missing: _DROP})
    assert r.rsc == 4000, r.pc
    assert f"'{missing}'" in dbg(r)
    assert (await inproc.call(RETRIEVE, "cse-in/incomplete", "CAdmin")).rsc == 4004


@pytest.mark.parametrize("attr,value", [("api", 5), ("api", "N"), ("rr", "true"), ("rr", 1),
                                        ("srv", "3"), ("srv", []), ("srv", ["9"]),
                                        ("poa", "http://x"), ("regs", 3), ("scp", "a")])
async def test_wrong_attribute_types(inproc: Any, attr: str, value: Any) -> None:
    r = await register(inproc, "C", **{attr: value})
    assert r.rsc == 4000, (attr, value, r.pc)
    assert attr in dbg(r)


@pytest.mark.parametrize("csz", [["text/plain"], ["application/json", "bogus"], ["json"],
                                 ["application/vnd.onem2m-res+json"], "application/json"])
async def test_csz_outside_the_serializations(inproc: Any, csz: Any) -> None:
    """TS-0004 m2m:serializations: a list of application/xml, application/json
    or application/cbor, nothing else (on CREATE and on UPDATE)."""
    r = await register(inproc, "C", rn="sz", csz=csz)
    assert r.rsc == 4000, (csz, r.pc)
    assert "csz" in dbg(r)
    aei = await inproc.register("ok", csz=["application/json", "application/cbor", "application/xml"])
    r = await inproc.call(UPDATE, "cse-in/ok", aei, pc={"m2m:ae": {"csz": csz}})
    assert r.rsc == 4000, (csz, r.pc)
    assert "csz" in dbg(r)


@pytest.mark.parametrize("attr,value", [("aei", "Cforged"), ("ri", "Cforged"), ("ct", "20270101T000000"),
                                        ("pi", "id-in"), ("cr", None), ("ty", 2)])
async def test_np_or_foreign_attributes(inproc: Any, attr: str, value: Any) -> None:
    r = await register(inproc, "C", **{attr: value})
    assert r.rsc == 4000, (attr, r.pc)
    assert attr in dbg(r)


async def test_scp_accepted_and_returned(inproc: Any) -> None:
    r = await register(inproc, "C", rn="sess", scp=["sec1", "sec2"], poa=["http://127.0.0.1:9/n"])
    assert r.rsc == 2001, r.pc
    aei = r.pc["m2m:ae"]["aei"]
    assert r.pc["m2m:ae"]["scp"] == ["sec1", "sec2"]
    assert r.pc["m2m:ae"]["poa"] == ["http://127.0.0.1:9/n"]
    r = await inproc.call(RETRIEVE, "cse-in/sess", aei)
    assert r.rsc == 2000
    assert r.pc["m2m:ae"]["scp"] == ["sec1", "sec2"]
    r = await inproc.call(UPDATE, "cse-in/sess", aei, pc={"m2m:ae": {"scp": ["sec3"]}})
    assert r.rsc == 2004, r.pc
    assert r.pc["m2m:ae"]["scp"] == ["sec3"]


async def test_ae_update_np_api(inproc: Any) -> None:
    aei = await inproc.register("app")
    r = await inproc.call(UPDATE, "cse-in/app", aei, pc={"m2m:ae": {"api": "Nother"}})
    assert r.rsc == 4000
    assert "api" in dbg(r)


async def test_sp_relative_originator_is_the_stem(inproc: Any) -> None:
    assert (await register(inproc, "Cmine", rn="mine")).rsc == 2001
    r = await inproc.call(CREATE, "cse-in/mine", "/id-in/Cmine", ty=3,
                          pc={"m2m:cnt": {"rn": "data", "cr": None}})
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:cnt"]["cr"] == "Cmine"
    # the stem itself owns what was created with the SP-relative form, and vice versa
    r = await inproc.call(RETRIEVE, "cse-in/mine/data", "Cmine")
    assert r.rsc == 2000, r.pc
    r = await inproc.call(RETRIEVE, "cse-in/mine/data", "/id-in/Cmine")
    assert r.rsc == 2000, r.pc
    r = await inproc.call(UPDATE, "cse-in/mine", "/id-in/Cmine", pc={"m2m:ae": {"lbl": ["x"]}})
    assert r.rsc == 2004, r.pc
    # someone else's SP-relative form is not the owner
    other = await inproc.register("other")
    r = await inproc.call(RETRIEVE, "cse-in/mine/data", f"/id-in/{other}")
    assert r.rsc == 4103, r.pc
    # a CSE-ID other than ours is not rewritten
    r = await inproc.call(RETRIEVE, "cse-in/mine/data", "/id-x/Cmine")
    assert r.rsc == 4103, r.pc


async def test_register_with_sp_relative_originator(inproc: Any) -> None:
    r = await register(inproc, "/id-in/Cpre")
    assert r.rsc == 2001, r.pc
    assert r.pc["m2m:ae"]["aei"] == "Cpre"
    r = await register(inproc, "Cpre")
    assert r.rsc == 4117


async def test_ae_name_conflict(inproc: Any) -> None:
    assert (await register(inproc, "C", rn="dup")).rsc == 2001
    r = await register(inproc, "C", rn="dup")
    assert r.rsc == 4105, r.pc
    assert "dup" in dbg(r)


async def test_ae_only_under_cse_base(inproc: Any) -> None:
    aei = await inproc.register("app")
    r = await inproc.call(CREATE, "cse-in/app", "C", ty=2, pc=ae_body(rn="nested"))
    assert r.rsc == 4108, r.pc
    dbg(r)
    assert aei

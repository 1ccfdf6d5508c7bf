"""Unit tests for cse.csf.filters: parsing, spec comparison boundaries, matching."""

from __future__ import annotations

import dataclasses
import time

import pytest

from cse.core.errors import BadRequest
from cse.csf.filters import (
    FILTER_KEYS,
    REQUEST_KEYS,
    FilterCriteria,
    matches,
    ofst_lim_slice,
    parse_filter_criteria,
    parse_filter_criteria_uncached,
)

KNOWN = frozenset({"rn", "ri", "pi", "mni", "con", "acpi", "rr", "poa", "api", "cr", "ct",
                   "lt", "et", "st", "cs", "cnf", "lbl", "ty", "_secret"})

T0 = "20250301T120000,000000"
T_BEFORE = "20250301T115959,999999"
T_AFTER = "20250301T120000,000001"


def parse(**params: list[str] | str) -> FilterCriteria | None:
    return parse_filter_criteria(params, KNOWN)


def fc_of(**params: list[str] | str) -> FilterCriteria:
    fc = parse(**params)
    assert fc is not None
    return fc


def bad(key_in_message: str, **params: list[str] | str) -> str:
    with pytest.raises(BadRequest) as info:
        parse(**params)
    assert key_in_message in info.value.message
    return info.value.message


# --------------------------------------------------------------------------
# Constants / None / defaults
# --------------------------------------------------------------------------


def test_key_sets() -> None:
    assert FILTER_KEYS == frozenset(
        "fu fo ty lbl cty cra crb ms us exa exb sts stb sza szb lim ofst lvl arp".split())
    assert REQUEST_KEYS == frozenset("rcn rt rp da drt atrl sessionID rqet rset oet".split())
    assert not FILTER_KEYS & REQUEST_KEYS


def test_none_when_no_filter() -> None:
    assert parse() is None
    assert parse(rcn=["1"], rt=["3"], rp=["PT1M"], da=["true"], drt=["2"], atrl=["rn"],
                 sessionID=["x"], rqet=["1000"], rset=["1000"], oet=["1000"]) is None


def test_only_shape_keys_give_criteria_without_conditions() -> None:
    fc = fc_of(fu=["1"], lim=["5"])
    assert fc.fu == 1 and fc.lim == 5 and fc.fo == 1
    assert not fc.has_conditions
    assert matches(fc, {"ty": 3})


def test_defaults() -> None:
    fc = FilterCriteria()
    assert (fc.fu, fc.fo, fc.lim, fc.ofst, fc.lvl, fc.arp) == (2, 1, None, None, None, None)
    assert not fc.has_conditions
    assert matches(fc, {})


# --------------------------------------------------------------------------
# Parsing each key
# --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [["2+3"], ["2 3"], ["2", "3"], ["2  3"], ["2+3", "3"], "2+3"])
def test_ty_list_forms(raw: list[str] | str) -> None:
    assert fc_of(ty=raw).ty == (2, 3)


def test_lbl_list_forms() -> None:
    assert fc_of(lbl=["a+b"]).lbl == ("a", "b")
    assert fc_of(lbl=["a b"]).lbl == ("a", "b")
    assert fc_of(lbl=["a", "b"]).lbl == ("a", "b")
    assert fc_of(lbl=["room:kitchen"]).lbl == ("room:kitchen",)


def test_cty_keeps_structured_suffix() -> None:
    assert fc_of(cty=["text/plain+application/json"]).cty == ("text/plain", "application/json")
    onem2m = "application/vnd.onem2m-res+json"
    assert fc_of(cty=[onem2m]).cty == (onem2m,)
    # a decoded '+' (space) inside the suffix is glued back too
    assert fc_of(cty=["application/vnd.onem2m-res json text/plain"]).cty == (
        "application/vnd.onem2m-res+json", "text/plain")
    assert fc_of(cty=["Text/Plain"]).cty == ("text/plain",)
    bad("cty", cty=["json"])


@pytest.mark.parametrize("key", ["cra", "crb", "ms", "us", "exa", "exb"])
def test_timestamps_normalised(key: str) -> None:
    assert getattr(fc_of(**{key: ["20250301T120000"]}), key) == T0
    assert getattr(fc_of(**{key: ["20250301T120000,5"]}), key) == "20250301T120000,500000"
    assert getattr(fc_of(**{key: ["2025-03-01T12:00:00Z"]}), key) == T0


@pytest.mark.parametrize("key", ["cra", "crb", "ms", "us", "exa", "exb"])
@pytest.mark.parametrize("value", ["yesterday", "20251301T000000", "20250230T000000", "1000",
                                   "00000101T000000", "00010101T000000", "2025"])
def test_bad_timestamps(key: str, value: str) -> None:
    bad(key, **{key: [value]})


@pytest.mark.parametrize("key", ["sts", "stb", "sza", "szb", "lim", "lvl", "ofst", "fu", "fo"])
def test_ints(key: str) -> None:
    assert getattr(fc_of(**{key: ["2"]}), key) == 2


@pytest.mark.parametrize("key", ["sts", "stb", "sza", "szb", "lim", "lvl", "ofst", "fu", "fo",
                                 "ty"])
@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "0x10", "1_0", "\u0661", "", "2e3"])
def test_bad_ints(key: str, value: str) -> None:
    bad(key, **{key: [value]})


@pytest.mark.parametrize("key", ["sts", "stb", "sza", "szb", "lim", "lvl", "ofst", "fu", "fo",
                                 "cra", "crb", "ms", "us", "exa", "exb", "arp"])
def test_scalar_keys_take_one_value(key: str) -> None:
    value = "20250301T120000" if key in ("cra", "crb", "ms", "us", "exa", "exb") else "1"
    bad(key, **{key: [value, value]})
    bad(key, **{key: [f"{value}+{value}"]})


@pytest.mark.parametrize("key", sorted(FILTER_KEYS))
def test_empty_values(key: str) -> None:
    bad(key, **{key: [""]})
    bad(key, **{key: []})


def test_fu() -> None:
    assert fc_of(fu=["1"]).fu == 1
    assert fc_of(fu=["2"]).fu == 2
    msg = bad("fu", fu=["3"])
    assert msg == "fu=3 (IPE on-demand discovery) is not supported"
    bad("fu", fu=["0"])
    bad("fu", fu=["4"])


def test_fo() -> None:
    assert fc_of(fo=["2"]).fo == 2
    bad("fo", fo=["0"])
    bad("fo", fo=["3"])  # ACME's non-standard XOR


def test_lim_ofst_lvl_ranges() -> None:
    assert fc_of(lim=["0"]).lim == 0
    assert fc_of(ofst=["0"]).ofst == 1
    assert fc_of(ofst=["1"]).ofst == 1
    assert fc_of(ofst=["7"]).ofst == 7
    assert fc_of(lvl=["1"]).lvl == 1
    bad("lvl", lvl=["0"])
    bad("lim", lim=["-5"])
    bad("ofst", ofst=["-1"])


def test_ty_zero_rejected() -> None:
    bad("ty", ty=["0"])
    bad("ty", ty=["2+x"])


def test_arp() -> None:
    assert fc_of(arp=["la"]).arp == "la"


def test_non_text_value_rejected() -> None:
    with pytest.raises(BadRequest, match="lim"):
        parse_filter_criteria({"lim": [5]}, KNOWN)  # type: ignore[list-item]


# --------------------------------------------------------------------------
# Unknown keys / attribute filters
# --------------------------------------------------------------------------


def test_unknown_key() -> None:
    msg = bad("xyz", xyz=["1"])
    assert msg == "unknown query parameter or attribute 'xyz'"


@pytest.mark.parametrize("key,dedicated", [("ct", "cra"), ("lt", "ms"), ("et", "exa"),
                                           ("st", "sts"), ("cs", "sza"), ("cnf", "cty")])
def test_dedicated_keys(key: str, dedicated: str) -> None:
    msg = bad(key, **{key: ["1"]})
    assert dedicated in msg


@pytest.mark.parametrize("key", ["lbq", "smf", "cfs", "chty", "c.rn", "p.lbl"])
def test_unsupported_filter_keys(key: str) -> None:
    bad(key, **{key: ["x"]})


def test_underscore_attribute_rejected() -> None:
    bad("_secret", _secret=["x"])


def test_attribute_filter_parsed() -> None:
    fc = fc_of(rn=["sens*"], mni=["5+6"], con=["a", "b"], rcn=["1"])
    assert fc.attrs == (("rn", ("sens*",)), ("mni", ("5", "6")), ("con", ("a", "b")))
    assert fc.has_conditions
    bad("rn", rn=[""])


# --------------------------------------------------------------------------
# Comparison boundaries (docs/onem2m.md "Discovery and filter criteria"; SPEC, not ACME)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,attr,inclusive_ge",
    [("crb", "ct", False), ("cra", "ct", True),
     ("us", "lt", False), ("ms", "lt", True),
     ("exb", "et", False), ("exa", "et", True)],
)
def test_timestamp_boundaries(key: str, attr: str, inclusive_ge: bool) -> None:
    fc = fc_of(**{key: [T0]})
    below, equal, above = ({attr: T_BEFORE}, {attr: T0}, {attr: T_AFTER})
    if inclusive_ge:   # v <= attr
        assert (matches(fc, below), matches(fc, equal), matches(fc, above)) == (False, True, True)
    else:              # attr < v
        assert (matches(fc, below), matches(fc, equal), matches(fc, above)) == (True, False, False)
    assert not matches(fc, {"ty": 3})  # attribute missing


def test_timestamp_filter_without_fraction_compares_canonically() -> None:
    fc = fc_of(cra=["20250301T120000"])
    assert matches(fc, {"ct": T0})
    assert not matches(fc, {"ct": T_BEFORE})


@pytest.mark.parametrize(
    "key,attr,inclusive_ge",
    [("sts", "st", False), ("stb", "st", True), ("szb", "cs", False), ("sza", "cs", True)],
)
def test_integer_boundaries(key: str, attr: str, inclusive_ge: bool) -> None:
    fc = fc_of(**{key: ["5"]})
    got = (matches(fc, {attr: 4}), matches(fc, {attr: 5}), matches(fc, {attr: 6}))
    assert got == ((False, True, True) if inclusive_ge else (True, False, False))
    assert not matches(fc, {"ty": 4})  # missing attribute
    assert not matches(fc, {attr: "5"})  # wrong type never raises, never matches
    assert not matches(fc, {attr: True})


def test_sts_is_spec_not_acme() -> None:
    # spec: sts matches st < v; ACME (reversed) would match st > v
    assert matches(fc_of(sts=["3"]), {"st": 0})
    assert not matches(fc_of(sts=["3"]), {"st": 10})
    assert matches(fc_of(stb=["3"]), {"st": 10})
    assert not matches(fc_of(stb=["3"]), {"st": 0})


def test_size_uses_cs() -> None:
    fc = fc_of(sza=["10"])
    assert matches(fc, {"ty": 4, "cs": 10})
    assert not matches(fc, {"ty": 3, "cbs": 100})


def test_wrong_typed_timestamp_in_doc() -> None:
    assert not matches(fc_of(cra=[T0]), {"ct": 12345})


# --------------------------------------------------------------------------
# ty / lbl / cty
# --------------------------------------------------------------------------


def test_ty_or_within_key() -> None:
    fc = fc_of(ty=["3+4"])
    assert matches(fc, {"ty": 3})
    assert matches(fc, {"ty": 4})
    assert not matches(fc, {"ty": 2})
    assert not matches(fc, {})
    assert not matches(fc, {"ty": [3]})


def test_lbl_any_equals_any() -> None:
    fc = fc_of(lbl=["a+b"])
    assert matches(fc, {"lbl": ["x", "b"]})
    assert matches(fc, {"lbl": ["a"]})
    assert not matches(fc, {"lbl": ["c"]})
    assert not matches(fc, {"lbl": []})
    assert not matches(fc, {})
    assert not matches(fc, {"lbl": "a"})  # malformed stored value: no crash, no match
    assert not matches(fc, {"lbl": [["a"], {"a": 1}]})


def test_cty_against_cnf() -> None:
    fc = fc_of(cty=["text/plain"])
    assert matches(fc, {"cnf": "text/plain:0"})
    assert matches(fc, {"cnf": "text/plain"})
    assert matches(fc, {"cnf": "TEXT/plain; charset=utf-8:0"})
    assert not matches(fc, {"cnf": "application/json:0"})
    assert not matches(fc, {"ty": 4})
    fc2 = fc_of(cty=["application/json+text/plain"])
    assert matches(fc2, {"cnf": "application/json:1"})
    assert matches(fc2, {"cnf": "text/plain:0"})


# --------------------------------------------------------------------------
# Attribute filters
# --------------------------------------------------------------------------


def test_attr_equality_and_wildcard() -> None:
    fc = fc_of(rn=["sens*"])
    assert matches(fc, {"rn": "sensor1"})
    assert matches(fc, {"rn": "sens"})
    assert not matches(fc, {"rn": "mysensor"})
    assert not matches(fc, {})
    assert matches(fc_of(rn=["*sor*"]), {"rn": "mysensor1"})
    assert matches(fc_of(rn=["s*r*1"]), {"rn": "sensor1"})
    assert matches(fc_of(rn=["*"]), {"rn": ""})
    assert not matches(fc_of(rn=["sensor"]), {"rn": "sensor1"})
    # regex metacharacters in the value are literal
    assert matches(fc_of(rn=["a.b*"]), {"rn": "a.bc"})
    assert not matches(fc_of(rn=["a.b*"]), {"rn": "axbc"})
    assert matches(fc_of(rn=["x+y"]), {"rn": "y"})  # '+' is a list separator


def test_attr_bool_number_list() -> None:
    assert matches(fc_of(rr=["true"]), {"rr": True})
    assert not matches(fc_of(rr=["true"]), {"rr": False})
    assert matches(fc_of(rr=["false"]), {"rr": False})
    assert not matches(fc_of(rr=["1"]), {"rr": True})
    assert matches(fc_of(mni=["10"]), {"mni": 10})
    assert matches(fc_of(mni=["1*"]), {"mni": 123})
    assert not matches(fc_of(mni=["10"]), {"mni": 11})
    assert matches(fc_of(con=["1.5"]), {"con": 1.5})
    assert matches(fc_of(poa=["http://b"]), {"poa": ["http://a", "http://b"]})
    assert matches(fc_of(poa=["http://*"]), {"poa": ["mqtt://a", "http://b"]})
    assert not matches(fc_of(poa=["http://c"]), {"poa": ["http://a", "http://b"]})
    assert not matches(fc_of(poa=["x"]), {"poa": []})
    assert not matches(fc_of(con=["x"]), {"con": {"x": 1}})
    assert not matches(fc_of(con=["x"]), {"con": None})


def test_attr_values_ored() -> None:
    fc = fc_of(rn=["a", "b*"])
    assert matches(fc, {"rn": "a"})
    assert matches(fc, {"rn": "bee"})
    assert not matches(fc, {"rn": "c"})


def test_underscore_keys_ignored() -> None:
    fc = FilterCriteria(attrs=(("_x", ("1",)),))
    assert not matches(fc, {"_x": "1"})


# --------------------------------------------------------------------------
# fo AND / OR
# --------------------------------------------------------------------------


def test_fo_and_vs_or() -> None:
    doc_cnt = {"ty": 3, "lbl": ["a"], "rn": "c1", "ct": T0, "st": 2}
    doc_ae = {"ty": 2, "lbl": ["z"], "rn": "ae1", "ct": T0}
    and_fc = fc_of(ty=["3"], lbl=["a"])
    or_fc = fc_of(ty=["3"], lbl=["z"], fo=["2"])
    assert matches(and_fc, doc_cnt)
    assert not matches(and_fc, doc_ae)
    assert not matches(fc_of(ty=["3"], lbl=["z"]), doc_cnt)
    assert matches(or_fc, doc_cnt)
    assert matches(or_fc, doc_ae)
    assert not matches(or_fc, {"ty": 4, "lbl": ["q"]})
    # with fo=2, cra and crb are separate conditions: either side suffices
    fc = fc_of(cra=[T_AFTER], crb=[T_BEFORE], fo=["2"])
    assert not matches(fc, {"ct": T0})
    assert matches(fc, {"ct": T_AFTER})
    assert matches(fc, {"ct": "20240101T000000,000000"})
    # and with AND they form a window
    win = fc_of(cra=[T_BEFORE], crb=[T_AFTER])
    assert matches(win, {"ct": T0})
    assert not matches(win, {"ct": T_AFTER})


def test_fo_or_without_conditions_matches_all() -> None:
    assert matches(fc_of(fo=["2"]), {"ty": 1})


# --------------------------------------------------------------------------
# has_conditions / construction
# --------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"ty": ["3"]}, {"lbl": ["a"]}, {"cty": ["text/plain"]}, {"cra": [T0]}, {"crb": [T0]},
    {"ms": [T0]}, {"us": [T0]}, {"exa": [T0]}, {"exb": [T0]}, {"sts": ["1"]}, {"stb": ["1"]},
    {"sza": ["1"]}, {"szb": ["1"]}, {"rn": ["x"]},
])
def test_has_conditions_true(params: dict[str, list[str]]) -> None:
    assert parse_filter_criteria(params, KNOWN).has_conditions  # type: ignore[union-attr]


@pytest.mark.parametrize("params", [
    {"fu": ["1"]}, {"fo": ["2"]}, {"lim": ["1"]}, {"ofst": ["2"]}, {"lvl": ["1"]}, {"arp": ["la"]},
])
def test_has_conditions_false(params: dict[str, list[str]]) -> None:
    assert not parse_filter_criteria(params, KNOWN).has_conditions  # type: ignore[union-attr]


def test_direct_construction_and_replace_precompile() -> None:
    fc = FilterCriteria(attrs=(("rn", ("sens*",)),))
    assert matches(fc, {"rn": "sensor"})
    fc2 = dataclasses.replace(fc, ty=(3,))
    assert matches(fc2, {"rn": "sensor", "ty": 3})
    assert not matches(fc2, {"rn": "sensor", "ty": 2})
    assert fc == FilterCriteria(attrs=(("rn", ("sens*",)),))
    assert hash(fc) == hash(FilterCriteria(attrs=(("rn", ("sens*",)),)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fc.lim = 3  # type: ignore[misc]


# --------------------------------------------------------------------------
# ofst_lim_slice
# --------------------------------------------------------------------------


def test_ofst_lim_slice() -> None:
    items = list(range(1, 11))
    assert ofst_lim_slice(items, None) == items
    assert ofst_lim_slice(items, None) is not items
    assert ofst_lim_slice(items, FilterCriteria()) == items
    assert ofst_lim_slice(items, FilterCriteria(lim=3)) == [1, 2, 3]
    assert ofst_lim_slice(items, FilterCriteria(lim=0)) == []
    assert ofst_lim_slice(items, FilterCriteria(ofst=1)) == items
    assert ofst_lim_slice(items, FilterCriteria(ofst=3)) == list(range(3, 11))
    assert ofst_lim_slice(items, FilterCriteria(ofst=3, lim=2)) == [3, 4]
    assert ofst_lim_slice(items, FilterCriteria(ofst=10, lim=5)) == [10]
    assert ofst_lim_slice(items, FilterCriteria(ofst=11)) == []
    assert ofst_lim_slice(items, fc_of(ofst=["0"], lim=["2"])) == [1, 2]


# --------------------------------------------------------------------------
# Speed (smoke check, generous bound)
# --------------------------------------------------------------------------


@pytest.mark.xdist_group("timing")  # a time bound: not alongside the other timed tests (tests/conftest.py)
def test_matches_is_fast() -> None:
    fc = fc_of(ty=["3+4"], lbl=["a+b"], rn=["sens*"], cra=["20240101T000000"], stb=["0"])
    docs = [{"ty": 3 + (i % 3), "lbl": ["b"] if i % 2 else ["c"], "rn": f"sensor{i}",
             "ct": T0, "st": i, "_internal": 1} for i in range(20_000)]
    start = time.perf_counter()
    hits = sum(1 for d in docs if matches(fc, d))
    elapsed = time.perf_counter() - start
    assert hits == sum(1 for i in range(20_000) if i % 3 != 2 and i % 2)
    assert elapsed < 1.0


def test_a_repeated_query_is_parsed_once_and_its_errors_every_time() -> None:
    query = {"fu": ("1",), "ty": ("4",), "lbl": ("x+y",)}
    first = parse_filter_criteria(query, KNOWN)
    again = parse_filter_criteria(dict(query), KNOWN)
    assert again is first  # remembered: a FilterCriteria is immutable
    assert first == parse_filter_criteria_uncached(query, KNOWN)
    assert first is not None and first.lbl == ("x", "y")
    for _ in range(2):
        with pytest.raises(BadRequest, match="fo"):
            parse_filter_criteria({"fo": ("3",)}, KNOWN)
    # values that cannot be remembered are parsed as given
    assert parse_filter_criteria({"ty": ["4"]}, KNOWN) == FilterCriteria(ty=(4,))

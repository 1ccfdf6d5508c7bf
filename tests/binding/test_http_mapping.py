"""The oneM2M HTTP binding as pure functions (TS-0009; docs/onem2m.md).

Why: every rule of the binding -- path forms, header and query mapping, media
types, request validation and the RSC -> HTTP status table -- lives in
:mod:`cse.binding.http_mapping` and must hold without a socket. These tests
call ``request_from_http`` / ``response_to_http`` / ``target_from_path`` /
``parse_query`` directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import cbor2
import pytest
from multidict import CIMultiDict

from cse.binding.http_mapping import parse_query, request_from_http, response_media, response_to_http
from cse.core.errors import M2MError
from cse.core.http_wire import decode_response, encode_request, target_from_path
from cse.core.messages import Operation, Request, Response

BASE_HEADERS = {"X-M2M-Origin": "CAdmin", "X-M2M-RI": "rq-1", "X-M2M-RVI": "3"}
NOW = "20250301T134501,000000"


def headers(drop: tuple[str, ...] = (), **extra: str) -> CIMultiDict[str]:
    """Base headers (case-insensitive, like aiohttp's), minus ``drop``, plus ``extra``.

    ``extra`` keys use ``_`` for ``-`` (``X_M2M_OT`` -> ``X-M2M-OT``).
    """
    h: CIMultiDict[str] = CIMultiDict(BASE_HEADERS)
    for name in drop:
        h.popall(name, None)
    for key, value in extra.items():
        h[key.replace("_", "-")] = value
    return h


def req(method: str = "GET", path: str = "/cse-in", hdrs: Mapping[str, str] | None = None,
        body: bytes = b"") -> Request:
    return request_from_http(method, path, headers() if hdrs is None else hdrs, body)


def rsc_of(method: str = "GET", path: str = "/cse-in", hdrs: Mapping[str, str] | None = None,
           body: bytes = b"") -> int:
    """The RSC of the M2MError the mapping raises (fails if it does not raise)."""
    with pytest.raises(M2MError) as info:
        req(method, path, hdrs, body)
    assert info.value.message, "every binding error carries a debug message"
    return int(info.value.rsc)


def create_headers(ty: int | str = 3, media: str = "application/json") -> CIMultiDict[str]:
    return headers(Content_Type=f"{media};ty={ty}")


CNT = json.dumps({"m2m:cnt": {"rn": "data"}}).encode()


# -- target_from_path: TS-0009 6.2.2.1 ---------------------------------------------

@pytest.mark.parametrize(("path", "to"), [
    ("/cse-in", "cse-in"),
    ("/cse-in/x", "cse-in/x"),
    ("/cse-in/myapp/data/la", "cse-in/myapp/data/la"),
    ("/cin8273", "cin8273"),
    ("/-/myapp", "-/myapp"),
    ("/~/id-in/cse-in/x", "/id-in/cse-in/x"),
    ("/~/id-in/cin8273", "/id-in/cin8273"),
    ("/_/sp.example/id-in/x", "//sp.example/id-in/x"),
    ("/_/acme.example.com/id-in/cse-in/myapp", "//acme.example.com/id-in/cse-in/myapp"),
])
def test_path_forms_map_to_the_three_id_forms(path: str, to: str) -> None:
    assert target_from_path(path) == to


@pytest.mark.parametrize(("path", "to"), [
    ("/cse-in/a%2Fb", "cse-in/a/b"),          # decoded once
    ("/cse-in/a%252Fb", "cse-in/a%2Fb"),      # ... and only once
    ("/cse-in/%25", "cse-in/%"),
    ("/cse-in/a%20b", "cse-in/a b"),
    ("/cse-in/a+b", "cse-in/a+b"),            # '+' is not a space in a path
    ("/cse-in/caf%C3%A9", "cse-in/caf\u00e9"),
    ("/~/id-in/a%2Fb", "/id-in/a/b"),
    ("/_/sp.example/id-in/a%252F", "//sp.example/id-in/a%2F"),
])
def test_path_is_percent_decoded_exactly_once(path: str, to: str) -> None:
    assert target_from_path(path) == to


def test_path_without_leading_slash_is_4000() -> None:
    with pytest.raises(M2MError) as info:
        target_from_path("cse-in")
    assert info.value.rsc == 4000


@pytest.mark.parametrize("path", ["/cse-in/%FF", "/cse-in/%C3", "/%ED%A0%80"])
def test_path_that_is_not_utf8_after_decoding_is_4000(path: str) -> None:
    assert rsc_of(path=path) == 4000


def test_request_to_is_taken_from_the_path_and_the_query_is_split_off() -> None:
    r = req(path="/~/id-in/cse-in/app?rcn=1")
    assert r.to == "/id-in/cse-in/app"
    assert r.rcn == 1
    # an encoded '?' belongs to the path, not to the query
    assert req(path="/cse-in/a%3Fb").to == "cse-in/a?b"
    assert req(path="/cse-in/a%3Fb").query == {}


# -- parse_query: docs/onem2m.md "Query parameters" --------------------------------

@pytest.mark.parametrize(("qs", "parsed"), [
    ("", {}),
    ("rcn=1", {"rcn": ("1",)}),
    ("ty=2+3", {"ty": ("2 3",)}),
    ("ty=2&ty=3", {"ty": ("2", "3")}),
    ("ty=2+3&ty=4", {"ty": ("2 3", "4")}),
    ("lbl=room%3Akitchen&lim=10", {"lbl": ("room:kitchen",), "lim": ("10",)}),
    ("lbl=a%2Bb", {"lbl": ("a+b",)}),
    ("x=%252F", {"x": ("%2F",)}),
    ("flag", {"flag": ("",)}),
    ("a=", {"a": ("",)}),
    ("&&rcn=1&", {"rcn": ("1",)}),
    ("a=b=c", {"a": ("b=c",)}),
])
def test_parse_query(qs: str, parsed: dict[str, tuple[str, ...]]) -> None:
    assert parse_query(qs) == parsed


def test_query_parameter_without_a_name_is_4000() -> None:
    with pytest.raises(M2MError) as info:
        parse_query("=1")
    assert info.value.rsc == 4000


@pytest.mark.parametrize("qs", ["%FF=1", "a=%FF", "lbl=%C3"])
def test_query_that_is_not_utf8_is_4000(qs: str) -> None:
    assert rsc_of(path=f"/cse-in?{qs}") == 4000


def test_query_lists_reach_the_request_untouched() -> None:
    r = req(path="/cse-in?fu=1&ty=2+3&ty=4&lbl=a")
    assert r.query == {"fu": ("1",), "ty": ("2 3", "4"), "lbl": ("a",)}


# -- methods: docs/onem2m.md "Operations" --------------------------------------------

@pytest.mark.parametrize(("method", "op"), [
    ("GET", Operation.RETRIEVE),
    ("PUT", Operation.UPDATE),
    ("DELETE", Operation.DELETE),
])
def test_method_mapping(method: str, op: Operation) -> None:
    assert req(method).op == op


def test_post_with_ty_is_create() -> None:
    r = req("POST", hdrs=create_headers(3), body=CNT)
    assert (r.op, r.ty, r.pc) == (Operation.CREATE, 3, {"m2m:cnt": {"rn": "data"}})


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.onem2m-ntfy+json", None])
def test_post_without_ty_is_notify(content_type: str | None) -> None:
    h = headers() if content_type is None else headers(Content_Type=content_type)
    r = req("POST", hdrs=h, body=b'{"m2m:sgn": {"vrq": true}}')
    assert r.op == Operation.NOTIFY
    assert r.ty is None
    assert r.pc == {"m2m:sgn": {"vrq": True}}


@pytest.mark.parametrize("method", ["PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"])
def test_other_methods_are_4005(method: str) -> None:
    assert rsc_of(method) == 4005


# -- headers: docs/onem2m.md "Headers" ----------------------------------------------

def test_every_request_header_is_mapped() -> None:
    h = headers(
        X_M2M_OT="20250301T134501",
        X_M2M_RET="20991231T000000",
        X_M2M_RST="20991231T000001",
        X_M2M_OET="20250301T134502",
        X_M2M_EC="3",
        X_M2M_VSI="vendor-info",
        X_M2M_RTU="http://a.example/n&http://b.example/n",
        X_M2M_SID="sess-1",
        X_M2M_SMAC="mac-value",
    )
    h["X-M2M-Origin"] = "Cmyapp"
    h["X-M2M-RI"] = "rq-0042"
    h["X-M2M-RVI"] = "4"
    r = req("GET", "/cse-in/myapp", h)
    assert r.fr == "Cmyapp"
    assert r.rqi == "rq-0042"
    assert r.rvi == "4"
    assert r.ot == "20250301T134501"
    assert r.rqet == "20991231T000000"
    assert r.rset == "20991231T000001"
    assert r.oet == "20250301T134502"
    assert r.ec == 3
    assert r.vsi == "vendor-info"
    assert r.rtu == ("http://a.example/n", "http://b.example/n")
    assert r.sid == "sess-1"
    assert r.smac == "mac-value"


def test_header_names_are_case_insensitive() -> None:
    h: CIMultiDict[str] = CIMultiDict({"x-m2m-origin": "Cx", "x-m2m-ri": "r9", "x-m2m-rvi": "2a",
                                      "content-type": "application/json;ty=3"})
    r = req("POST", hdrs=h, body=CNT)
    assert (r.fr, r.rqi, r.rvi, r.op, r.ty) == ("Cx", "r9", "2a", Operation.CREATE, 3)


def test_absent_optional_headers_give_defaults() -> None:
    r = req()
    assert (r.op, r.to, r.fr, r.rqi, r.rvi) == (Operation.RETRIEVE, "cse-in", "CAdmin", "rq-1", "3")
    assert r.ty is None and r.pc is None
    assert r.rcn is None and r.rt == 3 and r.drt == 1 and r.atrl == ()
    assert r.ot is r.rqet is r.rset is r.oet is r.rp is r.ec is r.vsi is r.sid is r.smac is None
    assert r.rtu is None
    assert r.media == "application/json"


def test_empty_origin_means_no_originator() -> None:
    assert req(hdrs=headers(X_M2M_Origin="")).fr is None
    assert req(hdrs=headers(drop=("X-M2M-Origin",))).fr is None


def test_expiration_parameters_also_come_from_the_query() -> None:
    r = req(path="/cse-in?rqet=10000&rset=20000&oet=0&rp=PT1H")
    assert (r.rqet, r.rset, r.oet, r.rp) == ("10000", "20000", "0", "PT1H")
    # the header wins over the query
    assert req(path="/cse-in?rqet=1", hdrs=headers(X_M2M_RET="2")).rqet == "2"


@pytest.mark.parametrize("ec", ["x", "2.5", "", "two"])
def test_event_category_must_be_an_integer(ec: str) -> None:
    assert rsc_of(hdrs=headers(X_M2M_EC=ec)) == 4000


def test_missing_request_identifier_is_4000() -> None:
    assert rsc_of(hdrs=headers(drop=("X-M2M-RI",))) == 4000
    assert rsc_of(hdrs=headers(X_M2M_RI="")) == 4000


def test_missing_release_version_is_4001() -> None:
    assert rsc_of(hdrs=headers(drop=("X-M2M-RVI",))) == 4001


@pytest.mark.parametrize("rvi", ["1", "2", "6", "", "3a", "03"])
def test_unsupported_release_versions_are_4001(rvi: str) -> None:
    assert rsc_of(hdrs=headers(X_M2M_RVI=rvi)) == 4001


@pytest.mark.parametrize("rvi", ["2a", "3", "4", "5"])
def test_supported_release_versions_are_accepted(rvi: str) -> None:
    assert req(hdrs=headers(X_M2M_RVI=rvi)).rvi == rvi


def test_overlong_header_is_4000() -> None:
    assert rsc_of(hdrs=headers(X_M2M_Origin="C" + "x" * 5000)) == 4000


def test_rtu_is_split_on_ampersand() -> None:
    assert req(hdrs=headers(X_M2M_RTU="http://a/n")).rtu == ("http://a/n",)
    assert req(hdrs=headers(X_M2M_RTU="http://a/n&http://b/n&/id-in/Cae")).rtu == (
        "http://a/n", "http://b/n", "/id-in/Cae")


def test_empty_rtu_means_no_result_notification() -> None:
    # docs/onem2m.md "Headers": X-M2M-RTU "present but empty = nobody is notified":
    # present but empty is an empty list of targets, not one empty URI.
    assert req(hdrs=headers(X_M2M_RTU="")).rtu == ()


def test_session_id_from_header_or_query() -> None:
    assert req(hdrs=headers(X_M2M_SID="s1")).sid == "s1"
    assert req(path="/cse-in?sessionID=s1").sid == "s1"
    assert req(path="/cse-in?sessionID=s1", hdrs=headers(X_M2M_SID="s1")).sid == "s1"


def test_session_id_header_and_query_disagreeing_is_4000() -> None:
    assert rsc_of(path="/cse-in?sessionID=s1", hdrs=headers(X_M2M_SID="s2")) == 4000


# -- media types: docs/onem2m.md "Content and media types" -------------------------

@pytest.mark.parametrize(("content_type", "media"), [
    ("application/json;ty=3", "application/json"),
    ("application/json; ty=3", "application/json"),
    ("application/vnd.onem2m-res+json; ty=3", "application/vnd.onem2m-res+json"),
    ("application/vnd.onem2m-res+json;ty=3;charset=utf-8", "application/vnd.onem2m-res+json"),
    ("application/json; charset=utf-8; ty=3", "application/json"),
    ("Application/JSON;TY=3", "application/json"),
    ('application/json; ty="3"', "application/json"),
])
def test_content_type_carries_ty_as_a_parameter(content_type: str, media: str) -> None:
    r = req("POST", hdrs=headers(Content_Type=content_type), body=CNT)
    assert (r.op, r.ty, r.media) == (Operation.CREATE, 3, media)
    assert r.pc == {"m2m:cnt": {"rn": "data"}}
    assert r.body == CNT


@pytest.mark.parametrize("ty", ["abc", "", "3.0", "0x3", "\u0663", "3 4"])
def test_ty_that_is_not_an_integer_is_4000(ty: str) -> None:
    assert rsc_of("POST", hdrs=create_headers(ty), body=CNT) == 4000


@pytest.mark.parametrize("content_type", [
    "application/xml;ty=3",
    "application/vnd.onem2m-res+xml;ty=3",
    "text/plain;ty=3",
])
def test_xml_body_is_4015_naming_the_supported_types(content_type: str) -> None:
    with pytest.raises(M2MError) as info:
        req("POST", hdrs=headers(Content_Type=content_type), body=b"<m2m:cnt/>")
    assert int(info.value.rsc) == 4015
    assert "application/json" in info.value.message and "application/vnd.onem2m-res+cbor" in info.value.message


@pytest.mark.parametrize("content_type", ["application/xml", "application/vnd.onem2m-res+xml"])
def test_non_json_update_and_notify_bodies_are_4015(content_type: str) -> None:
    h = headers(Content_Type=content_type)
    assert rsc_of("PUT", hdrs=h, body=b"\xa1") == 4015
    assert rsc_of("POST", hdrs=h, body=b"\xa1") == 4015


@pytest.mark.parametrize("body", [
    b"{",
    b"{'m2m:cnt': {}}",
    b'{"m2m:cnt": {"rn": "a",}}',
    b"m2m:cnt",
    b'{"m2m:cnt": {"mni": 1' + b"0" * 5000 + b"}}",   # beyond Python's int-digits limit
])
def test_invalid_json_is_4000(body: bytes) -> None:
    assert rsc_of("POST", hdrs=create_headers(3), body=body) == 4000


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_json_numbers_are_4000(literal: bytes) -> None:
    # RFC 8259 has no NaN/Infinity: accepting them means answering with
    # invalid JSON later (the content is echoed back verbatim).
    body = b'{"m2m:cin": {"con": ' + literal + b"}}"
    assert rsc_of("POST", hdrs=create_headers(4), body=body) == 4000


@pytest.mark.parametrize("body", [
    b'{"m2m:cnt": {"rn": "\xff"}}',
    b'{"m2m:cnt": {"rn": "\xc3"}}',
    b'{"m2m:cnt": {"rn": "\xed\xa0\x80"}}',   # an encoded surrogate
])
def test_body_that_is_not_utf8_is_4000(body: bytes) -> None:
    assert rsc_of("POST", hdrs=create_headers(3), body=body) == 4000


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_json_in_another_unicode_encoding_is_4000(encoding: str) -> None:
    # RFC 8259 8.1: JSON exchanged between systems MUST be UTF-8; the binding
    # has no charset negotiation, so a UTF-16/32 body is not valid content.
    body = '{"m2m:cnt": {"rn": "data"}}'.encode(encoding)
    assert rsc_of("POST", hdrs=create_headers(3), body=body) == 4000


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"m2m:cin": {"con": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}",
])
def test_deeply_nested_json_is_4000(body: bytes) -> None:
    assert rsc_of("POST", hdrs=create_headers(4), body=body) == 4000


def test_bodies_of_retrieve_and_delete_are_ignored() -> None:
    assert req("GET", hdrs=headers(Content_Type="application/json"), body=CNT).pc is None
    assert req("DELETE", hdrs=headers(Content_Type="application/json"), body=CNT).pc is None
    # even a body the binding could not parse
    assert req("DELETE", hdrs=headers(Content_Type="application/xml"), body=b"<x/>").pc is None


def test_update_body_is_parsed() -> None:
    r = req("PUT", "/cse-in/app/data", headers(Content_Type="application/json"),
            b'{"m2m:cnt": {"mni": 5, "lbl": null}}')
    assert (r.op, r.ty, r.pc) == (Operation.UPDATE, None, {"m2m:cnt": {"mni": 5, "lbl": None}})


@pytest.mark.parametrize("accept", [
    "application/xml",
    "application/cbor;q=0",
    "application/vnd.onem2m-res+xml",
    "text/html",
    "application/xml, text/plain",
])
def test_unacceptable_response_format_is_5207(accept: str) -> None:
    assert rsc_of(hdrs=headers(Accept=accept)) == 5207


@pytest.mark.parametrize("accept", [
    "*/*",
    "application/*",
    "application/json",
    "application/vnd.onem2m-res+json",
    "application/xml, application/json;q=0.5",
    "text/html, */*;q=0.1",
    "",
])
def test_acceptable_response_formats(accept: str) -> None:
    assert req(hdrs=headers(Accept=accept)).op == Operation.RETRIEVE


# -- request parameters in the query: docs/onem2m.md "Query parameters" -----------

@pytest.mark.parametrize("qs", [
    "rcn=abc", "rcn=13", "rcn=-1", "rcn=1.5", "rcn=", "rcn=%2B1", "rcn=1&rcn=2", "rcn=\u0661",
    "rt=0", "rt=6", "rt=x", "rt=",
    "drt=0", "drt=3", "drt=two", "drt=1&drt=2",
])
def test_bad_rcn_rt_drt_are_4000(qs: str) -> None:
    assert rsc_of(path=f"/cse-in?{qs}") == 4000


@pytest.mark.parametrize("rcn", range(13))
def test_every_defined_rcn_is_parsed(rcn: int) -> None:
    assert req(path=f"/cse-in?rcn={rcn}").rcn == rcn


@pytest.mark.parametrize("rt", [1, 2, 3, 4, 5])
def test_every_defined_rt_is_parsed(rt: int) -> None:
    assert req(path=f"/cse-in?rt={rt}").rt == rt


@pytest.mark.parametrize("drt", [1, 2])
def test_every_defined_drt_is_parsed(drt: int) -> None:
    assert req(path=f"/cse-in?drt={drt}").drt == drt


@pytest.mark.parametrize(("qs", "atrl"), [
    ("atrl=rr+poa", ("rr", "poa")),
    ("atrl=rr%20poa", ("rr", "poa")),
    ("atrl=rr%2Bpoa", ("rr", "poa")),
    ("atrl=ri+lbl+rr", ("ri", "lbl", "rr")),
    ("atrl=rr", ("rr",)),
    ("atrl=", ()),
])
def test_atrl_is_split_into_attribute_names(qs: str, atrl: tuple[str, ...]) -> None:
    assert req(path=f"/cse-in/app?{qs}").atrl == atrl


def test_atrl_repeated_is_a_list() -> None:
    # docs/onem2m.md "Query parameters": lists are a+b or repeated (a&a); atrl is a list.
    assert req(path="/cse-in/app?atrl=rr&atrl=poa").atrl == ("rr", "poa")


# -- response_to_http: TS-0009 Table 6.3.2-1 ----------------------------------------

@pytest.mark.parametrize(("rsc", "status"), [
    (1000, 202), (1001, 202), (1002, 202),
    (2000, 200), (2001, 201), (2002, 200), (2004, 200),
    (4000, 400), (4001, 501), (4004, 404), (4005, 405), (4008, 504), (4015, 415),
    (4101, 403), (4102, 400), (4103, 403), (4104, 409), (4105, 409), (4106, 403),
    (4107, 403), (4108, 403), (4117, 403), (4125, 501), (4128, 403), (4143, 400),
    (5000, 500), (5001, 501), (5103, 404), (5105, 403), (5106, 409), (5107, 404),
    (5203, 403), (5204, 500), (5205, 403), (5206, 501), (5207, 406), (5220, 409),
    (6003, 404), (6010, 400), (6028, 409), (6030, 504),
])
def test_rsc_to_http_status(rsc: int, status: int) -> None:
    code, hdrs, _ = response_to_http(Response(rsc=rsc, rqi="r1", pc={"m2m:dbg": "x"}), NOW)
    assert code == status
    assert hdrs["X-M2M-RSC"] == str(rsc)


def test_response_headers() -> None:
    code, hdrs, body = response_to_http(
        Response(rsc=2000, rqi="rq-0004", pc={"m2m:cb": {"csi": "/id-in"}}, rvi="2a"), NOW)
    assert code == 200
    assert hdrs["X-M2M-RSC"] == "2000"
    assert hdrs["X-M2M-RI"] == "rq-0004"
    assert hdrs["X-M2M-RVI"] == "2a"
    assert hdrs["X-M2M-OT"] == NOW
    assert hdrs["Content-Type"] == "application/json"
    assert "Content-Location" not in hdrs
    assert json.loads(body) == {"m2m:cb": {"csi": "/id-in"}}


def test_content_location_only_when_set() -> None:
    _, hdrs, body = response_to_http(
        Response(rsc=2001, rqi="r", pc={"m2m:uri": "cse-in/app/data/cin1"}, location="cse-in/app/data/cin1"),
        NOW)
    assert hdrs["Content-Location"] == "cse-in/app/data/cin1"
    assert json.loads(body) == {"m2m:uri": "cse-in/app/data/cin1"}
    for location in (None, ""):
        _, hdrs, _ = response_to_http(Response(rsc=2001, rqi="r", pc={"m2m:cnt": {}}, location=location), NOW)
        assert "Content-Location" not in hdrs


def test_no_body_and_no_content_type_when_pc_is_none() -> None:
    code, hdrs, body = response_to_http(Response(rsc=2002, rqi="r9"), NOW)
    assert (code, body) == (200, b"")
    assert "Content-Type" not in hdrs
    assert hdrs["X-M2M-RSC"] == "2002" and hdrs["X-M2M-RI"] == "r9"


@pytest.mark.parametrize(("pc", "expected"), [
    ({}, b"{}"),
    ([], b"[]"),
    ("", b'""'),
    (0, b"0"),
    (False, b"false"),
])
def test_falsy_content_still_has_a_body(pc: Any, expected: bytes) -> None:
    _, hdrs, body = response_to_http(Response(rsc=2000, rqi="r", pc=pc), NOW)
    assert body == expected
    assert hdrs["Content-Type"] == "application/json"


def test_response_media_type() -> None:
    pc = {"m2m:cnt": {"rn": "x"}}
    _, hdrs, _ = response_to_http(Response(rsc=2000, rqi="r", pc=pc), NOW, "application/vnd.onem2m-res+json")
    assert hdrs["Content-Type"] == "application/vnd.onem2m-res+json"
    for media in ("application/json", "application/vnd.onem2m-ntfy+json"):
        _, hdrs, _ = response_to_http(Response(rsc=2000, rqi="r", pc=pc), NOW, media)
        assert hdrs["Content-Type"] == "application/json"


def test_response_body_is_utf8_json() -> None:
    pc = {"m2m:cin": {"con": "21.5 \u00b0C \u6e29\u5ea6 \U0001f321"}}
    _, _, body = response_to_http(Response(rsc=2000, rqi="r", pc=pc), NOW)
    assert json.loads(body.decode("utf-8")) == pc


def test_error_response_carries_dbg() -> None:
    code, hdrs, body = response_to_http(Response.error(4004, "resource 'x' does not exist", "r5"), NOW)
    assert code == 404
    assert hdrs["X-M2M-RSC"] == "4004" and hdrs["X-M2M-RI"] == "r5"
    assert json.loads(body) == {"m2m:dbg": "resource 'x' does not exist"}


def test_request_then_response_round_trip_keeps_ri_and_rvi() -> None:
    r = req("POST", hdrs=headers(Content_Type="application/json;ty=3", X_M2M_RI="abc-123", X_M2M_RVI="2a"),
            body=CNT)
    code, hdrs, _ = response_to_http(
        Response(rsc=2001, rqi=r.rqi, pc={"m2m:cnt": {}}, rvi=r.rvi, location="cse-in/data"), NOW, r.media)
    assert code == 201
    assert (hdrs["X-M2M-RI"], hdrs["X-M2M-RVI"]) == ("abc-123", "2a")


def test_content_status_and_offset_only_for_partial_content() -> None:
    """TS-0009 6.4.20-21: a cut result carries X-M2M-CTS (1 PARTIAL_CONTENT,
    TS-0004 6.3.4.2.44) and X-M2M-CTO; a complete one neither. The sending
    side (the SDK, forwarding) reads them back."""
    _, cut, _ = response_to_http(Response(rsc=2000, rqi="r", pc={"m2m:uril": []}, cnst=1, cnot=3), NOW)
    assert cut["X-M2M-CTS"] == "1" and cut["X-M2M-CTO"] == "3"
    _, whole, _ = response_to_http(Response(rsc=2000, rqi="r", pc={"m2m:uril": []}), NOW)
    assert "X-M2M-CTS" not in whole and "X-M2M-CTO" not in whole
    back = decode_response(200, cut, b'{"m2m:uril":[]}')
    assert (back.cnst, back.cnot) == (1, 3)
    odd = decode_response(200, {"X-M2M-RSC": "2000", "X-M2M-CTS": "x", "X-M2M-CTO": "-1"}, b"")
    assert (odd.cnst, odd.cnot) == (None, None)


# -- CBOR (TS-0009 media types; docs/onem2m.md "Serializations") ---------------------------

CNT_CBOR = cbor2.dumps({"m2m:cnt": {"rn": "data", "mni": 5, "lbl": ["a", "b"], "at": None}})


@pytest.mark.parametrize("media", ["application/cbor", "application/vnd.onem2m-res+cbor"])
def test_cbor_create_body_is_decoded_to_the_same_content_as_json(media: str) -> None:
    r = req("POST", hdrs=create_headers(3, media), body=CNT_CBOR)
    assert (r.op, r.ty, r.media) == (Operation.CREATE, 3, media)
    assert r.pc == {"m2m:cnt": {"rn": "data", "mni": 5, "lbl": ["a", "b"], "at": None}}
    assert r.body == CNT_CBOR


def test_cbor_update_and_notify_bodies_are_decoded() -> None:
    h = headers(Content_Type="application/vnd.onem2m-res+cbor")
    assert req("PUT", "/cse-in/app/data", h, cbor2.dumps({"m2m:cnt": {"mni": 2}})).pc == {"m2m:cnt": {"mni": 2}}
    sgn = {"m2m:sgn": {"vrq": True, "sur": "/id-in/sub"}}
    assert req("POST", "/cse-in/app", h, cbor2.dumps(sgn)).pc == sgn


def _dbg_of(body: bytes, media: str = "application/vnd.onem2m-res+cbor") -> tuple[int, str]:
    with pytest.raises(M2MError) as info:
        req("POST", hdrs=create_headers(4, media), body=body)
    return int(info.value.rsc), info.value.message


@pytest.mark.parametrize("body, words", [
    (b"\xa1\x61a", "ends in the middle"),                                    # truncated map
    (b"\xff", "not valid CBOR"),                                             # a lone break
    (b"\xa1\x61a\x01\x00", "after the first data item"),                    # trailing bytes
    (b"\xa2\x61a\x01\x61a\x02", "not valid CBOR"),                           # duplicate key
    (b"\xa1\x01\x01", "not valid CBOR"),                                     # integer map key
    (b"\xa1\x41k\x01", "map key of type byte string"),                       # byte-string map key
    (b"\xa1\x61a\x43abc", "byte string"),                                    # byte string value
    (b"\xa1\x61a\xf7", "undefined"),                                         # undefined
    (b"\xa1\x61a\xf0", "simple value"),                                      # simple value 16
    (b"\xa1\x61a\xf9\x7e\x00", "NaN"),                                       # half-precision NaN
    (b"\xa1\x61a\xf9\x7c\x00", "inf"),                                       # Infinity
    (b"\xa1\x61a\x62\xed\xa0", "not valid CBOR"),                            # text that is not UTF-8
    (b"\xa1\x61a\xc1\x1a\x00\x00\x00\x01", "tag 1"),                         # epoch date tag
    (b"\xa1\x61a\xc2\x49\x01" + b"\x00" * 8, "tag 2"),                       # bignum tag
    (b"\xa1\x61a\xd8\x1c\x81\xd8\x1d\x00", "not allowed"),                      # value sharing (a cycle)
    (b"\xa1\x61a\xd9\x03\xe8\x00", "tag 1000"),                              # any other tag
    (b"\x81" * 100 + b"\x00", "nested more than 64"),                         # deep arrays
    (b"\x9f" * 100_000, "nested more than 64"),                               # deep indefinite arrays
])
def test_malformed_or_non_json_cbor_is_4000_with_a_reason(body: bytes, words: str) -> None:
    rsc, dbg = _dbg_of(body)
    assert rsc == 4000
    assert words in dbg, dbg


def test_cbor_response_when_accept_prefers_it() -> None:
    pc = {"m2m:cnt": {"rn": "data", "mni": 5, "st": 0}}
    for accept, media in [("application/cbor", "application/cbor"),
                          ("application/vnd.onem2m-res+cbor", "application/vnd.onem2m-res+cbor"),
                          ("application/json;q=0.5, application/vnd.onem2m-res+cbor",
                           "application/vnd.onem2m-res+cbor"),
                          ("application/vnd.onem2m-res+cbor;q=0.2, application/json", "application/json"),
                          ("application/xml, application/cbor;q=0.1", "application/cbor")]:
        chosen = response_media(headers(Accept=accept), "application/json")
        assert chosen == media, accept
        _, hdrs, body = response_to_http(Response(rsc=2000, rqi="r1", pc=pc), NOW, chosen)
        assert hdrs["Content-Type"] == media
        assert (cbor2.loads(body) if "cbor" in media else json.loads(body)) == pc


def test_without_accept_the_answer_uses_the_request_serialization() -> None:
    assert response_media(headers(), "application/vnd.onem2m-res+cbor") == "application/vnd.onem2m-res+cbor"
    assert response_media(headers(Accept="*/*"), "application/cbor") == "application/cbor"
    assert response_media(headers(), "application/json") == "application/json"
    # an error before the request was parsed: its Content-Type says what the client speaks
    assert response_media(headers(Content_Type="application/cbor;ty=3"), None) == "application/cbor"
    assert response_media(headers(Content_Type="application/xml"), None) == "application/json"
    assert response_media(headers(Accept="application/xml"), "application/cbor") == "application/json"


def test_cbor_request_encodes_and_its_cbor_answer_decodes() -> None:
    out = Request(op=Operation.CREATE, to="cse-in/app", fr="Capp", rqi="r9", ty=4,
                  pc={"m2m:cin": {"con": "21.5"}}, media="application/vnd.onem2m-res+cbor")
    method, _, hdrs, body = encode_request(out)
    assert (method, hdrs["Content-Type"], hdrs["Accept"]) == (
        "POST", "application/vnd.onem2m-res+cbor;ty=4", "application/vnd.onem2m-res+cbor")
    assert cbor2.loads(body) == {"m2m:cin": {"con": "21.5"}}
    back = request_from_http(method, "/cse-in/app", CIMultiDict({**BASE_HEADERS, **hdrs}), body)
    assert back.pc == out.pc
    answer = decode_response(201, {"X-M2M-RSC": "2001", "Content-Type": "application/cbor"},
                             cbor2.dumps({"m2m:cin": {"ri": "cin1"}}))
    assert (answer.rsc, answer.pc) == (2001, {"m2m:cin": {"ri": "cin1"}})
    bad = decode_response(201, {"X-M2M-RSC": "2001", "Content-Type": "application/cbor"}, b"\xc1\x00")
    assert "CBOR we refuse" in bad.pc["m2m:dbg"]

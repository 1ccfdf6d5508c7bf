"""Bad input over HTTP: every answer is a oneM2M error, and the CSE keeps serving.

Why: a CSE on a network gets broken JSON, wrong types, unknown attributes,
wrong ``ty``, missing headers, oversized bodies, path tricks and odd methods.
Each must come back as the documented RSC with its HTTP status, an
``X-M2M-RSC`` header, the request's ``X-M2M-RI`` and a ``{"m2m:dbg": ...}``
body -- never 5000, never a bare HTTP error -- and the process must survive.

All cases share one CSE process (module-scoped, on a module-scoped event
loop); the last test checks it is still alive, still answering, and logged
no internal error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import ADMIN, CSEProcess, Http, write_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

_ri = itertools.count(1)


@dataclass
class World:
    cse: CSEProcess
    http: Http
    aei: str

    @property
    def url(self) -> str:
        return self.cse.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    directory: Path = tmp_path_factory.mktemp("errors")
    cse = CSEProcess(write_config(directory), directory / "cse-in.db")
    await cse.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            http = Http(session)
            r = await http.send("POST", f"{cse.url}/cse-in", fr="C", ty=2,
                                body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
            assert r.rsc == 2001, r.body
            aei = r.body["m2m:ae"]["aei"]
            r = await http.send("POST", f"{cse.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
            assert r.rsc == 2001, r.body
            r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4,
                                body={"m2m:cin": {"rn": "first", "con": "x"}})
            assert r.rsc == 2001, r.body
            yield World(cse, http, aei)
    finally:
        await cse.stop()


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def rsc(self) -> int:
        return int(self.headers.get("x-m2m-rsc", "0"))

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_http(port: int, method: str, target: str, headers: dict[str, str] | None = None,
                   body: bytes = b"", drop: tuple[str, ...] = ()) -> Raw:
    """One HTTP/1.1 exchange on a fresh socket, with the request-target sent
    byte for byte (a client library would normalise ``..`` and ``//``)."""
    h = {"Host": f"127.0.0.1:{port}", "X-M2M-Origin": ADMIN, "X-M2M-RI": f"raw{next(_ri)}",
         "X-M2M-RVI": "3", "Connection": "close", **(headers or {})}
    for name in drop:
        h.pop(name, None)
    if body:
        h.setdefault("Content-Length", str(len(body)))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers_out = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers_out[k.strip().lower()] = v.strip()
    return Raw(status, headers_out, payload)


def check_oneM2M_error(status: int, headers: dict[str, str], body: Any, rqi: str | None,
                       rsc: int | tuple[int, ...], http_status: int | tuple[int, ...]) -> None:
    """The shape every error must have (docs/onem2m.md "Errors")."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert "x-m2m-rsc" in lower, f"no X-M2M-RSC: HTTP {status} {body!r}"
    got = int(lower["x-m2m-rsc"])
    rscs = rsc if isinstance(rsc, tuple) else (rsc,)
    statuses = http_status if isinstance(http_status, tuple) else (http_status,)
    assert got in rscs, f"RSC {got}, expected {rscs}: {body!r}"
    assert status in statuses, f"HTTP {status}, expected {statuses}"
    assert got != 5000
    if rqi is not None:
        assert lower.get("x-m2m-ri") == rqi
    assert isinstance(body, dict) and list(body) == ["m2m:dbg"], body
    assert isinstance(body["m2m:dbg"], str) and body["m2m:dbg"].strip()


AE = {"rn": "x", "api": "Nx", "rr": True, "srv": ["3"]}

# (id, method, path, ty, body-or-raw, extra headers, rsc, http status)
CASES: list[tuple[str, str, str, int | None, Any, dict[str, str], int, int]] = [
    # broken JSON
    ("truncated json", "POST", "/cse-in", 2, b'{"m2m:ae": {', {}, 4000, 400),
    ("single quotes", "POST", "/cse-in", 2, b"{'m2m:ae': {}}", {}, 4000, 400),
    ("trailing comma", "POST", "/cse-in/app", 3, b'{"m2m:cnt": {"rn": "a",}}', {}, 4000, 400),
    ("not utf-8", "POST", "/cse-in/app", 3, b'{"m2m:cnt": {"rn": "\xff\xfe"}}', {}, 4000, 400),
    ("encoded surrogate", "POST", "/cse-in/app", 3, b'{"m2m:cnt": {"lbl": ["\xed\xa0\x80"]}}', {}, 4000, 400),
    ("deeply nested", "POST", "/cse-in/app/data", 4,
     b'{"m2m:cin": {"con": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", {}, 4000, 400),
    ("huge number", "POST", "/cse-in/app", 3, b'{"m2m:cnt": {"mni": 1' + b"0" * 5000 + b"}}", {}, 4000, 400),
    ("body is a list", "POST", "/cse-in", 2, [AE], {}, 4000, 400),
    ("body is a string", "POST", "/cse-in", 2, "m2m:ae", {}, 4000, 400),
    ("two roots", "POST", "/cse-in", 2, {"m2m:ae": AE, "m2m:cnt": {}}, {}, 4000, 400),
    ("attributes not an object", "POST", "/cse-in", 2, {"m2m:ae": [1]}, {}, 4000, 400),
    ("no body on create", "POST", "/cse-in", 2, None, {}, 4000, 400),
    ("no body on update", "PUT", "/cse-in/app/data", None, None, {}, 4000, 400),
    ("empty update", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {}}, {}, 4000, 400),
    # wrong types
    ("api not a string", "POST", "/cse-in", 2, {"m2m:ae": {**AE, "api": 5}}, {}, 4000, 400),
    ("rr not a boolean", "POST", "/cse-in", 2, {"m2m:ae": {**AE, "rr": "yes"}}, {}, 4000, 400),
    ("srv not a list", "POST", "/cse-in", 2, {"m2m:ae": {**AE, "srv": "3"}}, {}, 4000, 400),
    ("mni negative", "POST", "/cse-in/app", 3, {"m2m:cnt": {"mni": -1}}, {}, 4000, 400),
    ("mni a float", "POST", "/cse-in/app", 3, {"m2m:cnt": {"mni": 1.5}}, {}, 4000, 400),
    ("mni a boolean", "POST", "/cse-in/app", 3, {"m2m:cnt": {"mni": True}}, {}, 4000, 400),
    ("mni a string", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"mni": "5"}}, {}, 4000, 400),
    ("lbl not a list", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"lbl": "a"}}, {}, 4000, 400),
    ("rn with a slash", "POST", "/cse-in/app", 3, {"m2m:cnt": {"rn": "a/b"}}, {}, 4000, 400),
    ("rn with NUL", "POST", "/cse-in/app", 3, {"m2m:cnt": {"rn": "a\u0000b"}}, {}, 4000, 400),
    ("rn empty", "POST", "/cse-in/app", 3, {"m2m:cnt": {"rn": ""}}, {}, 4000, 400),
    ("rn la", "POST", "/cse-in/app/data", 3, {"m2m:cnt": {"rn": "la"}}, {}, 4000, 400),
    ("et garbage", "POST", "/cse-in/app", 3, {"m2m:cnt": {"et": "tomorrow"}}, {}, 4000, 400),
    ("et in the past", "POST", "/cse-in/app", 3, {"m2m:cnt": {"et": "20000101T000000"}}, {}, 4000, 400),
    ("cr not null", "POST", "/cse-in/app", 3, {"m2m:cnt": {"cr": "Cother"}}, {}, 4000, 400),
    ("cr on an AE", "POST", "/cse-in", 2, {"m2m:ae": {**AE, "cr": None}}, {}, 4000, 400),
    ("cnf malformed", "POST", "/cse-in/app/data", 4, {"m2m:cin": {"con": "x", "cnf": "plain"}}, {}, 4000, 400),
    ("acp without pvs", "POST", "/cse-in/app", 1, {"m2m:acp": {"pv": {"acr": []}}}, {}, 4000, 400),
    ("acop too big", "POST", "/cse-in/app", 1,
     {"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 64}]}, "pvs": {"acr": []}}}, {}, 4000, 400),
    # unknown or not-permitted attributes
    ("unknown attribute", "POST", "/cse-in", 2, {"m2m:ae": {**AE, "foo": 1}}, {}, 4000, 400),
    ("long name", "POST", "/cse-in/app", 3, {"m2m:cnt": {"maxNrOfInstances": 5}}, {}, 4000, 400),
    ("ri on create", "POST", "/cse-in/app", 3, {"m2m:cnt": {"ri": "mine"}}, {}, 4000, 400),
    ("cni on create", "POST", "/cse-in/app", 3, {"m2m:cnt": {"cni": 0}}, {}, 4000, 400),
    ("rn on update", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"rn": "other"}}, {}, 4000, 400),
    ("ct on update", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"ct": "20250101T000000"}}, {}, 4000, 400),
    ("unknown on update", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"bogus": 1}}, {}, 4000, 400),
    ("api on update", "PUT", "/cse-in/app", None, {"m2m:ae": {"api": "Nother"}}, {}, 4000, 400),
    ("wrong root on update", "PUT", "/cse-in/app/data", None, {"m2m:ae": {"lbl": ["a"]}}, {}, 4000, 400),
    ("unknown query key", "GET", "/cse-in?foo=bar", None, None, {}, 4000, 400),
    # wrong ty
    ("ty/root mismatch", "POST", "/cse-in", 3, {"m2m:ae": AE}, {}, 4000, 400),
    ("unknown ty", "POST", "/cse-in", 99, {"m2m:xyz": {}}, {}, 4000, 400),
    ("ty zero", "POST", "/cse-in", 0, {"m2m:xyz": {}}, {}, 4000, 400),
    ("ty not an integer", "POST", "/cse-in", None, {"m2m:ae": AE},
     {"Content-Type": "application/json;ty=ae"}, 4000, 400),
    ("ty CSEBase", "POST", "/cse-in", 5, {"m2m:cb": {}}, {}, 4005, 405),
    ("cin under the CSEBase", "POST", "/cse-in", 4, {"m2m:cin": {"con": "x"}}, {}, 4108, 403),
    ("AE under an AE", "POST", "/cse-in/app", 2, {"m2m:ae": AE}, {}, 4108, 403),
    ("ty in the query on create", "POST", "/cse-in/app?ty=3", 3, {"m2m:cnt": {}}, {}, 4000, 400),
    # headers
    ("no X-M2M-RI", "GET", "/cse-in", None, None, {"X-M2M-RI": ""}, 4000, 400),
    ("X-M2M-RVI 1", "GET", "/cse-in", None, None, {"X-M2M-RVI": "1"}, 4001, 501),
    ("X-M2M-RVI 9", "GET", "/cse-in", None, None, {"X-M2M-RVI": "9"}, 4001, 501),
    ("no X-M2M-Origin", "GET", "/cse-in/app", None, None, {"X-M2M-Origin": ""}, 4000, 400),
    ("no X-M2M-Origin on update", "PUT", "/cse-in/app/data", None, {"m2m:cnt": {"lbl": []}},
     {"X-M2M-Origin": ""}, 4000, 400),
    ("originator not an AE-ID", "POST", "/cse-in", 2, {"m2m:ae": AE}, {"X-M2M-Origin": "bad/id"}, 4000, 400),
    ("X-M2M-EC not a number", "GET", "/cse-in", None, None, {"X-M2M-EC": "soon"}, 4000, 400),
    ("X-M2M-RET garbage", "GET", "/cse-in", None, None, {"X-M2M-RET": "later"}, 4000, 400),
    ("X-M2M-RET past", "GET", "/cse-in", None, None, {"X-M2M-RET": "20000101T000000"}, 4008, 504),
    ("X-M2M-RST before X-M2M-RET", "GET", "/cse-in", None, None,
     {"X-M2M-RET": "20991231T000010", "X-M2M-RST": "20991231T000000"}, 4000, 400),
    ("X-M2M-OET after X-M2M-RET", "GET", "/cse-in", None, None,
     {"X-M2M-RET": "20991231T000000", "X-M2M-OET": "20991231T000010"}, 4000, 400),
    ("X-M2M-OET garbage", "GET", "/cse-in", None, None, {"X-M2M-OET": "soon"}, 4000, 400),
    ("X-M2M-OET beyond max_oet_delay_s", "GET", "/cse-in", None, None, {"X-M2M-OET": "20991231T000000"}, 5207, 406),
    ("overlong header", "GET", "/cse-in", None, None, {"X-M2M-Origin": "C" + "x" * 6000}, 4000, 400),
    ("session ids disagree", "GET", "/cse-in?sessionID=a", None, None, {"X-M2M-SID": "b"}, 4000, 400),
    ("xml body", "POST", "/cse-in", None, b"<m2m:ae/>", {"Content-Type": "application/xml;ty=2"}, 4015, 415),
    ("malformed cbor body", "POST", "/cse-in", None, b"\xa1\x00", {"Content-Type": "application/cbor;ty=2",
                                                                     "Accept": "application/json"}, 4000, 400),
    ("text body on update", "PUT", "/cse-in/app/data", None, b"mni=5", {"Content-Type": "text/plain"}, 4015, 415),
    ("accept xml", "GET", "/cse-in", None, None, {"Accept": "application/xml"}, 5207, 406),
    # query parameters
    ("rcn not a number", "GET", "/cse-in?rcn=all", None, None, {}, 4000, 400),
    ("rcn out of range", "GET", "/cse-in?rcn=42", None, None, {}, 4000, 400),
    ("rcn invalid for retrieve", "GET", "/cse-in?rcn=2", None, None, {}, 4000, 400),
    ("rcn twice", "GET", "/cse-in?rcn=1&rcn=4", None, None, {}, 4000, 400),
    ("drt out of range", "GET", "/cse-in?fu=1&drt=3", None, None, {}, 4000, 400),
    ("rt out of range", "GET", "/cse-in?rt=9", None, None, {}, 4000, 400),
    ("atrl unknown attribute", "GET", "/cse-in/app?atrl=xyz", None, None, {}, 4000, 400),
    ("atrl with rcn 4", "GET", "/cse-in/app?atrl=rr&rcn=4", None, None, {}, 4000, 400),
    ("query not utf-8", "GET", "/cse-in?lbl=%ff", None, None, {}, 4000, 400),
    ("query key empty", "GET", "/cse-in?=1", None, None, {}, 4000, 400),
    # targets
    ("unknown resource", "GET", "/cse-in/nothing", None, None, {}, 4004, 404),
    ("unknown ri", "GET", "/nothing", None, None, {}, 4004, 404),
    ("unknown CSE", "GET", "/~/id-elsewhere/cse-in", None, None, {}, 4004, 404),
    ("la of nothing", "GET", "/cse-in/app/la", None, None, {}, 4004, 404),
    ("path not utf-8", "GET", "/cse-in/%C3%28", None, None, {}, 4000, 400),
    ("empty target", "GET", "/", None, None, {}, 4000, 400),
    ("update CSEBase", "PUT", "/cse-in", None, {"m2m:cb": {"lbl": ["a"]}}, {}, 4005, 405),
    ("delete CSEBase", "DELETE", "/cse-in", None, None, {}, 4005, 405),
    ("update contentInstance", "PUT", "/cse-in/app/data/first", None, {"m2m:cin": {"con": "y"}}, {}, 4005, 405),
    ("create on la", "POST", "/cse-in/app/data/la", 4, {"m2m:cin": {"con": "y"}}, {}, 4005, 405),
    ("name taken", "POST", "/cse-in/app", 3, {"m2m:cnt": {"rn": "data"}}, {}, 4105, 409),
    ("no privilege", "GET", "/cse-in/app/data", None, None, {"X-M2M-Origin": "Cnobody"}, 4103, 403),
    # methods the binding does not define
    ("PATCH", "PATCH", "/cse-in/app/data", None, {"m2m:cnt": {"lbl": []}}, {}, 4005, 405),
    ("OPTIONS", "OPTIONS", "/cse-in", None, None, {}, 4005, 405),
    ("TRACE", "TRACE", "/cse-in", None, None, {}, 4005, 405),
    ("PROPFIND", "PROPFIND", "/cse-in", None, None, {}, 4005, 405),
]


@pytest.mark.parametrize(("method", "path", "ty", "body", "extra", "rsc", "status"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_request_is_a_oneM2M_error(world: World, method: str, path: str, ty: int | None, body: Any,
                                             extra: dict[str, str], rsc: int, status: int) -> None:
    rqi = extra.get("X-M2M-RI", f"bad-{next(_ri)}")
    fr = extra.get("X-M2M-Origin", world.aei) or None
    rvi = extra.get("X-M2M-RVI", "3")
    headers = {k: v for k, v in extra.items() if k not in ("X-M2M-RI", "X-M2M-Origin", "X-M2M-RVI")}
    raw = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    r = await world.http.send(method, world.url + path, fr=fr, ty=ty, body=payload, raw=raw,
                              headers=headers, rvi=rvi, rqi=rqi)
    check_oneM2M_error(r.status, r.headers, r.body, rqi or None, rsc, status)


async def test_missing_headers_entirely(world: World) -> None:
    port = world.cse.port
    r = await raw_http(port, "GET", "/cse-in/app", {"X-M2M-Origin": world.aei, "X-M2M-RI": "mh-0"})
    assert r.rsc == 2000  # the raw client itself is fine
    for drop, rsc, status in (("X-M2M-RI", 4000, 400), ("X-M2M-RVI", 4001, 501), ("X-M2M-Origin", 4000, 400)):
        r = await raw_http(port, "GET", "/cse-in/app", {"X-M2M-Origin": world.aei, "X-M2M-RI": "mh-1"},
                           drop=(drop,))
        check_oneM2M_error(r.status, r.headers, r.json(), None if drop == "X-M2M-RI" else "mh-1", rsc, status)


async def test_lone_surrogate_escape_never_breaks_responses(world: World) -> None:
    # "\ud800" is valid JSON syntax for a string no UTF-8 response can carry.
    # Rejecting it (4000) or storing it and still answering are both fine;
    # a bare HTTP 500 on this or any later request is not.
    r = await world.http.send("POST", f"{world.url}/cse-in/app", fr=world.aei, ty=3,
                              raw=b'{"m2m:cnt": {"rn": "sur", "lbl": ["\\ud800"]}}')
    assert "X-M2M-RSC" in r.headers, (r.status, r.raw[:200])
    assert r.rsc in (2001, 4000), r.body
    for path in ("/cse-in/app?rcn=4", "/cse-in/app/sur", "/cse-in/app?fu=1&ty=3"):
        r = await world.http.send("GET", world.url + path, fr=world.aei)
        assert "X-M2M-RSC" in r.headers, (path, r.status, r.raw[:200])
        assert r.rsc in (2000, 4004), (path, r.body)
    await world.http.send("DELETE", f"{world.url}/cse-in/app/sur", fr=world.aei)


async def test_nan_is_never_echoed_as_invalid_json(world: World) -> None:
    r = await world.http.send("POST", f"{world.url}/cse-in/app/data", fr=world.aei, ty=4,
                              raw=b'{"m2m:cin": {"rn": "nan", "con": NaN}}')
    check_oneM2M_error(r.status, r.headers, r.body, None, 4000, 400)
    r = await world.http.send("GET", f"{world.url}/cse-in/app/data/la", fr=world.aei)
    assert r.rsc == 2000
    json.loads(r.raw, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c} in a response"))


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024])
async def test_body_over_the_limit_is_a_4xxx_not_413(world: World, size: int) -> None:
    filler = b"x" * size
    body = b'{"m2m:cin": {"con": "' + filler + b'"}}'
    r = await world.http.send("POST", f"{world.url}/cse-in/app/data", fr=world.aei, ty=4, raw=body, rqi="big-1")
    assert r.status != 413
    check_oneM2M_error(r.status, r.headers, r.body, "big-1", tuple(range(4000, 5000)), tuple(range(400, 500)))


async def test_chunked_body_over_the_limit_is_a_4xxx(world: World) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"m2m:cin": {"con": "'
        for _ in range(24):
            yield b"y" * 65536
        yield b'"}}'

    headers = {"X-M2M-Origin": world.aei, "X-M2M-RI": "chunked-1", "X-M2M-RVI": "3",
               "Content-Type": "application/json;ty=4"}
    async with world.http.session.post(f"{world.url}/cse-in/app/data", data=chunks(), headers=headers) as resp:
        payload = await resp.read()
        assert resp.status != 413
        check_oneM2M_error(resp.status, dict(resp.headers), json.loads(payload), "chunked-1",
                           tuple(range(4000, 5000)), tuple(range(400, 500)))


async def test_body_just_under_the_limit_is_accepted(world: World) -> None:
    envelope = b'{"m2m:cin": {"rn": "nearly", "con": ""}}'
    body = envelope.replace(b'""', b'"' + b"z" * (1024 * 1024 - len(envelope)) + b'"')
    assert len(body) == 1024 * 1024
    r = await world.http.send("POST", f"{world.url}/cse-in/app/data", fr=world.aei, ty=4, raw=body)
    assert r.rsc == 2001, r.body
    assert r.body["m2m:cin"]["cs"] == 1024 * 1024 - len(envelope)
    assert (await world.http.send("DELETE", f"{world.url}/cse-in/app/data/nearly", fr=world.aei)).rsc == 2002


PATH_TRICKS: list[tuple[str, tuple[int, ...]]] = [
    ("/cse-in/../x", (4000, 4004)),
    ("/cse-in/..", (4000, 4004)),
    ("/cse-in/./app", (4000, 4004)),
    ("/../cse-in", (4000, 4004)),
    ("/cse-in/%2e%2e/x", (4000, 4004)),
    ("/cse-in%2F..%2Fx", (4000, 4004)),
    ("/~/id-in/cse-in/../cse-in", (4000, 4004)),
    ("//", (4000, 4004)),
    ("//cse-in", (4000, 4004)),
    ("///cse-in", (4000, 4004)),
    ("/cse-in//app", (4000, 4004)),
    ("/cse-in/app/", (4000, 4004)),
    ("/cse-in/%2Fapp", (4000, 4004)),
    ("/%00", (4000, 4004)),
    ("/cse-in%00", (4000, 4004)),
    ("/cse-in/app%00", (4000, 4004)),
    ("/cse-in/%00/..", (4000, 4004)),
    ("/cse-in/app/data/la/..", (4000, 4004)),
    ("/cse-in?%00=1", (4000,)),
    ("/_/", (4000, 4004)),
    ("/_//id-in/cse-in", (4000, 4004)),
    ("/~/", (4000, 4004)),
    ("/~//cse-in", (4000, 4004)),
    ("/cse-in/%252e%252e", (4000, 4004)),
]


@pytest.mark.parametrize(("target", "rscs"), PATH_TRICKS, ids=[t for t, _ in PATH_TRICKS])
async def test_path_tricks(world: World, target: str, rscs: tuple[int, ...]) -> None:
    r = await raw_http(world.cse.port, "GET", target, {"X-M2M-RI": "trick"})
    check_oneM2M_error(r.status, r.headers, r.json(), "trick", rscs, (400, 404))


async def test_path_tricks_never_reach_a_real_resource(world: World) -> None:
    # /cse-in/app/data/../../app would be /cse-in/app after normalisation; it must not be.
    r = await raw_http(world.cse.port, "DELETE", "/cse-in/app/data/../../app", {"X-M2M-RI": "t2"})
    check_oneM2M_error(r.status, r.headers, r.json(), "t2", (4000, 4004), (400, 404))
    r = await raw_http(world.cse.port, "GET", "/cse-in/app", {"X-M2M-Origin": world.aei})
    assert r.rsc == 2000


@pytest.mark.parametrize("method", ["PATCH", "M-SEARCH", "FOO"])
async def test_unknown_method(world: World, method: str) -> None:
    r = await raw_http(world.cse.port, method, "/cse-in", {"X-M2M-RI": "meth"})
    assert r.headers.get("x-m2m-rsc"), f"bare HTTP {r.status}: {r.body[:120]!r}"
    # A method the HTTP parser itself rejects (FOO) fails before any header
    # is read, so no X-M2M-RI can be echoed; it is still a oneM2M error.
    rqi = None if method == "FOO" else "meth"
    check_oneM2M_error(r.status, r.headers, r.json(), rqi, (4005, 4000), (405, 400, 501))


async def test_head_has_no_body_but_oneM2M_headers(world: World) -> None:
    r = await raw_http(world.cse.port, "HEAD", "/cse-in", {"X-M2M-RI": "head"})
    assert r.rsc in (4005, 2000)
    assert r.headers.get("x-m2m-ri") == "head"
    assert r.body == b""


async def test_pipelined_requests_on_one_connection(world: World) -> None:
    port = world.cse.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        reqs = b"".join(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: {world.aei}\r\nX-M2M-RI: p{i}\r\n"
            f"X-M2M-RVI: 3\r\n\r\n".encode()
            for i, path in enumerate(["/cse-in/app", "/cse-in/../x", "/cse-in/app/data/la"]))
        writer.write(reqs + b"GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CAdmin\r\nX-M2M-RI: p3\r\n"
                            b"X-M2M-RVI: 3\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    rscs = [int(line.split(b":")[1]) for line in data.split(b"\r\n") if line.lower().startswith(b"x-m2m-rsc")]
    assert rscs == [2000, 4000, 2000, 2000], data[:400]


@pytest.mark.parametrize(("path", "body", "ty"), [
    ("/cse-in/app", {"m2m:cnt": {"rn": "forgot"}}, 3),       # to an AE: was 5103 (a NOTIFY to relay)
    ("/cse-in/app/data", {"m2m:cin": {"con": "x"}}, 4),      # to a container: was 4005
    ("/cse-in", {"m2m:ae": AE}, 2),
])
async def test_create_without_ty_says_what_is_missing(world: World, path: str, body: Any, ty: int) -> None:
    """A POST without ``;ty=`` whose body is a resource representation was
    meant as a CREATE: 4000 naming the missing type, not a NOTIFY's answer."""
    r = await world.http.send("POST", world.url + path, fr=world.aei, body=body, rqi="no-ty")
    check_oneM2M_error(r.status, r.headers, r.body, "no-ty", 4000, 400)
    assert f"CREATE needs the resource type: Content-Type: application/json;ty={ty}" in r.body["m2m:dbg"]


async def test_many_bad_requests_in_parallel(world: World) -> None:
    async def one(i: int) -> int:
        r = await world.http.send("POST", f"{world.url}/cse-in/app", fr=world.aei, ty=3,
                                  raw=b'{"m2m:cnt": {"rn": ' + str(i).encode() + b"}")
        return r.rsc

    assert set(await asyncio.gather(*(one(i) for i in range(100)))) == {4000}


async def test_still_serving_afterwards(world: World) -> None:
    """Runs last in this module: the process survived everything above."""
    assert world.cse.proc is not None and world.cse.proc.returncode is None
    r = await world.http.send("GET", f"{world.url}/cse-in", fr=ADMIN, rqi="alive")
    assert (r.status, r.rsc) == (200, 2000)
    assert r.body["m2m:cb"]["csi"] == "/id-in"
    r = await world.http.send("POST", f"{world.url}/cse-in/app/data", fr=world.aei, ty=4,
                              body={"m2m:cin": {"con": "after"}})
    assert r.rsc == 2001
    r = await world.http.send("GET", f"{world.url}/cse-in/app/data/la", fr=world.aei)
    assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == "after"
    r = await world.http.send("GET", f"{world.url}/cse-in/app/data/first", fr=world.aei)
    assert r.rsc == 2000 and r.body["m2m:cin"]["con"] == "x"
    # no request above was an internal error (the dispatcher logs those)
    assert not [line for line in world.cse.lines if "internal error" in line], "".join(world.cse.lines[-40:])

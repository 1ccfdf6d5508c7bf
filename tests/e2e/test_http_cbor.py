"""CBOR over real HTTP (TS-0009 media types; docs/onem2m.md "Serializations"): a ``python -m cse``
process on loopback, bodies sent and read as CBOR bytes by a plain aiohttp client.

Why: a CBOR-speaking AE must be able to register, create, retrieve and be
notified without ever touching JSON, get the same resources a JSON client
gets, and get a oneM2M error naming the problem for CBOR the CSE refuses.
"""

from __future__ import annotations

from typing import Any

import cbor2

from tests.conftest import Http, HttpReply
from tests.notify_receiver import Receiver

CBOR = "application/vnd.onem2m-res+cbor"


async def cbor_send(http: Http, method: str, url: str, fr: str, content: Any = None, ty: int | None = None,
                    media: str = CBOR, accept: str | None = CBOR) -> HttpReply:
    headers: dict[str, str] = {}
    if content is not None:
        headers["Content-Type"] = f"{media};ty={ty}" if ty is not None else media
    if accept is not None:
        headers["Accept"] = accept
    return await http.send(method, url, fr=fr, raw=cbor2.dumps(content) if content is not None else None,
                           headers=headers)


def assert_cbor(r: HttpReply, media: str = CBOR) -> None:
    assert r.headers["Content-Type"] == media, r.headers
    assert cbor2.loads(r.raw) == r.body  # the bytes on the wire are CBOR, not JSON


async def test_cbor_ae_container_and_content_instance(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    r = await cbor_send(http, "POST", f"{cse.url}/cse-in", "C", ty=2,
                        content={"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert_cbor(r)
    aei = r.body["m2m:ae"]["aei"]

    # application/cbor in, no Accept: the answer comes in the request's serialization
    r = await cbor_send(http, "POST", f"{cse.url}/cse-in/app", aei, ty=3, media="application/cbor", accept=None,
                        content={"m2m:cnt": {"rn": "data", "mni": 3, "lbl": ["a", "b"]}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert_cbor(r, "application/cbor")
    assert (r.body["m2m:cnt"]["mni"], r.body["m2m:cnt"]["lbl"]) == (3, ["a", "b"])

    r = await cbor_send(http, "POST", f"{cse.url}/cse-in/app/data", aei, ty=4,
                        content={"m2m:cin": {"rn": "c1", "cnf": "text/plain:0", "con": "21.5"}})
    assert (r.status, r.rsc) == (201, 2001), r.body
    assert_cbor(r)

    # an UPDATE in CBOR
    r = await cbor_send(http, "PUT", f"{cse.url}/cse-in/app/data", aei, content={"m2m:cnt": {"mni": 5}})
    assert (r.status, r.rsc, r.body["m2m:cnt"]["mni"]) == (200, 2004, 5), r.body

    # RETRIEVE with Accept CBOR; and the same resource in JSON is the same content
    r = await cbor_send(http, "GET", f"{cse.url}/cse-in/app/data/c1", aei)
    assert (r.status, r.rsc) == (200, 2000), r.body
    assert_cbor(r)
    as_json = await http.send("GET", f"{cse.url}/cse-in/app/data/c1", fr=aei)
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert r.body == as_json.body and r.body["m2m:cin"]["con"] == "21.5"

    # a JSON request may ask for a CBOR answer, preferred by q over JSON
    r = await http.send("GET", f"{cse.url}/cse-in/app/data", fr=aei,
                        headers={"Accept": "application/json;q=0.5, application/cbor"})
    assert r.rsc == 2000 and r.body["m2m:cnt"]["cni"] == 1
    assert_cbor(r, "application/cbor")


async def test_cbor_errors(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    url = f"{cse.url}/cse-in"
    # malformed CBOR (a map cut short): 4000, the error itself in CBOR
    r = await http.send("POST", url, fr="C", raw=b"\xa1\x66m2m:ae",
                        headers={"Content-Type": f"{CBOR};ty=2"})
    assert (r.status, r.rsc) == (400, 4000)
    assert_cbor(r)
    assert "not valid CBOR" in r.body["m2m:dbg"], r.body
    # a tag (an epoch date) has no JSON equivalent: 4000 naming it, in JSON when asked for
    r = await http.send("POST", url, fr="C", raw=b"\xa1\x66m2m:ae\xc1\x00",
                        headers={"Content-Type": f"{CBOR};ty=2", "Accept": "application/json"})
    assert (r.status, r.rsc) == (400, 4000)
    assert r.headers["Content-Type"].startswith("application/json")
    assert "tag 1" in r.body["m2m:dbg"], r.body
    # XML is refused: 4015 with the supported media types named
    r = await http.send("POST", url, fr="C", raw=b"<m2m:ae/>",
                        headers={"Content-Type": "application/vnd.onem2m-res+xml;ty=2"})
    assert (r.status, r.rsc) == (415, 4015)
    assert "application/vnd.onem2m-res+cbor" in r.body["m2m:dbg"] and "application/json" in r.body["m2m:dbg"]
    # an Accept naming only XML: 5207 (HTTP 406)
    r = await http.send("GET", url, headers={"Accept": "application/vnd.onem2m-res+xml"})
    assert (r.status, r.rsc) == (406, 5207)
    assert "cbor" in r.body["m2m:dbg"]


async def test_notification_to_a_cbor_preferring_ae_is_cbor(cse_process: Any, http: Http,
                                                            receiver: Receiver) -> None:
    cse = await cse_process()
    r = await http.send("POST", f"{cse.url}/cse-in", fr="C", ty=2, body={"m2m:ae": {
        "rn": "app", "api": "Napp", "rr": True, "srv": ["3"], "poa": [receiver.url],
        "csz": ["application/cbor", "application/json"]}})
    assert r.rsc == 2001, r.body
    aei = r.body["m2m:ae"]["aei"]
    r = await http.send("POST", f"{cse.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    assert r.rsc == 2001, r.body
    # a JSON-preferring AE, notified about the same container, gets JSON
    async with Receiver() as json_receiver:
        r = await http.send("POST", f"{cse.url}/cse-in", fr="C", ty=2, body={"m2m:ae": {
            "rn": "other", "api": "Nother", "rr": True, "srv": ["3"], "poa": [json_receiver.url],
            "csz": ["application/json", "application/cbor"]}})
        assert r.rsc == 2001, r.body
        other = r.body["m2m:ae"]["aei"]
        for name, target in (("s1", aei), ("s2", other)):
            r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                                body={"m2m:sub": {"rn": name, "nu": [target], "enc": {"net": [3]}}})
            assert r.rsc == 2001, r.body

        vrq = await receiver.next()  # the verification request is CBOR too
        assert vrq.header("Content-Type") == CBOR and vrq.is_verification
        r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=4,
                            body={"m2m:cin": {"rn": "c1", "con": "21.5"}})
        assert r.rsc == 2001, r.body

        item = await receiver.next_notification()  # s1 hears of s2 (a child of the container) first
        assert item.header("Content-Type") == CBOR and "m2m:sub" in item.sgn["nev"]["rep"]
        item = await receiver.next_notification()
        assert item.header("Content-Type") == CBOR
        assert cbor2.loads(item.raw) == item.body
        assert item.sgn["nev"]["rep"]["m2m:cin"]["con"] == "21.5"
        assert item.sgn["sur"].endswith(receiver.received[0].sgn["sur"].rsplit("/", 1)[1])

        plain = await json_receiver.next_notification()
        assert (plain.header("Content-Type") or "").startswith("application/json")
        assert plain.sgn["nev"]["rep"]["m2m:cin"]["con"] == "21.5"


async def test_ct_cbor_in_a_notification_url(cse_process: Any, http: Http, receiver: Receiver) -> None:
    cse = await cse_process()
    r = await http.send("POST", f"{cse.url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}})
    aei = r.body["m2m:ae"]["aei"]
    r = await http.send("POST", f"{cse.url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "data"}})
    r = await http.send("POST", f"{cse.url}/cse-in/app/data", fr=aei, ty=23,
                        body={"m2m:sub": {"rn": "s", "nu": [receiver.url + "?ct=cbor"], "enc": {"net": [3]}}})
    assert r.rsc == 2001, r.body
    vrq = await receiver.next()
    assert vrq.header("Content-Type") == CBOR and vrq.is_verification
    assert "ct" not in vrq.query  # the hint is removed before sending

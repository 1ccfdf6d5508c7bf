"""The pure pieces of the WebSocket binding (``cse/core/ws_wire.py``, TS-0020):
which subprotocol a handshake gets, requests and responses told apart, and
the same primitive read from JSON text and from CBOR bytes."""

from __future__ import annotations

import cbor2
import pytest

from cse.core.errors import BadRequest
from cse.core.messages import Operation, Request, Response
from cse.core.ws_wire import (
    CBOR_PROTOCOL,
    JSON_PROTOCOL,
    choose_protocol,
    encode_request,
    encode_response,
    kind_of,
    request_from_message,
    response_from_message,
)


@pytest.mark.parametrize(("offered", "chosen"), [
    ("oneM2M.json", JSON_PROTOCOL), ("chat, oneM2M.cbor", CBOR_PROTOCOL),
    ("oneM2M.cbor, oneM2M.json", CBOR_PROTOCOL), ("oneM2M.xml", None), ("", None), (None, None),
    ("onem2m.json", None),  # subprotocol names are case-sensitive (RFC 6455)
])
def test_the_first_offered_subprotocol_we_speak_is_chosen(offered: str | None, chosen: str | None) -> None:
    assert choose_protocol(offered) == chosen


@pytest.mark.parametrize("protocol", [JSON_PROTOCOL, CBOR_PROTOCOL])
def test_a_request_and_its_response_cross_both_subprotocols(protocol: str) -> None:
    req = Request(op=Operation.CREATE, to="cse-in/app", fr="Capp", rqi="r1", rvi="3", ty=3,
                  pc={"m2m:cnt": {"rn": "data", "lbl": ["é"]}}, sid="s1", smac="m")
    message = encode_request(req, protocol)
    assert isinstance(message, str if protocol == JSON_PROTOCOL else bytes)
    kind, raw = kind_of(message, protocol)
    back = request_from_message(raw)
    assert kind == "request"
    assert (back.op, back.to, back.fr, back.rqi, back.ty, back.pc, back.sid, back.smac) == \
        (req.op, req.to, req.fr, req.rqi, req.ty, req.pc, req.sid, req.smac)

    answer = encode_response(Response(rsc=2001, rqi="r1", pc={"m2m:cnt": {"rn": "data"}}), protocol,
                             to="Capp", fr="/id-in", now_ts="20261207T000000")
    kind, raw = kind_of(answer, protocol)
    resp = response_from_message(raw)
    assert (kind, resp.rsc, resp.rqi, resp.pc) == ("response", 2001, "r1", {"m2m:cnt": {"rn": "data"}})


def test_text_on_the_cbor_subprotocol_and_bad_cbor_are_4000() -> None:
    with pytest.raises(BadRequest, match="binary"):
        kind_of('{"op": 2}', CBOR_PROTOCOL)
    with pytest.raises(BadRequest):
        kind_of(b"\xff\x00", CBOR_PROTOCOL)
    with pytest.raises(BadRequest):  # a tag JSON cannot carry
        kind_of(cbor2.dumps(cbor2.CBORTag(1, 0)), CBOR_PROTOCOL)

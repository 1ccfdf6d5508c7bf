"""Session-based CRUD with the SDK across a real pair (docs/sessions.md flow 2).

AE1 at CSE1 and AE2 at CSE2 (two CSE processes on loopback) share an
established session; AE1 uses ``Session.create/retrieve/update/delete`` on
AE2's resources through CSE1, AE2 reads its own resources with the session.

Why: this is flow 2 as an SDK user lives it -- the request is
marked with the sid and signed so that both CSEs accept it (they verify the
MAC over the exact bytes sent), ``con`` crosses both CSEs encrypted and only
the endpoints read it, AE2 hears about the change (typ 2), a store-and-forward
window makes the call return a PendingResult that resolves once the window
opened, a tampered value fails loudly, and every refusal is an
M2MResponseError with the documented code. Waits are on events or polls
with deadlines.
"""

from __future__ import annotations

import time

import pytest

from ae_sdk import M2MResponseError, PendingResult, SDKError, SessionCryptoError
from ae_sdk.session_crypto import b64u_decode, b64u_encode, is_token
from tests.sdk.session_pair import CSI1, CSI2, Flow, T, window_ahead

UPDATE_OP = 3


async def test_immediate_update_reaches_ae2_and_content_decrypts_there(flow: Flow) -> None:
    s1, s2 = flow.s1, flow.s2
    cnt = await s1.update("container1", {"lbl": ["seen-by-ae1"]}, ty=3)
    assert isinstance(cnt, dict) and cnt["lbl"] == ["seen-by-ae1"]
    assert flow.ae1.last_response is not None and flow.ae1.last_response.rsc == 2004
    sent = flow.ae1.last_response.rqi

    # AE2 is told (typ 2) with the structured path of the changed resource
    sevt = await s2.next_update(T)
    assert (sevt["typ"], sevt["sid"], sevt["op"], sevt["rqi"]) == (2, s1.sid, UPDATE_OP, sent)
    assert sevt["res"] == f"{flow.ae2_path}/container1"

    # a contentInstance: con is encrypted by AE1's SDK, stored encrypted, read in clear by AE2
    cin = await s1.create("container1", 4, {"cnf": "text/plain:0", "con": "21.5", "rn": "reading1"})
    assert isinstance(cin, dict) and is_token(cin["con"]) and cin["con"].split(".")[1] == s1.kid
    rsc, stored = await flow.admin(flow.cse2, "cse2/ae2/container1/reading1")
    assert rsc == 2000 and stored["m2m:cin"]["con"] == cin["con"]      # the CSE keeps it unchanged
    assert (await s2.next_update(T))["res"] == f"{flow.ae2_path}/container1/reading1"
    mine = await s2.retrieve("cse2/ae2/container1/la")                   # AE2's own resource, in the session
    assert isinstance(mine, dict) and mine["con"] == "21.5" and mine["cnf"] == "text/plain:0"
    raw = await s2.retrieve("cse2/ae2/container1/la", decrypt=False)
    assert isinstance(raw, dict) and raw["con"] == cin["con"]

    # both hops recorded AE1's exchanges in the session context
    rsc, at2 = await flow.admin(flow.cse2, s2.path or "")
    assert rsc == 2000 and sent in [h["rqi"] for h in at2["m2m:sess"]["hst"]]
    rsc, at1 = await flow.admin(flow.cse1, s1.path or "")
    assert [h["rsc"] for h in at1["m2m:sess"]["hst"] if h["rqi"] == sent] == [2004]


async def test_peer_paths_relative_unstructured_and_structured(flow: Flow) -> None:
    s1 = flow.s1
    # a relative path is below the peer AE: its unstructured address until told otherwise
    assert s1.peer_ae_path == f"{CSI2}/{flow.ae2.originator}"
    assert s1.target("container1") == f"{CSI2}/{flow.ae2.originator}/container1"
    assert s1.target(f"{flow.ae2_path}/container1") == f"{flow.ae2_path}/container1"
    assert s1.target("cse1/ae1/x") == f"{CSI1}/cse1/ae1/x"                 # the own CSE
    assert (await s1.retrieve("container1"))["rn"] == "container1"
    assert (await s1.retrieve(f"{flow.ae2_path}/container1"))["rn"] == "container1"
    s1.peer_ae_path = flow.ae2_path
    assert s1.target("container1/la") == f"{flow.ae2_path}/container1/la"
    await s1.update("container1", {"lbl": ["structured"]})              # ty asked first, in the session
    rsc, body = await flow.admin(flow.cse2, "cse2/ae2/container1")
    assert rsc == 2000 and body["m2m:cnt"]["lbl"] == ["structured"]
    rsc, at2 = await flow.admin(flow.cse2, flow.s2.path or "")
    assert f"{flow.ae2_path}/container1" in [h["to"] for h in at2["m2m:sess"]["hst"]]
    with pytest.raises(ValueError):
        s1.peer_ae_path = "cse2/ae2"
    with pytest.raises(ValueError, match="query"):
        s1.target("container1?rcn=1")


async def test_retrieve_decrypts_and_detects_tampering(flow: Flow) -> None:
    s1, s2 = flow.s1, flow.s2
    await s2.create("cse2/ae2/container1", 4, {"con": "from AE2", "rn": "own"})  # AE2 may use it too
    assert (await s1.retrieve("container1/own"))["con"] == "from AE2"
    # other attributes on request, lists item by item
    await s1.update("container1", {"lbl": ["a", "b"]}, ty=3, encrypt=("lbl",))
    rsc, body = await flow.admin(flow.cse2, "cse2/ae2/container1")
    assert all(is_token(v) for v in body["m2m:cnt"]["lbl"])
    assert (await s2.retrieve("cse2/ae2/container1", decrypt=["lbl"]))["lbl"] == ["a", "b"]

    # a value altered on the way (here: stored altered by AE2, the resource's owner) fails clearly
    prefix, kid, nonce, ct = s1.encrypt("21.5").split(".")
    raw = bytearray(b64u_decode(ct))
    raw[0] ^= 1
    forged = ".".join((prefix, kid, nonce, b64u_encode(bytes(raw))))
    await flow.ae2.create_content_instance("ae2/container1", forged)
    with pytest.raises(SessionCryptoError, match="tampered"):
        await s1.retrieve("container1/la")
    assert (await s1.retrieve("container1/la", decrypt=False))["con"] == forged
    # and a value of another session is refused too
    other = await flow.ae1.establish(f"{CSI2}/{flow.ae2.originator}")
    await flow.ae2.create_content_instance("ae2/container1", other.encrypt("not yours"))
    with pytest.raises(SessionCryptoError, match="key"):
        await s1.retrieve("container1/la")
    await other.terminate()


async def test_store_and_forward_returns_a_pending_result(flow: Flow) -> None:
    s1, s2 = flow.s1, flow.s2
    opens, sch = window_ahead(3.0)
    await s1.add_policy(2, sch=sch, rn="later", hop=CSI1)
    pending = await s1.update("container1", {"lbl": ["stored"]}, ty=3)
    assert isinstance(pending, PendingResult) and pending.rsc == 1001 and not pending.done
    assert time.time() < opens
    ref = pending.ref
    req = await flow.ae1.retrieve(ref if "/" in ref else flow.ae1.ri_path(ref))
    assert req["rs"] == 3                                                 # still PENDING
    rsc, body = await flow.admin(flow.cse2, "cse2/ae2/container1")
    assert "lbl" not in body["m2m:cnt"]                                   # not delivered yet

    ors = await pending.result(timeout=T + 5)
    assert time.time() >= opens                                          # delivered in the window
    assert ors["rsc"] == 2004 and ors["pc"]["m2m:cnt"]["lbl"] == ["stored"] and pending.done
    assert (await s2.next_update(T))["rqi"] == pending.rqi
    # a stored CREATE (rt 2: 1002) and a stored RETRIEVE, whose result is decrypted
    created = await s1.create("container1", 4, {"con": "21.5"}, rt=2)
    assert isinstance(created, PendingResult) and created.rsc == 1002
    assert (await created.result(T, check=True))["rsc"] == 2001
    got = await s1.retrieve("container1/la")
    assert isinstance(got, PendingResult)
    ors = await got.result(T, check=True)
    assert ors["pc"]["m2m:cin"]["con"] == "21.5"
    # a stored request that fails is reported as it ended
    missing = await s1.retrieve("container1/nothing-here")
    assert isinstance(missing, PendingResult)
    assert (await missing.result(T))["rsc"] == 4004
    with pytest.raises(M2MResponseError) as info:
        await missing.result(T, check=True)
    assert info.value.rsc == 4004


async def test_errors_are_m2m_response_errors(flow: Flow) -> None:
    s1 = flow.s1
    with pytest.raises(M2MResponseError) as info:
        await s1.retrieve("container1/missing")
    assert info.value.rsc == 4004 and info.value.dbg
    with pytest.raises(M2MResponseError) as info:
        await s1.retrieve(f"{CSI2}/cse2")                       # not at or below an endpoint AE
    assert info.value.rsc == 4103 and "session target" in info.value.dbg
    with pytest.raises(M2MResponseError) as info:
        await s1.delete(flow.ae2_path)                          # never the endpoint AE itself
    assert info.value.rsc == 4103
    # delete through the session
    await s1.create("container1", 4, {"con": "x", "rn": "gone"})
    assert await s1.delete("container1/gone") is None
    assert (await flow.admin(flow.cse2, "cse2/ae2/container1/gone"))[0] == 4004
    # a session that ended carries nothing more
    await s1.terminate()
    with pytest.raises(SDKError, match="terminated"):
        await s1.retrieve("container1")
    await flow.s2.wait_terminated(T)

"""Session-based requests in the SDK, without a pair: what goes on the wire.

* a loopback aiohttp "CSE" records exactly what HttpTransport sent, and the
  MAC must verify (with the CSE's own ``cse.core.session_crypto``) over those
  raw bytes and the HTTP path;
* a local session on one in-process CSE (both AEs there) serves the CRUD
  calls, with ``sec`` 1 and 0;
* ``ae_sdk.session_crypto`` is a layer over ``cse.core.session_crypto``:
  no crypto of its own, and the core's errors come out as the SDK's.

Why: a MAC over bytes other than those sent is refused by every CSE (4103);
re-serializing the body after signing, or signing a different target form
than the one sent, is the classic way to get there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

import ae_sdk.session_crypto as sdk_crypto
from ae_sdk import AEClient, HttpTransport, InProcessTransport, M2MResponseError, SDKError, Session
from ae_sdk.session_crypto import SessionCryptoError, is_token
from cse.app import CSE
from cse.binding.http_mapping import request_from_http
from cse.core import session_crypto as core
from cse.core.messages import Operation
from cse.core.timestamps import parse_ts
from tests.sdk.conftest import Recorder

T = 10.0
KEY = bytes(range(32))
SID = "sid-Abc_123"


def make_session(client: AEClient, *, sec: int = 1) -> Session:
    return Session(client, sid=SID, kid="k1", key=KEY, alg="A256GCM", iep="/id-cse1/Cae1", tep="/id-cse2/Cae2",
                   role="initiator", epa=None, peer_epa=None, path=None, sec=sec)


# -- exactly the bytes sent over HTTP --------------------------------------------------------

@pytest.fixture
async def recording_cse() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[web.BaseRequest, bytes]]]]:
    got: asyncio.Queue[tuple[web.BaseRequest, bytes]] = asyncio.Queue()

    async def handle(request: web.BaseRequest) -> web.Response:
        body = await request.read()
        await got.put((request, body))
        rsc = {"PUT": "2004", "POST": "2001", "GET": "2000", "DELETE": "2002"}[request.method]
        return web.json_response({"m2m:cnt": {"rn": "container1"}} if request.method != "DELETE" else None,
                                 headers={"X-M2M-RSC": rsc, "X-M2M-RI": request.headers["X-M2M-RI"]})

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        await runner.cleanup()


async def test_the_mac_covers_exactly_the_bytes_and_target_sent(recording_cse: tuple) -> None:
    url, got = recording_cse
    async with AEClient(HttpTransport(url), cse_name="cse1", cse_id="/id-cse1", originator="Cae1") as client:
        s = make_session(client)
        k_mac = core.derive_keys(KEY, SID)[0]
        calls = [
            (s.update("container1", {"lbl": ["é ✓ \"q\""], "con": None}, ty=3), "UPDATE", "PUT"),
            (s.create("/id-cse2/cse2/AE 2/container1", 4, {"con": {"t": 21.5}}), "CREATE", "POST"),
            (s.retrieve("container1", decrypt=False), "RETRIEVE", "GET"),
            (s.delete("container1", rt=None), "DELETE", "DELETE"),
        ]
        for call, op, method in calls:
            await call
            request, body = got.get_nowait()
            assert request.method == method
            h = request.headers
            assert h["X-M2M-SID"] == SID and h["X-M2M-Origin"] == "Cae1"
            parse_ts(h["X-M2M-OT"])
            # what the CSE's binding makes of it, checked as its SMG gate does
            seen = request_from_http(request.method, request.raw_path, h, body)
            assert (seen.op.name, seen.sid, seen.body) == (op, SID, body)
            target = core.sp_relative_target(seen.to, "/id-cse1")
            assert core.verify(k_mac, core.canonical(op, target, SID, seen.rqi, seen.ot or "", seen.body),
                               seen.smac or ""), (op, target, body)
            if op == "CREATE":
                assert target == "/id-cse2/cse2/AE 2/container1"
                assert h["Content-Type"] == "application/json;ty=4"
                con = json.loads(body)["m2m:cin"]["con"]
                assert is_token(con) and s.decrypt_text(con) == '{"t":21.5}'
            elif op == "UPDATE":
                assert target == "/id-cse2/Cae2/container1"
                assert json.loads(body) == {"m2m:cnt": {"lbl": ["é ✓ \"q\""], "con": None}}
            else:
                assert body == b""
        assert got.empty()


async def test_sec_0_sends_the_sid_without_a_mac(recording_cse: tuple) -> None:
    url, got = recording_cse
    async with AEClient(HttpTransport(url), cse_name="cse1", cse_id="/id-cse1", originator="Cae1") as client:
        s = make_session(client, sec=0)
        await s.retrieve("container1")
        request, _ = got.get_nowait()
        assert request.headers["X-M2M-SID"] == SID
        assert "X-M2M-SMAC" not in request.headers and "X-M2M-OT" not in request.headers


def test_targets_and_attribute_encryption() -> None:
    never_called = InProcessTransport(lambda req: None)  # type: ignore[arg-type,return-value]
    client = AEClient(never_called, cse_name="cse1", cse_id="/id-cse1", originator="Cae1")
    s = make_session(client)
    assert s.target("container1/la") == "/id-cse2/Cae2/container1/la"
    assert s.target("/id-cse2/cse2/AE2/x") == "/id-cse2/cse2/AE2/x"
    assert s.target("//sp.example/id-cse2/cse2/x") == "//sp.example/id-cse2/cse2/x"
    assert s.target("cse1/ae1/x") == "/id-cse1/cse1/ae1/x" and s.target("-/ae1") == "/id-cse1/cse1/ae1"
    for bad in ("", "/", "x?rcn=1"):
        with pytest.raises(ValueError):
            s.target(bad)
    assert s.own_ae_path == "/id-cse1/Cae1"
    client.ae = {"rn": "ae1", "aei": "Cae1"}
    assert s.own_ae_path == "/id-cse1/cse1/ae1"

    attrs = {"con": "21.5", "lbl": ["a", "b"], "cnf": "text/plain:0", "n": 3, "d": {"x": 1}, "none": None}
    enc = s.encrypt_attrs({"m2m:cin": attrs}, ("con", "lbl", "n", "d", "none"))["m2m:cin"]
    assert enc["cnf"] == "text/plain:0" and enc["none"] is None
    assert all(is_token(v) for v in (enc["con"], *enc["lbl"], enc["n"], enc["d"]))
    assert s.encrypt_attrs(enc, ("con",))["con"] == enc["con"]          # already encrypted: kept
    dec = s.decrypt_attrs(enc, ("con", "lbl", "n", "d"))
    assert dec == {**attrs, "n": "3", "d": '{"x":1}'}                   # non-strings come back as JSON text
    assert s.decrypt_attrs({"con": s.encrypt(b"\xff\x00")})["con"] == b"\xff\x00"
    prefix, kid, nonce, ct = enc["con"].split(".")
    with pytest.raises(SessionCryptoError, match="tampered"):
        s.decrypt_attrs({"con": ".".join((prefix, kid, nonce[::-1], ct))})   # another nonce


# -- a local session on one in-process CSE ------------------------------------------------------

@pytest.fixture
async def local(cse_app: CSE) -> AsyncIterator[tuple[AEClient, AEClient, Session, Session, Recorder]]:
    rec = Recorder(InProcessTransport(cse_app.handle))
    a1 = AEClient(rec)
    a2 = AEClient(InProcessTransport(cse_app.handle))
    try:
        await a1.register("ae1", scp=["smg"])
        await a2.register("ae2", scp=["smg"])
        await a2.create_container("ae2", "container1")
        await a2.enable_sessions()
        s1 = await a1.establish(f"/id-in/{a2.originator}")
        s2 = await a2.next_session(T)
        yield a1, a2, s1, s2, rec
    finally:
        await a1.close()
        await a2.close()


async def test_local_session_crud_and_the_recorded_request(local: tuple) -> None:
    a1, a2, s1, s2, rec = local
    cin = await s1.create("container1", 4, {"con": "21.5", "rn": "r1"})
    req = rec.requests[-1]
    assert (req.op, req.sid, req.to) == (Operation.CREATE, s1.sid, f"/id-in/{a2.originator}/container1")
    assert req.body and json.loads(req.body)["m2m:cin"]["con"] == cin["con"] and is_token(cin["con"])
    assert (await s2.next_update(T))["res"] == "/id-in/cse-in/ae2/container1/r1"
    assert (await s2.retrieve("cse-in/ae2/container1/r1"))["con"] == "21.5"
    assert (await s1.update("container1", {"lbl": ["x"]}))["lbl"] == ["x"]   # ty asked in the session first
    assert [r.op for r in rec.requests[-2:]] == [Operation.RETRIEVE, Operation.UPDATE]
    assert rec.requests[-2].atrl == ("ty",) and rec.requests[-2].sid == s1.sid
    assert await s1.delete("container1/r1") is None
    with pytest.raises(M2MResponseError) as info:
        await s1.retrieve("container1/r1")
    assert info.value.rsc == 4004
    # the session resource itself: retrieve() without a path (not session-based)
    sess = await s1.retrieve()
    assert sess["sid"] == s1.sid and sess["rqn"] >= 4 and s1.resource == sess


async def test_a_wrong_mac_is_refused(local: tuple) -> None:
    a1, _, s1, _, _ = local
    req = s1.signed_request(Operation.RETRIEVE, "container1")
    forged = req.__class__(**{**{f: getattr(req, f) for f in req.__slots__}, "smac": "A" * 43})
    with pytest.raises(M2MResponseError) as info:
        await a1.send(forged)
    assert info.value.rsc == 4103 and "SMAC" in info.value.dbg
    assert (await s1.send(req)).rsc == 2000


async def test_terminated_session_refuses_locally(local: tuple) -> None:
    _, _, s1, _, _ = local
    await s1.terminate()
    with pytest.raises(SDKError, match="terminated"):
        s1.signed_request(Operation.RETRIEVE, "container1")


# -- the crypto layer -------------------------------------------------------------------------

def test_the_sdk_crypto_module_has_no_crypto_of_its_own() -> None:
    names = vars(sdk_crypto)
    for primitive in ("AESGCM", "HKDF", "hmac", "hashlib", "hashes", "InvalidTag", "os"):
        assert primitive not in names, primitive
    assert sdk_crypto.core is core


def test_core_errors_come_out_as_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    k_enc = core.derive_keys(KEY, SID)[1]
    token = core.encrypt(k_enc, SID, "k1", "x")

    def boom(*args: object, **kw: object) -> bytes:
        raise core.SessionCryptoError("boom from the core")

    monkeypatch.setattr(core, "decrypt", boom)
    with pytest.raises(sdk_crypto.SessionCryptoError, match="decryption failed: boom from the core") as info:
        sdk_crypto.decrypt(k_enc, SID, token)
    assert isinstance(info.value, SDKError) and not isinstance(info.value, core.SessionCryptoError)
    monkeypatch.setattr(core, "derive_keys", boom)
    with pytest.raises(sdk_crypto.SessionCryptoError, match="boom"):
        sdk_crypto.derive_keys(KEY, SID)

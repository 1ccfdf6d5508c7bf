"""``python -m ae_sdk sign|encrypt|decrypt|listen`` (README "Session-based
requests with curl"), run as real subprocesses.

Why: a curl user has only these commands. The headers ``sign`` prints must
make a request both CSEs of a pair accept (the UPDATE through CSE1 answers
2004), over the body bytes exactly as given (a file with a trailing newline
too), for SP-relative and CSE-relative targets and the ``?sessionID=`` form;
``--curl`` must print a command that works as printed; encrypted values must
cross between the CLI and the SDK both ways; ``listen`` must answer what a
session needs and print what it got, one JSON line each.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ae_sdk.session_crypto import b64u_decode, b64u_encode
from tests.conftest import ADMIN
from tests.sdk.session_pair import CSI2, Flow, T

ROOT = Path(__file__).resolve().parents[2]


async def cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ae_sdk", *args, cwd=str(ROOT), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sign(flow: Flow, *args: str) -> dict[str, str]:
    key = b64u_encode(flow.s1.key)
    code, out, err = await cli("sign", "--sid", flow.s1.sid, "--key", key, *args)
    assert code == 0, err
    lines = out.splitlines()
    assert all(": " in line for line in lines), out
    return dict(line.split(": ", 1) for line in lines)


async def send(url: str, method: str, headers: dict[str, str], origin: str, body: bytes | None = None,
               ty: int | None = None) -> tuple[int, Any]:
    h = {**headers, "X-M2M-Origin": origin, "X-M2M-RVI": "3"}
    if ty is not None:
        h["Content-Type"] = f"application/json;ty={ty}"
    elif body:
        h["Content-Type"] = "application/json"
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=h, data=body) as r:
        raw = await r.read()
        return int(r.headers["X-M2M-RSC"]), json.loads(raw) if raw else None


async def test_printed_headers_make_a_request_the_pair_accepts(flow: Flow) -> None:
    to = f"{flow.ae2_path}/container1"
    body = '{"m2m:cnt": {"lbl": ["from-curl", "é"]}}'
    headers = await sign(flow, "--op", "UPDATE", "--to", to, "--rqi", "cli-r1", "--body", body)
    assert list(headers) == ["X-M2M-SID", "X-M2M-OT", "X-M2M-SMAC", "X-M2M-RI"]
    assert headers["X-M2M-SID"] == flow.s1.sid and headers["X-M2M-RI"] == "cli-r1"
    rsc, pc = await send(f"{flow.cse1.url}/~{to}", "PUT", headers, flow.ae1.originator or "", body.encode())
    assert rsc == 2004, pc
    assert pc["m2m:cnt"]["lbl"] == ["from-curl", "é"]
    sevt = await flow.s2.next_update(T)
    assert sevt["rqi"] == "cli-r1" and sevt["res"] == to
    # the same headers again: a replay gets the first answer, not a second execution
    rsc, _ = await send(f"{flow.cse1.url}/~{to}", "PUT", headers, flow.ae1.originator or "", body.encode())
    assert rsc == 2004
    # another body under those headers: the MAC no longer matches
    rsc, pc = await send(f"{flow.cse1.url}/~{to}", "PUT", {**headers, "X-M2M-RI": "cli-r2"},
                         flow.ae1.originator or "", body.encode())
    assert rsc == 4103, pc


async def test_body_file_bytes_are_signed_as_they_are(flow: Flow, tmp_path: Path) -> None:
    to = f"{flow.ae2_path}/container1"
    path = tmp_path / "update.json"
    raw = b'{\n  "m2m:cnt": {"lbl": ["pretty"]}\n}\n'
    path.write_bytes(raw)
    headers = await sign(flow, "--op", "UPDATE", "--to", to, "--body-file", str(path))
    assert headers["X-M2M-RI"]                                       # a fresh one
    rsc, pc = await send(f"{flow.cse1.url}/~{to}", "PUT", headers, flow.ae1.originator or "", raw)
    assert rsc == 2004, pc
    # what "curl -d @file" would send (newlines stripped) is refused
    headers = await sign(flow, "--op", "UPDATE", "--to", to, "--body-file", str(path))
    rsc, pc = await send(f"{flow.cse1.url}/~{to}", "PUT", headers, flow.ae1.originator or "",
                         raw.replace(b"\n", b""))
    assert rsc == 4103, pc


async def test_cse_relative_target_with_session_id_in_the_query(flow: Flow) -> None:
    await flow.ae2.create_content_instance("ae2/container1", flow.s2.encrypt("21.5"))
    headers = await sign(flow, "--op", "RETRIEVE", "--to", "cse2/ae2/container1/la", "--csi", CSI2, "--query-sid")
    assert "X-M2M-SID" not in headers
    url = f"{flow.cse2.url}/cse2/ae2/container1/la?sessionID={flow.s1.sid}"
    rsc, pc = await send(url, "GET", headers, flow.ae2.originator or "")
    assert rsc == 2000, pc
    code, out, err = await cli("decrypt", "--sid", flow.s1.sid, "--key", b64u_encode(flow.s2.key),
                               "--kid", flow.s2.kid, pc["m2m:cin"]["con"])
    assert (code, out) == (0, "21.5\n"), err


async def test_curl_command_works_as_printed(flow: Flow, tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is not installed: the curl walkthrough cannot be checked (apt-get install curl)"
    to = f"{flow.ae2_path}/container1"
    con = flow.s1.encrypt("from a curl command")
    path = tmp_path / "cin.json"
    path.write_text(json.dumps({"m2m:cin": {"rn": "bycurl", "con": con}}, indent=1) + "\n")
    code, out, err = await cli("sign", "--op", "CREATE", "--to", to, "--sid", flow.s1.sid,
                               "--key", b64u_encode(flow.s1.key), "--body-file", str(path), "--ty", "4",
                               "--origin", flow.ae1.originator or "", "--curl", flow.cse1.url)
    assert code == 0, err
    command = out.strip()
    argv = shlex.split(command)
    assert argv[:4] == ["curl", "-i", "-X", "POST"] and argv[-1] == f"{flow.cse1.url}/~{to}"
    assert ["--data-binary", f"@{path}"] == argv[argv.index("--data-binary"):argv.index("--data-binary") + 2]
    proc = await asyncio.create_subprocess_shell(command, stdout=asyncio.subprocess.PIPE)
    answer, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert "x-m2m-rsc: 2001" in answer.decode().lower(), answer.decode()
    assert (await flow.s2.retrieve("cse2/ae2/container1/bycurl"))["con"] == "from a curl command"
    # --body text goes inline, byte for byte
    code, out, _ = await cli("sign", "--op", "UPDATE", "--to", to, "--sid", flow.s1.sid,
                             "--key", b64u_encode(flow.s1.key), "--body", '{"m2m:cnt": {"lbl": ["inline"]}}',
                             "--origin", flow.ae1.originator or "", "--curl", flow.cse1.url)
    proc = await asyncio.create_subprocess_shell(out.strip(), stdout=asyncio.subprocess.PIPE)
    answer, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert "x-m2m-rsc: 2004" in answer.decode().lower(), answer.decode()


async def test_encrypt_and_decrypt_cross_with_the_sdk(flow: Flow) -> None:
    s1, s2 = flow.s1, flow.s2
    key = b64u_encode(s1.key)
    code, out, err = await cli("encrypt", "--sid", s1.sid, "--kid", s1.kid, "--key", key, "héllo 21.5")
    assert code == 0, err
    assert out.startswith(f"sess1.{s1.kid}.") and s2.decrypt_text(out.strip()) == "héllo 21.5"
    code, out, _ = await cli("encrypt", "--sid", s1.sid, "--kid", s1.kid, "--key", key, stdin=b"from stdin")
    assert s2.decrypt_text(out.strip()) == "from stdin"
    token = s2.encrypt("back")
    assert (await cli("decrypt", "--sid", s1.sid, "--key", key, token))[:2] == (0, "back\n")
    prefix, kid, nonce, ct = token.split(".")
    raw = bytearray(b64u_decode(ct))
    raw[-1] ^= 1                                                     # the last byte of the GCM tag
    tampered = ".".join((prefix, kid, nonce, b64u_encode(bytes(raw))))
    code, out, err = await cli("decrypt", "--sid", s1.sid, "--key", key, tampered)
    assert code == 1 and out == "" and "tampered" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--op", "PATCH", "--to", "/id-cse2/x"], "--op"),
    (["--op", "UPDATE", "--to", "cse2/x"], "--csi"),
    (["--op", "UPDATE", "--to", "/id-cse2/x", "--body", "{not json"], "not JSON"),
    (["--op", "CREATE", "--to", "/id-cse2/x", "--body", "{}", "--curl", "http://127.0.0.1:1"], "--ty"),
    (["--op", "UPDATE", "--to", "/id-cse2/x", "--body-file", "/nonexistent/file"], "--body-file"),
])
async def test_sign_usage_errors(args: list[str], message: str) -> None:
    code, out, err = await cli("sign", "--sid", "s", "--key", b64u_encode(bytes(32)), *args)
    assert code == 2 and out == "" and message in err, err


async def test_a_bad_key_is_a_usage_error() -> None:
    for key in (b64u_encode(bytes(16)), "not base64!", b64u_encode(bytes(32)) + "="):
        code, _, err = await cli("sign", "--op", "DELETE", "--to", "/id-cse2/x", "--sid", "s", "--key", key)
        assert code == 2 and "--key" in err, err


async def _start_listener(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ae_sdk", "listen", "--port", "0", "--timeout", "60", *args, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
    assert line.startswith("LISTENING http://127.0.0.1:"), line
    return proc, line.split()[1]


async def _notify(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    h = {"X-M2M-Origin": "/id-cse2", "X-M2M-RI": "n1", "X-M2M-RVI": "3", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, s.post(url, headers=h, data=json.dumps(body)) as r:
        raw = await r.read()
        return int(r.headers["X-M2M-RSC"]), json.loads(raw) if raw else None


async def test_listen_answers_and_prints_one_json_line_each() -> None:
    establish = {"m2m:sgn": {"sur": "/id-cse2/sub1", "nev": {"net": 3, "rep": {"m2m:sevt": {
        "typ": 1, "sid": "s1", "iep": "/id-cse1/Cae1", "tep": "/id-cse2/Cae2",
        "scr": {"kid": "k", "key": b64u_encode(bytes(32)), "alg": "A256GCM"}}}}}}
    proc, url = await _start_listener("--accept", "--epa", '{"role": "sensor"}')
    try:
        assert await _notify(url, {"m2m:sgn": {"vrq": True, "sur": "/id-cse2/sub1", "cr": "Cae2"}}) == (2000, None)
        assert await _notify(url, establish) == (2000, {"m2m:sep": {"epa": {"role": "sensor"}}})
        update = {"m2m:sgn": {"sur": "/id-cse2/sub1", "nev": {"net": 1, "rep": {"m2m:sevt": {"typ": 2, "sid": "s1"}}}}}
        assert (await _notify(url, update))[0] == 2000
        assert proc.stdout is not None
        lines = [json.loads(await asyncio.wait_for(proc.stdout.readline(), T)) for _ in range(3)]
        assert lines[0]["m2m:sgn"]["vrq"] is True
        assert lines[1] == establish and lines[2] == update
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0

    proc, url = await _start_listener()                       # without --accept: sessions are rejected
    try:
        rsc, pc = await _notify(url, establish)
        assert rsc == 4103 and "--accept" in pc["m2m:dbg"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0


async def test_without_the_session_headers_ae1_has_no_access(flow: Flow) -> None:
    """Control: without the sid, AE1 has no access to AE2's container (the session is what grants it)."""
    rsc, _ = await send(f"{flow.cse1.url}/~{flow.ae2_path}/container1", "GET", {"X-M2M-RI": "plain"},
                        flow.ae1.originator or "")
    assert rsc == 4103
    rsc, _ = await send(f"{flow.cse2.url}/cse2/ae2/container1", "GET", {"X-M2M-RI": "adm"}, ADMIN)
    assert rsc == 2000


async def test_values_may_start_with_a_dash() -> None:
    """sids, keys and kids are base64url: '-' is a legal first character (1 in 64)."""
    from cse.core import session_crypto as core

    key = bytes([0xF8]) + bytes(range(31))
    key_text = b64u_encode(key)
    assert key_text.startswith("-")
    code, out, err = await cli("sign", "--op", "DELETE", "--to", "/id-cse2/x", "--sid", "-sid", "--key", key_text,
                               "--rqi", "-r1", "--ot", "20260101T000000")
    assert code == 0, err
    headers = dict(line.split(": ", 1) for line in out.splitlines())
    assert headers["X-M2M-SID"] == "-sid" and headers["X-M2M-RI"] == "-r1"
    k_mac = core.derive_keys(key, "-sid")[0]
    assert core.verify(k_mac, core.canonical("DELETE", "/id-cse2/x", "-sid", "-r1", "20260101T000000", b""),
                       headers["X-M2M-SMAC"])
    code, token, err = await cli("encrypt", "--sid", "-sid", "--kid", "-k", "--key", key_text, "--", "-21.5")
    assert code == 0 and token.startswith("sess1.-k."), err
    decrypted = await cli("decrypt", "--sid", "-sid", "--kid", "-k", "--key", key_text, token.strip())
    assert decrypted[:2] == (0, "-21.5\n")

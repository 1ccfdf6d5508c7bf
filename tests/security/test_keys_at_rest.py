"""Session keys at rest, against a real CSE process (docs/security.md "Keys at rest").

The attack: whoever can read the store files (a backup, a copied disk, any
local user while they were mode 0644) read every live session key there in
plain text, and a terminated session's key stayed in the journal until a
clean stop. Checked here on one CSE with a session between two of its AEs:

* the store directory (created by the CSE) is 0700 and every store file
  0600, while running and after a restart;
* neither the session key nor its base64url form is in any store file, live
  or after a clean stop (the key is stored wrapped under the key file);
* a missing, damaged or foreign key file is a clear start-up error (exit
  code 1, one line), not silent loss; with the right one the session still
  verifies MACs after the restart;
* once the session is terminated and the store compacted (here: the clean
  stop), its wrapped key is in no store file either.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from cse.core.session_crypto import canonical, derive_keys, sign, unb64u
from cse.core.timestamps import format_ts
from tests.conftest import CSEProcess, Http, write_config
from tests.e2e.test_intercse_helpers import register_ae
from tests.notify_receiver import Receiver

CSI, CB = "/id-in", "cse-in"
WRAPPED = re.compile(rb'"wrp":"([A-Za-z0-9_.-]+)"')


def _modes(directory: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(directory.iterdir())}


def _store_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _holding(directory: Path, needles: list[bytes]) -> list[str]:
    """The store files holding any of ``needles``."""
    return [name for name, data in _store_bytes(directory).items() if any(n in data for n in needles)]


async def _signed_cin(http: Http, p: CSEProcess, aei1: str, sess: dict[str, Any], k_mac: bytes, con: str) -> int:
    to = f"{CB}/AE2/container1"
    raw = json.dumps({"m2m:cin": {"con": con}}).encode()
    rq, ot = f"k-{con}-{time.monotonic_ns()}", format_ts(time.time())
    mac = sign(k_mac, canonical("CREATE", f"{CSI}/{to}", sess["sid"], rq, ot, raw))
    r = await http.send("POST", f"{p.url}/{to}", fr=aei1, ty=4, raw=raw, rqi=rq,
                        headers={"X-M2M-SID": sess["sid"], "X-M2M-OT": ot, "X-M2M-SMAC": mac})
    return r.rsc


async def _refused_start(p: CSEProcess) -> str:
    """Start ``p``, which must fail before READY; its output."""
    before = len(p.lines)
    try:
        await p.start()
    except RuntimeError:
        assert p.proc is not None
        assert await p.proc.wait() == 1
        return "".join(p.lines[before:])
    raise AssertionError("the CSE started with a missing or wrong store key file")


async def test_session_keys_at_rest(tmp_path: Path, http: Http) -> None:
    var = tmp_path / "cse" / "var"  # a store directory the CSE creates
    cfg = write_config(tmp_path / "cse", db=str(var / "cse-in.db"))
    key_file = var / "cse-in.db.key"
    p = CSEProcess(cfg, var / "cse-in.db")
    try:
        await p.start()
        async with Receiver() as rcv1, Receiver() as rcv2:
            aei1 = await register_ae(http, p, CB, "AE1", scp=["smg"], poa=[rcv1.url])
            aei2 = await register_ae(http, p, CB, "AE2", scp=["smg"], poa=[rcv2.url])
            r = await http.send("POST", f"{p.url}/{CB}/AE2/sessions", fr=aei2, ty=23,
                                body={"m2m:sub": {"rn": "sesSub", "nu": [rcv2.url]}})
            assert r.rsc == 2001, r.body
            r = await http.send("POST", f"{p.url}/{CB}/AE2", fr=aei2, ty=3, body={"m2m:cnt": {"rn": "container1"}})
            assert r.rsc == 2001, r.body
            r = await http.send("POST", f"{p.url}/{CB}/AE1/sessions", fr=aei1, ty=9002,
                                body={"m2m:sess": {"tep": f"{CSI}/{aei2}"}})
            assert r.rsc == 2001, r.body
            sess = r.body["m2m:sess"]
            key_b64 = sess["scr"]["key"]
            key = unb64u(key_b64)
            k_mac = derive_keys(key, sess["sid"])[0]
            secrets_of_the_session = [key_b64.encode(), key, base64.b64encode(key), key.hex().encode()]
            assert await _signed_cin(http, p, aei1, sess, k_mac, "live") == 2001

            # live: private files, no session key in any of them; the wrapped one is in the journal
            assert oct(stat.S_IMODE(var.stat().st_mode)) == "0o700"
            modes = _modes(var)
            assert set(modes.values()) == {"0o600"} and "cse-in.db.key" in modes, modes
            assert _holding(var, secrets_of_the_session) == []
            wrapped = {m.group(1) for data in _store_bytes(var).values() for m in WRAPPED.finditer(data)}
            assert len(wrapped) == 1, wrapped
            [wrp] = wrapped

            # a clean stop (the snapshot now holds the live session): still no key in the files
            assert await p.stop() == 0
            modes = _modes(var)
            assert set(modes.values()) == {"0o600"} and "cse-in.db" in modes, modes
            assert _holding(var, secrets_of_the_session) == []
            assert _holding(var, [wrp]) == ["cse-in.db"]

            # without the right key file the CSE does not start (and does not replace it)
            kept = tmp_path / "kept.key"
            shutil.move(key_file, kept)
            out = await _refused_start(p)
            assert "store key file" in out and "missing" in out and "restore" in out, out
            assert not key_file.exists()
            key_file.write_text("not a key\n")
            out = await _refused_start(p)
            assert "store key file" in out and "damaged" in out, out
            key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() + "\n")
            out = await _refused_start(p)
            assert "not the store's key file" in out, out
            shutil.copy(kept, key_file)

            # the right key file: the session's MACs verify after the restart
            await p.start()
            assert await _signed_cin(http, p, aei1, sess, k_mac, "after-restart") == 2001
            r = await http.send("GET", f"{p.url}/{CB}/AE2/container1", fr=aei2)
            assert r.body["m2m:cnt"]["cni"] == 2, r.body
            assert set(_modes(var).values()) == {"0o600"}
            assert _holding(var, secrets_of_the_session) == []

            # terminated: the wrapped key is still in the snapshot until the store compacts ...
            r = await http.send("DELETE", f"{p.url}/{CB}/AE1/sessions/{sess['rn']}", fr=aei1)
            assert r.rsc == 2002, r.body
            assert _holding(var, [wrp]) == ["cse-in.db"]
            # ... which a clean stop does: then it is in no store file
            assert await p.stop() == 0
            assert _holding(var, [wrp, *secrets_of_the_session]) == []
            assert set(_modes(var).values()) == {"0o600"}
    finally:
        if p.proc is not None and p.proc.returncode is None:
            await p.kill()

"""Session keys in the durable store, in-process (docs/security.md "Keys at rest").

* the journal holds only the wrapped key of a live session; an explicit
  compaction after the session's termination leaves its wrapped key in no
  store file (before it, the journal still has it: compaction is what
  removes it);
* a key stored in plain by an earlier version is wrapped at the next start,
  and compacted out of the files; the session still verifies MACs;
* a key file that is not the store's is refused at start-up;
* the memory store wraps too (with a key that is never written);
* a non-blocking establishment (rt 1/2) is refused: its answer, with the
  key in plain, would be kept in a ``<request>`` resource (and, rt 2, sent
  to any X-M2M-RTU).
"""

from __future__ import annotations

import base64
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cse.app import CSE
from cse.config import load_config
from cse.core.messages import Operation
from cse.core.outcome import Outcome
from cse.core.ports import Put
from cse.core.session_crypto import unb64u
from cse.store.keyfile import StoreKeyError
from cse.store.tinydb_store import TinyDBStore
from tests.conftest import FakeClock, InProc
from tests.flow2_helpers import LocalSession, local_session
from tests.notify_receiver import Receiver


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _holding(directory: Path, *needles: bytes) -> list[str]:
    return sorted(n for n, data in _files(directory).items() if any(x in data for x in needles))


async def _started(db: Path, clock: FakeClock) -> InProc:
    cse = CSE(load_config(None, db=str(db)), clock=clock)
    await cse.start(serve_http=False)
    return InProc(cse, clock)


@pytest.fixture
async def rcv2() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def _cin(ls: LocalSession, con: str) -> int:
    r = await ls.call(Operation.CREATE, f"{ls.cb}/AE2/container1", ls.aei1, ty=4, pc={"m2m:cin": {"con": con}})
    return int(r.rsc)


async def test_terminated_session_key_gone_after_an_explicit_compaction(tmp_path: Path, rcv2: Receiver) -> None:
    var = tmp_path / "var"
    ip = await _started(var / "cse.db", FakeClock())
    try:
        ls = await local_session(ip, rcv2)
        key_b64 = ls.sess["scr"]["key"]
        doc = await ls.doc()
        assert "key" not in doc["_scr"] and doc["_scr"]["kid"] == ls.kid
        wrp = doc["_scr"]["wrp"].encode()
        assert _holding(var, key_b64.encode(), unb64u(key_b64)) == []
        assert _holding(var, wrp) == ["cse.db.journal"]
        assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in var.iterdir()} == {"0o600"}
        assert await _cin(ls, "x") == 2001
        r = await ip.call(Operation.DELETE, ls.ses_path, ls.aei1)
        assert r.rsc == 2002, r.pc
        assert _holding(var, wrp) == ["cse.db.journal"]  # until the store compacts
        assert isinstance(ip.cse.store, TinyDBStore)
        await ip.cse.store.compact()
        assert _holding(var, wrp, key_b64.encode()) == []
        assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in var.iterdir()} == {"0o600"}
    finally:
        await ip.cse.stop()


async def test_a_key_stored_in_plain_is_wrapped_at_start(tmp_path: Path, rcv2: Receiver) -> None:
    db, clock = tmp_path / "cse.db", FakeClock()
    ip = await _started(db, clock)
    try:
        ls = await local_session(ip, rcv2)
        # what an earlier version stored: the credentials in plain, and no key file
        doc = await ls.doc()
        plain = {**doc, "_scr": ip.cse.smg.sessions.credentials(doc)}
        await ip.cse.ctx.apply(Outcome(ops=[Put(plain)]))
    finally:
        await ip.cse.stop()
    key_b64 = ls.sess["scr"]["key"].encode()
    assert _holding(tmp_path, key_b64) == ["cse.db"]
    (tmp_path / "cse.db.key").unlink()
    ip = await _started(db, clock)
    try:
        ls2 = LocalSession(ip, ls.aei1, ls.aei2, ls.sess, ls.sid, ls.kid, ls.k_mac, ls.k_enc)
        assert "wrp" in (await ls2.doc())["_scr"]
        assert (tmp_path / "cse.db.key").exists()
        assert _holding(tmp_path, key_b64) == []  # compacted out at once
        assert await _cin(ls2, "after") == 2001
    finally:
        await ip.cse.stop()


async def test_a_foreign_or_damaged_key_file_is_refused(tmp_path: Path, rcv2: Receiver) -> None:
    db, clock = tmp_path / "cse.db", FakeClock()
    ip = await _started(db, clock)
    try:
        await local_session(ip, rcv2)
    finally:
        await ip.cse.stop()
    key_file = tmp_path / "cse.db.key"
    right = key_file.read_bytes()
    key_file.write_bytes(base64.urlsafe_b64encode(bytes(32)).rstrip(b"=") + b"\n")
    cse = CSE(load_config(None, db=str(db)), clock=clock)
    with pytest.raises(StoreKeyError, match="not the store's key file"):
        await cse.start(serve_http=False)
    key_file.write_bytes(right[:20])
    with pytest.raises(StoreKeyError, match="damaged"):
        CSE(load_config(None, db=str(db)), clock=clock)
    key_file.unlink()
    cse = CSE(load_config(None, db=str(db)), clock=clock)
    with pytest.raises(StoreKeyError, match="missing"):
        await cse.start(serve_http=False)
    assert not key_file.exists()  # never replaced by a new key while wrapped keys need the old one
    key_file.write_bytes(right)
    ip = await _started(db, clock)
    await ip.cse.stop()


async def test_the_memory_store_wraps_too(inproc: InProc, rcv2: Receiver) -> None:
    ls = await local_session(inproc, rcv2)
    scr = (await ls.doc())["_scr"]
    assert "key" not in scr and scr["wrp"].startswith(inproc.cse.smg.keyring.key_id + ".")
    assert await _cin(ls, "m") == 2001


@pytest.mark.parametrize("rt", [1, 2])
async def test_a_non_blocking_establishment_is_refused(inproc: InProc, rcv2: Receiver, rt: int) -> None:
    ip = inproc
    cb = ip.cse.config.cse.name
    a1, a2 = await ip.register("AE1", scp=["smg"]), await ip.register("AE2", scp=["smg"])
    r = await ip.call(Operation.CREATE, f"{cb}/AE2/sessions", a2, ty=23, pc={"m2m:sub": {"rn": "s", "nu": [rcv2.url]}})
    assert r.rsc == 2001, r.pc
    before = await ip.cse.store.count()
    r = await ip.call(Operation.CREATE, f"{cb}/AE1/sessions", a1, ty=9002, pc={"m2m:sess": {"tep": f"/id-in/{a2}"}},
                      rt=rt)
    assert r.rsc == 4000 and "blocking request only" in r.pc["m2m:dbg"], (r.rsc, r.pc)
    assert await ip.cse.store.count() == before  # no <request>, no session

"""A real CSE process on a full filesystem and on a store that lost its snapshot
(docs/troubleshooting.md "Store damaged or full").

Why end to end: what the client sees (the status code and the dbg), what
``la``/``cni`` show afterwards and what a restart brings back are the
whole point, and only a real process on a real full filesystem (a 2 MiB
tmpfs, so the test runs as root) shows all three.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Http, subprocess_env, write_config

ADMIN = "CAdmin"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (unmounted in teardown)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _write_forever(f: Any, chunk: bytes) -> None:
    while True:
        f.write(chunk)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            with pytest.raises(OSError) as full:
                _write_forever(f, b"\0" * size)
            assert full.value.errno == errno.ENOSPC
    return filler


async def _cin(http: Http, url: str, rn: str, con: str) -> Any:
    return await http.send("POST", f"{url}/cse-in/app/cnt", fr=ADMIN, ty=4,
                           body={"m2m:cin": {"rn": rn, "con": con}})


async def test_create_on_a_full_filesystem_leaves_no_trace_and_writes_resume_when_space_returns(
    cse_process: Any, http: Http, small_fs: Path
) -> None:
    cse = await cse_process(extra="", start=False)
    write_config(cse.config_path.parent, db=str(small_fs / "cse-in.db"))
    await cse.start()
    url = cse.url
    r = await http.send("POST", f"{url}/cse-in", fr=ADMIN, ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}})
    assert r.rsc == 2001, r.body
    r = await http.send("POST", f"{url}/cse-in/app", fr=ADMIN, ty=3, body={"m2m:cnt": {"rn": "cnt"}})
    assert r.rsc == 2001, r.body
    assert (await _cin(http, url, "first", "a")).rsc == 2001

    filler = fill(small_fs)
    big = "x" * 20000  # spans pages: cannot fit in the journal's last page
    r = await _cin(http, url, "big", big)
    assert (r.status, r.rsc) == (500, 5000), r.body
    assert "the store cannot write" in r.body["m2m:dbg"] and "No space left on device" in r.body["m2m:dbg"]
    la = await http.send("GET", f"{url}/cse-in/app/cnt/la", fr=ADMIN)
    assert la.rsc == 2000 and la.body["m2m:cin"]["rn"] == "first"
    cnt = await http.send("GET", f"{url}/cse-in/app/cnt", fr=ADMIN)
    assert (cnt.body["m2m:cnt"]["cni"], cnt.body["m2m:cnt"]["cbs"]) == (1, 1)
    assert (await http.send("GET", f"{url}/cse-in/app/cnt/big", fr=ADMIN)).rsc == 4004
    assert b"x" * 1000 not in (small_fs / "cse-in.db.journal").read_bytes()
    # Still full: refused again; reads keep working.
    assert (await _cin(http, url, "big", big)).rsc == 5000
    assert (await http.send("GET", f"{url}/cse-in/app", fr=ADMIN)).rsc == 2000

    filler.unlink()  # space returns: no restart needed
    r = await _cin(http, url, "big", big)  # the same name: the failed one left nothing to conflict with
    assert r.rsc == 2001, r.body
    cnt = await http.send("GET", f"{url}/cse-in/app/cnt", fr=ADMIN)
    assert cnt.body["m2m:cnt"]["cni"] == 2
    log = "".join(cse.lines)
    assert "is read-only" in log and "writable again" in log

    assert await cse.stop() == 0
    await cse.start()
    cnt = await http.send("GET", f"{cse.url}/cse-in/app/cnt", fr=ADMIN)
    assert cnt.body["m2m:cnt"]["cni"] == 2
    la = await http.send("GET", f"{cse.url}/cse-in/app/cnt/la", fr=ADMIN)
    assert la.body["m2m:cin"]["rn"] == "big"
    assert await cse.stop() == 0


async def test_a_cse_whose_snapshot_is_gone_refuses_to_start(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    r = await http.send("POST", f"{cse.url}/cse-in", fr=ADMIN, ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": False, "srv": ["3"]}})
    assert r.rsc == 2001
    assert await cse.stop() == 0
    os.remove(cse.db_path)
    cmd = [sys.executable, "-m", "cse", "--config", str(cse.config_path), "--http-port", "0"]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60,
                                   env=subprocess_env(), cwd=str(cse.config_path.parent), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"cse: cannot start: snapshot {cse.db_path} is missing but the store has been used")
    # Explicitly accepted: starts, empty but for its CSEBase.
    cse.extra_args.append("--allow-empty-store")
    await cse.start()
    assert (await http.send("GET", f"{cse.url}/cse-in/app", fr=ADMIN)).rsc == 4004
    assert await cse.stop() == 0

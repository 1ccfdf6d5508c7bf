"""Starting, failing to start, and resources expiring, against real processes.

Why: docs/configuration.md "Starting a CSE" is a public contract -- a config error (unknown key, bad
type) or a port in use stops start-up with one line naming the cause and a
non-zero exit code; with no ``--config`` the CSE is the oneM2M default
IN-CSE ``/id-in`` storing under ``./var/``. And a resource whose ``et`` passes
disappears on its own, also when its deadline passes across a restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cse.core.timestamps import format_ts
from tests.conftest import ADMIN, CSEProcess, Http, write_config
from tests.waiting import until

START_TIMEOUT = 20.0


async def run_cse(args: list[str], cwd: Path, timeout: float = START_TIMEOUT) -> tuple[int, str, str]:
    """Run ``python -m cse`` expecting it to exit on its own; (code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse", *args, cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"python -m cse {' '.join(args)} did not exit within {timeout} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- configuration errors ------------------------------------------------------------

@pytest.mark.parametrize(("toml", "names"), [
    ('[cse]\ncse_id = "/id-in"\ncolour = "red"\n', ["colour"]),
    ('[http]\nprot = 8080\n', ["prot"]),
    ('[store]\npath = "x.db"\nfsnyc = true\n', ["fsnyc"]),
    ('[cse]\nname = "cse-in"\n[wibble]\nx = 1\n', ["wibble"]),
    ('[http]\nport = "8080"\n', ["port"]),
    ('[cse]\nadmin = 7\n', ["admin"]),
    ('[store]\nfsync = "yes"\n', ["fsync"]),
    ('[cse]\ntype = "XX"\n', ["type"]),
    ('[cse]\ncse_id = "id-in"\n', ["cse_id"]),
    ('[http]\nport = 70000\n', ["port"]),
    ('[cse\nname = "x"\n', ["toml"]),
], ids=["unknown cse key", "unknown http key", "unknown store key", "unknown section", "port a string",
        "admin a number", "fsync a string", "bad cse type", "cse_id without slash", "port out of range",
        "not toml"])
async def test_config_error_is_one_line_naming_the_key(tmp_path: Path, toml: str, names: list[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    # --http-port 0 keeps a config that is wrongly accepted off real ports;
    # the cases about the port itself must not have it overridden.
    override = [] if "port" in names else ["--http-port", "0"]
    code, out, err = await run_cse(["--config", str(cfg), *override], tmp_path)
    assert code != 0
    assert "READY" not in out
    err_lines = lines(err)
    assert len(err_lines) == 1, err
    for name in names:
        assert name.lower() in err_lines[0].lower(), err_lines[0]
    assert "Traceback" not in err + out
    assert not (tmp_path / "var").exists(), "nothing may be created on a config error"


async def test_missing_config_file(tmp_path: Path) -> None:
    code, out, err = await run_cse(["--config", str(tmp_path / "nope.toml")], tmp_path)
    assert code != 0 and "READY" not in out
    assert len(lines(err)) == 1 and "nope.toml" in err


async def test_port_in_use(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path / "cfg")
        code, out, err = await run_cse(["--config", str(cfg), "--http-port", str(port)], tmp_path)
    finally:
        busy.close()
    assert code != 0
    assert "READY" not in out
    err_lines = lines(err)
    assert len(err_lines) == 1, err
    assert str(port) in err_lines[0] or "in use" in err_lines[0].lower(), err_lines[0]
    assert "Traceback" not in err + out


# -- the default start ---------------------------------------------------------------

@pytest.fixture
async def default_cse(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    """``python -m cse --http-port 0`` in an empty directory, no config."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse", "--http-port", "0", cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async def ready() -> str:
            assert proc.stdout is not None
            while raw := await proc.stdout.readline():
                line = raw.decode(errors="replace")
                seen.append(line)
                if line.startswith("READY "):
                    return line.split()[2]
            raise AssertionError("exited before READY:\n" + "".join(seen))

        url = await asyncio.wait_for(ready(), START_TIMEOUT)
        yield proc, url, seen
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_default_start_without_config(tmp_path: Path, default_cse: Any, http: Http) -> None:
    proc, url, seen = default_cse
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    r = await http.send("GET", f"{url}/cse-in", fr="CAdmin")
    assert (r.status, r.rsc) == (200, 2000)
    cb = r.body["m2m:cb"]
    assert (cb["csi"], cb["rn"], cb["ri"], cb["cst"]) == ("/id-in", "cse-in", "id-in", 1)
    # something durable to find on disk
    r = await http.send("POST", f"{url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
    assert r.rsc == 2001
    var = tmp_path / "var"
    assert var.is_dir(), sorted(p.name for p in tmp_path.iterdir())
    assert any(var.iterdir())
    assert [p for p in tmp_path.iterdir() if p.name != "var"] == [], "the store lands under ./var/ only"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), START_TIMEOUT) == 0
    assert proc.stdout is not None
    seen.extend(raw.decode(errors="replace") for raw in (await proc.stdout.read()).splitlines())
    # one start-up line names the CSE-ID, the address and the store path
    startup = [line for line in seen if "/id-in" in line and url in line]
    assert startup and any("var/" in line for line in startup), "".join(seen)


# -- expiry ---------------------------------------------------------------------------

async def wait_until_gone(http: Http, url: str, fr: str, deadline_s: float = 10.0) -> float:
    """Poll RETRIEVE until 4004 (bounded); returns when it was first seen gone."""
    async def gone() -> float | None:
        r = await http.send("GET", url, fr=fr)
        assert r.rsc in (2000, 4004), r.body
        return time.time() if r.rsc == 4004 else None
    return float(await until(gone, f"{url} to expire", timeout=deadline_s, interval=0.1))


async def test_expired_container_disappears_by_itself(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    url = cse.url
    r = await http.send("POST", f"{url}/cse-in", fr="C", ty=2,
                        body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
    aei = r.body["m2m:ae"]["aei"]
    et_epoch = time.time() + 2
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3,
                        body={"m2m:cnt": {"rn": "short", "et": format_ts(et_epoch)}})
    assert r.rsc == 2001, r.body
    cnt = r.body["m2m:cnt"]
    r = await http.send("POST", f"{url}/cse-in/app/short", fr=aei, ty=4, body={"m2m:cin": {"rn": "c", "con": "x"}})
    assert r.rsc == 2001
    cin_ri = r.body["m2m:cin"]["ri"]
    assert r.body["m2m:cin"]["et"] <= cnt["et"], "a child's et is capped by its parent's"
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "long"}})
    assert r.rsc == 2001

    gone_at = await wait_until_gone(http, f"{url}/~/id-in/{cnt['ri']}", aei)
    assert gone_at >= et_epoch - 0.05, "deleted before its expirationTime"
    assert (await http.send("GET", f"{url}/cse-in/app/short", fr=aei)).rsc == 4004
    assert (await http.send("GET", f"{url}/{cin_ri}", fr=aei)).rsc == 4004
    assert (await http.send("GET", f"{url}/cse-in/app/long", fr=aei)).rsc == 2000
    r = await http.send("GET", f"{url}/cse-in/app?fu=1&ty=3", fr=aei)
    assert r.body["m2m:uril"] == ["cse-in/app/long"]
    # the name is free again
    r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": "short"}})
    assert r.rsc == 2001


async def test_expiry_without_any_request_touching_it(cse_process: Any, http: Http) -> None:
    """Nothing asks about the container until well after its et: it must
    already be gone (the CSE deletes on time, not lazily on access)."""
    cse = await cse_process()
    url = cse.url
    r = await http.send("POST", f"{url}/cse-in", fr=ADMIN, ty=3,
                        body={"m2m:cnt": {"rn": "quiet", "et": format_ts(time.time() + 1)}})
    assert r.rsc == 2001
    ri = r.body["m2m:cnt"]["ri"]
    # watch only the CSEBase's child list -- never the container itself
    async def expired() -> bool:
        r = await http.send("GET", f"{url}/cse-in?rcn=6&ty=3", fr=ADMIN)
        assert r.rsc == 2000
        return not [x for x in r.body["m2m:rrl"]["rrf"] if x["val"] == "cse-in/quiet"]
    await until(expired, "the container to expire", timeout=10, interval=0.1)
    assert (await http.send("GET", f"{url}/{ri}", fr=ADMIN)).rsc == 4004


async def test_expiry_deadline_passing_across_a_restart(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    r = await http.send("POST", f"{cse.url}/cse-in", fr=ADMIN, ty=3,
                        body={"m2m:cnt": {"rn": "soon", "et": format_ts(time.time() + 1.5)}})
    assert r.rsc == 2001
    ri = r.body["m2m:cnt"]["ri"]
    r = await http.send("POST", f"{cse.url}/cse-in", fr=ADMIN, ty=3, body={"m2m:cnt": {"rn": "stays"}})
    assert r.rsc == 2001
    assert await cse.stop(signal.SIGTERM) == 0
    again: CSEProcess = await cse_process(start=False)
    assert again.config_path == cse.config_path
    await again.start()
    await wait_until_gone(http, f"{again.url}/~/id-in/{ri}", ADMIN)
    assert (await http.send("GET", f"{again.url}/cse-in/stays", fr=ADMIN)).rsc == 2000


async def test_update_et_brings_expiry_forward(cse_process: Any, http: Http) -> None:
    cse = await cse_process()
    url = cse.url
    r = await http.send("POST", f"{url}/cse-in", fr=ADMIN, ty=3, body={"m2m:cnt": {"rn": "later"}})
    assert r.rsc == 2001
    r = await http.send("PUT", f"{url}/cse-in/later", fr=ADMIN,
                        body={"m2m:cnt": {"et": format_ts(time.time() + 1)}})
    assert r.rsc == 2004
    await wait_until_gone(http, f"{url}/cse-in/later", ADMIN)

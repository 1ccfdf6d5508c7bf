"""The curl walkthroughs in samples/curl/ run for real.

Why: they are documentation (samples/curl/README.md) and must keep working.
Each script checks every answer's X-M2M-RSC and exits non-zero at the first
unexpected one; here each runs against fresh CSE processes on free loopback
ports (one CSE for crud/discovery/subscription/nonblocking, a pair started by
``python -m cse.cluster samples/pair --run ...`` for pair.sh) and must exit 0
with its "... OK" line last. curl is required: without it these tests fail
and say so (they are never skipped).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.childenv import python_on_path
from tests.sdk.test_curl_session_flow import two_free_ports

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "samples" / "curl"
TIMEOUT = 180.0


def _env(tmp_path: Path) -> dict[str, str]:
    """The scripts call `python`: make that this interpreter (a venv's, in CI)."""
    assert shutil.which("curl"), (
        "curl is not installed on this machine: the samples/curl walkthroughs cannot run. "
        "Install it (apt-get install curl).")
    assert shutil.which("bash"), "bash is needed to run the samples/curl walkthroughs"
    return {**python_on_path(tmp_path / "bin"), "PYTHONUNBUFFERED": "1"}


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)         # the script and what it started: our own group
        await proc.wait()
        raise AssertionError(f"{args} did not finish within {TIMEOUT:g} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _script_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if ln.strip() and not ln.startswith("[cse") and "ready at" not in ln and ln != "CLUSTER READY"]


@pytest.mark.parametrize(("script", "final", "codes"), [
    ("crud.sh", "CRUD OK", ("ok 2001", "ok 2000", "ok 2004", "ok 4001", "ok 4000", "ok 2002", "ok 4004",
                            "ok 4103")),
    ("discovery.sh", "DISCOVERY OK", ("ok 2001", "ok 2000", "ok 2002")),
    ("subscription.sh", "SUBSCRIPTION OK", ("ok 2001", '"con":"21.5"', '"sud":true', "ok 2002")),
    ("nonblocking.sh", "NONBLOCKING OK", ("ok 1001", "rs=1, ors.rsc=2001", "ok 2002")),
])
async def test_single_cse_script(script: str, final: str, codes: tuple[str, ...], tmp_path: Path,
                                 cse_process: Callable[..., Any]) -> None:
    env = _env(tmp_path)
    cse = await cse_process()                       # /id-in, named cse-in
    code, text = await _run(["bash", str(SCRIPTS / script), cse.url, "cse-in"], env)
    assert code == 0, f"{script} exited {code}:\n{text}"
    lines = _script_lines(text)
    assert lines and lines[-1] == final, text
    assert "FAILED" not in text
    for expected in codes:
        assert expected in text, f"{expected!r} missing:\n{text}"


async def test_pair_script(tmp_path: Path) -> None:
    env = _env(tmp_path)
    var = tmp_path / "var"
    var.mkdir()
    code, text = await _run(
        [sys.executable, "-m", "cse.cluster", "samples/pair", "--base-port", str(two_free_ports()),
         "--var", str(var), "--run", f"bash {SCRIPTS / 'pair.sh'} $CSE_URL_CSE1 $CSE_URL_CSE2"], env)
    assert code == 0, f"pair.sh exited {code}:\n{text}"
    lines = _script_lines(text)
    assert lines and lines[-1] == "PAIR OK", text
    assert "FAILED" not in text
    for expected in ("ok 2000 http://127.0.0.1:", "/~/id-cse2/cse2?fu=1&ty=2", "ok 4103", "ok 2002"):
        assert expected in text, f"{expected!r} missing:\n{text}"


def test_the_readme_lists_every_script() -> None:
    readme = (SCRIPTS / "README.md").read_text()
    for script in sorted(SCRIPTS.glob("*.sh")):
        if script.name != "lib.sh":
            assert f"`{script.name}`" in readme, f"samples/curl/README.md does not list {script.name}"

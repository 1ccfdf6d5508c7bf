"""The launcher: ``python -m cse.cluster DIR --base-port N --var DIR --run CMD``.

Why: the samples (a pair, a chain) are how users and CI bring up several
CSEs that know each other. The launcher must start them all, wait until
every registration works both ways, say ``CLUSTER READY``, hand the URLs to
the ``--run`` command (``CSE_URL_<NAME>``), exit with that command's code,
and leave no CSE process behind.
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("timing")  # forks clusters of CSEs: one such module at a time (tests/conftest.py)

LAUNCH_TIMEOUT = 60.0

# The --run command: GET /~/id-cse2/cse2 through CSE1 as the admin; record the
# launcher's CSE children (for the "nothing left behind" check); exit 0 on 2000
# (or with the code given as argv[1]).
RUN_CHECK = r'''
import os, sys, urllib.request, urllib.error
def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
def module(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return ""
    return args[2].decode() if len(args) > 2 and args[1] == b"-m" else ""
launcher = os.getppid()
while launcher > 1 and module(launcher) != "cse.cluster":
    launcher = ppid(launcher)
kids = []
for p in os.listdir("/proc"):
    try:
        if p.isdigit() and module(p) == "cse" and ppid(int(p)) == launcher:
            kids.append(p)
    except OSError:
        pass
with open(os.environ["CLUSTER_PIDS_FILE"], "w") as f:
    f.write(" ".join(kids))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(os.environ["CSE_URL_CSE1"] + "/~/id-cse2/cse2",
                             headers={"X-M2M-Origin": "CAdmin", "X-M2M-RI": "run-check", "X-M2M-RVI": "3"})
try:
    with opener.open(req, timeout=20) as r:
        rsc = r.headers.get("X-M2M-RSC")
except urllib.error.HTTPError as e:
    rsc = e.headers.get("X-M2M-RSC")
print("RUN-CHECK RSC", rsc, flush=True)
if len(sys.argv) > 1:
    sys.exit(int(sys.argv[1]))
sys.exit(0 if rsc == "2000" else 1)
'''


def _port_free(port: int, *, reuse: bool = False) -> bool:
    """Nobody listens on ``port`` (``reuse``: ignore connections in TIME_WAIT,
    as a server binding with SO_REUSEADDR does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports in a high range."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(30000, 60000 - n)
        if all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports found")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def launch(sample: str, n: int, tmp_path: Path, exit_with: int | None = None) -> tuple[int, str, list[int], int]:
    base = free_base_port(n)
    pids_file = tmp_path / "pids.txt"
    run = " ".join([shlex.quote(sys.executable), "-c", shlex.quote(RUN_CHECK)]
                   + ([str(exit_with)] if exit_with is not None else []))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cse.cluster", str(ROOT / "samples" / sample), "--base-port", str(base),
        "--var", str(tmp_path / "var"), "--run", run,
        cwd=str(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CLUSTER_PIDS_FILE": str(pids_file)})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), LAUNCH_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"cse.cluster {sample} did not finish within {LAUNCH_TIMEOUT:g} s")
    assert proc.returncode is not None
    text = out.decode(errors="replace")
    pids = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
    return proc.returncode, text, pids, base


@pytest.mark.parametrize(("sample", "n"), [("pair", 2), ("chain", 3)])
async def test_cluster_runs_the_command_once_registered(tmp_path: Path, sample: str, n: int) -> None:
    code, out, pids, base = await launch(sample, n, tmp_path)
    assert "CLUSTER READY" in out, out
    assert "RUN-CHECK RSC 2000" in out, out
    assert code == 0, out
    assert len(pids) == n, (pids, out)
    assert not [p for p in pids if _alive(p)], f"CSE processes left behind: {pids}"
    assert all(_port_free(base + i, reuse=True) for i in range(n)), "a CSE port is still listened on"
    # the stores went where --var said
    assert (tmp_path / "var").is_dir()


async def test_cluster_exit_code_is_the_commands(tmp_path: Path) -> None:
    code, out, pids, base = await launch("pair", 2, tmp_path, exit_with=3)
    assert "CLUSTER READY" in out, out
    assert code == 3, out
    assert len(pids) == 2, (pids, out)
    assert not [p for p in pids if _alive(p)], f"CSE processes left behind: {pids}"
    assert all(_port_free(base + i, reuse=True) for i in range(2))

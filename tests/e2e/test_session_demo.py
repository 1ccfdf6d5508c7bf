"""The session demo, run the way the README's first quickstart command runs it.

``python -m cse.cluster samples/pair --run "python samples/session_demo.py"``
starts the pair (TinyDB stores), runs the session story (flows 1-3) with two SDK
AEs and stops the pair. Here it gets ``--base-port`` (free consecutive ports)
and ``--var`` (a temporary directory) so that CI never collides with a pair
on 8081/8082 or with another run.

Why: the demo is the project's front door -- the one command a newcomer
runs. It must exit 0 only when every step of the story worked, narrate
every step it shows in order, end with an all-OK summary, finish well
under a minute, and leave no CSE behind. Running it twice against the same
stores shows that it can be re-run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shlex
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)

RUN_TIMEOUT = 90.0     # a hang bound; the demo itself must stay under DEMO_BUDGET
DEMO_BUDGET = 60.0

# Every narrated step, in the order it must happen ("[flow, step] ...").
STEPS = [
    ("flow 1", "step 1"),
    ("flow 1", "step 2"),
    ("flow 1", "steps 3-5"),
    ("flow 1", "step 6"),
    ("flow 1", "steps 7-9"),
    ("flow 1", "steps 10-13"),
    ("flow 1", "steps 14-17"),
    ("flow 1", "steps 18-23"),
    ("flow 2 (immediate)", "setup"),
    ("flow 2 (immediate)", "step 1"),
    ("flow 2 (immediate)", "steps 2-16"),
    ("flow 2 (immediate)", "steps 17-19"),
    ("flow 2 (immediate)", "steps 20-27"),
    ("flow 2 (store-and-forward)", "setup"),
    ("flow 2 (store-and-forward)", "step 1"),
    ("flow 2 (store-and-forward)", "steps 2-6"),
    ("flow 2 (store-and-forward)", "steps 7-16"),
    ("flow 2 (store-and-forward)", "steps 17-19"),
    ("flow 2 (store-and-forward)", "steps 20-27"),
    ("flow 3", "steps 1-3"),
    ("flow 3", "steps 4-6"),
    ("flow 3", "steps 7-10"),
    ("flow 3", "step 11"),
    ("flow 3", "after"),
    ("cleanup", "-"),
]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(n: int = 2) -> int:
    """The first of ``n`` consecutive free loopback ports in a high range."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(30000, 60000 - n)
        if all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports found")


def readme_command(base: int, var: Path) -> list[str]:
    """Quickstart command 1 of the README, after ``pip install -e . &&``, with
    this interpreter for ``python``, ``--var`` pointed at ``var`` and
    ``--base-port`` added."""
    quickstart = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    line = next(x for x in quickstart.splitlines() if x.startswith("pip install -e . && "))
    args = shlex.split(line.removeprefix("pip install -e . && "))
    assert args[:4] == ["python", "-m", "cse.cluster", "samples/pair"], line
    assert "--var" in args and "--run" in args, line
    args[0] = sys.executable
    args[args.index("--var") + 1] = str(var)
    run = shlex.split(args[args.index("--run") + 1])
    assert run == ["python", "samples/session_demo.py"], line
    args[args.index("--run") + 1] = shlex.join([sys.executable, *run[1:]])
    return [*args, "--base-port", str(base)]


async def run_demo(base: int, var: Path) -> tuple[int, str, float]:
    """(exit code, output, seconds) of the README command with --base-port/--var,
    from the repository root as the README says."""
    args = readme_command(base, var)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"the demo did not finish within {RUN_TIMEOUT:g} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), time.monotonic() - started


def check_story(out: str) -> None:
    lines = out.splitlines()
    # every step is narrated, in the order of the flows, and none failed
    positions = []
    for flow, step in STEPS:
        prefix = f"[{flow}, {step}] "
        found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert found, f"no line for {prefix!r}:\n{out}"
        positions.append(found[0])
    assert positions == sorted(positions), f"steps out of order:\n{out}"
    assert not [line for line in lines if re.match(r"\[.*\] FAIL", line)], out
    # what the story promises to show
    assert "stored at CSE1, waiting for the window" in out, out
    assert re.search(r"PendingResult resolved after \d+\.\d s: 2001", out), out
    assert re.search(r"AE2's SDK decrypts it: '21\.5'", out), out
    assert re.search(r"decrypted '22\.0'", out), out
    assert re.search(r"got session event typ 3", out), out
    old_sid = [line for line in lines if line.startswith("[flow 3, after] ")]
    assert len(old_sid) == 2 and all(": 4004 (" in line for line in old_sid), out
    assert "CSE1 with the old sid" in old_sid[0] and "CSE2 with the old sid" in old_sid[1], out
    # the summary: one row per step, all OK
    summary = lines[next(i for i, line in enumerate(lines) if line == "SUMMARY"):]
    rows = [line for line in summary if re.match(r"  \S", line) and not line.startswith("  flow  ")]
    assert len(rows) == len(STEPS), out
    assert all(re.search(r"  OK  ", row) for row in rows), out
    assert f"ALL {len(STEPS)} STEPS OK" in out, out


async def test_session_demo_runs_every_step_twice_on_the_same_stores(tmp_path: Path) -> None:
    base = free_base_port(2)
    var = tmp_path / "var"
    for run in (1, 2):
        code, out, seconds = await run_demo(base, var)
        assert "CLUSTER READY" in out, out
        assert code == 0, f"run {run} exited {code}:\n{out}"
        check_story(out)
        assert seconds < DEMO_BUDGET, f"run {run} took {seconds:.1f} s:\n{out}"
        # the pair is stopped: its ports are free again
        assert all(_port_free(base + i) for i in range(2)), "a CSE port is still listened on"
    assert {"cse1.db", "cse2.db"} <= {p.name for p in var.iterdir()}, "the stores are not where --var said"


async def test_session_demo_fails_without_a_pair() -> None:
    """Nothing listening: the first step fails, the rest is skipped, exit code 1."""
    base = free_base_port(2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "samples" / "session_demo.py"),
        f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out_b, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    out = out_b.decode(errors="replace")
    assert proc.returncode == 1, out
    assert "[flow 1, step 1] FAIL: " in out, out
    assert re.search(r"flow 3 +after +SKIP", out), out
    assert "NOT OK" in out and "ALL " not in out, out

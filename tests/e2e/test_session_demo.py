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

With ``--ae2-transport ws`` / ``mqtt`` (the issue's "an AE with no open port
as a session target") the same story must hold with AE2 on a WebSocket to
CSE2 or on MQTT through CSE2's broker (``samples/pair-mqtt``), and the demo
must say that AE2 opened no port: its notification target is its AE-ID
(ws) or the broker's address and its AE-ID (mqtt), not an HTTP server of
its own. Run once each (about 10 s).
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
from tests.mqtt.broker import require_broker

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
    return await run_cluster(readme_command(base, var))


async def run_cluster(args: list[str]) -> tuple[int, str, float]:
    """(exit code, output, seconds) of a ``cse.cluster`` command, from the repository root."""
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
        # AE2 on HTTP: its SDK's notification server listens on a port of its own (the ws/mqtt contrast)
        assert re.search(r"\[flow 1, steps 3-5\] AE2 subscribed .*nu http://127\.0\.0\.1:\d+; "
                         r"AE2 listens on http://127\.0\.0\.1:\d+\)", out), out
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


def pair_with_own_ids(sample: str, dest: Path) -> tuple[Path, str, str]:
    """``samples/<sample>`` copied to ``dest`` with CSE-IDs of this test run
    (the MQTT request topics are named by the CSE-ID, tests/mqtt/broker.py:
    another pair on the same broker must not answer this one's requests).
    Returns (directory, CSE1's CSE-ID, CSE2's CSE-ID)."""
    tag = os.urandom(4).hex()
    csi1, csi2 = f"/id-cse1{tag}", f"/id-cse2{tag}"
    dest.mkdir()
    for src in sorted((ROOT / "samples" / sample).glob("*.toml")):
        text = src.read_text().replace('"/id-cse1"', f'"{csi1}"').replace('"/id-cse2"', f'"{csi2}"')
        (dest / src.name).write_text(text)
    return dest, csi1, csi2


@pytest.mark.parametrize(("transport", "sample"), [("ws", "pair"), ("mqtt", "pair-mqtt")])
async def test_session_demo_with_ae2_on_a_connection_of_its_own(tmp_path: Path, transport: str,
                                                                 sample: str) -> None:
    """The docstring's ``--ae2-transport`` commands, with --base-port, --var and CSE-IDs of this run
    (the demo reads them from ``CSE_ID_<NAME>``, set by ``cse.cluster``)."""
    if transport == "mqtt":
        require_broker()  # in CI a missing broker is a failure
    configs, csi1, csi2 = pair_with_own_ids(sample, tmp_path / "configs")
    base = free_base_port(2)
    demo = shlex.join([sys.executable, "samples/session_demo.py", "--ae2-transport", transport])
    code, out, seconds = await run_cluster([sys.executable, "-m", "cse.cluster", str(configs), "--base-port",
                                            str(base), "--var", str(tmp_path / "var"), "--run", demo])
    assert "CLUSTER READY" in out, out
    assert code == 0, f"exited {code}:\n{out}"
    check_story(out)
    assert seconds < DEMO_BUDGET, f"took {seconds:.1f} s:\n{out}"
    assert f"Session demo: CSE1 {csi1} at http://127.0.0.1:{base}, CSE2 {csi2} at http://127.0.0.1:{base + 1};" \
        in out, out
    lines = out.splitlines()
    # AE2 registered over that binding; its poa: none on a WebSocket, the broker over MQTT
    reg = [line for line in lines if line.startswith(f"[flow 1, step 2] AE2 registered at {csi2} over {transport} ")]
    poa = "poa None" if transport == "ws" else "poa ['mqtt://127.0.0.1:1883']"
    assert len(reg) == 1 and poa in reg[0], out
    # its session events come on that connection: nu is its AE-ID (ws) or broker + AE-ID (mqtt), no port opened
    aei = re.search(r"as (\S+) \(", reg[0])
    assert aei is not None, reg[0]
    nu = aei.group(1) if transport == "ws" else f"mqtt://127.0.0.1:1883/{aei.group(1)}"
    listen = [line for line in lines if line.startswith("[flow 1, steps 3-5] AE2 subscribed ")]
    assert len(listen) == 1, out
    assert f"nu {nu}; AE2 opens no port: they reach it on its {transport} connection)" in listen[0], out
    assert "http://" not in listen[0], listen[0]
    assert all(_port_free(base + i) for i in range(2)), "a CSE port is still listened on"

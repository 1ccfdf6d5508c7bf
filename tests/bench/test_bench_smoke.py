"""Smoke test of the benchmark runner: ``python bench/run.py --quick`` runs as a
subprocess into a tmp dir; every scenario must produce numbers > 0 with 0
errors and the JSON must have the expected keys. Not a speed test: the
PASS/MISS verdicts are not checked. Uses wrk when installed, else the
asyncio client (it never installs anything)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.report import TARGETS, evaluate
from bench.run import ALL, selected
from bench.scenarios import mqtt, pg, ws

pytestmark = pytest.mark.xdist_group("timing")  # measures time or load: one such module at a time (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_quick_run_measures_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    t0, cpu0 = time.monotonic(), _children_cpu()
    proc = subprocess.run([sys.executable, "bench/run.py", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    took, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "target" in proc.stdout and "verdict" in proc.stdout, proc.stdout
    doc = json.loads(out.read_text())
    assert {"started", "mode", "tool", "wall_s", "options", "machine", "results", "targets", "notes"} <= set(doc)
    assert doc["mode"] == "quick" and doc["tool"] in ("wrk", "asyncio")
    expected = set(ALL)
    if not mqtt.broker_up():  # the mqtt group needs Mosquitto (tests/mqtt/broker.py): in CI a failure
        assert os.environ.get("CI") != "true", "no MQTT broker on 127.0.0.1:1883 for the mqtt scenarios"
        expected -= set(mqtt.NAMES)
    assert set(doc["results"]) == expected, sorted(expected ^ set(doc["results"]))
    for name, rec in doc["results"].items():
        assert rec["errors"] == 0, (name, rec)
        if "req_per_s" in rec:
            assert rec["req_per_s"] > 0 and rec["requests"] > 0 and rec["duration_s"] > 0, (name, rec)
            assert "cpu" in rec, (name, rec)
        else:
            assert rec["value"] > 0 and rec["unit"], (name, rec)
    for name in ("retrieve_csebase", "create_cin", "plain_update", "session_update"):
        rec = doc["results"][name]
        assert rec["p50_ms"] > 0 and rec["p99_ms"] >= rec["p50_ms"], (name, rec)
    assert doc["results"]["sf_flush"]["lost"] == 0
    assert doc["results"]["startup_100k"]["resident_after_restart"] == doc["results"]["startup_100k"]["resident"]
    assert [t["target"] for t in doc["targets"]] == [t.name for t in TARGETS]
    assert all(t["verdict"] in ("PASS", "MISS") and t["measured"] is not None
               for t in doc["targets"] if t["scenario"] in expected), doc["targets"]
    # The quick run's cost: the CPU time of the run and the CSEs it started, not its wall
    # time, which a test on the other xdist worker stretches (timeout=120 bounds a hang).
    assert cpu < 60, f"the quick run took {cpu:.0f} s of CPU ({took:.0f} s wall)"


def test_only_expands_groups_and_keeps_the_ceiling() -> None:
    assert selected(["pair"]) >= {"ceiling_get", "plain_update", "sf_flush"}
    assert selected(["mqtt"]) == {"ceiling_get", "ceiling_post", "client_ceiling_get", *mqtt.NAMES}
    # the default run has the binding groups (MQTT and WebSocket as ratios to HTTP), not the pg group
    assert set(mqtt.NAMES) | set(ws.NAMES) <= selected(None) and not set(pg.NAMES) & selected(None)
    assert "create_cin" not in selected(["pair"])
    assert selected(["create_cin,startup_100k"]) == {"ceiling_get", "ceiling_post", "client_ceiling_get",
                                                      "create_cin", "startup_100k"}
    assert evaluate({})[0]["verdict"] == "n/a"

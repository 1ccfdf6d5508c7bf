"""``GET /health`` and ``GET /metrics``, and the request log line (docs/configuration.md "[metrics]").

Why: load balancers need readiness that turns 503 when the CSE cannot do
its job (the store cannot write, no registration with its registrar);
operators need request, latency, notification, session and store numbers
in Prometheus' format, per CSE even when several run in one process; and a
log line that says what failed and why (query string, rsc, dbg), in JSON
for log shippers when asked.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from cse.app import CSE
from cse.config import Config, load_config
from cse.store.memory import MemoryStore
from tests.conftest import ADMIN, CSEProcess, Http, write_config


def _config(tmp_path: Path, extra: str = "", name: str = "cse-in", cse_id: str = "/id-in") -> Config:
    return load_config(str(write_config(tmp_path / name, cse_id=cse_id, name=name, db=":memory:", extra=extra)))


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[tuple[CSE, str]]:
    cse = CSE(config, store=MemoryStore())
    await cse.start()
    try:
        assert cse.http is not None
        yield cse, f"http://127.0.0.1:{cse.http.port}"
    finally:
        await cse.stop()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a text exposition (None: absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-zA-Z_:]+)(\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


async def test_health_is_ready_and_says_queue_depths(tmp_path: Path) -> None:
    async with serving(_config(tmp_path)) as (_, url), aiohttp.ClientSession() as s:
        async with s.get(f"{url}/health") as r:
            assert r.status == 200
            body = await r.json()
        assert body == {"status": "ready", "checks": {"store": "writable"},
                        "queues": {"notificationsPending": 0, "storedRequests": 0}}
        async with s.get(f"{url}/health/live") as r:
            assert (r.status, await r.json()) == (200, {"status": "alive"})


async def test_health_is_503_while_the_registrar_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    extra = (f'[registrar]\ncse_id = "/id-up"\nname = "cse-up"\npoa = "http://127.0.0.1:{dead}"\n'
             "timeout_s = 0.5\n")
    async with serving(_config(tmp_path, extra, name="cse-mn", cse_id="/id-mn")) as (_, url), \
            aiohttp.ClientSession() as s:
        async with s.get(f"{url}/health") as r:
            assert r.status == 503
            body = await r.json()
        assert body["status"] == "not ready"
        assert body["checks"] == {"store": "writable", "registrar": "not registered"}
        assert body["reasons"] == ["not registered with its registrar"]
        assert "/id-up" not in json.dumps(body)  # no identities in it
        async with s.get(f"{url}/health/live") as r:
            assert r.status == 200  # alive, only not ready


async def test_health_is_503_when_the_store_cannot_write(tmp_path: Path) -> None:
    class Failing(MemoryStore):
        @property
        def writable(self) -> bool:
            return False

    cse = CSE(_config(tmp_path), store=Failing())
    await cse.start()
    try:
        assert cse.http is not None
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{cse.http.port}/health") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["store"] == "cannot write"
    finally:
        await cse.stop()


async def test_metrics_per_cse_count_requests_latency_commits_and_state(tmp_path: Path) -> None:
    """Two CSEs in one process: each has its own registry and counts only its own requests."""
    async with serving(_config(tmp_path)) as (cse, url), \
            serving(_config(tmp_path, name="cse-b", cse_id="/id-b")) as (_, other), \
            aiohttp.ClientSession() as s:
        http = Http(s)
        r = await http.send("POST", f"{url}/cse-in", fr="C", ty=2,
                            body={"m2m:ae": {"rn": "app", "api": "Napp", "rr": True, "srv": ["3"]}})
        aei = r.body["m2m:ae"]["aei"]
        for i in range(3):
            r = await http.send("POST", f"{url}/cse-in/app", fr=aei, ty=3, body={"m2m:cnt": {"rn": f"c{i}"}})
            assert r.rsc == 2001
        r = await http.send("GET", f"{url}/cse-in/app/c0", fr=aei)
        assert r.rsc == 2000
        r = await http.send("GET", f"{url}/cse-in/nothing", fr=aei)
        assert r.rsc == 4004
        r = await http.send("GET", f"{url}/cse-in", fr=ADMIN, rvi="1")  # refused by the binding
        assert r.rsc == 4001
        resources = await cse.store.count()
        async with s.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        async with s.get(f"{other}/metrics") as resp:
            text_b = await resp.text()
    assert _sample(text, "cse_requests_total", op="create", ty="cnt", rsc="2001") == 3
    assert _sample(text, "cse_requests_total", op="create", ty="ae", rsc="2001") == 1
    assert _sample(text, "cse_requests_total", op="retrieve", ty="cnt", rsc="2000") == 1
    assert _sample(text, "cse_requests_total", op="retrieve", ty="-", rsc="4004") == 1
    assert _sample(text, "cse_requests_total", op="-", ty="-", rsc="4001") == 1  # no Request yet
    assert _sample(text, "cse_request_duration_seconds_count", op="create") == 4
    assert (_sample(text, "cse_store_commit_seconds_count") or 0) >= 4
    assert _sample(text, "cse_ready") == 1
    assert _sample(text, "cse_store_resources") == resources
    for state in ("establishing", "established", "terminating"):
        assert _sample(text, "cse_sessions", state=state) == 0
    assert _sample(text, "cse_stored_requests") == 0
    assert _sample(text, "cse_notifications_pending") == 0
    assert _sample(text, "cse_notifications_sent_total") == 0
    assert _sample(text, "cse_notifications_failed_total") == 0
    assert _sample(text_b, "cse_requests_total", op="create", ty="cnt", rsc="2001") is None  # its own only


async def test_metrics_only_for_allowed_peers_and_switchable(tmp_path: Path) -> None:
    async with serving(_config(tmp_path, '[metrics]\nallow = ["10.0.0.0/8"]\n')) as (_, url), \
            aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as r:
        assert r.status == 403
        assert "cse_requests" not in await r.text()
    async with serving(_config(tmp_path, "[metrics]\nenabled = false\n[health]\nenabled = false\n",
                               name="cse-off")) as (cse, url), aiohttp.ClientSession() as s:
        assert cse.metrics is None
        for path in ("/metrics", "/health"):
            async with s.get(f"{url}{path}", headers={"X-M2M-RI": "1", "X-M2M-RVI": "3",
                                                       "X-M2M-Origin": ADMIN}) as r:
                assert r.headers.get("X-M2M-RSC") == "4004"  # an ordinary oneM2M target again


async def test_request_log_line_carries_query_rsc_and_dbg_and_json_format(tmp_path: Path) -> None:
    for fmt in ("text", "json"):
        directory = tmp_path / fmt
        cfg = write_config(directory, extra=f'[log]\nformat = "{fmt}"\n')
        proc = CSEProcess(cfg, directory / "cse-in.db", extra_args=["--log-level", "info"])
        await proc.start()
        try:
            async with aiohttp.ClientSession() as s:
                r = await Http(s).send("GET", f"{proc.url}/cse-in?rcn=42", fr=ADMIN, rqi="logged")
                assert r.rsc == 4000
        finally:
            assert await proc.stop() == 0
        lines = [ln for ln in proc.lines if "rcn=42" in ln]
        assert len(lines) == 1, proc.lines
        line = lines[0]
        if fmt == "text":
            assert "GET /cse-in?rcn=42 from CAdmin -> 4000" in line
            assert "dbg=\"" in line and "rcn" in line.split("dbg=", 1)[1]
        else:
            rec = json.loads(line)
            assert rec["level"] == "INFO" and rec["logger"] == "cse.http"
            req = rec["request"]
            assert (req["method"], req["target"], req["origin"], req["rsc"], req["rqi"]) == (
                "GET", "/cse-in?rcn=42", ADMIN, 4000, "logged")
            assert "rcn" in req["dbg"]
            # every line the CSE wrote is one JSON object, READY aside (stdout, for scripts)
            for other in proc.lines:
                if other.strip() and not other.startswith("READY "):
                    json.loads(other)


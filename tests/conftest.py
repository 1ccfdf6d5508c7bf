"""Shared fixtures: an in-process CSE (no sockets) and real CSE processes.

* ``inproc`` -- a started :class:`cse.app.CSE` on the memory store with a
  :class:`FakeClock`; ``inproc.call(...)`` sends a Request through the
  dispatcher and returns the Response.
* ``cse_process`` -- a factory starting ``python -m cse`` as a subprocess on a
  free port (``--http-port 0``; the port is read from the READY line), with a
  store in a temp dir; every process is stopped at teardown.
* ``http`` -- an aiohttp session plus ``send(...)`` speaking the oneM2M
  binding, for end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest

from cse.app import CSE
from cse.config import Config, load_config
from cse.core.messages import Operation, Request, Response
from cse.store.memory import MemoryStore
from tests.childenv import checkout_first

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "CAdmin"
_rqi = itertools.count(1)


class FakeClock:
    """A clock tests move by hand: :meth:`advance` is time passing (the wall
    clock and :meth:`monotonic` move together), :meth:`step` is the wall
    clock being set (only it moves)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.mono = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.t += seconds

    async def wait_until(self, t: float) -> None:
        """A CSE's ``wait_until`` on this clock: the time comes at once (an
        operation held until its X-M2M-OET costs a test nothing)."""
        self.advance(max(0.0, t - self.t))


@dataclass
class InProc:
    """An in-process CSE and a shorthand to call it."""

    cse: CSE
    clock: FakeClock

    async def call(self, op: Operation, to: str, fr: str | None = ADMIN, *, ty: int | None = None,
                   pc: Any = None, query: dict[str, tuple[str, ...]] | None = None, **kw: Any) -> Response:
        req = Request(op=op, to=to, fr=fr, rqi=f"rq{next(_rqi)}", ty=ty, pc=pc,
                      query=query or {}, **kw)
        return await self.cse.handle(req)

    async def register(self, rn: str = "app", fr: str = "C", **attrs: Any) -> str:
        """Register an AE and return its AE-ID."""
        body = {"rn": rn, "api": "Napp", "rr": True, "srv": ["3"], **attrs}
        resp = await self.call(Operation.CREATE, self.cse.config.cse.name, fr, ty=2, pc={"m2m:ae": body})
        assert resp.rsc == 2001, resp.pc
        return str(resp.pc["m2m:ae"]["aei"])


@contextlib.asynccontextmanager
async def started_inproc(config: Config | None = None) -> AsyncIterator[InProc]:
    """A started in-process CSE on a fake clock (``config``: the defaults,
    in memory, unless given), stopped on exit."""
    clock = FakeClock()
    cse = CSE(config or load_config(None, db=":memory:"), store=MemoryStore(), clock=clock,
              monotonic=clock.monotonic, wait_until=clock.wait_until)
    await cse.start(serve_http=False)
    try:
        yield InProc(cse, clock)
    finally:
        await cse.stop()


@pytest.fixture
async def inproc() -> AsyncIterator[InProc]:
    async with started_inproc() as ip:
        yield ip


@pytest.fixture
async def cse_app() -> AsyncIterator[CSE]:
    """A started in-process CSE on the system clock: its timers run for real."""
    cse = CSE(load_config(None, db=":memory:"), store=MemoryStore())
    await cse.start(serve_http=False)
    try:
        yield cse
    finally:
        await cse.stop()


# -- real processes -------------------------------------------------------------

@dataclass
class CSEProcess:
    """A ``python -m cse`` subprocess."""

    config_path: Path
    db_path: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to subprocess_env() (e.g. libfaketime's)
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        """Start and wait for the READY line (no sleeping)."""
        port_args = ["--http-port", str(self.port)]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cse", "--config", str(self.config_path), *port_args,
            "--log-level", "warning", *self.extra_args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=str(self.config_path.parent), env={**subprocess_env(), **self.env})
        assert self.proc.stdout is not None

        async def ready() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError("CSE exited before READY:\n" + "".join(self.lines))
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if line.startswith("READY "):
                    self.port = int(line.rsplit(":", 1)[1])
                    return

        await asyncio.wait_for(ready(), timeout)
        self._drain = asyncio.get_running_loop().create_task(self._drain_output())

    async def _drain_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace"))

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for exit; returns the exit code."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._drain, timeout)
        return code

    async def kill(self) -> None:
        """SIGKILL: the crash case."""
        await self.stop(signal.SIGKILL)


def subprocess_env() -> dict[str, str]:
    """The environment of a CSE subprocess: this checkout first on the path.

    Why: the child runs from its tmp dir, where ``import cse`` would find
    whatever ``pip install -e`` points at (another checkout), not the code
    under test."""
    return {**checkout_first(), "PYTHONUNBUFFERED": "1"}


def write_config(directory: Path, *, cse_id: str = "/id-in", name: str = "cse-in",
                 db: str | None = None, extra: str = "") -> Path:
    """A TOML config in ``directory`` with its store there too."""
    directory.mkdir(parents=True, exist_ok=True)
    db_path = db or str(directory / f"{name}.db")
    text = (f'[cse]\ncse_id = "{cse_id}"\nname = "{name}"\nadmin = "{ADMIN}"\n\n'
            f'[http]\nhost = "127.0.0.1"\nport = 0\n\n[store]\npath = "{db_path}"\n{extra}')
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
async def cse_process(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[CSEProcess] = []

    async def factory(*, cse_id: str = "/id-in", name: str = "cse-in", extra: str = "",
                      subdir: str = "cse", start: bool = True, env: dict[str, str] | None = None) -> CSEProcess:
        cfg = write_config(tmp_path / subdir, cse_id=cse_id, name=name, extra=extra)
        p = CSEProcess(cfg, tmp_path / subdir / f"{name}.db", env=dict(env or {}))
        started.append(p)
        if start:
            await p.start()
        return p

    try:
        yield factory
    finally:
        for p in started:
            if p.proc is not None and p.proc.returncode is None:
                await p.kill()


@dataclass
class HttpReply:
    status: int
    rsc: int
    headers: dict[str, str]
    body: Any
    raw: bytes


class Http:
    """A tiny oneM2M HTTP client for tests."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(self, method: str, url: str, *, fr: str | None = ADMIN, ty: int | None = None,
                   body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None,
                   rvi: str | None = "3", rqi: str | None = None) -> HttpReply:
        h: dict[str, str] = {}
        if fr is not None:
            h["X-M2M-Origin"] = fr
        h["X-M2M-RI"] = rqi if rqi is not None else f"rq{next(_rqi)}"
        if rvi is not None:
            h["X-M2M-RVI"] = rvi
        if ty is not None:
            h["Content-Type"] = f"application/json;ty={ty}"
        elif body is not None or raw is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, url, headers=h, data=data) as resp:
            payload = await resp.read()
            cbor = "cbor" in resp.headers.get("Content-Type", "")
            parsed = (cbor2.loads(payload) if cbor else json.loads(payload)) if payload else None
            rsc = int(resp.headers.get("X-M2M-RSC", "0"))
            return HttpReply(resp.status, rsc, dict(resp.headers), parsed, payload)


@contextlib.asynccontextmanager
async def served_cse(tmp_path: Path, toml: str) -> AsyncIterator[CSE]:
    """A started in-process CSE with its HTTP (and WebSocket) port on
    127.0.0.1 (a free one), the memory store and the config ``toml``
    (written to ``tmp_path``); stopped on the way out."""
    cfg = tmp_path / "cse.toml"
    cfg.write_text(toml)
    app = CSE(load_config(str(cfg), http_port=0, http_host="127.0.0.1", db=":memory:"), store=MemoryStore())
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Http(session)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many pytest-xdist workers ``-n auto`` (``addopts`` in setup.cfg) starts.

    Why: one test at a time leaves a core idle while it waits on real
    processes, sockets and timers; :data:`XDIST_WORKERS` workers keep the two
    cores of a CI machine busy for the whole suite (or a directory). A run of named files
    or tests (``python -m pytest tests/unit/test_x.py``) stays in-process:
    starting workers would cost more than it saves, and ``-s``/``--pdb``
    work as usual there. An explicit ``-n N`` (``-n 0``: none) overrides this."""
    if config.option.usepdb:
        return 0
    here = config.invocation_params.dir
    paths = [here / str(a).split("::", 1)[0] for a in config.args] or [here]
    return XDIST_WORKERS if any(p.is_dir() for p in paths) else 0


#: Workers for a whole-suite run. ``--dist loadgroup`` runs each ``xdist_group``
#: on one worker, one test after another: modules sharing a module-scoped fixture
#: (below), and the group ``"timing"``: tests that assert a time, rate or
#: memory bound or fork many processes (soak, crash loop, bench smoke, the demo,
#: the cluster launcher, peer faults, tarpit, the filter speed check), so that
#: they never run against each other.
XDIST_WORKERS = 2


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups into the node IDs
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep a module whose tests share a module- or class-scoped fixture on one xdist worker.

    Why: ``--dist loadgroup`` hands ungrouped tests out one by one, so such a
    fixture (a browser and a CSE pair, a CSE serving a whole fuzz module)
    would be built on every worker, and again each time a worker comes back
    to the module after tests of another one. Grouping the module by its name
    builds it once. A test that already names its ``xdist_group`` keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d and d[-1].scope in ("module", "class") for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--long``: run the long versions of the crash loop, the soak and the
    big fuzz (minutes each) instead of their short CI versions (seconds)."""
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long reliability runs (crash loop, soak, big fuzz)")


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    """True when pytest was started with ``--long``."""
    return bool(request.config.getoption("--long"))


# The loopback notification receiver fixture, shared by every test module.
from tests.notify_receiver import receiver  # noqa: E402,F401

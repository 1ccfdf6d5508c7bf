"""Start several CSEs as one unit: ``python -m cse.cluster samples/pair``.

Starts every ``*.toml`` of a directory (or the files given) as its own
``python -m cse`` process, waits until each is ready and each one with a
``[registrar]`` is registered (its remoteCSE exists on both sides and a
request through it reaches the registrar), prints where they are, then
either waits for Ctrl-C/SIGTERM or runs ``--run CMD`` (with ``CSE_URL_<NAME>``
and ``CSE_ID_<NAME>`` of each CSE in its environment) and stops. Every CSE
it started is stopped with SIGTERM on the way out.

``--base-port N`` moves the CSEs to ports N, N+1, ... (and rewrites the
registrar addresses to match); ``--var DIR`` puts their stores in DIR.
Both serve tests and parallel runs; by default the configs are used as
written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cse import __version__
from cse.security.probe import admin_access

__all__ = ["Member", "Cluster", "main"]


@dataclass
class Member:
    """One CSE of the cluster."""

    config: Path
    raw: dict[str, Any]
    proc: asyncio.subprocess.Process | None = None
    url: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def csi(self) -> str:
        return str(self.raw["cse"]["cse_id"])

    @property
    def name(self) -> str:
        return str(self.raw["cse"]["name"])

    @property
    def admin(self) -> str:
        return str(self.raw["cse"].get("admin", "CAdmin"))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):  # e.g. auth.verify_keys, auth.clients[i].originators
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        tables = {k: v for k, v in values.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        for key, value in values.items():
            if key not in tables:
                lines.append(f"{key} = {_value(value)}")
        lines.append("")
        for key, items in tables.items():  # arrays of tables: [[auth.clients]]
            for item in items:
                lines.append(f"[[{section}.{key}]]")
                lines.extend(f"{k} = {_value(v)}" for k, v in item.items())
                lines.append("")
    return "\n".join(lines)


class Cluster:
    """The CSEs of one directory, started and stopped together."""

    def __init__(self, configs: list[Path], *, base_port: int | None = None, var: Path | None = None,
                 log_level: str = "warning") -> None:
        self.members = _members(configs)
        self.log_level = log_level
        self._tmp = tempfile.TemporaryDirectory(prefix="cse-cluster-")
        if base_port is not None or var is not None:
            self._rewrite(base_port, var)

    def _rewrite(self, base_port: int | None, var: Path | None) -> None:
        moved: dict[str, int] = {}
        for i, m in enumerate(self.members):
            if base_port is not None:
                old = m.raw.setdefault("http", {}).get("port", 8080)
                moved[f"127.0.0.1:{old}"] = base_port + i
                m.raw["http"]["port"] = base_port + i
            if var is not None:
                m.raw.setdefault("store", {})["path"] = str(var / f"{m.name}.db")
        for m in self.members:
            reg = m.raw.get("registrar")
            if reg is not None:
                for old, new in moved.items():
                    if reg["poa"].endswith(old):
                        reg["poa"] = reg["poa"][: -len(old)] + f"127.0.0.1:{new}"
            client = m.raw.get("auth_client")
            if client is not None and "token_url" in client:  # the issuer's token endpoint moved too
                for old, new in moved.items():
                    if f"//{old}/" in client["token_url"]:
                        client["token_url"] = client["token_url"].replace(f"//{old}/", f"//127.0.0.1:{new}/")
                        break
            path = Path(self._tmp.name) / m.config.name
            path.write_text(_toml(m.raw))
            m.config = path

    async def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until all are ready and registered."""
        await asyncio.gather(*(self._spawn(m, timeout) for m in self.members))
        await asyncio.wait_for(self._registered(), timeout)

    async def _spawn(self, m: Member, timeout: float) -> None:
        m.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cse", "--config", str(m.config), "--log-level", self.log_level,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert m.proc.stdout is not None

        async def ready() -> None:
            assert m.proc is not None and m.proc.stdout is not None
            while True:
                raw = await m.proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{m.csi} exited during start-up:\n" + "".join(m.output))
                line = raw.decode(errors="replace")
                m.output.append(line)
                if line.startswith("READY "):
                    m.url = line.split()[2]
                    return

        await asyncio.wait_for(ready(), timeout)
        asyncio.get_running_loop().create_task(self._echo(m))

    async def _echo(self, m: Member) -> None:
        assert m.proc is not None and m.proc.stdout is not None
        while raw := await m.proc.stdout.readline():
            line = raw.decode(errors="replace")
            m.output.append(line)
            sys.stdout.write(f"[{m.name}] {line}")

    async def _registered(self) -> None:
        by_csi = {m.csi: m for m in self.members}
        async with aiohttp.ClientSession() as s:
            for m in self.members:
                reg = m.raw.get("registrar")
                if reg is None:
                    continue
                target = f"{m.url}/~{reg['cse_id']}/{reg['name']}"
                peer = by_csi.get(reg["cse_id"])
                back = f"{peer.url}/~{m.csi}/{m.name}" if peer else None
                for url, at in ((target, m), (back, peer)):
                    if url is None or at is None:
                        continue
                    tls, auth = admin_access(at.raw)  # HTTPS trust and an admin token (docs/security.md)
                    while True:  # poll until the route works both ways
                        async with s.get(url, ssl=tls if tls is not None else True,
                                         headers={"X-M2M-Origin": at.admin, "X-M2M-RI": "cluster",
                                                  "X-M2M-RVI": "3", **auth}) as r:
                            if r.headers.get("X-M2M-RSC") == "2000":
                                break
                        await asyncio.sleep(0.1)

    async def stop(self) -> int:
        """SIGTERM every member; return the worst exit code."""
        worst = 0
        for m in self.members:
            if m.proc is not None and m.proc.returncode is None:
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members:
            if m.proc is not None:
                try:
                    code = await asyncio.wait_for(m.proc.wait(), 30)
                except TimeoutError:
                    m.proc.kill()
                    code = await m.proc.wait()
                worst = max(worst, abs(code))
        self._tmp.cleanup()
        return worst


class UsageError(Exception):
    """A configuration named on the command line that cannot be used; the message says which and why."""


def _config_paths(configs: list[str]) -> list[Path]:
    """The configuration files named: a directory stands for its ``*.toml``.
    A name that does not exist is a :class:`UsageError` (relative names are
    read from the current directory, which is not always the repository's)."""
    paths: list[Path] = []
    for p in configs:
        path = Path(p)
        if not path.exists():
            raise UsageError(f"'{p}' not found (from {Path.cwd()}): name a directory of *.toml "
                             "configurations or a configuration file; the samples are in the repository's samples/")
        paths.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return paths


def _members(paths: list[Path]) -> list[Member]:
    """Read every configuration; one that is not TOML or names no ``[cse]`` is a :class:`UsageError`."""
    members: list[Member] = []
    for path in paths:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read configuration '{path}': {exc}") from None
        if not isinstance(raw.get("cse"), dict) or "cse_id" not in raw["cse"] or "name" not in raw["cse"]:
            raise UsageError(f"configuration '{path}' has no [cse] cse_id and name")
        members.append(Member(path, raw))
    return members


async def _main(args: argparse.Namespace) -> int:
    try:
        paths = _config_paths(args.configs)  # before any CSE starts: nothing else runs on the loop yet
        if not paths:
            raise UsageError(f"no *.toml configuration found in {', '.join(args.configs)}")
        cluster = Cluster(paths, base_port=args.base_port, var=Path(args.var) if args.var else None,
                          log_level=args.log_level)
    except UsageError as exc:
        print(f"cse-cluster: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        await cluster.start(args.timeout)
        for m in cluster.members:
            reg = m.raw.get("registrar")
            via = f", registered with {reg['cse_id']}" if reg else ""
            print(f"{m.csi} ({m.name}) ready at {m.url}{via}", flush=True)
        print("CLUSTER READY", flush=True)
        if args.run:
            env = {**os.environ}
            for m in cluster.members:  # where each CSE is, and its CSE-ID (docs/configuration.md "cse-cluster")
                key = m.name.upper().replace("-", "_")
                env[f"CSE_URL_{key}"], env[f"CSE_ID_{key}"] = m.url, m.csi
            proc = await asyncio.create_subprocess_shell(args.run, env=env)
            waiter = asyncio.ensure_future(proc.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                proc.terminate()
                await waiter
            stopper.cancel()
            code = proc.returncode or 0
        else:
            await stop.wait()
    except (TimeoutError, RuntimeError) as exc:
        print(f"cse.cluster: start-up failed: {exc or 'timed out waiting for registration'}", file=sys.stderr)
        code = 1
    finally:
        worst = await cluster.stop()
    return code or (1 if worst else 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cse-cluster", description="Start a set of CSEs together "
                                "(also: python -m cse.cluster).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("configs", nargs="+", help="a directory of *.toml configs, or config files")
    p.add_argument("--base-port", type=int, help="move the CSEs to consecutive ports from here")
    p.add_argument("--var", help="directory for the stores (default: as configured)")
    p.add_argument("--run", help="run this shell command once all are ready, then stop (its exit code wins)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for start-up and registration")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return asyncio.run(_main(p.parse_args(argv)))


def console() -> None:
    """The ``cse-cluster`` command (setup.cfg entry_points)."""
    sys.exit(main())


if __name__ == "__main__":
    console()

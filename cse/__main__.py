"""``python -m cse`` / ``cse``: run one CSE in the foreground (docs/configuration.md "Starting a CSE").

SIGINT/SIGTERM stop it cleanly: in-flight requests finish, the store is
flushed, exit code 0. A configuration error, a port in use or a damaged
store (docs/troubleshooting.md "Store damaged or full") exits non-zero
with one line naming the cause.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from cse import __version__
from cse.app import CSE
from cse.config import ConfigError, load_config
from cse.logformat import configure as configure_logging
from cse.store.keyfile import StoreKeyError
from cse.store.tinydb_store import StoreCorruptError

__all__ = ["main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cse", description="Run a oneM2M CSE with the SMG CSF.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", help="TOML configuration file (see README); default: IN-CSE /id-in on :8080")
    p.add_argument("--http-port", type=int, help="override http.port (0 picks a free port)")
    p.add_argument("--http-host", help="override http.host")
    p.add_argument("--db", help="override store.path (':memory:' keeps nothing)")
    p.add_argument("--allow-empty-store", action="store_true",
                   help="start even though the store's snapshot is missing or empty (docs/troubleshooting.md)")
    p.add_argument("--accept-clock-jump", action="store_true",
                   help="let expiry run although the clock jumped ahead of the store's last recorded time "
                        "(docs/troubleshooting.md \"Clock jumps\")")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    return p.parse_args(argv)


async def _run(cse: CSE) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await cse.start()
    if cse.http is not None:
        # One machine-readable line for scripts that started us with port 0.
        print(f"READY {cse.config.cse.cse_id} {cse.security.scheme}://{cse.config.http.host}:{cse.http.port}",
              flush=True)
    try:
        await stop.wait()
    finally:
        logging.getLogger("cse").info("stopping %s", cse.config.cse.cse_id)
        await cse.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    try:
        config = load_config(args.config, http_port=args.http_port, http_host=args.http_host,
                             db=args.db, log_level=args.log_level)
    except ConfigError as exc:
        print(f"cse: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.allow_empty_store:
        config = replace(config, store=replace(config.store, allow_empty=True))
    if args.accept_clock_jump:
        config = replace(config, cse=replace(config.cse, accept_clock_jump=True))
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(_run(CSE(config)))
    except (OSError, StoreKeyError, StoreCorruptError) as exc:
        print(f"cse: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

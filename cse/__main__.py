"""``python -m cse`` / ``cse``: run one CSE in the foreground (docs/configuration.md "Starting a CSE").

SIGINT/SIGTERM stop it cleanly: in-flight requests finish, the store is
flushed, exit code 0. A configuration error, a port in use or a damaged
store (docs/troubleshooting.md "Store damaged or full") exits non-zero
with one line naming the cause.

``python -m cse --config FILE migrate`` creates or migrates the PostgreSQL
store's schema and exits (docs/configuration.md "PostgreSQL store"); a CSE
also does that itself when it starts.  ``store export FILE`` / ``store
import FILE`` copy a (stopped) CSE's store to a file and from a file into
an empty store, whichever the backend (docs/configuration.md "Moving a
store between backends").

``--workers N`` (N > 1) serves the CSE with N processes on one port and
one PostgreSQL store (cse.workers, docs/scaling.md); ``--shared`` runs one
such worker (what ``--workers`` starts, and what another machine runs to
join).  Both need ``[store] backend = "postgresql"``: with the embedded
store they are a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from cse import __version__
from cse.app import CSE, build_store
from cse.config import Config, ConfigError, load_config, shared_store
from cse.logformat import configure as configure_logging
from cse.store.keyfile import StoreKeyError
from cse.store.memory import IndexedStore, MemoryStore
from cse.store.pg_store import PostgresStore, StoreUnavailableError
from cse.store.tinydb_store import StoreCorruptError
from cse.store.transfer import TransferError, export_store, import_store
from cse.workers import supervise

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
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serve this CSE with N processes on one port and one PostgreSQL store (docs/scaling.md)")
    p.add_argument("--shared", action="store_true",
                   help="run as one of several workers on the PostgreSQL store (what --workers starts)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    p.add_argument("command", nargs="?", choices=["run", "migrate", "store"], default="run",
                   help="run (default): serve; migrate: create or migrate the PostgreSQL store's schema and exit; "
                        "store export FILE / store import FILE: copy the store's content to or from a file "
                        "(the CSE stopped)")
    p.add_argument("store_args", nargs="*", metavar="export|import FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.command == "store" and (len(args.store_args) != 2 or args.store_args[0] not in ("export", "import")):
        p.error("usage: store export FILE | store import FILE")
    if args.command != "store" and args.store_args:
        p.error(f"unexpected arguments: {' '.join(args.store_args)}")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if (args.workers > 1 or args.shared) and args.command != "run":
        p.error("--workers and --shared apply to running the CSE only")
    return args


async def _transfer(config: Config, action: str, path: str) -> int:
    """``store export FILE`` / ``store import FILE`` (cse.store.transfer)."""
    store = build_store(config)
    if not isinstance(store, IndexedStore) or isinstance(store, MemoryStore):
        print("cse: store: the memory store keeps nothing to export or import", file=sys.stderr)
        return 2
    await store.open()
    try:
        if action == "export":
            counts = await export_store(store, path)
            print(f"cse: exported {counts.docs} resource(s) and {counts.kv} KV entr(y/ies) to {path}")
        else:
            counts = await import_store(store, path)
            print(f"cse: imported {counts.docs} resource(s) and {counts.kv} KV entr(y/ies) from {path}; "
                  f"the CSE on this store needs the same store key file ({config.store.key_path})")
    finally:
        await store.close()
    return 0


async def _migrate(config: Config) -> int:
    """Open the PostgreSQL store (which migrates it) and close it again."""
    if config.store.backend != "postgresql" or config.store.path == ":memory:":
        print("cse: migrate: the store is not PostgreSQL ([store] backend); nothing to migrate")
        return 0
    store = build_store(config)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        print(f"cse: PostgreSQL store {store.where} is at schema version {store.schema_version}")
    finally:
        await store.close()
    return 0


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
    if args.workers > 1 or args.shared:
        try:
            config = shared_store(config)
        except ConfigError as exc:
            print(f"cse: configuration error: {exc}", file=sys.stderr)
            return 2
    configure_logging(config.log_level, config.log_format)
    if args.workers > 1 and not args.shared:
        return asyncio.run(supervise(sys.argv[1:] if argv is None else argv, args.workers))
    try:
        if args.command == "migrate":
            return asyncio.run(_migrate(config))
        if args.command == "store":
            return asyncio.run(_transfer(config, args.store_args[0], args.store_args[1]))
        asyncio.run(_run(CSE(config)))
    except TransferError as exc:
        print(f"cse: store {args.store_args[0]}: {exc}", file=sys.stderr)
        return 1
    except (OSError, StoreKeyError, StoreCorruptError, StoreUnavailableError) as exc:
        print(f"cse: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

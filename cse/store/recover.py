"""``python -m cse.store.recover``: cut a damaged journal back to its last good record.

Why: the store refuses to start on journal damage other than a torn last
record (cse/store/journal.py), because dropping acknowledged commits
silently is worse than not starting.  This command is the explicit, logged
way out (docs/troubleshooting.md "Store damaged or full"): with the CSE
stopped, it copies each damaged journal file whole to
``<file>.damaged-<UTC timestamp>`` and truncates the original to the end of
its last valid record.  If ``<journal>.old`` (a compaction that did not
finish) is cut, the active journal's records no longer follow on and that
file is set aside the same way.  The snapshot is not touched: a damaged
snapshot needs a backup.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime

from cse.store.journal import fsync_dir, scan_journal

__all__ = ["recover", "main"]


def _keep_copy(path: str, stamp: str) -> str:
    copy = f"{path}.damaged-{stamp}"
    shutil.copy2(path, copy)
    os.chmod(copy, 0o600)
    with open(copy, "rb") as f:
        os.fsync(f.fileno())
    return copy


def _cut(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        os.fsync(f.fileno())


def recover(store_path: str, *, now: datetime | None = None) -> list[str]:
    """Recover the journal(s) of the store at ``store_path``; one line per action."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    journal = store_path + ".journal"
    actions: list[str] = []
    old_cut = False
    for path in (journal + ".old", journal):
        scan = scan_journal(path, lenient=True)
        if path == journal and old_cut and scan.size:
            copy = _keep_copy(path, stamp)
            os.remove(path)
            actions.append(f"{path}: follows the cut {journal}.old, so its {len(scan.records)} record(s) "
                           f"cannot be replayed; moved whole to {copy}")
            continue
        if not scan.torn:
            continue
        copy = _keep_copy(path, stamp)
        _cut(path, scan.good_size)
        old_cut = old_cut or path.endswith(".old")
        actions.append(f"{path}: dropped {scan.size - scan.good_size} byte(s) from offset {scan.good_size} "
                       f"(kept {len(scan.records)} record(s)); the file as it was is in {copy}")
    if actions:
        fsync_dir(os.path.dirname(os.path.abspath(journal)))
    return actions


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 0 also when there was nothing to do."""
    p = argparse.ArgumentParser(prog="python -m cse.store.recover",
                                description="Cut a damaged store journal back to its last good record "
                                            "(run with the CSE stopped; a copy of each changed file is kept).")
    p.add_argument("store", help="the store path ([store] path, e.g. var/cse-in.db)")
    args = p.parse_args(argv)
    try:
        actions = recover(args.store)
    except OSError as exc:
        print(f"recover: {exc}", file=sys.stderr)
        return 1
    for line in actions or [f"{args.store}: journal has no damage; nothing changed"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

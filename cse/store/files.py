"""Store files are private to the CSE's user (docs/security.md "Keys at rest").

Why: the snapshot and the journal hold every resource, wrapped session keys
included, and the key file holds the key that unwraps them. So every file
the store writes is created mode 0600 (whatever the umask), a directory it
creates is 0700, and a file left more open by an earlier version is
tightened when the store opens. A directory that already existed is not
changed (it may be shared, or a system directory; docs/security.md "Keys
at rest" says to make it private).
"""

from __future__ import annotations

import logging
import os
import stat
from typing import IO, Any

__all__ = ["FILE_MODE", "DIR_MODE", "private_dirs", "open_private", "tighten"]

log = logging.getLogger("cse.store")

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dirs(directory: str) -> None:
    """Create ``directory`` and missing parents mode 0700 (an existing one is left as it is)."""
    directory = os.path.abspath(directory or ".")
    missing: list[str] = []
    cur = directory
    while not os.path.isdir(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # the umask may have taken bits away, never added: set exactly


def open_private(path: str, mode: str, *, exclusive: bool = False, **kw: Any) -> IO[Any]:
    """``open(path, mode)`` for ``w``/``a`` modes, the file created 0600 and
    made 0600 if it existed; with ``exclusive`` an existing file is an error."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if exclusive:
        flags |= os.O_EXCL
    if mode.startswith("a"):
        flags |= os.O_APPEND
    elif mode.startswith("w"):
        flags |= os.O_TRUNC
    else:
        raise ValueError(f"open_private writes only ('w' or 'a' modes), not {mode!r}")
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        raise


def tighten(path: str) -> None:
    """Make an existing store file 0600 when others may read it (written by an earlier version)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, FILE_MODE)
        log.info("store file %s was mode %04o; now %04o", path, mode, FILE_MODE)

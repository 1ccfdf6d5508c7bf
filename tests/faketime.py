"""A CSE process on a wall clock the test sets: libfaketime (Debian's
``faketime`` package, installed by .ci/run) preloaded into the process,
reading its offset from a file the test rewrites (``FAKETIME_NO_CACHE``: read
at every clock call), the monotonic clock left real
(``FAKETIME_DONT_FAKE_MONOTONIC``) -- the way an NTP step or an operator's
``date -s`` moves the wall clock and nothing else (docs/troubleshooting.md
"Clock jumps"). The child stays this venv's interpreter (``sys.executable``,
tests/conftest.py CSEProcess), and only its own environment has the preload.
"""

from __future__ import annotations

import glob
from pathlib import Path

__all__ = ["FakeTime", "libfaketime"]


def libfaketime() -> str:
    """The path of libfaketime's shared library; a test failure (not a skip)
    when it is not installed: the clock-step tests must run in CI."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1")
                   + glob.glob("/usr/local/lib/faketime/libfaketime.so.1"))
    assert found, "libfaketime is not installed: the clock-step tests need it (apt-get install faketime)"
    return found[0]


class FakeTime:
    """The offset of a faked wall clock, in a file under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.file = directory / "faketime.offset"
        self.offset = 0.0
        self.set(0.0)

    def set(self, offset_s: float) -> None:
        """Move the faked wall clock to real time + ``offset_s`` (the running
        process sees it at its next clock call)."""
        self.offset = offset_s
        self.file.write_text(f"{'+' if offset_s >= 0 else '-'}{abs(int(offset_s))}\n")

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": libfaketime(), "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

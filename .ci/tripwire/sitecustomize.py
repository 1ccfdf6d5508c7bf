"""CI tripwire: record imports of the project by an interpreter outside the CI venv.

Why: ``.ci/run`` installs the project into a fresh virtualenv only, so a test
whose child process runs another interpreter (say a symlink to the venv's
``python`` placed outside the venv, which starts the *base* interpreter) can
pass on a developer machine that also has the project installed globally and
fail on a clean one. ``.ci/run`` puts this directory first on ``PYTHONPATH``
(so every child that inherits the environment imports this module at start-up,
see the ``site`` module docs) and names the venv in ``CI_TRIPWIRE_VENV`` and a
log file in ``CI_TRIPWIRE_LOG``. In an interpreter whose ``sys.prefix`` is not
that venv, a meta path finder appends one line to the log for every import of
``cse``, ``ae_sdk`` or ``resources`` -- successful or not -- and then lets the
normal finders do their work. ``.ci/run`` fails if the log is not empty.

Outside CI (the variables unset) this module does nothing. Interpreters started
with ``-E``, ``-I`` or ``-S`` ignore ``PYTHONPATH`` or skip ``site`` and are not
watched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

WATCHED = frozenset({"cse", "ae_sdk", "cse_resources", "resources"})


class Tripwire:
    """A meta path finder that never finds anything: it only writes down who asked."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.seen: set[str] = set()                 # `python -m` looks a module up twice

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name in WATCHED and name not in self.seen:   # a submodule always comes after its package
            self.seen.add(name)
            line = (f"pid {os.getpid()}: {sys.executable} (sys.prefix {sys.prefix}) imported {name!r}; "
                    f"argv {getattr(sys, 'orig_argv', sys.argv)}; cwd {os.getcwd()}\n")
            with open(self.log, "a", encoding="utf-8") as f:   # O_APPEND: one line per write
                f.write(line)
        return None


def _install() -> None:
    venv, log = os.environ.get("CI_TRIPWIRE_VENV"), os.environ.get("CI_TRIPWIRE_LOG")
    if venv and log and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        sys.meta_path.insert(0, Tripwire(log))


_install()

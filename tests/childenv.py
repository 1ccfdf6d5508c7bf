"""Environments for the child processes tests start.

Why: a child must run the code under test with the interpreter that runs the
tests (in CI, the virtualenv's ``.ci/run`` created) and must keep what the
parent has on ``PYTHONPATH`` -- CI puts a tripwire there that records any
import of the project by an interpreter outside that virtualenv
(``.ci/tripwire/sitecustomize.py``). Replacing ``PYTHONPATH`` would hide a
child from it, so these helpers only ever prepend.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ROOT", "checkout_first", "python_on_path"]

ROOT = Path(__file__).resolve().parent.parent


def checkout_first(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with this checkout first on ``PYTHONPATH``.

    Why: a child that runs from another directory would otherwise import
    whatever ``pip install -e`` points at (maybe another checkout), not the
    code under test. The inherited entries stay, after it."""
    base = dict(os.environ if env is None else env)
    path = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return {**base, "PYTHONPATH": path}


def python_on_path(bindir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) in which the command ``python`` is this interpreter.

    Writes ``bindir/python``, a shell script that execs :data:`sys.executable`,
    and puts ``bindir`` first on ``PATH``. Why not a symlink to
    :data:`sys.executable`: a virtualenv's interpreter finds its ``pyvenv.cfg``
    next to the path it was started by, so started through a link outside the
    virtualenv it is the base interpreter, without the project installed
    (``No module named ae_sdk`` on a machine where only the venv has it)."""
    base = dict(os.environ if env is None else env)
    bindir.mkdir(parents=True, exist_ok=True)
    shim = bindir / "python"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    return {**base, "PATH": os.pathsep.join(filter(None, [str(bindir), base.get("PATH")]))}

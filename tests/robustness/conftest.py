"""Hypothesis keeps caches (even with ``database=None``) under its home
directory, ``.hypothesis/`` in the working directory by default: point it
at the system temp dir so test runs leave nothing in the repository."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "cse-tests-hypothesis"))

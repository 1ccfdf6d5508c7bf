"""What ``pip install`` puts in place: the package names and the commands.

Why: the repository's ``resources/`` folder used to be installed as a
top-level package ``resources``, a name any other distribution may use (one
would overwrite the other). It is now installed as ``cse_resources``, and
the registry must still find every type declaration, in an editable install
(this venv) and in a regular one. And a newcomer's first commands must
exist, say their version, and fail with one line, not a traceback, when a
relative path does not resolve from where they stand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from cse import __version__
from cse.core import declarations
from cse.core.registry import Registry
from tests.childenv import ROOT

BIN = Path(sys.executable).parent

def _declared(types: Path) -> list[str]:
    """Every declaration file below ``types`` (specializations in subfolders), by relative path."""
    return sorted(p.relative_to(types).as_posix() for p in types.rglob("*.json") if not p.name.startswith("_"))


TYPES = _declared(ROOT / "resources" / "types")
BASES = [t for t in TYPES if "/" not in t]  # one registry entry each; specializations belong to their base


def test_editable_install_reads_the_repository_folder_under_a_name_that_cannot_clash(tmp_path: Path) -> None:
    assert {d["_file"] for d in declarations.load_type_declarations()} == set(TYPES)
    assert len(Registry.load().by_ty) == len(BASES)
    # Outside the checkout (-I: no PYTHONPATH, no current directory): only what pip installed
    probe = ("import importlib.util, cse_resources; from cse.core.registry import Registry; "
             "print(importlib.util.find_spec('resources'), len(Registry.load().by_ty), cse_resources.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, check=True, capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert out == ["None", str(len(BASES)), str(ROOT / "resources" / "__init__.py")]


def test_regular_install_has_no_top_level_resources_and_finds_every_type(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name if src.exists() else (src.mkdir() or src / name))
    for name in ("cse", "ae_sdk", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    assert not (target / "resources").exists()
    assert _declared(target / "cse_resources" / "types") == TYPES
    # the web console's static files ship with the package (docs/webui.md): no build step for the user
    console = sorted(p.name for p in (ROOT / "cse" / "webui").iterdir() if p.suffix in (".html", ".js", ".css"))
    assert "index.html" in console
    assert sorted(p.name for p in (target / "cse" / "webui").iterdir()) == console
    assert {"cse", "cse-cluster", "ae-sdk"} <= {p.name for p in (target / "bin").iterdir()}
    # -I: no PYTHONPATH, no current directory on the path; the installed copy comes first
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from cse.core.registry import Registry; import cse, cse_resources; "
             "print(len(Registry.load().by_ty), cse.__file__, cse_resources.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(target)], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=60).stdout.split()
    assert out[0] == str(len(BASES))
    assert all(p.startswith(str(target)) for p in out[1:]), out


def test_every_command_says_its_version() -> None:
    for command in ("cse", "cse-cluster", "ae-sdk"):
        done = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{command} {__version__}"


def test_cluster_with_a_path_that_does_not_resolve_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "cse-cluster"), "samples/pair"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'samples/pair' not found" in lines[0], done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[cse\n")
    done = subprocess.run([str(BIN / "cse-cluster"), str(bad)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "cannot read configuration" in done.stderr

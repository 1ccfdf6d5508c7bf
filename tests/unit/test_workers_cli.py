"""``--workers N`` / ``--shared`` on the command line (docs/scaling.md).

Why: several processes on the embedded store would each keep their own copy
of one set of files and lose each other's changes, so they are refused up
front with a configuration error naming the fix; and each worker the
supervisor starts must get the same command line minus ``--workers``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cse.__main__ import main
from cse.config import ConfigError, load_config
from cse.workers import worker_argv


def test_workers_on_the_embedded_store_is_a_configuration_error(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--workers", "2"], ["--shared"]):
        assert main([*args, "--db", str(tmp_path / "cse.db")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cse: configuration error: ") and '"postgresql"' in err, err
    assert not list(tmp_path.iterdir()), "nothing was started"


def test_shared_in_the_file_needs_postgresql(tmp_path: Path) -> None:
    cfg = tmp_path / "cse.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "cse.db"}"\nshared = true\n')
    with pytest.raises(ConfigError, match=r"store\.backend"):
        load_config(str(cfg))


def test_workers_apply_to_running_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--workers", "2", "migrate"])
    assert "--workers and --shared apply to running the CSE only" in capsys.readouterr().err


def test_each_worker_runs_the_same_command_without_workers() -> None:
    assert worker_argv(["--config", "a.toml", "--workers", "3", "--log-level", "info"]) == [
        "--config", "a.toml", "--log-level", "info", "--shared"]
    assert worker_argv(["--workers=2", "--config", "a.toml"]) == ["--config", "a.toml", "--shared"]

"""``samples/postgres``: the pair on PostgreSQL starts, registers and serves.

Why: the sample is what an operator copies (samples/postgres/README.md).
Its configs run as they are, except the database (the test's) and the
schemas (fresh ones, dropped afterwards): the cluster launcher starts both
CSEs, waits for the registration through the PostgreSQL stores, and runs a
command against them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg

from cse.config import load_config
from tests.conftest import ROOT, subprocess_env
from tests.e2e.test_curl_scripts import _run
from tests.pg import PG_DSN, pg_schema
from tests.sdk.test_curl_session_flow import two_free_ports

SAMPLE = ROOT / "samples" / "postgres"


def test_the_sample_configs_use_postgresql_with_a_schema_each() -> None:
    configs = [load_config(str(SAMPLE / f"cse{i}.toml")) for i in (1, 2)]
    assert [c.store.backend for c in configs] == ["postgresql", "postgresql"]
    assert [c.store.schema for c in configs] == ["cse1", "cse2"]
    assert all((c.store.dsn or "").startswith("postgresql://postgres@127.0.0.1:5432/") for c in configs)


async def test_the_sample_pair_runs_on_postgresql(tmp_path: Path) -> None:
    async with pg_schema() as s1, pg_schema() as s2:
        pair = tmp_path / "pair"
        pair.mkdir()
        for name, schema in (("cse1", s1), ("cse2", s2)):
            text = (SAMPLE / f"{name}.toml").read_text()
            text = text.replace("postgresql://postgres@127.0.0.1:5432/cse", PG_DSN)
            pair.joinpath(f"{name}.toml").write_text(text.replace(f'schema  = "{name}"', f'schema  = "{schema}"'))
        check = ("import json, os, urllib.request as u; "
                 "r = u.urlopen(u.Request(os.environ['CSE_URL_CSE1'] + '/~/id-cse2/cse2', "
                 "headers={'X-M2M-Origin': 'CAdmin', 'X-M2M-RI': 'r1', 'X-M2M-RVI': '3'})); "
                 "print('THROUGH', json.load(r)['m2m:cb']['csi'])")
        code, text = await _run(
            [sys.executable, "-m", "cse.cluster", str(pair), "--base-port", str(two_free_ports()),
             "--var", str(tmp_path / "var"), "--run", f"{sys.executable} -c \"{check}\""],
            {**subprocess_env(), "CSE_PYTHON": sys.executable})
        assert code == 0, text
        assert "THROUGH /id-cse2" in text, text
        conn = await asyncpg.connect(PG_DSN)
        try:
            for schema, remote in ((s1, "id-cse2"), (s2, "id-cse1")):
                assert await conn.fetchval(f'SELECT ty FROM "{schema}".doc WHERE ri = $1', remote) == 16
        finally:
            await conn.close()

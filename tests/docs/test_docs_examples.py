"""The documentation's examples run, so they cannot rot.

* Every ```python block of ``docs/*.md`` is a complete program: it is run as
  a subprocess against real CSE processes started here -- one CSE
  (``CSE_URL``) or, for blocks that read ``CSE1_URL``/``CSE2_URL``, a pair
  (CSE2 registered with CSE1, as ``samples/pair``) -- and must exit 0.
* ``samples/sensor.py --count 3`` leaves exactly 3 contentInstances.
* Every relative link in ``docs/*.md`` points to an existing file.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.childenv import checkout_first
from tests.conftest import ADMIN, ROOT, CSEProcess, Http
from tests.waiting import until

DOCS = ROOT / "docs"
RUN_TIMEOUT = 90.0  # upper bound for one example (not a performance target)
CSI1, CSI2 = "/id-cse1", "/id-cse2"

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def python_blocks() -> list[tuple[str, int, str]]:
    """(file name, 1-based block number, code) of every python block in docs/*.md."""
    out: list[tuple[str, int, str]] = []
    for md in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(_BLOCK.finditer(md.read_text(encoding="utf-8")), start=1):
            out.append((md.name, i, m.group(1)))
    return out


BLOCKS = python_blocks()


def test_sdk_guide_has_examples() -> None:
    names = [name for name, _, _ in BLOCKS]
    assert "sdk.md" in names, "docs/sdk.md should hold runnable python examples"
    assert any("CSE1_URL" in code for name, _, code in BLOCKS if name == "sdk.md"), "no session example"


async def run_python(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``python *args``; (exit code, combined output). Killed after RUN_TIMEOUT."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=str(cwd), env={**checkout_first(), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"python {' '.join(args)} did not finish within {RUN_TIMEOUT:g} s") from None
    return proc.returncode or 0, out.decode(errors="replace")


async def start_pair(cse_process: Callable[..., Any], http: Http) -> tuple[CSEProcess, CSEProcess]:
    """CSE1 (/id-cse1, cse1) and CSE2 (/id-cse2, cse2) registered with CSE1, both ways."""
    cse1 = await cse_process(cse_id=CSI1, name="cse1", subdir="cse1")
    reg = (f'[registrar]\ncse_id = "{CSI1}"\nname = "cse1"\npoa = "{cse1.url}"\ncheck_interval_s = 0.5\n'
           "\n[forwarding]\ntimeout_s = 5\n")
    cse2 = await cse_process(cse_id=CSI2, name="cse2", subdir="cse2", extra=reg)

    async def registered() -> bool:
        there = await http.send("GET", f"{cse2.url}/~{CSI1}/cse1", fr=ADMIN)
        back = await http.send("GET", f"{cse1.url}/~{CSI2}/cse2", fr=ADMIN)
        return there.rsc == back.rsc == 2000
    await until(registered, "CSE2 registered with CSE1 (both ways)", timeout=20)
    return cse1, cse2


@pytest.mark.parametrize("name,number,code", BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
async def test_docs_python_block_runs(name: str, number: int, code: str, cse_process: Callable[..., Any],
                                      http: Http, tmp_path: Path) -> None:
    env: dict[str, str] = {}
    if "CSE1_URL" in code or "CSE2_URL" in code:
        cse1, cse2 = await start_pair(cse_process, http)
        env.update(CSE1_URL=cse1.url, CSE2_URL=cse2.url)
    if "CSE_URL" in code.replace("CSE1_URL", "").replace("CSE2_URL", ""):
        env["CSE_URL"] = (await cse_process()).url
    script = tmp_path / f"{Path(name).stem}_{number}.py"
    script.write_text(code, encoding="utf-8")
    rc, out = await run_python([str(script)], env, tmp_path)
    assert rc == 0, f"docs/{name} python block {number} exited {rc}:\n{out}"


async def test_sensor_sample_posts_count_readings(cse_process: Callable[..., Any], http: Http,
                                                  tmp_path: Path) -> None:
    cse = await cse_process()
    rc, out = await run_python([str(ROOT / "samples" / "sensor.py"), cse.url, "--count", "3", "--interval", "0"],
                               {}, tmp_path)
    assert rc == 0, out
    assert out.count("reading ") == 3, out
    r = await http.send("GET", f"{cse.url}/cse-in/sensor/readings", fr=ADMIN)
    assert r.rsc == 2000, r.body
    assert r.body["m2m:cnt"]["cni"] == 3
    r = await http.send("GET", f"{cse.url}/cse-in/sensor/readings?rcn=6", fr=ADMIN)
    refs = r.body.get("m2m:rrl", {}).get("rrf", []) if r.body else []
    assert len([c for c in refs if c.get("typ") == 4]) == 3, r.body
    # A second run reuses the AE and the container and adds to them.
    rc, out = await run_python([str(ROOT / "samples" / "sensor.py"), cse.url, "--count", "1", "--interval", "0"],
                               {}, tmp_path)
    assert rc == 0, out
    r = await http.send("GET", f"{cse.url}/cse-in/sensor/readings", fr=ADMIN)
    assert r.body["m2m:cnt"]["cni"] == 4


def relative_links() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for md in sorted(DOCS.glob("*.md")):
        text = _BLOCK.sub("", md.read_text(encoding="utf-8"))
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # http:, mailto:, in-page anchors
            out.append((md.name, target))
    return out


def test_docs_relative_links_exist() -> None:
    links = relative_links()
    assert links, "expected some relative links in docs/*.md"
    broken = [(name, target) for name, target in links
              if not (DOCS / target.split("#", 1)[0]).resolve().exists()]
    assert not broken, f"broken relative links: {broken}"

"""The web console in a real browser (docs/webui.md).

Why: the console is JavaScript talking to the CSE's oneM2M API; only a
browser shows that its tree, forms, sessions view and live log work, that
the Content-Security-Policy lets the page run at all, and that a resource
holding ``<script>`` is shown as text and never runs. Debian's chromium
(/usr/bin/chromium, installed by .ci/run) is driven by Playwright; nothing
is downloaded. One browser and one registered CSE pair serve the module, so
its wall time stays within a few seconds.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from ae_sdk import AEClient, HttpTransport
from tests.conftest import ADMIN, CSEProcess, Http, write_config
from tests.sdk.session_pair import CSI1, CSI2, T, start_registered_pair, window_ahead

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 10_000  # upper bound of every wait in the page (not a performance target)
#: set to a path (docs/img/webui.png) to refresh the README's screenshot from this run
SCREENSHOT_OUT = os.environ.get("CSE_WEBUI_SCREENSHOT")


@dataclass
class Env:
    cse1: CSEProcess
    cse2: CSEProcess
    http: Http
    browser: BrowserContext
    shots: Path

    async def page(self, cse: CSEProcess, origin: str = ADMIN) -> Page:
        """The console of ``cse`` in a new tab, as ``origin``, once the tree shows the CSEBase."""
        page = await self.browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors  # type: ignore[attr-defined]
        await page.goto(f"{cse.url}/webui/")
        await expect(page.locator(f'#tree[data-loaded-as="{ADMIN}"]')).to_be_attached(timeout=WAIT_MS)
        if origin != ADMIN:
            await page.fill("#origin", origin)
            await page.click("#apply-origin")
            await expect(page.locator(f'#tree[data-loaded-as="{origin}"]')).to_be_attached(timeout=WAIT_MS)
        return page


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    tmp = tmp_path_factory.mktemp("webui")
    started: list[CSEProcess] = []

    async def cse_process(*, cse_id: str, name: str, subdir: str, extra: str = "") -> CSEProcess:
        cfg = write_config(tmp / subdir, cse_id=cse_id, name=name, extra=extra)
        proc = CSEProcess(cfg, tmp / subdir / f"{name}.db")
        started.append(proc)
        await proc.start()
        return proc

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
            async_playwright() as pw:
        http = Http(session)
        browser: BrowserContext | None = None
        try:
            cse1, cse2 = await start_registered_pair(cse_process, http)
            browser = await pw.chromium.launch_persistent_context(
                str(tmp / "chromium-profile"), executable_path=CHROMIUM, args=ARGS,
                viewport={"width": 1280, "height": 760})
            yield Env(cse1, cse2, http, browser, tmp / "shots")
        finally:
            if browser is not None:
                await browser.close()
            for p in started:
                await p.kill()


async def distinct_colours(env: Env, png: bytes) -> int:
    """How many distinct colours a screenshot holds, counted by the browser
    from the PNG's decoded pixels (a blank page has one)."""
    page = await env.browser.new_page()
    try:
        return int(await page.evaluate("""async (b64) => {
            const img = new Image();
            img.src = "data:image/png;base64," + b64;
            await img.decode();
            const c = document.createElement("canvas");
            c.width = img.width; c.height = img.height;
            const g = c.getContext("2d");
            g.drawImage(img, 0, 0);
            const px = g.getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < px.length; i += 4) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
            return seen.size;
        }""", base64.b64encode(png).decode()))
    finally:
        await page.close()


async def shot(env: Env, page: Page, name: str) -> bytes:
    """A screenshot of ``page`` that must not be blank (many colours: text, panels, the header)."""
    env.shots.mkdir(exist_ok=True)
    png = await page.screenshot(path=str(env.shots / f"{name}.png"))
    colours = await distinct_colours(env, png)
    assert colours >= 16, f"screenshot {name} looks blank: {colours} distinct colours"
    return png


async def register_ae(env: Env, cse: CSEProcess, base: str, rn: str, **attrs: Any) -> str:
    r = await env.http.send("POST", f"{cse.url}/{base}", fr=f"C{rn}", ty=2, body={"m2m:ae": {
        "rn": rn, "api": "Nwebui", "rr": False, "srv": ["3"], **attrs}})
    assert r.rsc == 2001, r.body
    return str(r.body["m2m:ae"]["aei"])


async def test_tree_opens_on_demand_and_the_form_creates_a_container(env: Env) -> None:
    aei = await register_ae(env, env.cse1, "cse1", "treeae")
    made = await env.http.send("POST", f"{env.cse1.url}/cse1/treeae", fr=aei, ty=3,
                               body={"m2m:cnt": {"rn": "existing", "mni": 7}})
    assert made.rsc == 2001, made.body
    page = await env.page(env.cse1, origin=aei)
    ae = page.locator('li[data-path="cse1/treeae"]')
    await expect(ae).to_be_visible(timeout=WAIT_MS)
    await ae.locator(":scope > .toggle").click()  # children loaded now, not before
    existing = page.locator('li[data-path="cse1/treeae/existing"]')
    await expect(existing).to_contain_text("mni=7", timeout=WAIT_MS)
    await existing.locator(":scope > .label").click()
    await expect(page.locator("#detail-json")).to_contain_text(made.body["m2m:cnt"]["ri"], timeout=WAIT_MS)

    await ae.locator(":scope > .label").click()
    await expect(page.locator("#detail-json")).to_contain_text('"aei"', timeout=WAIT_MS)
    await page.click("#create-box summary")
    await page.select_option("#create-ty", "3")
    await page.fill("#create-rn", "fromForm")
    await page.click("#create-submit")
    await expect(page.locator("#status")).to_contain_text("2001", timeout=WAIT_MS)
    await expect(page.locator('li[data-path="cse1/treeae/fromForm"]')).to_be_visible(timeout=WAIT_MS)
    there = await env.http.send("GET", f"{env.cse1.url}/cse1/treeae/fromForm", fr=aei)
    assert there.rsc == 2000 and there.body["m2m:cnt"]["rn"] == "fromForm", there.body

    # access control applies as to any client: the AE does not see the CSEBase's sessions (the admin does)
    assert await page.locator('li[data-path="cse1/sessions"]').count() == 0
    await page.click("#discover-box summary")
    await page.fill("#discover-query", "fu=1&ty=3")
    await page.click("#discover-submit")
    await expect(page.locator("#discover-results")).to_contain_text("cse1/treeae/fromForm", timeout=WAIT_MS)
    await page.evaluate("window.scrollTo(0, 0)")
    png = await shot(env, page, "tree")
    if SCREENSHOT_OUT:
        Path(SCREENSHOT_OUT).write_bytes(png)

    # UPDATE and DELETE through the forms, on the container the form made
    created = page.locator('li[data-path="cse1/treeae/fromForm"]')
    await created.locator(":scope > .label").click()
    await expect(page.locator("#detail-json")).to_contain_text('"rn": "fromForm"', timeout=WAIT_MS)
    await page.click("#update-box summary")
    await page.fill("#update-body", '{"m2m:cnt": {"lbl": ["edited"], "mni": 3}}')
    await page.click("#update-submit")
    await expect(page.locator("#status")).to_contain_text("2004", timeout=WAIT_MS)
    there = await env.http.send("GET", f"{env.cse1.url}/cse1/treeae/fromForm", fr=aei)
    assert (there.body["m2m:cnt"]["lbl"], there.body["m2m:cnt"]["mni"]) == (["edited"], 3), there.body
    await page.click("#delete-button")  # the first click only asks
    await expect(page.locator("#delete-button")).to_contain_text("Really delete")
    assert (await env.http.send("GET", f"{env.cse1.url}/cse1/treeae/fromForm", fr=aei)).rsc == 2000
    await page.click("#delete-button")
    await expect(created).to_have_count(0, timeout=WAIT_MS)
    # the parent is shown next, and the DELETE's answer stays on the status line (it used to be replaced at once)
    await expect(page.locator("#detail-json")).to_contain_text('"aei"', timeout=WAIT_MS)
    await expect(page.locator("#status")).to_contain_text("DELETE cse1/treeae/fromForm → 2002", timeout=WAIT_MS)
    assert (await env.http.send("GET", f"{env.cse1.url}/cse1/treeae/fromForm", fr=aei)).rsc == 4004
    assert page.errors == []  # type: ignore[attr-defined]
    await page.close()


async def test_markup_in_resources_is_shown_as_text_and_never_runs(env: Env) -> None:
    evil = "<script>window.__pwned = 1</script>"
    img = "<img src=x onerror=__pwned=2>"
    aei = await register_ae(env, env.cse1, "cse1", "xssae", lbl=[evil])
    r = await env.http.send("POST", f"{env.cse1.url}/cse1/xssae", fr=aei, ty=3,
                            body={"m2m:cnt": {"rn": "c", "lbl": [img]}})
    assert r.rsc == 2001, r.body
    resp = await env.http.session.get(f"{env.cse1.url}/webui/")
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    page = await env.page(env.cse1)
    await expect(page.locator('li[data-path="cse1/sessions"]')).to_be_visible(timeout=WAIT_MS)
    ae = page.locator('li[data-path="cse1/xssae"]')
    await expect(ae).to_contain_text(evil, timeout=WAIT_MS)  # the markup, as characters
    await ae.locator(":scope > .toggle").click()
    child = page.locator('li[data-path="cse1/xssae/c"]')
    await expect(child).to_contain_text(img, timeout=WAIT_MS)
    await child.locator(":scope > .label").click()
    await expect(page.locator("#detail-json")).to_contain_text("onerror", timeout=WAIT_MS)
    assert await page.locator("#tree script, #tree img, #detail script, #detail img").count() == 0
    assert await page.evaluate("window.__pwned === undefined")
    assert page.errors == []  # type: ignore[attr-defined]
    await page.close()


async def test_live_log_streams_requests_to_the_admin_only(env: Env) -> None:
    page = await env.page(env.cse1)
    await page.click('#tabs button[data-tab="log"]')
    await page.click("#log-start")
    await expect(page.locator("#log-state")).to_have_text("connected", timeout=WAIT_MS)
    probe = await env.http.send("GET", f"{env.cse1.url}/cse1/no-such-thing-42", fr="Cprobe")
    assert probe.rsc == 4103, probe.body  # an unregistered originator: refused, with a dbg
    row = page.locator("#log-table tbody tr", has_text="/cse1/no-such-thing-42")
    await expect(row).to_contain_text("Cprobe", timeout=WAIT_MS)
    await expect(row).to_contain_text("4103")
    await expect(row).to_contain_text("not registered")
    await shot(env, page, "log")
    await page.click("#log-stop")

    other = await env.page(env.cse1, origin="Cnotadmin")
    await other.click('#tabs button[data-tab="log"]')
    await other.click("#log-start")
    await expect(other.locator("#log-state")).to_contain_text("refused (4103)", timeout=WAIT_MS)
    await page.close()
    await other.close()


async def test_a_session_shows_on_both_cses_of_the_pair_without_its_key(env: Env) -> None:
    ae1 = AEClient(HttpTransport(env.cse1.url, timeout=T), cse_name="cse1", cse_id=CSI1)
    ae2 = AEClient(HttpTransport(env.cse2.url, timeout=T), cse_name="cse2", cse_id=CSI2)
    try:
        await ae1.register("sesae1", scp=["smg"])
        await ae2.register("sesae2", scp=["smg"])
        await ae1.enable_sessions(lambda offer: False)
        await ae2.enable_sessions()
        s1 = await ae1.establish(f"{CSI2}/{ae2.originator}", epa={"role": "collector"})
        s2 = await ae2.next_session(T)
        assert s1.sid == s2.sid
        opens, sch = window_ahead(3600.0)
        next_window = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(opens))
        pol = await env.http.send("POST", f"{env.cse1.url}/ses{s1.sid}/sessionPolicies", fr=ae1.originator,
                                  ty=9006, body={"m2m:spo": {"rn": "later", "spt": 2, "sch": sch}})
        assert pol.rsc == 2001, pol.body
        key = base64.urlsafe_b64encode(s1.key).rstrip(b"=").decode()
        for cse, hop in ((env.cse1, CSI2), (env.cse2, CSI1)):
            page = await env.page(cse)
            await page.click('#tabs button[data-tab="sessions"]')
            card = page.locator(f'article.session[data-sid="{s1.sid}"]')
            await expect(card).to_contain_text("established", timeout=WAIT_MS)
            await expect(card).to_contain_text(ae1.originator)
            await expect(card).to_contain_text(ae2.originator)
            await expect(card).to_contain_text(hop)  # its next hop: the other CSE
            await expect(card).to_contain_text("collector")
            # the policy (replicated to CSE2), with its next window an hour ahead (UTC, to the second)
            await expect(card).to_contain_text("store-and-forward")
            await expect(card).to_contain_text(next_window)
            assert key not in await page.content(), "the session key is on the page"
            await shot(env, page, f"sessions-{hop.strip('/')}")
            await page.close()

        page = await env.page(env.cse2)
        await page.click('#tabs button[data-tab="remotes"]')
        remotes = page.locator("#remotes")
        await expect(remotes).to_contain_text(CSI1, timeout=WAIT_MS)
        row = remotes.locator("tbody tr", has_text=CSI1)
        await expect(row.locator("td", has_text=re.compile(r"^reachable$"))).to_have_count(1)
        await expect(row.locator("td", has_text=re.compile(r"^registered$"))).to_have_count(1)
        await expect(row).to_contain_text("smg")
        await page.close()
    finally:
        await ae1.close()
        await ae2.close()


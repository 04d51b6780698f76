"""``agentkit view``: the sweep viewer, in a real headless browser (Debian's chromium driven by Playwright; the
test installs nothing and skips, saying why, only where no browser is installed), plus its HTTP edges."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentkit.faces.view import Viewer, create_view_app, run_view_runner
from agentkit.sweep import ResultsDB, load_spec, run_sweep
from agentkit.testing import Reply, ScriptedServer, prompt_kind

SPEC = """
name = "view"
concurrency = 4
budgets = [900]
seeds = [0]

[[datasets]]
name = "gsm8k"
limit = 3

[[methods]]
name = "long-cot"

[[methods]]
name = "pdr"
label = "pdr-2x2"
params = {{ rounds = 2, drafts = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 4
"""


def script(body: dict[str, Any]) -> Reply:
    if prompt_kind(body) == "summary":
        return Reply("The drafts say 18 <b>bold</b>.")
    return Reply("Adding it up <img src=x onerror=alert(1)> gives \\boxed{18}")


async def make_db(tmp_path: Path) -> Path:
    spec_path = tmp_path / "spec.toml"
    async with ScriptedServer(script) as server:
        spec_path.write_text(SPEC.format(url=server.base_url))
        await run_sweep(load_spec(spec_path), tmp_path / "r.sqlite")
    return tmp_path / "r.sqlite"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    viewer = Viewer(await make_db(tmp_path))
    runner, url = await run_view_runner(create_view_app(viewer))
    try:
        yield url
    finally:
        await runner.cleanup()


async def rows_become(page: Any, n: int) -> None:
    """Wait until the cells table shows ``n`` rows (polled from here: the page's CSP allows no eval)."""
    for _ in range(200):
        if await page.locator("#cells tbody tr").count() == n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the cells table never showed {n} rows")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on this machine (Debian: apt-get install -y chromium); .ci/run installs it")


async def test_the_page_renders_filters_and_opens_a_pdr_cell_in_a_real_browser(served: str) -> None:
    binary = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'agentkit[dev]')")
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(served)
            await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            assert await page.locator("#groups tbody tr").count() == 2  # long-cot and pdr
            assert await page.locator("#plots img").count() == 1
            assert await page.locator("#cells tbody tr").count() == 6
            # A filter changes the rows.
            await page.select_option("#f-method", "long-cot")
            await rows_become(page, 3)
            methods = await page.locator("#cells tbody tr td:nth-child(2)").all_text_contents()
            assert methods == ["long-cot"] * 3
            # A PDR cell's run opens: rounds, drafts, the workspace, every call.
            await page.select_option("#f-method", "pdr-2x2")
            await rows_become(page, 3)
            await page.locator("#cells tbody tr").first.click()
            await page.wait_for_selector("#trace h4")
            text = await page.locator("#trace").inner_text()
            assert "Round 1" in text and "Round 2" in text and "draft 0" in text and "workspace" in text
            assert await page.locator("#trace section.round details").count() == 4  # 2 drafts + summary, 1 draft
            assert await page.locator("#trace table").nth(1).locator("tbody tr").count() == 4  # 4 calls
            # Text from the database is text, never markup.
            assert await page.locator("#trace img, #trace b, #cells img").count() == 0
            workspace = await page.locator("#trace section.round details pre").nth(2).text_content()
            assert workspace is not None and "<b>bold</b>" in workspace
        finally:
            await browser.close()
    assert problems == []


async def test_http_edges_are_4xx_and_the_database_is_never_written(served: str, tmp_path: Path) -> None:
    before = (tmp_path / "r.sqlite").stat().st_mtime_ns
    async with aiohttp.ClientSession() as s:
        for path, status in [("api/cells?outcome=maybe", 400), ("api/cells?limit=0", 400),
                             ("api/cells?offset=-1", 400), ("api/cells?limit=x", 400),
                             ("api/cells/" + "0" * 32, 404), ("api/cells/..%2F..%2Fetc", 404),
                             ("api/nothing", 404)]:
            async with s.get(served + path) as r:
                assert r.status == status, path
        async with s.post(served + "api/cells") as r:
            assert r.status == 405
        async with s.get(served + "api/cells?outcome=correct") as r:
            data = await r.json()
        assert data["total"] == 2 and {row["outcome"] for row in data["rows"]} == {"correct"}  # gsm8k-test-0 is 18
        async with s.get(served + "api/cells/" + data["rows"][0]["key"]) as r:
            cell = await r.json()
        assert cell["trace"]["problem"] and cell["trace"]["calls"]
    assert (tmp_path / "r.sqlite").stat().st_mtime_ns == before


async def test_an_older_database_without_traces_or_new_columns_is_viewed_read_only(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (key TEXT PRIMARY KEY, sweep TEXT, dataset TEXT, item_id TEXT, method TEXT, "
                 "method_params TEXT, backend TEXT, backend_info TEXT, budget INTEGER, seed INTEGER, status TEXT, "
                 "error TEXT, answer TEXT, reference TEXT, correct INTEGER, grade_status TEXT, grader TEXT, "
                 "b_seq INTEGER, b_total INTEGER, input_tokens INTEGER, output_tokens INTEGER, "
                 "answer_output_tokens INTEGER, calls INTEGER, latency_s REAL, prompt_hash TEXT, sampling TEXT, "
                 "finished_at REAL)")
    conn.execute("INSERT INTO results (key, dataset, item_id, method, backend, budget, seed, status, answer, "
                 "reference, correct, grader, b_seq, b_total) VALUES ('" + "a" * 32 + "', 'gsm8k', 'q1', 'long-cot', "
                 "'b', 512, 0, 'ok', '3', '3', 1, 'math-verify==0.9', 10, 10)")
    conn.commit()
    conn.close()
    viewer = Viewer(path)
    assert viewer.cells()["total"] == 1 and viewer.cell("a" * 32)["trace"] is None  # type: ignore[index]
    assert (await viewer.summary())["groups"][0]["accuracy"] == 1.0
    conn = sqlite3.connect(path)
    assert "extraction" not in {r[1] for r in conn.execute("PRAGMA table_info(results)")}  # nothing was added
    conn.close()
    with pytest.raises(Exception, match="no results database"):
        ResultsDB(tmp_path / "missing.sqlite", readonly=True)

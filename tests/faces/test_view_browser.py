"""The viewer as a researcher uses it, in a real headless browser (Debian's chromium, Playwright): the layout at
1024 and 1920 px, sort, item search, permalinks, keyboard navigation, LaTeX rendered offline, a paired
comparison's won and lost items opening two runs side by side, answers labelled by the extraction rule, and no
axe-core violations on the page or on ``report.html``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentkit.evaluation.datasets import load_dataset
from agentkit.faces.view import Viewer, create_view_app, run_view_runner
from agentkit.sweep import load_spec, run_sweep, write_report
from agentkit.testing import Reply, ScriptedServer, prompt_kind

from .test_view import chromium

SPEC = """
name = "researcher"
concurrency = 4
budgets = [900]
seeds = [0]

[[datasets]]
name = "math500"
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
PROBLEMS = load_dataset("math500", limit=3)
DRAFT = "We compute 3**0.5 in code first, then $x^2 + 1$ and \\(\\frac{1}{2}\\) by hand."


def script(body: dict[str, Any]) -> Reply:
    text = " ".join(m["content"] for m in body["messages"])
    item = next(i for i, p in enumerate(PROBLEMS) if p.text in text)
    right = f"So the answer is \\boxed{{{PROBLEMS[item].reference}}}"
    kind = prompt_kind(body)
    if kind == "summary":
        return Reply("Both drafts consider $x^2 + 1$ and stop short of an answer.")
    if kind == "refine":  # PDR's final draft: right on items 0 and 2
        return Reply(right if item != 1 else "So the answer is \\boxed{-7}")
    if body.get("temperature", 0) > 0:  # PDR's first-round drafts sample; long CoT does not
        return Reply(DRAFT)
    return Reply(right if item != 2 else "So the answer is \\boxed{-7}")  # long CoT: right on items 0 and 1


@pytest.fixture
async def researcher(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    async with ScriptedServer(script) as server:
        (tmp_path / "spec.toml").write_text(SPEC.format(url=server.base_url))
        await run_sweep(load_spec(tmp_path / "spec.toml"), tmp_path / "r.sqlite")
    report = write_report(tmp_path / "r.sqlite", tmp_path / "report")
    runner, url = await run_view_runner(create_view_app(Viewer(tmp_path / "r.sqlite")))
    try:
        yield url, Path(report["html"])
    finally:
        await runner.cleanup()


async def until(check: Any, what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def axe(page: Any, node_clients: Path) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(node_clients / "node_modules" / "axe-core" / "axe.min.js"))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:3]} for v in result["violations"]]


async def test_the_viewer_answers_a_researchers_questions(researcher: tuple[str, Path], node_clients: Path,
                                                          tmp_path: Path) -> None:
    url, report_html = researcher
    binary = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'agentkit[dev]')")
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            for width in (1024, 1920):
                context = await browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
                page = await context.new_page()
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                await page.goto(url)
                await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
                # Layout: the cells table never runs under the run panel, and a low row's run opens in view.
                table, right = await page.locator("#cells").bounding_box(), await page.locator("#right").bounding_box()
                scroller = await page.locator("#cells").locator("xpath=..").bounding_box()
                assert table and right and scroller
                assert scroller["x"] + scroller["width"] <= right["x"] + 1 or right["y"] >= scroller["y"] + scroller["height"]
                await page.locator("#cells tbody tr").last.scroll_into_view_if_needed()
                await page.locator("#cells tbody tr").last.click()
                await page.wait_for_selector("#trace h3")
                heading = await page.locator("#trace h3").bounding_box()
                assert heading and 0 <= heading["y"] < 800, (width, heading)
                await page.screenshot(path=str(tmp_path / f"viewer-{width}.png"), full_page=False)
                await context.close()

            context = await browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
            page = await context.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(url)
            await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            cells = page.locator("#cells tbody tr")
            # Sort by a column (again: the other way), and search by item.
            await page.locator("#cells th button[data-sort='method']").click()
            await until(lambda: _col(page, 2, ["long-cot"] * 3 + ["pdr-2x2"] * 3), "sorted by method")
            await page.locator("#cells th button[data-sort='method']").click()
            await until(lambda: _col(page, 2, ["pdr-2x2"] * 3 + ["long-cot"] * 3), "sorted descending")
            assert await page.locator("#cells th[aria-sort='descending']").count() == 1
            item = PROBLEMS[1].problem_id
            await page.fill("#f-q", item)
            await until(lambda: _count(cells, 2), "the search")
            assert set(await page.locator("#cells tbody tr td:nth-child(1)").all_text_contents()) == {item}
            # Keyboard: focus the first row, arrow down, Enter opens the second row's run.
            await cells.first.focus()
            await page.keyboard.press("ArrowDown")
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#trace h3")
            opened = await page.locator("#trace h3").inner_text()
            assert item in opened and "long-cot" in opened  # sorted descending: pdr first, then long-cot
            # A permalink: the URL holds the search, the sort and the open cell; a new page shows the same.
            link = page.url
            assert "cell=" in link and "q=" in link and "sort=method" in link
            again = await context.new_page()
            await again.goto(link)
            await again.wait_for_selector("body[data-ready='1']", timeout=30_000)
            assert await again.locator("#trace h3").inner_text() == opened
            assert await again.locator("#cells tbody tr").count() == 2 and await again.input_value("#f-q") == item
            await again.close()
            # Side by side with the other method on the same item, from the run itself.
            await page.locator("#trace .items button").first.click()
            await page.wait_for_selector("#trace .pair")
            assert await page.locator("#trace .pair > div").count() == 2
            assert await page.locator("#trace .pair h3").count() == 2
            # LaTeX renders as MathML (Temml, shipped with the package); a draft without a boxed answer is not
            # labelled with one (math500: no final-number rule), and estimated workspace tokens say so.
            assert await page.locator("#trace math").count() >= 2
            summaries = await page.locator("#trace section.round summary").all_text_contents()
            drafts = [s for s in summaries if s.startswith("draft")]
            assert sum("no answer found by the rule" in s for s in drafts) == 2  # round 1's two drafts
            assert any("answer" in s and "(boxed)" in s for s in drafts)
            assert not any("answer 0.5" in s for s in drafts)
            # The paired comparison's items: won and lost, each opening the two runs side by side.
            await page.locator("#pairs button").first.click()
            await page.wait_for_selector("#trace h4")
            text = await page.locator("#trace").inner_text()
            assert "Won by pdr-2x2 (1)" in text and "Lost by pdr-2x2 (1)" in text and "Tied (1)" in text
            await page.locator("#trace .items button").first.click()
            await page.wait_for_selector("#trace .pair")
            pair = await page.locator("#trace .pair h3").all_text_contents()
            assert PROBLEMS[2].problem_id in pair[0] and {"pdr-2x2", "long-cot"} == {h.split(" · ")[1] for h in pair}
            assert "pairs=" not in page.url and "with=" in page.url
            # Accessibility: no axe-core violations on the page (with a run and a pair open) or on report.html.
            assert await axe(page, node_clients) == []
            report = await context.new_page()
            await report.goto(report_html.as_uri())
            assert await axe(report, node_clients) == []
            await context.close()
        finally:
            await browser.close()
    assert problems == []


async def _col(page: Any, n: int, want: list[str]) -> bool:
    return bool(await page.locator(f"#cells tbody tr td:nth-child({n})").all_text_contents() == want)


async def _count(locator: Any, n: int) -> bool:
    return bool(await locator.count() == n)

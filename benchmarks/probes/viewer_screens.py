"""Screenshots of ``agentkit view`` at the widths its layout must hold (1024 and 1920 px), for the README and a
closing note: the report with the cells table, and a run opened (by default the first cell where the second
method of the first paired comparison lost, opened side by side with the first method's run).

    python benchmarks/probes/viewer_screens.py DB [--out benchmarks/results/viewer]

Needs chromium (Debian's) and Playwright (the dev extra). Writes ``viewer_WIDTH_report.png`` and
``viewer_WIDTH_pair.png`` for each width.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

from agentkit.faces.view import Viewer, create_view_app, run_view_runner


async def main(db: Path, out: Path) -> None:
    from playwright.async_api import async_playwright

    binary = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))))
    runner, url = await run_view_runner(create_view_app(Viewer(db)))
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
            for width in (1024, 1920):
                page = await browser.new_page(viewport={"width": width, "height": 1000})
                await page.goto(url)
                await page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                await page.screenshot(path=str(out / f"viewer_{width}_report.png"))
                if await page.locator("#pairs button").count():
                    await page.locator("#pairs button").first.click()
                    await page.wait_for_selector("#trace h4")
                    lost = page.locator("#trace section").nth(1).locator("button")
                    if await lost.count():
                        await lost.first.click()
                        await page.wait_for_selector("#trace .pair h3")
                        await page.locator("#trace .pair details summary").first.click()
                else:
                    await page.locator("#cells tbody tr").first.click()
                    await page.wait_for_selector("#trace h3")
                await page.screenshot(path=str(out / f"viewer_{width}_pair.png"))
                print(width, page.url)
            await browser.close()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("db", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/viewer"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.db, args.out))

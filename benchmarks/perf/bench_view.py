"""How fast `agentkit view` shows a large sweep: time to first render of a 2,000-cell database in chromium.

    python benchmarks/perf/bench_view.py [--cells 2000] [--loads 5] [--db PATH] [--screenshots DIR [--cell-method M]]

Builds (unless ``--db`` is given) a results database of ``--cells`` cells with stored runs by sweeping GSM8K
problems x {long CoT, PDR 2x2} x 2 seeds against the in-process scripted server, starts ``agentkit view`` on it
in its own process, and loads the page ``--loads`` times in headless chromium (the system browser, driven by
Playwright), each time in a fresh page: the time from navigation until the report, the plot and the first
page of cells are on screen (the page marks itself ready), median and min-max. Also: the viewer's start-up
(reading the rows) and one cell's run opening. ``--screenshots DIR`` saves the index and the first cell
(of ``--cell-method`` when given) as PNGs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result

SPEC = """
name = "bench-view"
concurrency = 64
budgets = [900]
seeds = [0, 1]
store_traces = true

[[datasets]]
name = "gsm8k"
limit = {limit}

[[methods]]
name = "long-cot"

[[methods]]
name = "pdr"
label = "pdr-2x2"
params = {{ rounds = 2, drafts = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 64
"""


async def build(path: Path, cells: int) -> None:
    from agentkit.sweep import load_spec, run_sweep
    from agentkit.testing import Reply, ScriptedServer, prompt_kind

    def reply(body: dict[str, Any]) -> Reply:
        if prompt_kind(body) == "summary":
            return Reply("Both drafts multiply the price by the count and add the fee; they agree on 18.")
        return Reply("First the price times the count, then the fee: 3 * 5 + 3 = 18, so \\boxed{18}")

    async with ScriptedServer(reply) as server:
        spec_path = path.with_suffix(".toml")
        spec_path.write_text(SPEC.format(limit=cells // 4, url=server.base_url))
        await run_sweep(load_spec(spec_path), path)


async def measure(url: str, loads: int, shots: Path | None, cell_method: str | None) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    binary = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)
    if binary is None:
        raise SystemExit("no chromium on this machine (Debian: apt-get install -y chromium)")
    renders, opens = [], []
    if shots is not None:
        await asyncio.to_thread(shots.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            for i in range(loads):
                page = await browser.new_page(viewport={"width": 1600, "height": 1000})
                started = time.perf_counter()
                await page.goto(url)
                await page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                renders.append(time.perf_counter() - started)
                if cell_method:
                    await page.select_option("#f-method", cell_method)
                    for _ in range(600):  # the page's CSP allows no eval: poll from here
                        shown = await page.locator("#cells tbody tr td:nth-child(2)").all_text_contents()
                        if shown and all(m == cell_method for m in shown):
                            break
                        await asyncio.sleep(0.05)
                started = time.perf_counter()
                await page.locator("#cells tbody tr").first.click()
                await page.wait_for_selector("#trace h4")
                opens.append(time.perf_counter() - started)
                if shots is not None and i == loads - 1:
                    await page.evaluate("document.querySelectorAll('#trace details').forEach((d, i) => "
                                        "{ if (i < 3) d.open = true; })")
                    await page.screenshot(path=str(shots / "viewer_cell.png"), full_page=False)
                    await page.goto(url)
                    await page.wait_for_selector("body[data-ready='1']")
                    await page.screenshot(path=str(shots / "viewer_index.png"), full_page=False)
                await page.close()
        finally:
            await browser.close()
    return {"first_render_s": {"median": round(statistics.median(renders), 3), "min": round(min(renders), 3),
                               "max": round(max(renders), 3)},
            "open_cell_s": {"median": round(statistics.median(opens), 3), "min": round(min(opens), 3),
                            "max": round(max(opens), 3)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--db", default=None, help="an existing results database instead of a built one")
    ap.add_argument("--screenshots", default=None, help="save the index and one cell as PNGs in this directory")
    ap.add_argument("--cell-method", default=None, help="the method whose first cell is opened (default: any)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "view.sqlite"
        built_s = None
        if not args.db:
            started = time.perf_counter()
            asyncio.run(build(db, args.cells))
            built_s = time.perf_counter() - started
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "agentkit", "view", str(db), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            startup = time.perf_counter() - started
            url = line.rsplit(" at ", 1)[1].strip()
            cells = int(line.split("(")[1].split()[0])
            figures = asyncio.run(measure(url, args.loads, Path(args.screenshots) if args.screenshots else None,
                                          args.cell_method))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    report = {"cells": cells, "built_s": built_s, "viewer_startup_s": round(startup, 3), **figures}
    print(json.dumps(report, indent=2))
    if not args.db:
        write_result("view", report)


if __name__ == "__main__":
    main()

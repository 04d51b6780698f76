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
            assert (await page.locator("#loaded").inner_text()).startswith("data loaded at ")
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


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    finally:
        conn.close()


async def test_only_this_machine_reads_the_viewer(served: str) -> None:
    """A DNS-rebinding page (another ``Host``) gets 421, another page's ``Origin`` 403, as the MCP server
    refuses them; this machine's names are served."""
    port = served.rstrip("/").rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as s:
        for headers, status in [({"Host": "evil.com"}, 421), ({"Host": f"evil.com:{port}"}, 421),
                                ({"Host": "127.0.0.1"}, 421), ({"Origin": "http://evil.com"}, 403),
                                ({"Origin": f"http://evil.com:{port}"}, 403), ({}, 200),
                                ({"Host": f"localhost:{port}"}, 200), ({"Origin": f"http://127.0.0.1:{port}"}, 200)]:
            for path in ("", "api/cells", "api/summary", "api/status"):
                async with s.get(served + path, headers=headers) as r:
                    body = await r.read()
                    assert r.status == status, (headers, path, body[:200])
                    if status != 200:
                        assert b"gsm8k" not in body


async def test_a_token_guards_the_viewer(tmp_path: Path) -> None:
    viewer = Viewer(await make_db(tmp_path))
    runner, url = await run_view_runner(create_view_app(viewer, token="view-secret"))
    try:  # unsafe: keep cookies of an IP address, as browsers do
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            for path in ("", "api/cells", "api/status"):
                async with s.get(url + path) as r:
                    assert r.status == 401
                async with s.get(url + path, params={"token": "wrong"}) as r:
                    assert r.status == 401
                async with s.get(url + path, headers={"Authorization": "Bearer view-secret"}) as r:
                    assert r.status == 200
            async with s.get(url, params={"token": "view-secret"}) as r:  # the printed URL: sets the cookie
                assert r.status == 200
                cookie = r.cookies["agentkit_token"]
                assert cookie["httponly"] and cookie["samesite"] == "Strict"
            async with s.get(url + "api/cells") as r:  # the page's own requests carry the cookie
                assert r.status == 200 and (await r.json())["total"] == 6
    finally:
        await runner.cleanup()


async def test_database_names_are_paths_never_uri_parts(tmp_path: Path) -> None:
    """A name with ``?``, ``#`` or ``%`` opens that file, read-only: no file named after a part of it appears,
    and a name that spells ``?mode=rwc`` does not make the connection writable."""
    source = await make_db(tmp_path)
    folder = tmp_path / "names"
    folder.mkdir()
    for name in ("h#1.sqlite", "a?mode=rwc.sqlite", "p%41%3F.sqlite", "x?mode=rw&cache=shared#y.sqlite"):
        db = folder / name
        shutil.copy(source, db)
        viewer = Viewer(db)
        assert len(viewer.rows) == 6
        assert viewer.cell(viewer.rows[0]["key"])["trace"] is not None  # type: ignore[index]
        extra = {p.name for p in folder.iterdir()} - {n + suffix for n in
                                                       [p.name for p in folder.iterdir() if p.suffix == ".sqlite"]
                                                       for suffix in ("", "-wal", "-shm")}
        assert extra == set(), extra
    assert {p.name for p in folder.iterdir() if p.suffix == ".sqlite"} == {
        "h#1.sqlite", "a?mode=rwc.sqlite", "p%41%3F.sqlite", "x?mode=rw&cache=shared#y.sqlite"}
    assert _rows(folder / "a?mode=rwc.sqlite") == 6


async def test_any_database_opens_or_is_refused_with_one_line(tmp_path: Path) -> None:
    """Rows with values of the wrong type in any column, tables missing optional columns, a database that is
    not one: the viewer serves what it can read (saying how many rows it left out) and never answers 500; what
    it cannot open is one line and exit 2 from the command."""
    source = await make_db(tmp_path)
    columns = [r[1] for r in sqlite3.connect(source).execute("PRAGMA table_info(results)")]
    for column in columns:
        for garbage in ("abc", 1e308, -1, b"\x00\xff", None):
            db = tmp_path / f"bad-{column}.sqlite"
            shutil.copy(source, db)
            conn = sqlite3.connect(db)
            if column == "key" and garbage is None:
                conn.execute("DELETE FROM results WHERE rowid = 1")  # NOT NULL in spirit: drop instead
            else:
                conn.execute(f"UPDATE results SET {column} = ? WHERE rowid = 1", (garbage,))
            conn.commit()
            conn.close()
            viewer = Viewer(db)
            runner, url = await run_view_runner(create_view_app(viewer))
            try:
                async with aiohttp.ClientSession() as s:
                    for path in ["api/summary", "api/cells", "api/status",
                                 *(f"api/cells/{r['key']}" for r in viewer.rows if isinstance(r["key"], str)
                                   and len(r["key"]) == 32)]:
                        async with s.get(url + path) as r:
                            assert r.status in (200, 404), (column, garbage, path, await r.text())
            finally:
                await runner.cleanup()
            assert len(viewer.rows) + viewer.skipped >= 5
            db.unlink()
    minimal = tmp_path / "minimal.sqlite"
    conn = sqlite3.connect(minimal)
    conn.execute("CREATE TABLE results (key TEXT, status TEXT, method TEXT, item_id TEXT, budget TEXT)")
    conn.execute("INSERT INTO results VALUES (?, 'ok', 'm', 'i', '512')", ("b" * 32,))
    conn.execute("INSERT INTO results VALUES (?, 'ok', 'm', 'j', 'abc')", ("c" * 32,))
    conn.commit()
    conn.close()
    viewer = Viewer(minimal)
    assert (len(viewer.rows), viewer.skipped) == (1, 1)
    assert (await viewer.summary())["cells"] == 1


def test_a_file_that_is_no_results_database_is_one_line_and_exit_2(tmp_path: Path, capsys: Any) -> None:
    from agentkit.faces.cli import main

    (tmp_path / "text.sqlite").write_text("not a database")
    (tmp_path / "dir.sqlite").mkdir()
    for name in ("text.sqlite", "dir.sqlite", "missing.sqlite"):
        assert main(["view", str(tmp_path / name), "--port", "0"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("agentkit: "), (name, err)


async def test_the_page_says_when_its_data_was_loaded_and_follows_a_sweep(served: str, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    async with aiohttp.ClientSession() as s:
        async with s.get(served + "api/summary") as r:
            first = await r.json()
        assert first["cells"] == 6 and first["changed"] is False and first["loaded_at"] > 0
        writer = ResultsDB(db)  # a sweep still running writes one more row
        row = dict(next(iter(writer.rows())))
        writer.write({**row, "key": "f" * 32, "item_id": "late"})
        writer.close()
        async with s.get(served + "api/status") as r:
            assert (await r.json())["changed"] is True
        async with s.get(served + "api/summary") as r:
            second = await r.json()
        assert second["cells"] == 7 and second["loaded_at"] > first["loaded_at"] and second["changed"] is False
        async with s.get(served + "api/cells?limit=500") as r:
            assert (await r.json())["total"] == 7

"""What ``agentkit sweep run`` tells a person at its end, when a backend is down, and on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from agentkit.testing import Reply, ScriptedServer

SPEC = """
name = "cli"
concurrency = 2
budgets = [600]
seeds = [0, 1, 2, 3, 4]

[[datasets]]
name = "gsm8k"
limit = 8

[[methods]]
name = "long-cot"

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 2
"""


def spec(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(url=url))
    return path  # 8 problems x 5 seeds: 40 cells


async def agentkit(*args: str, timeout: float = 300) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentkit", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def rows(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT key, status FROM results").fetchall()
    finally:
        conn.close()


async def test_a_sweep_ends_with_the_accuracy_table_and_what_to_run_next(tmp_path: Path) -> None:
    async with ScriptedServer(lambda _: Reply("adding it up gives \\boxed{18}")) as server:
        code, out, err = await agentkit("sweep", "run", str(spec(tmp_path, server.base_url)), "--db",
                                        str(tmp_path / "r.sqlite"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("40 cells run (0 failed), 0 already in")
    [group] = [line for line in lines if line.startswith("gsm8k")]
    assert "long-cot" in group and "accuracy 0.125 [" in group and "of 40 cells" in group  # 18 is 1 of 8 answers
    assert f"agentkit sweep report {tmp_path / 'r.sqlite'}" in out and f"agentkit view {tmp_path / 'r.sqlite'}" in out
    assert "elapsed" in err and "left" in err and "accuracy 0.125 (this run)" in err  # the bar, labelled
    assert '"level"' not in err and "cell failed" not in err  # no log lines without -v


async def test_a_backend_that_is_down_stops_the_sweep_with_one_line_and_resume_finishes_it(tmp_path: Path) -> None:
    async with ScriptedServer(lambda _: Reply("\\boxed{18}")) as server:
        url, port = server.base_url, server.port
    path, db = spec(tmp_path, url), tmp_path / "r.sqlite"  # nothing listens at url any more
    code, out, err = await agentkit("sweep", "run", str(path), "--db", str(db), "--stop-after-unreachable", "6")
    assert code == 3, err
    message = [line for line in err.splitlines() if line.startswith("agentkit:")]
    assert len(message) == 1 and "could not be reached for 6 cells in a row" in message[0]
    assert "sweep resume" in message[0] and '"level"' not in err, err
    written = rows(db)
    assert 6 <= len(written) < 40 and {s for _, s in written} == {"failed"}  # stopped early; the rows kept
    server = await ScriptedServer(lambda _: Reply("\\boxed{18}")).start(port)  # the backend is back
    try:
        code, out, err = await agentkit("sweep", "resume", str(path), "--db", str(db))
    finally:
        await server.close()
    assert code == 0, err
    assert out.startswith("40 cells run (0 failed), 0 already in")  # the failed cells ran again
    assert len(rows(db)) == 40 and {s for _, s in rows(db)} == {"ok"}


async def test_ctrl_c_says_what_is_saved_and_how_to_resume(tmp_path: Path) -> None:
    async with ScriptedServer(lambda _: Reply("\\boxed{18}"), latency=0.3) as server:
        db = tmp_path / "r.sqlite"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "sweep", "run", str(spec(tmp_path, server.base_url)), "--db", str(db),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ})
        for _ in range(600):
            await asyncio.sleep(0.1)
            if db.exists() and len(rows(db)) >= 4:
                break
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, err.decode()
    text = err.decode()
    assert f"saved in {db}" in text and f"agentkit sweep resume {tmp_path / 'spec.toml'} --db {db}" in text
    assert "Traceback" not in text

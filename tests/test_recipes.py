"""Recipes run end to end as a user runs them (a subprocess), here against the scripted server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agentkit.bus import read_recording
from agentkit.testing import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parent.parent


async def test_quickstart_recipe(tmp_path: Path) -> None:
    async with ScriptedServer(lambda body: Reply("Adding up gives \\boxed{18}")) as server:
        record = tmp_path / "run.jsonl"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "recipes" / "quickstart.py"), "--backend",
            f"openai-compatible:{server.base_url}?model=scripted", "--limit", "2", "--record", str(record),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("gsm8k-test-0: 18 (reference 18, correct)")
    assert lines[1].startswith("gsm8k-test-1: 18 (reference 3, wrong)")
    assert len(server.requests) == 2
    kinds = [m.kind for m in read_recording(record)]
    assert kinds.count("solve_request") == 2 and kinds.count("solution") == 2


async def test_pdr_math_recipe() -> None:
    import json

    async with ScriptedServer(lambda body: Reply("step " * 60 + "\\boxed{18}")) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "recipes" / "pdr_math.py"), "--backend",
            f"openai-compatible:{server.base_url}?model=scripted", "--limit", "2", "--budget", "3000", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    table = json.loads(out.decode())
    assert set(table) == {"long-cot", "sr", "pdr"}
    for row in table.values():
        assert row["accuracy"] == 0.5  # answer 18: right for gsm8k-test-0, wrong for gsm8k-test-1
        assert all(0 < r["B_seq"] <= 3000 for r in row["rows"])
    assert table["pdr"]["B_total"] > table["sr"]["B_total"]

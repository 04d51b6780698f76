"""Every cell accounted for: the sweep records its spec and grid; the report counts a cell with no row as missing
(a wrong answer, listed, warned about), refuses to compare arms whose grids differ, and gives an exact McNemar
p-value beside each paired interval. Rows record the model that answered, the temperatures really sent and the
reasoning/answer split."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.evaluation.stats import mcnemar_exact
from agentkit.sweep import ResultsDB, load_spec, report_data, run_sweep, write_report
from agentkit.sweep.report import compare
from agentkit.testing import Reply, ScriptedServer, run_agentkit

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_databases.py"

SPEC = """
name = "integrity"
concurrency = 4
budgets = [600]
seeds = [0, 1]

[[datasets]]
name = "gsm8k"
limit = 4

[[methods]]
name = "long-cot"

[[methods]]
name = "sr"
label = "sr"
params = {{ rounds = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 4
"""


def reply(body: dict[str, Any]) -> Reply:
    return Reply("adding it up gives \\boxed{18}", reasoning="first I add, then I check")


async def finished(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "spec.toml"
    db = tmp_path / "r.sqlite"
    async with ScriptedServer(reply) as server:
        spec.write_text(SPEC.format(url=server.base_url))
        await run_sweep(load_spec(spec), db)
    return spec, db


async def test_a_deleted_row_is_a_missing_cell_counted_wrong_listed_and_warned_about(tmp_path: Path) -> None:
    _, db = await finished(tmp_path)
    results = ResultsDB(db, create=False)
    [recorded] = results.specs()
    assert json.loads(recorded["spec"])["name"] == "integrity" and len(recorded["hash"]) == 16
    grid = results.grid()
    assert grid is not None and len(grid) == 16 and {c["method"] for c in grid} == {"long-cot", "sr"}
    results.close()
    full = {(g["method"]): g for g in report_data(db)["groups"]}
    assert full["long-cot"]["accuracy"] == 0.25 and full["long-cot"]["missing"] == 0  # gsm8k-test-0's answer is 18
    conn = sqlite3.connect(db)
    gone = [k for (k,) in conn.execute("SELECT key FROM results WHERE method = 'long-cot' AND item_id = 'gsm8k-test-0'")]
    conn.execute("DELETE FROM results WHERE method = 'long-cot' AND item_id = 'gsm8k-test-0'")
    conn.commit()
    conn.close()
    data = report_data(db)
    groups = {g["method"]: g for g in data["groups"]}
    # the grid still has 8 long-cot cells: the 2 without a row are wrong, not dropped (0.25 of 8 would have become
    # 0 of 6, and the deleted right answers would have gone unnoticed the other way round)
    assert groups["long-cot"]["graded"] == 8 and groups["long-cot"]["missing"] == 2
    assert groups["long-cot"]["accuracy"] == 0.0 and groups["long-cot"]["failed"] == 0
    assert sorted(m["key"] for m in data["missing"]) == sorted(gone)
    out = write_report(db, tmp_path / "report")
    md = Path(out["markdown"]).read_text()  # noqa: ASYNC240 - a test reading its own file
    assert "**Warning: 2 cells of the grid have no row**" in md and "Missing cells (2, counted as wrong)" in md
    assert "long-cot @B_seq 600 item gsm8k-test-0 seed 0" in md
    code, stdout, stderr = await run_agentkit("sweep", "report", str(db), "--json")
    assert code == 0 and "2 cells of the grid have no row" in stderr
    printed = json.loads(stdout)
    assert len(printed["missing"]) == 2 and "markdown" not in printed
    code, _, stderr = await run_agentkit("sweep", "report", str(db))
    assert code == 2 and stderr.strip() == "agentkit: sweep report needs --out DIR (where the report is written), or --json"


async def test_an_older_database_is_checked_against_the_spec_given(tmp_path: Path) -> None:
    spec, db = await finished(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE grid")  # as a database written before agentkit recorded its grid
    conn.execute("DELETE FROM results WHERE rowid IN (SELECT rowid FROM results LIMIT 5)")
    conn.commit()
    conn.close()
    assert report_data(db)["missing"] == []  # without a grid it can only count the rows it has
    code, stdout, stderr = await run_agentkit("sweep", "report", str(db), "--json", "--spec", str(spec))
    assert code == 0 and len(json.loads(stdout)["missing"]) == 5 and "5 cells of the grid have no row" in stderr


async def test_arms_whose_grids_differ_are_not_compared(tmp_path: Path) -> None:
    _, db = await finished(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE grid")
    conn.execute("DELETE FROM results WHERE method = 'sr' AND seed = 1")  # sr ran one seed, long CoT two
    conn.commit()
    conn.close()
    [c] = report_data(db)["comparisons"]
    assert c["refused"] == "their grids differ: 0 cells only sr has, 4 only long-cot has (problems or seeds)"
    assert "difference" not in c
    with pytest.raises(ConfigError, match="sr vs long-cot not compared: their grids differ"):
        compare(list(ResultsDB(db, create=False, readonly=True).rows()), [("sr", "long-cot")])
    code, _, stderr = await run_agentkit("sweep", "report", str(db), "--json", "--compare", "sr", "long-cot")
    assert code == 2 and "not compared: their grids differ" in stderr and "Traceback" not in stderr
    code, _, stderr = await run_agentkit("sweep", "report", str(db), "--json", "--compare", "pdr", "long-cot")
    assert code == 2 and "no method 'pdr' in these results" in stderr


async def test_paired_comparisons_carry_an_exact_mcnemar_p_value(tmp_path: Path) -> None:
    _, db = await finished(tmp_path)
    [c] = report_data(db)["comparisons"]
    assert (c["a"], c["b"], c["wins"], c["losses"]) == ("sr", "long-cot", 0, 0) and c["p_value"] == 1.0
    assert mcnemar_exact(3, 0) == 0.25 and mcnemar_exact(8, 2) == pytest.approx(0.109375)
    assert mcnemar_exact(9, 1) == pytest.approx(0.021484375)
    out = write_report(db, tmp_path / "report")
    md = Path(out["markdown"]).read_text()  # noqa: ASYNC240 - a test reading its own file
    assert "| sr | long-cot | B_seq 600 | 4 | +0.000 | +0.000 to +0.000 | 0 / 0 / 4 | 1 |" in md


async def test_rows_name_the_model_the_temperatures_sent_and_the_reasoning_split(tmp_path: Path) -> None:
    _, db = await finished(tmp_path)
    results = ResultsDB(db, create=False)
    rows = list(results.rows())
    for row in rows:
        info = json.loads(row["backend_info"])
        assert info["served_models"] == ["scripted"]  # asked of the server before the first cell
        sent = json.loads(row["sampling"])["sent"]
        assert sent == ({"student": [0.0]} if row["method"] == "long-cot" else {"refiner": [0.0], "student": [0.0]})
        assert row["reasoning_tokens"] == row["calls"] * 6  # "first I add, then I check": 6 words a call
    trace = results.trace(rows[0]["key"])
    results.close()
    assert trace is not None and all(call[10] == 6 and call[11] == 0.0 for call in trace["calls"])


async def test_shards_merged_keep_the_whole_grid(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    async with ScriptedServer(reply) as server:
        spec.write_text(SPEC.format(url=server.base_url))
        loaded = load_spec(spec)
        await run_sweep(loaded, tmp_path / "a.sqlite", shard=(0, 2))
        await run_sweep(loaded, tmp_path / "b.sqlite", shard=(1, 2))
    merged = ResultsDB(tmp_path / "m.sqlite")
    merged.merge([tmp_path / "a.sqlite", tmp_path / "b.sqlite"])
    grid = merged.grid()
    merged.close()
    assert grid is not None and len(grid) == 16 and report_data(tmp_path / "m.sqlite")["missing"] == []
    assert len(report_data(tmp_path / "a.sqlite")["missing"]) == 0  # a shard's grid is its own cells


def _tree_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


async def test_a_handbook_curated_from_the_evaluated_split_is_guarded_by_default_and_named_everywhere(
        tmp_path: Path) -> None:
    from agentkit.memory import Behavior, QdrantBehaviorStore
    from agentkit.memory.store import Provenance

    store = await QdrantBehaviorStore(path=tmp_path / "hb").open()
    await store.add(Behavior(name="behavior_count_eggs", instruction="Subtract every use from the eggs laid.",
                             provenance=(Provenance(problem_id="gsm8k-test-99", dataset="gsm8k"),)))
    await store.close()
    seen: list[str] = []

    def script(body: dict[str, Any]) -> Reply:
        seen.append(body["messages"][-1]["content"])
        return Reply("so \\boxed{18}")

    spec = tmp_path / "spec.toml"
    async with ScriptedServer(script) as server:
        spec.write_text(
            'name = "guard"\nbudgets = [512]\n[[datasets]]\nname = "gsm8k"\nlimit = 1\n'
            f'[[methods]]\nname = "bci"\nlabel = "guarded"\nbudget_kind = "output"\nparams = {{ store = "{tmp_path / "hb"}", k = 1 }}\n'
            f'[[methods]]\nname = "bci"\nlabel = "open"\nbudget_kind = "output"\n'
            f'params = {{ store = "{tmp_path / "hb"}", k = 1, exclude_split = false }}\n'
            f'[[backends]]\nspec = "openai-compatible:{server.base_url}?model=scripted&retries=1"\n')
        # validate warns as run will, reading the store without writing to it (opening Edge writes: a copy is read)
        before = _tree_digest(tmp_path / "hb")
        code, _, stderr = await run_agentkit("sweep", "validate", str(spec))
        assert code == 0, stderr
        assert "(guarded) holds behaviors curated from 'gsm8k'" in stderr and "(open) holds" in stderr
        assert _tree_digest(tmp_path / "hb") == before
        code, _, stderr = await run_agentkit("sweep", "run", str(spec), "--db", str(tmp_path / "r.sqlite"))
        assert code == 0, stderr
        assert "(guarded) holds behaviors curated from 'gsm8k'" in stderr and "the split guard keeps them out" in stderr
        assert "(open) holds behaviors curated from 'gsm8k'" in stderr and "can reach" in stderr
    # by default the guard kept the behavior out (the plain prompt); off, it was shown
    assert sum("behavior_count_eggs" in prompt for prompt in seen) == 1
    data = report_data(tmp_path / "r.sqlite")
    assert len(data["warnings"]) == 2 and any("exclude_split was off" in w for w in data["warnings"])
    results = ResultsDB(tmp_path / "r.sqlite", create=False)
    assert all(json.loads(r["handbook"])["splits"] == ["gsm8k"] for r in results.rows())
    results.close()


async def test_two_runs_of_the_same_arms_compare_side_by_side(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "spec.toml"
    port = 0
    for name, answer in (("old", "18"), ("new", "17")):  # one backend spec: the second server on the first's port
        server = await ScriptedServer(lambda body, a=answer: Reply(f"so \\boxed{{{a}}}")).start(port)
        port = server.port
        try:
            spec.write_text(SPEC.format(url=server.base_url))
            await run_sweep(load_spec(spec), tmp_path / f"{name}.sqlite")
        finally:
            await server.close()
    script = COMPARE
    out = await asyncio.to_thread(subprocess.run, [sys.executable, str(script), str(tmp_path / "old.sqlite"),
                                                   str(tmp_path / "new.sqlite")],
                                  capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # gsm8k-test-0 (reference 18) was right in the old run and wrong in the new one, for both methods; same
    # prompts and budgets, so every other text is the same
    [cot] = [line for line in out.stdout.splitlines() if line.startswith("| gsm8k | long-cot |")]
    assert "| 0.250 -> 0.000 | -0.250 |" in cot and "| 0 / 1 / 3 |" in cot and "0 of 8 |" in cot
    missing = await asyncio.to_thread(subprocess.run, [sys.executable, str(script), str(tmp_path / "none.sqlite"),
                                                       str(tmp_path / "new.sqlite")],
                                      capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no results database" in missing.stderr

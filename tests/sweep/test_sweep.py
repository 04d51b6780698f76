"""Sweeps: spec validation, a run against the scripted server, kill -9 and resume, shards merged, failing
cells, reports with plots, and the pass@k estimator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.evaluation.stats import pass_at_k, wilson_interval
from agentkit.sweep import ResultsDB, load_spec, run_sweep, write_report
from agentkit.sweep.report import pareto_front, summarise
from agentkit.testing import Fault, Reply, ScriptedServer

SPEC = """
name = "unit"
concurrency = {concurrency}
budgets = [600, 1200]
seeds = [0, 1]

[[datasets]]
name = "gsm8k"
limit = 4

[[methods]]
name = "long-cot"

[[methods]]
name = "sr"
params = {{ rounds = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = {concurrency}
price_per_million = {{ input = 1.0, output = 2.0 }}
"""


def reply(body: dict[str, Any]) -> Reply | Fault:
    text = body["messages"][-1]["content"]
    if "robe takes 2 bolts" in text and "Attempt" not in text:  # gsm8k-test-1 always fails
        return Fault.http(400, "scripted refusal")
    return Reply("adding it up gives \\boxed{18}")


def write_spec(tmp_path: Path, url: str, concurrency: int = 4) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(url=url, concurrency=concurrency))
    return path


def table(db: Path, *, missing_ok: bool = False) -> dict[str, tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT key, status, answer, correct, b_seq, b_total FROM results").fetchall()
    except sqlite3.OperationalError:
        if not missing_ok:  # polling a database another process is creating: its table may not exist yet
            raise
        rows = []
    finally:
        conn.close()
    return {r[0]: r[1:] for r in rows}


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[datasets]]\nname="gsm8k"\n[[methods]]\nname="magic"\n[[backends]]\nspec="local"\nbudgets=[100]\n')
    with pytest.raises(ConfigError, match=r"methods\.0\.name"):
        load_spec(bad)
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="no sweep spec"):
        load_spec(tmp_path / "missing.toml")


async def test_run_writes_every_cell_once_with_what_reproduces_it(tmp_path: Path) -> None:
    async with ScriptedServer(reply) as server:
        spec = load_spec(write_spec(tmp_path, server.base_url))
        summary = await run_sweep(spec, tmp_path / "r.sqlite")
        again = await run_sweep(spec, tmp_path / "r.sqlite")
    assert summary.cells == 32 and summary.ran == 32 and summary.failed == 8  # 4 problems x 2 x 2 x 2
    assert again.ran == 0 and again.skipped == 32
    db = ResultsDB(tmp_path / "r.sqlite")
    rows = list(db.rows())
    db.close()
    assert len(rows) == 32 and len({r["key"] for r in rows}) == 32
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["item_id"] for r in failed} == {"gsm8k-test-1"} and all("scripted refusal" in r["error"] for r in failed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["item_id"] for r in ok if r["correct"]} == {"gsm8k-test-0"}  # its reference is 18
    for r in ok:
        assert r["grader"].startswith("math-verify==") and len(r["prompt_hash"]) == 16
        assert json.loads(r["sampling"])["seed"] == r["seed"] and json.loads(r["backend_info"])["model"]
        # the temperature the calls really used (SR's drafts sample at the spec's; PDR's: see the next test)
        sent = {"student": [0.0]} if r["method"] == "long-cot" else {"refiner": [0.0], "student": [0.0]}
        assert json.loads(r["sampling"]) == {"temperature": 0.0, "seed": r["seed"], "sent": sent}
        assert 0 < r["b_seq"] <= r["budget"] and r["calls"] == (1 if r["method"] == "long-cot" else 2)


def test_rows_record_the_temperature_drafts_and_samples_really_use() -> None:
    from agentkit.sweep.runner import method_sampling
    from agentkit.sweep.spec import MethodEntry

    assert method_sampling(MethodEntry(name="long-cot"), 0.0) == {"temperature": 0.0}
    assert method_sampling(MethodEntry(name="sr"), 0.3) == {"temperature": 0.3}
    assert method_sampling(MethodEntry(name="pdr"), 0.0) == {"temperature": 0.0, "draft_temperature": 0.7}
    assert method_sampling(MethodEntry(name="pdr", params={"min_temperature": 0.0}), 0.6) == {
        "temperature": 0.6, "draft_temperature": 0.6}
    assert method_sampling(MethodEntry(name="self-consistency", params={"temperature": 1.0}), 0.0) == {
        "temperature": 1.0, "draft_temperature": 1.0}


async def test_a_bug_in_a_cell_stops_the_sweep_and_keeps_every_finished_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors that are not a backend's (a bug) are not recorded as failed cells: the sweep stops, every cell
    finished before is in the database, and a resume after the fix completes it."""
    from agentkit.sweep import runner

    original = runner.run_cell
    started = 0

    async def exploding(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal started
        started += 1
        if started == 10:
            raise RuntimeError("a bug in a method")
        return await original(*args, **kwargs)

    async with ScriptedServer(reply) as server:
        spec = load_spec(write_spec(tmp_path, server.base_url, concurrency=3))
        monkeypatch.setattr(runner, "run_cell", exploding)
        with pytest.raises(RuntimeError, match="a bug in a method"):
            await run_sweep(spec, tmp_path / "r.sqlite")
        written = table(tmp_path / "r.sqlite")
        assert 6 <= len(written) < 32  # the cells finished before the bug; the two in flight were cancelled
        monkeypatch.setattr(runner, "run_cell", original)
        resumed = await run_sweep(spec, tmp_path / "r.sqlite")
    assert resumed.skipped == len(written) and resumed.ran == 32 - len(written)
    assert len(table(tmp_path / "r.sqlite")) == 32


async def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    async with ScriptedServer(reply, latency=0.2) as server:
        spec_path = write_spec(tmp_path, server.base_url, concurrency=2)
        await run_sweep(load_spec(spec_path), tmp_path / "whole.sqlite")
        db = tmp_path / "killed.sqlite"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "sweep", "run", str(spec_path), "--db", str(db),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env)
        for _ in range(600):
            await asyncio.sleep(0.1)
            if db.exists() and len(table(db, missing_ok=True)) >= 6:
                break
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        partial = len(table(db))
        assert 6 <= partial < 32
        resumed = await run_sweep(load_spec(spec_path), db)
    assert resumed.skipped == partial and resumed.ran == 32 - partial
    assert table(db) == table(tmp_path / "whole.sqlite")


async def test_shards_merged_equal_one_run(tmp_path: Path) -> None:
    async with ScriptedServer(reply) as server:
        spec = load_spec(write_spec(tmp_path, server.base_url))
        await run_sweep(spec, tmp_path / "one.sqlite")
        a = await run_sweep(spec, tmp_path / "a.sqlite", shard=(0, 2))
        b = await run_sweep(spec, tmp_path / "b.sqlite", shard=(1, 2))
    assert a.ran + b.ran == 32 and a.ran and b.ran
    merged = ResultsDB(tmp_path / "merged.sqlite")
    assert merged.merge([tmp_path / "a.sqlite", tmp_path / "b.sqlite"]) == 32
    assert merged.merge([tmp_path / "a.sqlite"]) == 0  # nothing duplicated
    merged.close()
    assert table(tmp_path / "merged.sqlite") == table(tmp_path / "one.sqlite")


def check_files(out: dict[str, Any]) -> None:
    png = Path(out["plots"]["gsm8k"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    md = Path(out["markdown"]).read_text()
    lines = md.splitlines()
    assert sum(line.startswith("| long-cot |") for line in lines) == 2 and "cost_usd" in md
    paired = sum(line.startswith("| sr(kappa=64,rounds=2) | long-cot |") for line in lines)
    assert paired == 2  # the paired comparison with long CoT, one per budget
    assert sum(line.startswith("| sr(kappa=64,rounds=2) |") for line in lines) - paired == 2
    page = Path(out["html"]).read_text()
    assert "data:image/png;base64," in page and page.split("<h3>")[0].count("<tr>") == 5


async def test_report_renders_tables_and_a_valid_png(tmp_path: Path) -> None:
    async with ScriptedServer(reply) as server:
        spec_path = write_spec(tmp_path, server.base_url)
        await run_sweep(load_spec(spec_path), tmp_path / "r.sqlite")
    prices = {b.spec: b.price_per_million for b in load_spec(spec_path).backends}
    out = write_report(tmp_path / "r.sqlite", tmp_path / "report", prices=prices)
    check_files(out)
    for g in out["groups"]:
        # 4 problems (one always fails, which counts as wrong) x 2 seeds; only gsm8k-test-0 is right
        assert g["graded"] == 8 and g["failed"] == 2 and g["accuracy"] == pytest.approx(2 / 8)
        assert g["pass@1"] == pytest.approx(g["accuracy"]) and g["pass@2"] == pytest.approx(1 / 4)


def test_report_plots_all_wrong_all_right_and_all_failed_configurations(tmp_path: Path) -> None:
    """Accuracy 0 and 1 sit exactly on their interval's ends (no negative error bar), and a configuration whose
    every cell failed is in the table but not on the plot."""
    db = ResultsDB(tmp_path / "r.sqlite")
    outcome = {"wrong": ("ok", 0), "right": ("ok", 1), "broken": ("failed", None)}
    for method, (status, correct) in outcome.items():
        db.write_many([{"key": f"{method}-{i}", "dataset": "gsm8k", "item_id": f"p{i}", "method": method,
                        "backend": "b", "budget": 512, "seed": 0, "status": status, "correct": correct,
                        "b_seq": 100, "b_total": 100, "output_tokens": 90, "input_tokens": 10, "latency_s": 1.0,
                        "grader": "g", "error": None if status == "ok" else "BudgetExceeded: no room"}
                       for i in range(3)])
    db.close()
    out = write_report(tmp_path / "r.sqlite", tmp_path / "report")
    groups = {g["method"]: g for g in out["groups"]}
    assert groups["wrong"]["ci_low"] == 0.0 and groups["right"]["ci_high"] == 1.0
    assert groups["broken"]["graded"] == 3 and groups["broken"]["failed"] == 3 and groups["broken"]["accuracy"] == 0
    assert Path(out["plots"]["gsm8k"]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("n", range(1, 61))
def test_wilson_interval_holds_its_estimate(n: int) -> None:
    for k in range(n + 1):
        low, high = wilson_interval(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_pass_at_k_is_unbiased_and_pass_at_1_does_not_drift_with_n() -> None:
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 4) == 1.0 and pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - (3 * 2) / (5 * 4))
    for n in (1, 2, 4, 8):
        rows = [{"dataset": "d", "method": "m", "backend": "b", "budget": 1, "item_id": f"p{i}", "status": "ok",
                 "correct": int(s < n * (i + 1) // 4), "output_tokens": 1, "input_tokens": 1, "b_seq": 1,
                 "b_total": 1, "latency_s": 0.1, "grader": "g"} for i in range(4) for s in range(n)]
        [g] = summarise(rows)
        assert g["pass@1"] == pytest.approx(g["accuracy"])


def test_pareto_front() -> None:
    points = [(100, 0.5), (200, 0.4), (300, 0.7), (300, 0.6), (50, 0.1)]
    assert pareto_front(points) == [4, 0, 2]


@pytest.mark.parametrize("name", ["smoke", "demo", "math500_vllm", "aime_vllm"])
def test_shipped_specs_validate(name: str) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = load_spec(root / "benchmarks" / "sweeps" / f"{name}.toml")
    assert spec.budgets and spec.methods


def test_failed_cells_count_as_wrong_and_report_json_has_the_table_numbers(tmp_path: Path) -> None:
    """A method whose hard problems fail does not look better than one that answers them wrong."""
    db = ResultsDB(tmp_path / "r.sqlite")
    rows = []
    for method, outcomes in {"answers": ["right", "right", "wrong", "wrong"],
                             "fails": ["right", "right", "failed", "failed"]}.items():
        for i, outcome in enumerate(outcomes):
            rows.append({"key": f"{method}-{i}", "dataset": "gsm8k", "item_id": f"p{i}", "method": method,
                         "backend": "b", "budget": 512, "seed": 0,
                         "status": "failed" if outcome == "failed" else "ok",
                         "correct": None if outcome == "failed" else int(outcome == "right"),
                         "b_seq": 100, "b_total": 100, "output_tokens": 90, "input_tokens": 10, "latency_s": 1.0,
                         "grader": "g", "error": "BudgetExceeded: no room" if outcome == "failed" else None})
    db.write_many(rows)
    db.close()
    out = subprocess.run([sys.executable, "-m", "agentkit", "sweep", "report", str(tmp_path / "r.sqlite"),
                          "--out", str(tmp_path / "report"), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    groups = {g["method"]: g for g in json.loads(out.stdout)["groups"]}
    assert groups["answers"]["accuracy"] == groups["fails"]["accuracy"] == 0.5  # was 1.0 for "fails"
    assert groups["fails"]["failed"] == 2 and groups["fails"]["graded"] == 4
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| fails | b | B_seq 512 | 4 | 1 | 0.500 | 0.150-0.850 |" in table


STRICT_SPEC = """
name = "strict"
budgets = [900]
lenient_answers = {lenient}
[[datasets]]
name = "gsm8k"
limit = 2
[[methods]]
name = "long-cot"
[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 64, variant = "topk" }}
[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
"""


@pytest.mark.parametrize("lenient", [False, True])
async def test_answers_from_cut_off_text_do_not_count_unless_lenient_and_rows_explain_themselves(
        tmp_path: Path, lenient: bool) -> None:
    def script(body: dict[str, Any]) -> Reply:
        if "robe takes 2 bolts" in body["messages"][-1]["content"]:  # gsm8k-test-1: runs past any cap
            return Reply("so far 18 then " + "more " * 3000)
        return Reply("The total is 3 bolts plus 15 more, 18")  # finished, no \\boxed: GSM8K's final-number rule

    async with ScriptedServer(script) as server:
        path = tmp_path / "strict.toml"
        path.write_text(STRICT_SPEC.format(url=server.base_url, lenient=str(lenient).lower()))
        await run_sweep(load_spec(path), tmp_path / "r.sqlite")
    db = ResultsDB(tmp_path / "r.sqlite")
    rows = {(r["item_id"], r["method"].split("(")[0]): r for r in db.rows()}
    db.close()
    finished, cut = rows[("gsm8k-test-0", "long-cot")], rows[("gsm8k-test-1", "long-cot")]
    assert finished["finish_reason"] == "stop" and cut["finish_reason"] == "length"
    if lenient:
        assert finished["extraction"] == cut["extraction"] == "lenient" and cut["answer"] is not None
    else:
        assert (finished["answer"], finished["extraction"]) == ("18", "final-number")
        assert (cut["answer"], cut["extraction"], cut["correct"]) == (None, "none", 0)
    details = json.loads(rows[("gsm8k-test-0", "pdr")]["details"])
    assert [len(r["answers"]) for r in details["rounds"]] == [2, 1] and details["schedule"] == [2, 1]
    assert {"agreement", "failed", "correct_drafts"} <= set(details["rounds"][0])
    assert details["rounds"][0]["workspace_tokens"][0] > 0
    out = write_report(tmp_path / "r.sqlite", tmp_path / "report")
    [pdr_group] = [g for g in out["groups"] if g["method"].startswith("pdr")]
    assert len(pdr_group["round_accuracy"]) == 2
    assert "Drafts right per round" in await asyncio.to_thread(Path(out["markdown"]).read_text)


def test_an_older_results_database_gains_the_new_columns(tmp_path: Path) -> None:
    from agentkit.sweep.db import ADDED_COLUMNS, COLUMNS

    old = [c for c in COLUMNS if c not in ADDED_COLUMNS]
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute(f"CREATE TABLE results ({', '.join(f'{c} {COLUMNS[c]}' for c in old)})")
    conn.execute("INSERT INTO results (key, status) VALUES ('k', 'ok')")
    conn.commit()
    conn.close()
    db = ResultsDB(tmp_path / "old.sqlite", create=False)
    [row] = list(db.rows())
    db.close()
    assert row["key"] == "k" and row["extraction"] is None and row["details"] is None


def test_paired_comparisons_bootstrap_over_problems_and_seed_spread(tmp_path: Path) -> None:
    """Two methods on the same 6 problems x 3 seeds: the report pairs them per item (seeds averaged), with a
    bootstrap over problems; seeds of one problem never count as independent evidence."""
    from agentkit.evaluation.stats import bootstrap_mean_ci, paired_difference, seed_mean_se

    db = ResultsDB(tmp_path / "r.sqlite")
    rows = []
    right = {"long-cot": {0, 1}, "pdr": {0, 1, 2, 3}}  # pdr also solves p2, p3 (every seed)
    for method, solved in right.items():
        for item in range(6):
            for seed in range(3):
                rows.append({"key": f"{method}-{item}-{seed}", "dataset": "gsm8k", "item_id": f"p{item}",
                             "method": method, "method_params": {"name": method}, "backend": "b", "budget": 512,
                             "seed": seed, "status": "ok", "answer": "1" if item in solved else "2",
                             "correct": int(item in solved), "b_seq": 1, "b_total": 1, "output_tokens": 1,
                             "input_tokens": 1, "latency_s": 0.1, "grader": "g"})
    db.write_many(rows)
    db.close()
    out = write_report(tmp_path / "r.sqlite", tmp_path / "report")
    [c] = out["comparisons"]
    assert (c["a"], c["b"], c["items"]) == ("pdr", "long-cot", 6)
    assert c["difference"] == pytest.approx(2 / 6) and (c["wins"], c["losses"], c["ties"]) == (2, 0, 4)
    # With 6 problems the paired interval still includes 0 (a resample without p2 and p3 is likely enough).
    assert c["ci_low"] == 0.0 < c["difference"] <= c["ci_high"] <= 4 / 6
    groups = {g["method"]: g for g in out["groups"]}
    assert groups["pdr"]["seed_se"] == 0 and groups["pdr"]["seeds"] == 3 and groups["pdr"]["maj@3"] == 4 / 6
    # The bootstrap over 6 problems is wider than a Wilson interval that takes 18 cells as independent.
    g = groups["long-cot"]
    assert g["boot_high"] - g["boot_low"] > g["ci_high"] - g["ci_low"]
    assert "| pdr | long-cot | B_seq 512 | 6 | +0.333 |" in Path(out["markdown"]).read_text()
    assert bootstrap_mean_ci([[1.0, 1.0], [0.0, 0.0]], seed=1) == bootstrap_mean_ci([[1.0, 1.0], [0.0, 0.0]], seed=1)
    assert seed_mean_se([0.5, 0.7]) == pytest.approx((0.6, 0.1))
    assert paired_difference({}, {"x": 1.0})["items"] == 0
    cli = subprocess.run([sys.executable, "-m", "agentkit", "sweep", "report", str(tmp_path / "r.sqlite"), "--out",
                          str(tmp_path / "r2"), "--compare", "long-cot", "pdr", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    [back] = json.loads(cli.stdout)["comparisons"]
    assert back["a"] == "long-cot" and back["difference"] == pytest.approx(-2 / 6)


OUTPUT_SPEC = """
name = "kinds"
concurrency = 2
budgets = [600]
seeds = [0]

[[datasets]]
name = "gsm8k"
limit = 3

[[methods]]
name = "long-cot"

[[methods]]
name = "long-cot"
label = "long-cot-out"
budget_kind = "output"
budgets = [96]

[[methods]]
name = "bci"
label = "bci-out"
budget_kind = "output"
budgets = [96]
params = {{ behaviors = {{ behavior_check_units = "Write the unit beside every quantity." }} }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 2
"""


async def test_an_output_budget_caps_each_call_and_is_never_compared_with_a_sequential_one(tmp_path: Path) -> None:
    path = tmp_path / "kinds.toml"
    async with ScriptedServer(lambda body: Reply("so it is \\boxed{18}")) as server:
        path.write_text(OUTPUT_SPEC.format(url=server.base_url))
        spec = load_spec(path)
        await run_sweep(spec, tmp_path / "k.sqlite")
        caps = sorted({int(b["max_tokens"]) for b in server.requests})
    db = ResultsDB(tmp_path / "k.sqlite")
    rows = list(db.rows())
    db.close()
    assert len(rows) == 9 and all(r["status"] == "ok" for r in rows)
    kinds = {r["method"]: r["budget_kind"] for r in rows}
    assert kinds == {"long-cot": "sequential", "long-cot-out": "output", "bci-out": "output"}
    # The output kind is each call's cap; the sequential budget is planned into a larger cap (600 minus the prompt).
    assert caps[0] == 96 and len(caps) >= 2 and all(96 < c < 600 for c in caps[1:])
    bci_rows = [r for r in rows if r["method"] == "bci-out"]
    plain = [r for r in rows if r["method"] == "long-cot-out"]
    # Behaviors are input, not charged against the cap: BCI's prompt is longer at the same output cap.
    assert min(r["input_tokens"] for r in bci_rows) > max(r["input_tokens"] for r in plain)
    # A sequential cell keeps the key it had before budget kinds existed; the same cell as output is another key.
    from agentkit.sweep.spec import Cell
    seq = Cell(dataset="gsm8k", item_id="x", method="m", backend="b", budget=96, seed=0)
    raw = json.dumps(["gsm8k", "x", "m", "b", 96, 0])
    import hashlib
    assert seq.key == hashlib.sha256(raw.encode()).hexdigest()[:32]
    assert seq.model_copy(update={"budget_kind": "output"}).key != seq.key
    out = write_report(tmp_path / "k.sqlite", tmp_path / "rep")
    labels = {(g["method"], g["budget_kind"], g["budget"]) for g in out["groups"]}
    assert labels == {("long-cot", "sequential", 600), ("long-cot-out", "output", 96), ("bci-out", "output", 96)}
    # Default comparisons: each method against a long-CoT baseline of the same budget and kind only.
    pairs = {(c["a"], c["b"], c["budget_kind"]) for c in out["comparisons"]}
    assert pairs == {("bci-out", "long-cot-out", "output")}
    md = await asyncio.to_thread(Path(out["markdown"]).read_text)
    assert "| bci-out | long-cot-out | out 96 |" in md and "B_seq 600" in md
    # BCI's behavior block is its own column: its tokens for BCI, "-" for the others
    groups = {g["method"]: g for g in out["groups"]}
    assert groups["bci-out"]["behavior_tokens"] > 0 and "behavior_tokens" not in groups["long-cot-out"]


def test_an_output_budget_with_its_own_max_tokens_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('budgets = [128]\n[[datasets]]\nname = "gsm8k"\n[[methods]]\nname = "long-cot"\n'
                   'budget_kind = "output"\nparams = { max_tokens = 64 }\n[[backends]]\nspec = "local"\n')
    with pytest.raises(ConfigError, match=r"methods\.0.*both set the output cap"):
        load_spec(bad)
    bad.write_text('budgets = [128]\n[[datasets]]\nname = "gsm8k"\n[[methods]]\nname = "long-cot"\n'
                   'budget_kind = "tokens"\n[[backends]]\nspec = "local"\n')
    with pytest.raises(ConfigError, match=r"methods\.0\.budget_kind"):
        load_spec(bad)


def test_a_row_written_to_a_migrated_database_lands_in_its_columns(tmp_path: Path) -> None:
    """An older database gains the new columns at the end of its table, in another order than a new one has
    them: rows are inserted by column name, so every value lands in its own column."""
    from agentkit.sweep.db import ADDED_COLUMNS, COLUMNS

    old = [c for c in COLUMNS if c not in ADDED_COLUMNS]
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute(f"CREATE TABLE results ({', '.join(f'{c} {COLUMNS[c]}' for c in old)}, trace BLOB)")
    conn.commit()
    conn.close()
    db = ResultsDB(tmp_path / "old.sqlite", create=False)
    row = {name: f"v-{name}" for name in COLUMNS}
    row.update(budget=7, seed=3, correct=1, b_seq=5, b_total=6, latency_s=0.5, finished_at=123.0, status="ok",
               handbook={"store": "hb", "embedder": "e", "dim": 4}, trace={"calls": [1]})
    assert db.write(row)
    [back] = list(db.rows())
    trace = db.trace(row["key"])
    db.close()
    assert {k: back[k] for k in ("budget", "seed", "budget_kind", "details", "extraction")} == {
        "budget": 7, "seed": 3, "budget_kind": "v-budget_kind", "details": "v-details", "extraction": "v-extraction"}
    assert json.loads(back["handbook"]) == {"store": "hb", "embedder": "e", "dim": 4} and trace == {"calls": [1]}


async def test_rows_record_the_handbook_and_its_embedder_and_a_bad_embedder_is_refused(tmp_path: Path) -> None:
    from agentkit.memory import Behavior, QdrantBehaviorStore

    store = await QdrantBehaviorStore(path=tmp_path / "hb").open()
    await store.add(Behavior(name="behavior_check_units", instruction="Write the unit beside every quantity."))
    await store.close()
    spec_text = OUTPUT_SPEC.replace('params = {{ behaviors = {{ behavior_check_units = "Write the unit beside every '
                                    'quantity." }} }}', f'params = {{{{ store = "{tmp_path / "hb"}", k = 1 }}}}')
    spec_text = spec_text.replace('name = "kinds"\n', 'name = "kinds"\nembedder = "minilm"\n')
    path = tmp_path / "hb.toml"
    async with ScriptedServer(lambda body: Reply("so it is \\boxed{18}")) as server:
        path.write_text(spec_text.format(url=server.base_url))
        await run_sweep(load_spec(path), tmp_path / "h.sqlite")
    db = ResultsDB(tmp_path / "h.sqlite")
    rows = list(db.rows())
    db.close()
    recorded = {r["method"]: r["handbook"] and json.loads(r["handbook"]) for r in rows}
    assert recorded["bci-out"] == {"store": str(tmp_path / "hb"), "embedder": "all-MiniLM-L6-v2", "dim": 384,
                                   "curation": None, "splits": []}  # added by hand: no curation log, no provenance
    assert recorded["long-cot"] is None and recorded["long-cot-out"] is None
    # the report lists the handbook and what building it cost (a curation log written as build_handbook writes it)
    (tmp_path / "hb" / "curation.jsonl").write_text(
        json.dumps({"problem_id": "p", "input_tokens": 100, "output_tokens": 40, "calls": 3}) + "\n{cut by a cr")
    from agentkit.sweep.runner import curation_cost
    assert curation_cost(tmp_path / "hb" / "curation.jsonl") == {"curations": 1, "calls": 3, "input_tokens": 100,
                                                                   "output_tokens": 40}
    report = write_report(tmp_path / "h.sqlite", tmp_path / "rep")
    md = await asyncio.to_thread(Path(report["markdown"]).read_text)
    assert f"- `{tmp_path / 'hb'}` (all-MiniLM-L6-v2): no curation log" in md
    path.write_text(spec_text.replace('embedder = "minilm"', 'embedder = "bge-m3"').format(url="http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match=r"embedder.*needs a directory after the colon"):
        load_spec(path)
    # a store that is not there is refused before anything runs (opening it would make an empty handbook)
    path.write_text(spec_text.replace(str(tmp_path / "hb"), str(tmp_path / "typo")).format(url="http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match=r"no handbook at .*typo: build one first"):
        await run_sweep(load_spec(path), tmp_path / "t.sqlite")
    assert not (tmp_path / "typo").exists()


def test_the_report_lists_a_stores_build_cost_when_any_row_recorded_it() -> None:
    from agentkit.sweep.report import _handbooks

    old = {"handbook": json.dumps({"store": "hb", "curation": None})}  # a row from before build logs were recorded
    new = {"handbook": json.dumps({"store": "hb", "curation": {"curations": 2, "calls": 6}})}
    other = {"handbook": json.dumps({"store": "hb2", "curation": None})}
    for rows in ([old, new, other], [new, old, other]):
        assert _handbooks(rows) == [{"store": "hb", "curation": {"curations": 2, "calls": 6}},
                                    {"store": "hb2", "curation": None}]
    assert _handbooks([{"handbook": "{not json"}, {"handbook": None}, old]) == [{"store": "hb", "curation": None}]


def test_bci_is_compared_with_its_twin_by_default() -> None:
    from agentkit.sweep.report import compare

    def row(method: str, name: str, item: str, ok: bool, kind: str = "output") -> dict[str, Any]:
        return {"status": "ok", "correct": int(ok), "method_params": json.dumps({"name": name}), "method": method,
                "dataset": "d", "backend": "b", "budget_kind": kind, "budget": 512, "item_id": item}

    rows = [row("bci-topic", "bci", "i1", True), row("bci-topic", "bci", "i2", True),
            row("bci-plain", "bci-plain", "i1", False), row("bci-plain", "bci-plain", "i2", True),
            row("long-cot", "long-cot", "i1", True, "sequential"), row("pdr", "pdr", "i1", False, "sequential")]
    pairs = {(c["a"], c["b"], c["budget_kind"]): c["difference"] for c in compare(rows)}
    assert pairs == {("bci-topic", "bci-plain", "output"): 0.5, ("pdr", "long-cot", "sequential"): -1.0}

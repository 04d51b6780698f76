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


BEHAVIORS = {"behavior_track_remaining": "Subtract every amount used from the start, one step at a time.",
             "behavior_unit_rate_first": "Compute the amount per single unit first, then scale it up."}


async def run_recipe(name: str, *args: str, timeout: float = 300) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "recipes" / name), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    return out.decode(), err.decode()


async def test_metacognitive_reuse_recipes(tmp_path: Path) -> None:
    import json

    from agentkit.testing import reuse_script

    async with ScriptedServer(reuse_script(BEHAVIORS, answer="18")) as server:
        spec = f"openai-compatible:{server.base_url}?model=scripted"
        store = str(tmp_path / "hb")
        out, _ = await run_recipe("build_handbook.py", "--backend", spec, "--limit", "2", "--store", store)
        assert "curated 2 problems" in out and "2 new behaviors, 2 merged" in out
        [line] = [x for x in out.splitlines() if x.startswith("- behavior_track_remaining [gsm8k-train] (from")]
        assert "gsm8k-train-0" in line and "gsm8k-train-1" in line  # provenance of both problems

        out, _ = await run_recipe("bci_math.py", "--backend", spec, "--store", store, "--build-limit", "2",
                                  "--limit", "2", "--k", "2", "--json")
        table = json.loads(out)
        assert table["build"]["skipped"] == 2  # the handbook above is reused, not rebuilt
        assert table["bci"]["answers_citing"] == 2 and table["long-cot"]["answers_citing"] == 0
        assert table["bci"]["mean_behavior_tokens"] > 0 and table["long-cot"]["mean_behavior_tokens"] == 0
        assert table["bci"]["accuracy"] == table["long-cot"]["accuracy"] == 0.5  # 18 is gsm8k-test-0's answer
        assert table["curation_cost"]["calls"] == 6

        out, _ = await run_recipe("self_improve.py", "--backend", spec, "--limit", "1", "--json")
        table = json.loads(out)
        assert {m: t["rows"][0]["answer"] for m, t in table.items()} == dict.fromkeys(
            ("single", "critique-revise", "self-improve"), "18")
        assert table["self-improve"]["rows"][0]["behaviors"] == list(BEHAVIORS)

        out, _ = await run_recipe("bc_sft.py", "--backend", spec, "--limit", "2", "--out", str(tmp_path / "sft"),
                                  "--steps", "2", "--json")
        assert len((tmp_path / "sft" / "bc_sft.jsonl").read_text().splitlines()) == 2
        assert out.count('"steps": 2') == 2 and (tmp_path / "sft" / "bc_sft" / "adapter" / "adapter_config.json").exists()

        out, _ = await run_recipe("memory_in_another_agent.py", "--store", str(tmp_path / "other"), "--llm-url",
                                  server.base_url, "--llm-model", "scripted", "--limit", "2")
        lines = out.splitlines()
        assert lines[0].startswith("gsm8k-test-0: answer 18 (reference 18)")
        stats = lines[2:]
        assert len(stats) == 3 and all("retrieved 2, cited 0" in line for line in stats)  # k=3 of 3 seeded


async def test_a_method_registered_in_a_recipe_runs_in_the_recipe_the_cli_and_a_sweep(tmp_path: Path) -> None:
    """recipes/custom_method.py registers `adaptive-consistency`; `agentkit solve --plugin` and a sweep spec's
    `plugins` run it through the same registry as the built-in methods."""
    import json

    from agentkit.registry import METHODS
    from agentkit.sweep import ResultsDB, load_spec, run_sweep

    answers = iter(["7", "9", "9", "9", "4", "4"] * 10)
    async with ScriptedServer(lambda body: Reply(f"so \\boxed{{{next(answers)}}}")) as server:
        spec = f"openai-compatible:{server.base_url}?model=scripted"
        out, _ = await run_recipe("custom_method.py", "--backend", spec, "--limit", "1")
        assert out.startswith("gsm8k-test-0: 9 (reference 18, wrong) after 3 samples")  # 7, 9, 9: two agree
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "solve", "--plugin", str(ROOT / "recipes" / "custom_method.py"),
            "--method", "adaptive-consistency", "--param", "max_samples=3", "--backend", spec, "--limit", "1",
            "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode in (0, 1), err.decode()
        [row] = [json.loads(line) for line in stdout.decode().splitlines()]
        assert row["answer"] == "4" and row["calls"] == 3  # the stream goes on: 9, 4, 4 (two agree at the third)
        toml = tmp_path / "custom.toml"
        toml.write_text(f'name = "custom"\nplugins = ["{ROOT / "recipes" / "custom_method.py"}"]\nbudgets = [2000]\n'
                        f'[[datasets]]\nname = "gsm8k"\nlimit = 2\n[[methods]]\nname = "adaptive-consistency"\n'
                        f'params = {{ max_samples = 4 }}\n[[backends]]\nspec = "{spec}"\nconcurrency = 1\n')
        summary = await run_sweep(load_spec(toml), tmp_path / "custom.sqlite")
    assert "adaptive-consistency" in METHODS and summary.ran == 2 and summary.failed == 0
    db = ResultsDB(tmp_path / "custom.sqlite")
    try:
        assert {r["method"] for r in db.rows()} == {"adaptive-consistency(max_samples=4)"}
    finally:
        db.close()
    # An unknown method is one line naming the registered ones, not a traceback.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "solve", "--plugin", str(tmp_path / "missing.py"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and err.decode().startswith("agentkit: no plugin file")


async def test_stream_learning_recipe_three_modes_on_one_stream_and_resumes(tmp_path: Path) -> None:
    import json

    from agentkit.testing import call_step

    def script(body: dict[str, object]) -> Reply:
        step = call_step(body)[1]
        if step == "strategist_extract":
            return Reply('{"behavior_add_then_check": "Add the parts, then check the sum against the question."}')
        if step == "strategist_reflect":
            return Reply("Adding the parts in order would have helped.")
        return Reply("so \\boxed{18}")

    async with ScriptedServer(script) as server:
        args = [sys.executable, str(ROOT / "recipes" / "stream_learning.py"), "--backend",
                f"openai-compatible:{server.base_url}?model=scripted", "--limit", "4", "--every", "2",
                "--out", str(tmp_path / "stream"), "--json"]
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 300)
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out.decode().splitlines()[-1])
        calls = len(server.requests)
        again = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE)
        _, err2 = await asyncio.wait_for(again.communicate(), 300)
        assert again.returncode == 0, err2.decode()
        assert len(server.requests) == calls  # resumed: nothing redone
    assert set(summary["modes"]) == {"online", "frozen", "none"} and summary["stream"]["items"] == 4
    assert calls == 4 * 3 + 4 + 4  # online: answer, reflect, extract; frozen and none: one answer each
    online = summary["modes"]["online"]
    assert online["curation_tokens"] > 0 and summary["modes"]["frozen"]["curation_tokens"] == 0
    assert [p["seen"] for p in online["curve"]] == [2, 4]
    assert set(summary["paired"]) == {"online - frozen", "online - none", "frozen - none"}
    assert summary["paired"]["online - none"]["items"] == 4

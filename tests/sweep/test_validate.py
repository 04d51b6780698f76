"""`agentkit sweep validate`: every cell planned with the real prompts before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.sweep import implied_comparisons, infeasible, load_spec, starved, validate_spec

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps").glob("*.toml"))


def agentkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkit", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("spec", SWEEPS, ids=[p.name for p in SWEEPS])
def test_every_shipped_spec_validates(spec: Path) -> None:
    """Every cell of every shipped spec is feasible. A spec whose handbook store is not built in this checkout
    (stores are not committed) is planned all the same and then refused as `sweep run` refuses it: exit 2, one
    line naming the store."""
    out = agentkit("sweep", "validate", str(spec), "--json")
    stores = [m.params["store"] for m in load_spec(spec).methods if isinstance(m.params.get("store"), str)]
    missing = [s for s in stores if not (Path.cwd() / s).exists()]
    if missing:
        *warnings, last = out.stderr.strip().splitlines()
        assert out.returncode == 2 and last.startswith(f"agentkit: no handbook at {missing[0]}"), out.stderr
        assert all(w.startswith("agentkit: warning: starved: ") for w in warnings)
    else:
        assert out.returncode == 0, out.stderr
    plans = json.loads(out.stdout)
    assert plans and all(p["infeasible"] == 0 and p["min_tokens"] >= 64 for p in plans)


def test_validate_is_run_minus_the_calls_a_missing_store_is_refused_by_both(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('budgets = [2048]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\n[[methods]]\nname = "bci"\n'
                    f'params = {{ store = "{tmp_path / "nowhere"}" }}\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    out = agentkit("sweep", "validate", str(spec))
    assert out.returncode == 2 and "no handbook at" in out.stderr and "tokens per answering call" in out.stdout
    run = agentkit("sweep", "run", str(spec), "--db", str(tmp_path / "r.sqlite"))
    assert run.returncode == 2 and "no handbook at" in run.stderr and not (tmp_path / "nowhere").exists()


def test_a_starved_arm_is_a_warning_and_each_comparison_is_sized(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('budgets = [16384]\n[[datasets]]\nname = "aime24"\n[[methods]]\nname = "long-cot"\n'
                    '[[methods]]\nname = "pdr"\nlabel = "pdr-3x8"\nparams = { rounds = 3, drafts = 8, kappa = 2048 }\n'
                    '[[methods]]\nname = "sr"\nlabel = "sr-2"\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    loaded = load_spec(spec)
    plans = {p.method: p for p in validate_spec(loaded)}
    assert plans["long-cot"].share == 1.0 and plans["pdr-3x8"].share < 0.1 < plans["sr-2"].share
    [line] = starved(list(plans.values()), loaded.starved_fraction)
    assert line.startswith("pdr-3x8 at B_seq 16384 on aime24") and "of what long CoT gets there" in line
    sized = {c["a"]: c for c in implied_comparisons(loaded, list(plans.values()))}
    assert set(sized) == {"pdr-3x8", "sr-2"} and all(c["b"] == "long-cot" and c["items"] == 30 for c in sized.values())
    # 30 problems: only a difference of ~0.25 (one method winning almost every discordant problem) shows
    assert sized["sr-2"]["mde"] == pytest.approx(0.246, abs=0.001) and sized["sr-2"]["source"] == "assumed"
    out = agentkit("sweep", "validate", str(spec))
    assert out.returncode == 0 and "agentkit: warning: starved: pdr-3x8" in out.stderr
    assert "30 problems, discordance 0.25 (assumed): MDE +/-0.246" in out.stdout


def test_comparisons_are_sized_from_a_pilot_database(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('budgets = [2000]\n[[datasets]]\nname = "gsm8k"\nlimit = 400\n[[methods]]\nname = "long-cot"\n'
                    '[[methods]]\nname = "sr"\nlabel = "sr-2rounds"\nparams = { rounds = 2, kappa = 256 }\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    pilot = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "gsm8k50_local05b.sqlite"
    out = agentkit("sweep", "validate", str(spec), "--pilot", str(pilot), "--json")
    assert out.returncode == 0, out.stderr
    [c] = json.loads(out.stdout)["comparisons"]
    # SR against long CoT in the pilot: 3 wins and 0 losses on 50 problems (discordance 0.06)
    assert c["source"] == "pilot" and c["discordance"] == 0.06 and 0 < c["mde"] < 0.06
    bad = agentkit("sweep", "validate", str(spec), "--pilot", str(tmp_path / "none.sqlite"))
    assert bad.returncode == 2 and "no results database" in bad.stderr


def test_an_infeasible_spec_is_named_cell_by_cell_and_refused_by_run(tmp_path: Path) -> None:
    spec = tmp_path / "aime.toml"
    spec.write_text('budgets = [2048, 16384]\n[[datasets]]\nname = "aime24"\n[[methods]]\nname = "long-cot"\n'
                    '[[methods]]\nname = "pdr"\nparams = { rounds = 3, drafts = 8, kappa = 2048 }\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    plans = validate_spec(load_spec(spec))
    [line] = infeasible(plans, 64)
    assert line.startswith('pdr(drafts=8,kappa=2048,rounds=3) at B_seq 2048 on aime24: 30/30 problems leave 0 tokens')
    assert "needs B_seq >= 11028" in line
    out = agentkit("sweep", "validate", str(spec))
    assert out.returncode == 1 and "INFEASIBLE on 30/30" in out.stdout and "needs B_seq >= 11028" in out.stderr
    run = agentkit("sweep", "run", str(spec), "--db", str(tmp_path / "r.sqlite"))
    assert run.returncode == 2 and "1 infeasible cell group" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r.sqlite").exists()  # refused before anything ran


def test_per_method_budgets_and_min_draft_tokens(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('budgets = [2048]\nmin_draft_tokens = 1700\n[[datasets]]\nname = "gsm8k"\nlimit = 3\n'
                    '[[methods]]\nname = "long-cot"\n[[methods]]\nname = "sr"\nbudgets = [4096, 8192]\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    plans = {(p.method, p.budget): p for p in validate_spec(load_spec(spec))}
    assert set(plans) == {("long-cot", 2048), ("sr", 4096), ("sr", 8192)}
    assert not plans[("sr", 4096)].feasible and plans[("sr", 8192)].feasible  # 2 rounds: ~1/2 of B_seq each


def test_a_pdr_schedule_that_cannot_run_is_refused_when_the_spec_loads(tmp_path: Path) -> None:
    from agentkit.errors import ConfigError

    spec = tmp_path / "bad.toml"
    spec.write_text('budgets = [2048]\n[[datasets]]\nname = "gsm8k"\n[[methods]]\nname = "pdr"\n'
                    'params = { rounds = 3, drafts = [4, 2] }\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    with pytest.raises(ConfigError, match=r"drafts schedule \(4, 2\) must have 3 entries"):
        load_spec(spec)


def test_throughput_turns_every_call_at_its_cap_into_hours(tmp_path: Path) -> None:
    from agentkit.registry import get_method
    from agentkit.sweep.validate import duration

    spec = tmp_path / "t.toml"
    spec.write_text('budgets = [2048]\nseeds = [0, 1]\n[[datasets]]\nname = "gsm8k"\nlimit = 3\n'
                    '[[methods]]\nname = "long-cot"\n'
                    '[[methods]]\nname = "bci-plain"\nbudget_kind = "output"\nbudgets = [512]\n'
                    '[[methods]]\nname = "pdr"\nparams = { rounds = 2, drafts = 4, kappa = 256, variant = "summary" }\n'
                    '[[methods]]\nname = "pdr"\nlabel = "pdr-topk"\n'
                    'params = { rounds = 2, drafts = 4, kappa = 256, variant = "topk", k = 2 }\n'
                    '[[methods]]\nname = "self-consistency"\nparams = { samples = 3 }\n'
                    '[[methods]]\nname = "critique-revise"\nparams = { attempts = 2 }\n'
                    '[[methods]]\nname = "self-improve"\nparams = { attempts = 2, curation_tokens = 100 }\n'
                    '[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    loaded = load_spec(spec)
    plans = {p.method: p for p in validate_spec(loaded)}
    problems = loaded.datasets[0].load()
    for key, calls in (("long-cot", 1), ("self-consistency(samples=3)", 3), ("critique-revise(attempts=2)", 3)):
        entry = next(m for m in loaded.methods if m.key == key)
        method = get_method(entry.name)
        caps = [method.plan(p, method.params(**entry.params), 2048).max_tokens for p in problems]
        assert plans[key].max_generated == 2 * calls * sum(caps) and plans[key].cells == 6
    assert plans["bci-plain"].max_generated == 2 * 3 * 512  # the output budget is the cap
    pdr = get_method("pdr")
    summary = next(m for m in loaded.methods if m.name == "pdr" and not m.label)
    caps = [pdr.plan(p, pdr.params(**summary.params), 2048).max_tokens for p in problems]
    assert plans[summary.key].max_generated == 2 * sum(5 * c + 256 for c in caps)  # 4 + 1 drafts, one summary
    topk = next(m for m in loaded.methods if m.label == "pdr-topk")
    caps = [pdr.plan(p, pdr.params(**topk.params), 2048).max_tokens for p in problems]
    assert plans["pdr-topk"].max_generated == 2 * sum(5 * c for c in caps)  # extractive: nothing generated
    improve = next(m for m in loaded.methods if m.name == "self-improve")
    caps = [get_method("self-improve").plan(p, None, 2048).max_tokens for p in problems]
    assert plans[improve.key].max_generated == 2 * sum(3 * c + 4 * 100 for c in caps)
    took = duration(list(plans.values()), 1000.0)
    assert took["cells"] == 42 and took["max_generated_tokens"] == sum(p.max_generated for p in plans.values())
    assert took["hours"] == round(took["max_generated_tokens"] / 1000 / 3600, 2)
    out = agentkit("sweep", "validate", str(spec), "--throughput", "1000")
    assert out.returncode == 0 and f"{took['cells']} cells, at most {took['max_generated_tokens']:,}" in out.stdout
    for bad in ("0", "-5", "nan", "inf"):
        out = agentkit("sweep", "validate", str(spec), "--throughput", bad)
        assert out.returncode == 2 and "throughput must be a positive number" in out.stderr, bad


@pytest.mark.parametrize("name", ["math500_vllm.toml", "aime_vllm.toml", "math500_local15b.toml"])
def test_the_paper_specs_compare_like_with_like(name: str) -> None:
    from agentkit.sweep.runner import method_sampling

    spec = load_spec(Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps" / name)
    by_name: dict[str, list[object]] = {}
    for m in spec.methods:
        by_name.setdefault(m.name, []).append(m)
    bcis, [plain] = by_name["bci"], by_name["bci-plain"]
    # the reuse comparison: every BCI arm (and the worked-examples baseline) and the twin at the same output caps
    for arm in bcis + by_name.get("examples", []):
        assert arm.budget_kind == plain.budget_kind == "output" and arm.budgets == plain.budgets  # type: ignore[attr-defined]
    # the refinement comparison: every PDR/SR/long-CoT/self-consistency at matched B_seq, at one temperature
    refine = [m for m in spec.methods if m.name in ("long-cot", "sr", "pdr", "self-consistency")]
    assert refine and all(m.budget_kind == "sequential" for m in refine)
    if name.endswith("_vllm.toml"):
        temperatures = {t for m in spec.methods for t in method_sampling(m, spec.temperature).values()}
        assert temperatures == {0.6}, temperatures  # PDR's and self-consistency's floors are lifted
    if name.startswith("aime"):
        variants = {m.params.get("variant") for m in by_name["pdr"]}  # type: ignore[attr-defined]
        assert variants == {"summary", "topk", "topk-per-sample", "random-k"}
        attempts = {m.name: m.params.get("attempts") for m in spec.methods  # type: ignore[attr-defined]
                    if m.name in ("self-improve", "critique-revise")}
        assert attempts == {"self-improve": 4, "critique-revise": 4}
    if name.startswith("math500"):
        assert all(bci.params["retrieval"] == "topic" for bci in bcis)  # type: ignore[attr-defined]

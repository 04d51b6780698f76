"""`agentkit sweep validate`: every cell planned with the real prompts before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.sweep import infeasible, load_spec, validate_spec

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps").glob("*.toml"))


def agentkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkit.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("spec", SWEEPS, ids=[p.name for p in SWEEPS])
def test_every_shipped_spec_validates(spec: Path) -> None:
    out = agentkit("sweep", "validate", str(spec), "--json")
    assert out.returncode == 0, out.stderr
    plans = json.loads(out.stdout)
    assert plans and all(p["infeasible"] == 0 and p["min_tokens"] >= 64 for p in plans)


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

"""Recursive Self-Aggregation: exact calls and subsets, seeds, the vote, B_seq within the budget, and a sweep
beside PDR and self-consistency."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.messages import Problem
from agentkit.methods import METHODS, rsa
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, call_step

PROBLEM = Problem(problem_id="p1", text="What is 6 + 3?", reference="9", run_id="")


def script(body: dict[str, Any]) -> Reply:
    """Drafts answer 8 or 9 by seed parity; an aggregation answers what most of its candidates say."""
    text = body["messages"][-1]["content"]
    if call_step(body)[1] == "rsa_aggregate":
        seen = re.findall(r"\\boxed\{(\d+)\}", text)
        best = max(sorted(set(seen)), key=seen.count)
        return Reply(f"Combining the candidates: \\boxed{{{best}}}")
    return Reply(f"6 + 3 = \\boxed{{{9 if body['seed'] % 2 else 8}}}")


async def test_rsa_calls_subsets_seeds_and_vote() -> None:
    backend = ScriptedBackend(script)
    solution, record = await rsa(PROBLEM, backend, population=4, subset=3, loops=2, max_tokens=64, seed=7)
    steps = [call_step(b)[1] for b in backend.requests]
    assert steps == ["long_cot"] * 4 + ["rsa_aggregate"] * 8
    for body in backend.requests[4:]:
        prompt = body["messages"][-1]["content"]
        assert "Here are 3 candidate solutions" in prompt and prompt.count("Solution ") == 3
    assert len({b["seed"] for b in backend.requests}) == 12  # every call its own seed
    assert [len(s) for step in record.steps[1:] for s in step.subsets] == [3] * 8
    assert all(len(set(s)) == 3 for step in record.steps[1:] for s in step.subsets)  # without replacement
    last = record.steps[-1].answers
    assert solution.answer == max(set(last), key=last.count) and solution.method == "rsa"
    assert record.votes[0] == last.count(solution.answer) and sum(record.votes) == 4
    # the same seed: the same subsets and calls; another seed: other subsets
    again = ScriptedBackend(script)
    _, same = await rsa(PROBLEM, again, population=4, subset=3, loops=2, max_tokens=64, seed=7)
    assert same.steps == record.steps and [b["seed"] for b in again.requests] == [
        b["seed"] for b in backend.requests]
    _, other = await rsa(PROBLEM, ScriptedBackend(script), population=4, subset=3, loops=2, max_tokens=64, seed=8)
    assert [s.subsets for s in other.steps] != [s.subsets for s in record.steps]


async def test_rsa_stays_within_its_sequential_budget_and_refuses_one_too_small() -> None:
    method = METHODS["rsa"]
    params = method.params(population=3, subset=2, loops=2)
    plan = method.plan(PROBLEM, params, 1500)
    assert plan.per_token == 1 + 2 * 3 and plan.max_tokens == (1500 - plan.fixed) // plan.per_token
    result = await method.solve(PROBLEM, ScriptedBackend(lambda b: Reply("word " * 500 + "\\boxed{9}")), params=params,
                              budget=1500, seed=0)
    assert 0 < result.ledger.b_seq <= 1500 and result.ledger.calls == 9
    assert result.ledger.b_total > result.ledger.b_seq  # three branches per step
    assert {r.round for r in result.ledger.records} == {1, 2, 3}
    assert sum(r.final for r in result.ledger.records) == 1
    assert method.max_output(PROBLEM, params, 1500) == 9 * plan.max_tokens
    with pytest.raises(ConfigError, match="cannot exceed the population"):
        method.params(population=2, subset=3)
    from agentkit.errors import BudgetExceeded
    with pytest.raises(BudgetExceeded, match="no room for a draft"):
        await method.solve(PROBLEM, ScriptedBackend(script), params=params, budget=100)


async def test_rsa_in_a_sweep_beside_pdr_and_self_consistency(tmp_path: Path) -> None:
    import json

    from agentkit.sweep import ResultsDB, load_spec, run_sweep

    spec = tmp_path / "rsa.toml"
    async with ScriptedServer(lambda body: Reply("so \\boxed{18}")) as server:
        spec.write_text(f'''name = "rsa"
budgets = [3000]
[[datasets]]
name = "gsm8k"
limit = 2
[[methods]]
name = "rsa"
params = {{ population = 2, subset = 2, loops = 1 }}
[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 128 }}
[[methods]]
name = "self-consistency"
params = {{ samples = 2 }}
[[backends]]
spec = "openai-compatible:{server.base_url}?model=scripted&retries=1"
''')
        summary = await run_sweep(load_spec(spec), tmp_path / "r.sqlite")
    db = ResultsDB(tmp_path / "r.sqlite")
    rows = [r for r in db.rows() if r["method"].startswith("rsa")]
    db.close()
    assert summary.failed == 0 and len(rows) == 2
    for row in rows:
        assert row["correct"] == (row["item_id"] == "gsm8k-test-0")  # its reference is 18
        assert row["calls"] == 4 and 0 < row["b_seq"] <= 3000
        details = json.loads(row["details"])
        assert details["agreement"] == 1.0 and len(details["steps"]) == 2
        assert json.loads(row["sampling"]) == {"temperature": 0.0, "draft_temperature": 0.7, "seed": 0,
                                               "sent": {"student": [0.7]}}

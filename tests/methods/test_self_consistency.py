"""Self-consistency (the registry's proof): exact calls, vote and budgets against the scripted backend, and the
same method through `agentkit solve` and a sweep over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.messages import Problem
from agentkit.methods import METHODS, SelfConsistency, self_consistency
from agentkit.methods.self_consistency import majority_vote
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, count_words

PROBLEM = Problem(problem_id="p1", text="Janet has 16 eggs, eats 3 and bakes with 4. How many are left?",
                  reference="9")


def answers(*values: str) -> Any:
    """Sample i answers values[i] (by the call's branch, so concurrency does not change who says what)."""
    return lambda body: Reply(f"steps {body['context']['branch']} so \\boxed{{{values[body['context']['branch']]}}}")


def test_majority_vote_groups_equal_answers_and_breaks_ties_by_first_sample() -> None:
    assert majority_vote(["7", "9", "9.0", None, "7", "9"]) == (1, [[1, 2, 5], [0, 4]])
    assert majority_vote(["3", "4"]) == (0, [[0], [1]])
    assert majority_vote([None, None]) == (None, [])


async def test_samples_vote_and_budgets_match_one_chain_sequentially() -> None:
    backend = ScriptedBackend(answers("7", "9", "9", "8", "9"))
    method = METHODS["self-consistency"]
    assert isinstance(method, SelfConsistency)
    result = await method.solve(PROBLEM, backend, params=method.params(samples=5, max_tokens=50), seed=3)
    seeds = [b["seed"] for b in backend.requests]
    assert len(set(seeds)) == 5 and all(b["temperature"] == 0.7 for b in backend.requests)  # distinct, sampled
    assert result.answer == "9" and result.record.votes == [3, 1, 1] and result.record.agreement == 0.6
    ledger = result.ledger
    per_call = [r.tokens for r in ledger.records]
    assert ledger.calls == 5 and ledger.b_total == sum(per_call)
    assert ledger.b_seq == max(per_call)  # five branches of one stage: the critical path is one sample
    [final] = [r for r in ledger.records if r.final]
    assert final.branch == result.record.chosen == 1
    assert result.solution.b_seq == ledger.b_seq and result.solution.usage.calls == 5
    expected_in = sum(count_words(" ".join(m["content"] for m in b["messages"])) for b in backend.requests)
    assert ledger.input_tokens == expected_in


async def test_a_sequential_budget_caps_each_sample_like_one_long_chain() -> None:
    backend = ScriptedBackend(lambda body: Reply("word " * 5000))
    method = METHODS["self-consistency"]
    result = await method.solve(PROBLEM, backend, params=method.params(samples=3), budget=400)
    assert result.ledger.b_seq <= 400 < result.ledger.b_total
    long_cot = await METHODS["long-cot"].solve(PROBLEM, ScriptedBackend(lambda body: Reply("word " * 5000)), budget=400)
    assert {b["max_tokens"] for b in backend.requests} == {long_cot.ledger.records[0].output_tokens}


async def test_function_form_and_parameter_errors() -> None:
    solution, record = await self_consistency(PROBLEM, ScriptedBackend(answers("9", "9")), samples=2)
    assert solution.answer == "9" and solution.method == "self-consistency" and record.votes == [2]
    with pytest.raises(ConfigError, match="samples"):
        METHODS["self-consistency"].params(samples=0)


async def test_self_consistency_from_the_cli_and_a_sweep(tmp_path: Path) -> None:
    from agentkit.sweep import load_spec, run_sweep

    async with ScriptedServer(lambda body: Reply("so \\boxed{18}")) as server:
        spec = f"openai-compatible:{server.base_url}?model=scripted"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "solve", "--backend", spec, "--method", "self-consistency",
            "--samples", "3", "--limit", "1", "--budget", "600", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        [row] = [json.loads(line) for line in out.decode().splitlines()]
        assert row["answer"] == "18" and row["calls"] == 3 and row["B_seq"] < row["B_total"]
        toml = tmp_path / "sc.toml"
        toml.write_text(f'name = "sc"\nbudgets = [600]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\n'
                        f'[[methods]]\nname = "self-consistency"\nparams = {{ samples = 2 }}\n'
                        f'[[backends]]\nspec = "{spec}"\n')
        summary = await run_sweep(load_spec(toml), tmp_path / "sc.sqlite")
    assert summary.ran == 2 and summary.failed == 0

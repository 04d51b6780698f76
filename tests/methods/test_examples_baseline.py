"""The baselines a reviewer asks of BCI: retrieved worked examples at the same output cap (``examples``), and BCI
that shows behaviors only when the Student is unsure (``when = "unsure"``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.messages import Problem
from agentkit.methods.examples import load_bank
from agentkit.registry import get_method
from agentkit.sweep import ResultsDB, load_spec, run_sweep
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, call_step

PROBLEM = Problem(problem_id="q1", text="A train travels 60 miles in 1.5 hours. What is its speed in miles per hour?",
                  reference="40")


def bank(tmp_path: Path) -> Path:
    path = tmp_path / "bank.jsonl"
    rows = [
        {"problem_id": "e1", "problem": "A car travels 100 miles in 2 hours. What is its speed?",
         "solution": "Speed is distance over time: 100 / 2 = 50. \\boxed{50}", "correct": True},
        {"problem_id": "e2", "problem": "How many legs do 3 spiders have?", "solution": "3 x 8 = \\boxed{24}",
         "correct": True},
        {"problem_id": "e3", "problem": "A cyclist rides 30 miles in 3 hours. What is her speed?",
         "solution": "30 / 3 = \\boxed{11}", "correct": False},
        {"problem_id": "q1", "problem": PROBLEM.text, "solution": "60 / 1.5 = \\boxed{40}", "correct": True},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_the_most_similar_solved_examples_are_shown_never_the_problem_itself(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda body: Reply("so \\boxed{40}"))
    method = get_method("examples")
    result = await method.solve(PROBLEM, backend, params=method.params(bank=str(bank(tmp_path)), k=1), budget=None)
    [body] = backend.requests
    prompt = body["messages"][-1]["content"]
    assert call_step(body) == ("student", "worked_examples")
    # the travel-speed example (the most similar solved one); not the wrong one, not the problem's own solution
    assert "A car travels 100 miles" in prompt and "spiders" not in prompt and "cyclist" not in prompt
    assert "60 / 1.5" not in prompt and prompt.rstrip().endswith("put the final answer in \\boxed{}.")
    assert result.answer == "40" and result.record.examples == ["e1"]
    assert result.record.examples_in_context == 1 and result.record.example_tokens > 10
    with_wrong = await method.solve(PROBLEM, backend, params=method.params(bank=str(bank(tmp_path)), k=3,
                                                                          solved_only=False))
    assert set(with_wrong.record.examples) == {"e1", "e2", "e3"}


def test_a_bank_is_a_sweep_database_or_jsonl_and_a_missing_one_is_refused_at_load(tmp_path: Path) -> None:
    assert [e.problem_id for e in load_bank(bank(tmp_path))] == ["e1", "e2", "q1"]
    with pytest.raises(ConfigError, match="no example bank at"):
        get_method("examples").params(bank=str(tmp_path / "none.jsonl"))
    (tmp_path / "bad.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: not an example"):
        load_bank(tmp_path / "bad.jsonl")
    with pytest.raises(ConfigError, match="has no solved examples"):
        load_bank(_only_wrong(tmp_path))


def _only_wrong(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.jsonl"
    path.write_text(json.dumps({"problem": "p", "solution": "s", "correct": False}) + "\n")
    return path


async def test_a_sweep_database_of_curation_problems_is_a_bank_and_examples_run_in_a_sweep(tmp_path: Path) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        return Reply("adding it up gives \\boxed{18}")

    async with ScriptedServer(reply) as server:
        traces = tmp_path / "traces.toml"
        traces.write_text('name = "traces"\nbudgets = [512]\n[[datasets]]\nname = "gsm8k-train"\nlimit = 3\n'
                          '[[methods]]\nname = "long-cot"\nbudget_kind = "output"\n[[backends]]\n'
                          f'spec = "openai-compatible:{server.base_url}?model=scripted&retries=1"\n')
        await run_sweep(load_spec(traces), tmp_path / "traces.sqlite")
        examples = load_bank(tmp_path / "traces.sqlite", solved_only=False)
        assert len(examples) == 3 and all(e.dataset == "gsm8k-train" and "\\boxed{18}" in e.solution for e in examples)
        spec = tmp_path / "spec.toml"
        spec.write_text('name = "ex"\nbudgets = [512]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\n'
                        '[[methods]]\nname = "bci-plain"\nbudget_kind = "output"\n'
                        '[[methods]]\nname = "examples"\nbudget_kind = "output"\n'
                        f'params = {{ bank = "{tmp_path / "traces.sqlite"}", k = 2, solved_only = false }}\n'
                        f'[[backends]]\nspec = "openai-compatible:{server.base_url}?model=scripted&retries=1"\n')
        await run_sweep(load_spec(spec), tmp_path / "r.sqlite")
    db = ResultsDB(tmp_path / "r.sqlite", create=False)
    rows = [r for r in db.rows() if r["method"].startswith("examples")]
    db.close()
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(json.loads(r["details"])["examples_in_context"] == 2 for r in rows)


async def test_bci_when_unsure_shows_behaviors_only_when_the_probes_disagree() -> None:
    behaviors = {"behavior_rate": "Speed is distance divided by time."}
    method = get_method("bci")
    params = method.params(behaviors=behaviors, when="unsure")

    def agreeing(body: dict[str, Any]) -> Reply:
        return Reply("so \\boxed{40}")

    sure = ScriptedBackend(agreeing)
    result = await method.solve(PROBLEM, sure, params=params, budget=None)
    assert [call_step(b)[1] for b in sure.requests] == ["bci_plain", "bci_plain"]
    assert all(b["temperature"] == 0.7 for b in sure.requests) and len({b["seed"] for b in sure.requests}) == 2
    assert result.record.unsure is False and result.record.behaviors_in_context == 0
    assert result.answer == "40" and result.ledger.calls == 2 and sum(r.final for r in result.ledger.records) == 1
    answers = iter(["so \\boxed{40}", "so \\boxed{41}", "with behavior_rate: \\boxed{40}"])
    unsure = ScriptedBackend(lambda body: Reply(next(answers)))
    result = await method.solve(PROBLEM, unsure, params=params, budget=None)
    assert [call_step(b)[1] for b in unsure.requests] == ["bci_plain", "bci_plain", "bci"]
    assert unsure.requests[-1]["temperature"] == 0.0 and "behavior_rate" in unsure.requests[-1]["messages"][-1]["content"]
    assert result.record.unsure is True and result.record.probe_answers == ["40", "41"]
    assert result.answer == "40" and result.solution.cited == ("behavior_rate",)
    assert result.ledger.calls == 3 and result.solution.usage.calls == 3
    [final] = [r for r in result.ledger.records if r.final]
    assert final.round == 2
    with pytest.raises(ConfigError, match="probes"):
        method.params(behaviors=behaviors, when="unsure", probes=1)

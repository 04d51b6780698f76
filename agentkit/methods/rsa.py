"""Recursive Self-Aggregation (RSA; Venkatraman et al., 2025): a population of drafts refined by aggregating random
subsets of itself.

Step 0 samples a population of ``N`` chains of thought. Each of ``T`` loops builds a new population of ``N``: every
member is one aggregation call (``agentkit/prompts/rsa_aggregate.txt``, our paraphrase) that reads ``K`` members of
the previous population, drawn at random without replacement (seeded by the run's seed and the problem, so a run
is reproducible), and writes one improved solution. The answer is the majority vote over the last population
(``self_consistency.vote``; its winner's call is the ledger's final call).

Budgets: every call of a step is a parallel branch, so the critical path is one chain of thought plus, per loop,
one aggregation call, whose input carries ``K`` candidates: ``B_seq = P + m + T * (P_agg + K * m + m)``. At a
sequential budget every call gets the same output cap ``m`` that solves this for the problem's real prompts
(``Method.plan``), which puts RSA at matched ``B_seq`` beside PDR, SR, self-consistency and long CoT. All calls
are the Student's (``AnswerRequest``; aggregation is ``aggregate=True``). Registered as ``rsa``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from pydantic import Field, model_validator

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import BudgetExceeded
from agentkit.ledger import Ledger, estimate_prompt_tokens
from agentkit.memory.store import BehaviorStore
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.prompts import load_prompt
from agentkit.registry import Method, MethodParams, MethodResult, Plan
from agentkit.roles import Student, ask, attached
from agentkit.seeds import derive_seed

from ._common import budget_ledger, counted_prompt_tokens, start_run
from .self_consistency import majority_vote, vote

__all__ = ["RSA", "RSAParams", "rsa", "rsa_plan"]


class RSAParams(MethodParams):
    population: int = Field(default=4, ge=1, le=64)
    """N: drafts in each step's population."""
    subset: int = Field(default=2, ge=1, le=16)
    """K: candidates each aggregation reads (drawn without replacement; at most N)."""
    loops: int = Field(default=2, ge=1, le=16)
    """T: aggregation steps after the first population."""
    min_temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    """Calls sample at ``max(temperature, min_temperature)`` so that the population differs."""

    @model_validator(mode="after")
    def _subset(self) -> RSAParams:
        if self.subset > self.population:
            raise ValueError(f"subset (K = {self.subset}) cannot exceed the population (N = {self.population})")
        return self


def rsa_prompts(problem: Problem, params: RSAParams) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The draft prompt and the aggregation prompt without its candidates (what ``rsa_plan`` sizes)."""
    return (load_prompt("long_cot").render(problem=problem.text),
            load_prompt("rsa_aggregate").render(problem=problem.text, count=str(params.subset), solutions=""))


def rsa_plan(problem: Problem, params: RSAParams, budget: int, sizes: tuple[int, int] | None = None) -> Plan:
    """How B_seq splits: ``P + m + T * (P_agg + K * m + m)`` (see the module doc). ``sizes``: the two prompts'
    tokens as the server counts them (``rsa_prompts``); None: estimated."""
    draft, aggregate = sizes or tuple(estimate_prompt_tokens(m) for m in rsa_prompts(problem, params))
    # Each candidate is shown under a "Solution i:" header (about 4 tokens by the estimator).
    fixed = draft + params.loops * (aggregate + 4 * params.subset)
    per_token = 1 + params.loops * (params.subset + 1)
    return Plan(max_tokens=(budget - fixed) // per_token, fixed=fixed, per_token=per_token)


async def rsa(problem: Problem, backend: Backend, *, population: int = 4, subset: int = 2, loops: int = 2,
              ledger: Ledger | None = None, max_tokens: int | None = 1024, temperature: float = 0.7,
              seed: int | None = 0, bus: Bus | None = None) -> tuple[Solution, dict[str, Any]]:
    """Run RSA on ``problem``; returns the voted answer and per-step details (answers, agreement, subsets)."""
    params = RSAParams(population=population, subset=subset, loops=loops)  # the same checks as the method's
    problem, ledger = start_run(problem, ledger)
    rng = random.Random(derive_seed(seed, problem.problem_id, "rsa-subsets"))
    n, k = params.population, params.subset
    steps: list[dict[str, Any]] = []
    async with attached(bus, problem.run_id, [(Student(backend, ledger=ledger), n)]) as active:
        current = list(await asyncio.gather(*(ask(active, problem.derive(
            AnswerRequest, sender="rsa", problem=problem, max_tokens=max_tokens, temperature=temperature,
            seed=derive_seed(seed, problem.problem_id, "rsa", 0, i), round=1, branch=i, final=False,
            method="rsa-draft"), Solution) for i in range(n))))
        steps.append(_step(current, None))
        for t in range(1, params.loops + 1):
            subsets = [rng.sample(range(n), k) for _ in range(n)]
            previous = current
            current = list(await asyncio.gather(*(ask(active, problem.derive(
                AnswerRequest, sender="rsa", problem=problem, revise=previous[chosen[0]],
                revise_also=tuple(previous[j] for j in chosen[1:]), aggregate=True, max_tokens=max_tokens,
                temperature=temperature, seed=derive_seed(seed, problem.problem_id, "rsa", t, i), round=t + 1,
                branch=i, final=False, method="rsa-aggregate"), Solution) for i, chosen in enumerate(subsets))))
            steps.append(_step(current, subsets))
    solution, vote_details = vote(current, ledger, final_round=params.loops + 1, method="rsa")
    details = {"steps": steps, **vote_details}
    return solution, details


def _step(population: list[Solution], subsets: list[list[int]] | None) -> dict[str, Any]:
    """One step's answers, how many agree with its majority, and the subsets its aggregations read."""
    _, groups = majority_vote([s.answer for s in population])
    return {"answers": [s.answer for s in population], "agreement": round(len(groups[0]) / len(population), 3)
            if groups else 0.0, "subsets": subsets}


class RSA(Method):
    name = "rsa"
    summary = "Recursive Self-Aggregation: a population refined by aggregating random subsets, majority vote"
    params_model = RSAParams
    templates = ("long_cot", "rsa_aggregate")

    def plan(self, problem: Problem, params: MethodParams | None, budget: int) -> Plan:
        p = self.coerce(params)
        assert isinstance(p, RSAParams)
        return rsa_plan(problem, p, budget)

    def generated(self, params: MethodParams, cap: int) -> int:
        assert isinstance(params, RSAParams)
        return params.population * (params.loops + 1) * cap

    async def run(self, problem: Problem, backend: Backend, *, params: MethodParams | None = None,
                  budget: int | None = None, seed: int | None = 0, handbook: BehaviorStore | None = None,
                  bus: Bus | None = None, ledger: Ledger | None = None) -> MethodResult:
        p = self.coerce(params)
        assert isinstance(p, RSAParams)
        cap = p.max_tokens
        if budget is not None:
            draft, aggregate = rsa_prompts(problem, p)
            sizes = (await counted_prompt_tokens(backend, draft), await counted_prompt_tokens(backend, aggregate))
            cap = rsa_plan(problem, p, budget, sizes).max_tokens
            if cap < 1:
                raise BudgetExceeded(
                    f"a sequential budget of {budget} tokens leaves RSA (N={p.population}, K={p.subset}, "
                    f"T={p.loops}) no room for a draft; raise the budget or lower K or T")
        ledger = budget_ledger(budget, ledger)
        solution, details = await rsa(
            problem, backend, population=p.population, subset=p.subset, loops=p.loops, ledger=ledger,
            max_tokens=cap, temperature=max(p.temperature, p.min_temperature), seed=seed, bus=bus)
        return MethodResult(solution=solution, ledger=ledger, details=details)

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
are the Student's (``AnswerRequest``; aggregation with the ``rsa_aggregate`` prompt). Registered as ``rsa``.
"""

from __future__ import annotations

import asyncio
import random

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.calls import counted_prompt_tokens
from agentkit.errors import BudgetExceeded
from agentkit.ledger import Ledger, estimate_prompt_tokens
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.prompts import load_prompt
from agentkit.registry import DEFAULT_MAX_TOKENS, Method, MethodParams, MethodResult, Plan, RunContext
from agentkit.roles import Student, ask, attached

from ._common import numbered_solutions
from .self_consistency import Vote, majority_vote, vote

__all__ = ["RSA", "RSAParams", "RSARecord", "RSAStep", "rsa", "rsa_plan"]


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


class RSAStep(BaseModel):
    """One step's population: its answers, how many agree with its majority, the subsets its aggregations read
    (None for the first population)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answers: list[str | None]
    agreement: float
    subsets: list[list[int]] | None


class RSARecord(Vote):
    steps: list[RSAStep]


async def rsa(problem: Problem, backend: Backend, *, population: int = 4, subset: int = 2, loops: int = 2,
              ledger: Ledger | None = None, max_tokens: int | None = DEFAULT_MAX_TOKENS, temperature: float = 0.7,
              seed: int | None = 0, bus: Bus | None = None) -> tuple[Solution, RSARecord]:
    """Run RSA on ``problem``; returns the voted answer and its record (per step: answers, agreement, subsets)."""
    params = RSAParams(population=population, subset=subset, loops=loops)  # the same checks as the method's
    started, ctx = RunContext.begin(problem, backend, params, ledger=ledger, seed=seed, bus=bus)
    return await _rsa(started, ctx, max_tokens, temperature)


async def _rsa(problem: Problem, ctx: RunContext[RSAParams], max_tokens: int | None, temperature: float
               ) -> tuple[Solution, RSARecord]:
    params = ctx.params
    rng = random.Random(ctx.derive_seed(problem.problem_id, "rsa-subsets"))
    n, k = params.population, params.subset
    steps: list[RSAStep] = []
    async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), n)]) as active:
        current = list(await asyncio.gather(*(ask(active, problem.derive(
            AnswerRequest, sender="rsa", problem=problem, max_tokens=max_tokens, temperature=temperature,
            seed=ctx.derive_seed(problem.problem_id, "rsa", 0, i), round=1, branch=i, final=False,
            method="rsa-draft"), Solution) for i in range(n))))
        steps.append(_step(current, None))
        for t in range(1, params.loops + 1):
            subsets = [rng.sample(range(n), k) for _ in range(n)]
            previous = current
            current = list(await asyncio.gather(*(ask(active, problem.derive(
                AnswerRequest, sender="rsa", problem=problem, prompt="rsa_aggregate", prompt_fields={
                    "count": str(len(chosen)), "solutions": numbered_solutions([previous[j] for j in chosen])},
                max_tokens=max_tokens, temperature=temperature, seed=ctx.derive_seed(problem.problem_id, "rsa", t, i),
                round=t + 1, branch=i, final=False, method="rsa-aggregate"), Solution)
                for i, chosen in enumerate(subsets))))
            steps.append(_step(current, subsets))
    solution, voted = vote(current, ctx.ledger, final_round=params.loops + 1, method="rsa")
    return solution, RSARecord(**voted.model_dump(), steps=steps)


def _step(population: list[Solution], subsets: list[list[int]] | None) -> RSAStep:
    _, groups = majority_vote([s.answer for s in population])
    return RSAStep(answers=[s.answer for s in population], subsets=subsets,
                   agreement=round(len(groups[0]) / len(population), 3) if groups else 0.0)


class RSA(Method[RSAParams]):
    name = "rsa"
    summary = "Recursive Self-Aggregation: a population refined by aggregating random subsets, majority vote"
    params_model = RSAParams
    record_model = RSARecord
    templates = ("long_cot", "rsa_aggregate")

    def plan(self, problem: Problem, params: RSAParams | None, budget: int) -> Plan:
        return rsa_plan(problem, self.coerce(params), budget)

    call_fields = ("population", "loops")

    def calls(self, params: RSAParams) -> int:
        return params.population * (params.loops + 1)

    def generated(self, params: RSAParams, cap: int) -> int:
        return self.calls(params) * cap

    async def run(self, problem: Problem, ctx: RunContext[RSAParams]) -> MethodResult:
        p, cap = ctx.params, ctx.params.max_tokens
        if ctx.budget is not None:
            draft, aggregate = rsa_prompts(problem, p)
            sizes = (await counted_prompt_tokens(ctx.backend, draft),
                     await counted_prompt_tokens(ctx.backend, aggregate))
            cap = rsa_plan(problem, p, ctx.budget, sizes).max_tokens
            if cap < 1:
                raise BudgetExceeded(
                    f"a sequential budget of {ctx.budget} tokens leaves RSA (N={p.population}, K={p.subset}, "
                    f"T={p.loops}) no room for a draft; raise the budget or lower K or T")
        solution, record = await _rsa(problem, ctx, cap, max(p.temperature, p.min_temperature))
        return MethodResult(solution=solution, ledger=ctx.ledger, record=record)

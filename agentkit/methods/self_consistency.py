"""Self-consistency: N independent chains of thought, the answer most of them reach (majority vote).

The baseline every parallel method is compared with ("Self-Consistency Improves Chain of Thought Reasoning",
Wang et al., 2022). The N samples are N branches of one stage, so at a sequential budget ``B_seq`` each gets
the same output cap as one long chain of thought (``B_seq = P + m``, the critical path of one sample) while
``B_total`` grows N-fold: it is PDR's matched-``B_seq`` comparison. Samples are the Student's answering calls,
with seeds hashed from (seed, problem, sample) (``agentkit.seeds``) and temperature ``max(temperature, min_temperature)`` so that they differ.

The vote groups answers with ``answers_match``; the largest group wins, ties go to the group whose first
sample came first; samples without an answer do not vote. The winning group's first sample is the answer (its
call is marked final in the ledger). Its record has every sample's answer, the votes and the agreement.
Registered as ``self-consistency``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.evaluation.answers import answers_match
from agentkit.ledger import Ledger
from agentkit.messages import AnswerRequest, Problem, Solution, TokenUsage
from agentkit.registry import DEFAULT_MAX_TOKENS, Method, MethodParams, MethodRecord, MethodResult, RunContext
from agentkit.roles import Student, ask, attached

__all__ = ["SelfConsistency", "SelfConsistencyParams", "SelfConsistencyRecord", "Vote", "majority_vote",
           "self_consistency", "vote"]


def majority_vote(answers: list[str | None]) -> tuple[int | None, list[list[int]]]:
    """The index of the winning sample (None when no sample has an answer) and the answer groups (sample
    indices), largest first, ties by first appearance."""
    groups: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            if answers_match(answer, answers[group[0]]):
                group.append(i)
                break
        else:
            groups.append([i])
    groups.sort(key=lambda g: (-len(g), g[0]))
    return (groups[0][0] if groups else None), groups


class Vote(MethodRecord):
    """A majority vote over a population of answers (``vote``)."""

    votes: list[int]
    """The answer groups' sizes, largest first."""
    chosen: int
    """The branch whose answer won (its call is the run's final call)."""
    agreement: float
    """The winning group's share of the population."""


class SelfConsistencyRecord(Vote):
    answers: list[str | None]
    """Every sample's answer, in branch order."""


async def self_consistency(problem: Problem, backend: Backend, *, samples: int = 8, ledger: Ledger | None = None,
                           max_tokens: int | None = DEFAULT_MAX_TOKENS, temperature: float = 0.7,
                           seed: int | None = 0, bus: Bus | None = None) -> tuple[Solution, SelfConsistencyRecord]:
    """``samples`` chains of thought and their majority answer; returns the answer and the vote."""
    started, ctx = RunContext.begin(problem, backend, MethodParams(), ledger=ledger, seed=seed, bus=bus)
    return await _sample(started, ctx, samples, max_tokens, temperature)


async def _sample(problem: Problem, ctx: RunContext[Any], samples: int, max_tokens: int | None,
                  temperature: float) -> tuple[Solution, SelfConsistencyRecord]:
    async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), samples)]) as active:
        answers = list(await asyncio.gather(*(ask(active, problem.derive(
            AnswerRequest, sender="self-consistency", problem=problem, max_tokens=max_tokens, temperature=temperature,
            seed=ctx.derive_seed(problem.problem_id, "sample", i), round=1, branch=i, final=False,
            method="sample"), Solution)
            for i in range(samples))))
    solution, result = vote(answers, ctx.ledger, final_round=1, method="self-consistency")
    return solution, SelfConsistencyRecord(**result.model_dump(), answers=[s.answer for s in answers])


def vote(population: list[Solution], ledger: Ledger, *, final_round: int, method: str) -> tuple[Solution, Vote]:
    """The majority answer of ``population`` (the calls of ledger round ``final_round``, one branch each): its winner's
    call becomes the ledger's final call, and the answer carries the whole run's usage and budgets. Returns it and
    the vote (``votes``, ``agreement``, ``chosen``). Self-consistency and RSA finish this way."""
    winner, groups = majority_vote([s.answer for s in population])
    branch = winner if winner is not None else 0
    call = next(r for r in ledger.records if r.round == final_round and r.branch == branch)
    ledger.mark_final(call.call_id)
    solution = population[branch].with_(
        method=method, b_seq=ledger.b_seq, b_total=ledger.b_total,
        usage=TokenUsage(input_tokens=ledger.input_tokens, output_tokens=ledger.output_tokens, calls=ledger.calls))
    return solution, Vote(votes=[len(g) for g in groups], chosen=branch,
                          agreement=round(len(groups[0]) / len(population), 3) if groups else 0.0)


class SelfConsistencyParams(MethodParams):
    samples: int = Field(default=8, ge=1, le=256)
    """N: independent chains of thought, run in parallel."""
    min_temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    """Samples are drawn at ``max(temperature, min_temperature)`` so that they differ."""


class SelfConsistency(Method[SelfConsistencyParams]):
    name = "self-consistency"
    summary = "N chains of thought in parallel, majority vote (the parallel baseline)"
    params_model = SelfConsistencyParams
    record_model = SelfConsistencyRecord
    templates = ("long_cot",)

    call_fields = ("samples",)

    def calls(self, params: SelfConsistencyParams) -> int:
        return params.samples

    def generated(self, params: SelfConsistencyParams, cap: int) -> int:
        return params.samples * cap

    async def run(self, problem: Problem, ctx: RunContext[SelfConsistencyParams]) -> MethodResult:
        p = ctx.params
        solution, record = await _sample(problem, ctx, p.samples, await ctx.call_cap(problem),
                                         max(p.temperature, p.min_temperature))
        return MethodResult(solution=solution, ledger=ctx.ledger, record=record)

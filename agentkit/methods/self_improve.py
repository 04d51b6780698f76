"""Behavior-guided self-improvement and its critique-and-revise baseline ("Metacognitive Reuse" arXiv
2509.13237, section 4.2).

- ``self_improve``: the model answers (``attempts`` traces, concurrently), then acts as its own Strategist on
  those traces (reflect and extract, the reference never shown), and answers again with the behaviors it
  extracted in the BCI prompt: question and behaviors only, as the paper writes ``(B, Q) -> R2``. The
  behaviors form a per-question handbook; they are not stored unless the caller stores them.
- ``critique_revise``: the model answers (``attempts`` traces, the same seeds as self-improvement's), then is
  shown its answer(s) and asked to critique and revise them (several in one call:
  ``critique_revise_many.txt``).

Both compose a Student (answers) and, for self-improvement, a Strategist (curation), attached to the run's bus
for its length. Both give the answering calls the same ``max_tokens`` and seed, so they compare at the same
budget; the ledger holds every call (attempts and curation included, which the paper's token axis leaves out)
and the result's ``solution`` carries ``B_seq`` / ``B_total`` of the whole method. Registered as
``self-improve`` and ``critique-revise``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit._behavior import Behavior
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import AnswerRequest, BehaviorProposal, CurateRequest, Problem, Solution, TokenUsage
from agentkit.registry import (
    DEFAULT_MAX_TOKENS,
    MAX_CALL_TOKENS,
    Method,
    MethodParams,
    MethodRecord,
    MethodResult,
    RunContext,
)
from agentkit.roles import Strategist, Student, ask, attached

from ._common import numbered_solutions

__all__ = ["CritiqueRevise", "CritiqueReviseParams", "Improvement", "ImprovementRecord", "SelfImprove",
           "SelfImproveParams", "critique_revise", "self_improve"]


class Improvement(BaseModel):
    """The second answer and what led to it."""

    model_config = ConfigDict(frozen=True)

    solution: Solution
    """The final (second) answer; its ``usage``, ``b_seq`` and ``b_total`` cover the whole method (the final
    call alone is in the ledger as the ``final`` call: ``ledger.answer_output_tokens``)."""
    attempts: tuple[Solution, ...]
    """The first answers."""
    behaviors: dict[str, str] = {}
    """The per-question behaviors (self-improvement only)."""
    dropped: tuple[tuple[str, str], ...] = ()
    """Extracted entries that were rejected, with reasons."""

    def record(self) -> ImprovementRecord:
        return ImprovementRecord(attempt_answers=[a.answer for a in self.attempts], behaviors=self.behaviors,
                                 dropped=[list(d) for d in self.dropped], attempts=[a.text for a in self.attempts])


class ImprovementRecord(MethodRecord):
    """What self-improvement and critique-and-revise record: the first answers, the behaviors curated from them
    (self-improvement) and the entries dropped; the first answers' texts in the trace."""

    trace_fields = ("attempts",)

    attempt_answers: list[str | None]
    behaviors: dict[str, str] = Field(default_factory=dict)
    dropped: list[list[str]] = Field(default_factory=list)
    attempts: list[str] = Field(default_factory=list)
    """The first answers' texts."""


def _attempt(problem: Problem, ctx: RunContext[Any], max_tokens: int | None, temperature: float, branch: int
             ) -> AnswerRequest:
    return problem.derive(AnswerRequest, sender="self-improve", problem=problem, max_tokens=max_tokens,
                          temperature=temperature, seed=ctx.derive_seed(problem.problem_id, "attempt", branch), round=1,
                          branch=branch, final=False, method="attempt")


def _finish(solution: Solution, ledger: Ledger, method: str) -> Solution:
    """The final answer, with usage and budgets of the whole method (attempts and curation included)."""
    usage = TokenUsage(input_tokens=ledger.input_tokens, output_tokens=ledger.output_tokens, calls=ledger.calls,
                       cached=solution.usage.cached)
    return solution.with_(method=method, b_seq=ledger.b_seq, b_total=ledger.b_total, usage=usage)


async def self_improve(
    problem: Problem,
    backend: Backend,
    *,
    attempts: int = 1,
    ledger: Ledger | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    curation_tokens: int = 1024,
    max_behaviors: int = 5,
    temperature: float = 0.0,
    seed: int | None = 0,
    bus: Bus | None = None,
) -> Improvement:
    """Answer, curate behaviors from the model's own attempts, answer again with them."""
    if attempts < 1:
        raise ConfigError(f"attempts must be >= 1, got {attempts}")
    started, ctx = RunContext.begin(problem, backend, MethodParams(temperature=temperature), ledger=ledger, seed=seed,
                                    bus=bus)
    return await _self_improve(started, ctx, attempts, max_tokens, curation_tokens, max_behaviors)


async def _self_improve(problem: Problem, ctx: RunContext[Any], attempts: int, max_tokens: int | None,
                        curation_tokens: int, max_behaviors: int) -> Improvement:
    temperature, ledger = ctx.params.temperature, ctx.ledger
    roles = [(Student(ctx.backend, ledger=ledger), attempts), (Strategist(ctx.backend, ledger=ledger), attempts)]
    async with attached(ctx.bus, problem.run_id, roles) as active:
        first = tuple(await asyncio.gather(*(
            ask(active, _attempt(problem, ctx, max_tokens, temperature, i), Solution) for i in range(attempts))))
        proposals = await asyncio.gather(*(
            ask(active, problem.derive(
                CurateRequest, sender="self-improve", problem=problem, solution=s, max_tokens=curation_tokens,
                max_behaviors=max_behaviors, temperature=temperature, seed=ctx.seed, reveal_reference=False, round=2,
                branch=i), BehaviorProposal)
            for i, s in enumerate(first)))
        behaviors: dict[str, str] = {}
        dropped: list[tuple[str, str]] = []
        for proposal in proposals:
            for name, instruction in proposal.behaviors.items():
                behaviors.setdefault(name, instruction)
            dropped.extend(proposal.dropped)
        final = await ask(active, problem.derive(
            AnswerRequest, sender="self-improve", problem=problem, prompt="bci",
            behaviors=tuple(Behavior(name=n, instruction=i) for n, i in behaviors.items()), max_tokens=max_tokens,
            temperature=temperature, seed=ctx.seed, round=4, method="self-improve"), Solution)
    return Improvement(solution=_finish(final, ledger, "self-improve"), attempts=first, behaviors=behaviors,
                       dropped=tuple(dropped))


async def critique_revise(
    problem: Problem,
    backend: Backend,
    *,
    attempts: int = 1,
    ledger: Ledger | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    temperature: float = 0.0,
    seed: int | None = 0,
    bus: Bus | None = None,
) -> Improvement:
    """Answer (``attempts`` times, with self-improvement's seeds), then critique and revise the answers in one
    call (the paper's baseline for self-improvement)."""
    if attempts < 1:
        raise ConfigError(f"attempts must be >= 1, got {attempts}")
    started, ctx = RunContext.begin(problem, backend, MethodParams(temperature=temperature), ledger=ledger, seed=seed,
                                    bus=bus)
    return await _critique_revise(started, ctx, attempts, max_tokens)


async def _critique_revise(problem: Problem, ctx: RunContext[Any], attempts: int, max_tokens: int | None
                           ) -> Improvement:
    temperature = ctx.params.temperature
    async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), attempts)]) as active:
        first = tuple(await asyncio.gather(*(
            ask(active, _attempt(problem, ctx, max_tokens, temperature, i), Solution) for i in range(attempts))))
        if len(first) == 1:
            prompt, fields = "critique_revise", {"solution": first[0].text}
        else:
            prompt, fields = "critique_revise_many", {"count": str(len(first)), "solutions": numbered_solutions(first)}
        revised = await ask(active, problem.derive(
            AnswerRequest, sender="critique-revise", problem=problem, prompt=prompt, prompt_fields=fields,
            max_tokens=max_tokens, temperature=temperature, seed=ctx.seed, round=2), Solution)
    return Improvement(solution=_finish(revised, ctx.ledger, "critique-revise"), attempts=first)


class CritiqueReviseParams(MethodParams):
    attempts: int = Field(default=1, ge=1, le=64)
    """First answers (self-improvement's seeds), critiqued and revised together in one call."""


class SelfImproveParams(CritiqueReviseParams):
    attempts: int = Field(default=1, ge=1, le=64)
    """First answers the behaviors are curated from."""
    curation_tokens: int = Field(default=1024, ge=1, le=MAX_CALL_TOKENS)
    """Output cap of each reflect / extract call."""
    max_behaviors: int = Field(default=5, ge=1, le=50)


class SelfImprove(Method[SelfImproveParams]):
    name = "self-improve"
    summary = "answer, curate behaviors from the own attempts, answer again with them"
    params_model = SelfImproveParams
    record_model = ImprovementRecord
    enforces_budget = False
    templates = ("long_cot", "strategist_reflect", "strategist_extract", "bci")

    call_fields = ("attempts",)

    def calls(self, params: SelfImproveParams) -> int:
        return params.attempts + 1 + 2 * params.attempts  # attempts, a reflect and an extract each, the answer

    def generated(self, params: SelfImproveParams, cap: int) -> int:
        return (params.attempts + 1) * cap + 2 * params.attempts * params.curation_tokens

    async def run(self, problem: Problem, ctx: RunContext[SelfImproveParams]) -> MethodResult:
        # The budget caps each answering call as it caps long CoT; curation calls come on top (as in the paper).
        cap = await ctx.call_cap(problem)
        p = ctx.params
        improvement = await _self_improve(problem, ctx, p.attempts, cap, p.curation_tokens, p.max_behaviors)
        return MethodResult(solution=improvement.solution, ledger=ctx.ledger, record=improvement.record())


class CritiqueRevise(Method[CritiqueReviseParams]):
    name = "critique-revise"
    summary = "answer, then critique and revise the answer(s) (self-improvement's baseline)"
    params_model = CritiqueReviseParams
    record_model = ImprovementRecord
    enforces_budget = False
    templates = ("long_cot", "critique_revise", "critique_revise_many")

    call_fields = ("attempts",)

    def calls(self, params: CritiqueReviseParams) -> int:
        return params.attempts + 1

    def generated(self, params: CritiqueReviseParams, cap: int) -> int:
        return self.calls(params) * cap

    async def run(self, problem: Problem, ctx: RunContext[CritiqueReviseParams]) -> MethodResult:
        cap = await ctx.call_cap(problem)
        improvement = await _critique_revise(problem, ctx, ctx.params.attempts, cap)
        return MethodResult(solution=improvement.solution, ledger=ctx.ledger, record=improvement.record())

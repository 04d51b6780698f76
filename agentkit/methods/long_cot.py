"""The long chain-of-thought baseline: one call, the whole budget to a single trace.

It is the reference point of both papers (the single-pass baseline PDR is compared with at matched
``B_seq``, and the non-behavior-conditioned baseline of BCI). The call is the Student's (an ``AnswerRequest``
to a Student attached for the run); registered as ``long-cot``, a baseline.
"""

from __future__ import annotations

from typing import Any

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.ledger import Ledger
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.registry import DEFAULT_MAX_TOKENS, Method, MethodParams, MethodResult, RunContext
from agentkit.roles import Student, ask, attached

__all__ = ["LongCoT", "long_cot"]


async def long_cot(problem: Problem, backend: Backend, *, ledger: Ledger | None = None,
                   max_tokens: int | None = DEFAULT_MAX_TOKENS, temperature: float = 0.0, seed: int | None = 0,
                   bus: Bus | None = None) -> Solution:
    """Solve ``problem`` with one chain-of-thought call; the ledger records it as the final answer."""
    started, ctx = RunContext.begin(problem, backend, MethodParams(), ledger=ledger, seed=seed, bus=bus)
    return await _answer(started, ctx, max_tokens, temperature)


async def _answer(problem: Problem, ctx: RunContext[Any], max_tokens: int | None,
                  temperature: float) -> Solution:
    async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), 1)]) as active:
        return await ask(active, problem.derive(
            AnswerRequest, sender="long-cot", problem=problem, max_tokens=max_tokens, temperature=temperature,
            seed=ctx.seed, method="long-cot"), Solution)


class LongCoT(Method[MethodParams]):
    name = "long-cot"
    summary = "one chain of thought with the whole budget (the baseline)"
    baseline = True
    params_model = MethodParams
    templates = ("long_cot",)

    async def run(self, problem: Problem, ctx: RunContext[MethodParams]) -> MethodResult:
        solution = await _answer(problem, ctx, await ctx.call_cap(problem), ctx.params.temperature)
        return MethodResult(solution=solution, ledger=ctx.ledger)

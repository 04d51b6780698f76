"""The long chain-of-thought baseline: one call, the whole budget to a single trace.

It is the reference point of both papers (the single-pass baseline PDR is compared with at matched
``B_seq``, and the non-behavior-conditioned baseline of BCI). The call is the Student's (an ``AnswerRequest``
to a Student attached for the run); registered as ``long-cot``.
"""

from __future__ import annotations

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.ledger import Ledger
from agentkit.memory.store import BehaviorStore
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.registry import Method, MethodParams, MethodResult
from agentkit.roles import Student, ask, attached
from agentkit.roles.student import solution_from_call

from ._common import budget_ledger, single_call_tokens, start_run

__all__ = ["LongCoT", "long_cot", "solution_from_call"]


async def long_cot(problem: Problem, backend: Backend, *, ledger: Ledger | None = None, max_tokens: int | None = 1024,
                   temperature: float = 0.0, seed: int | None = 0, bus: Bus | None = None) -> Solution:
    """Solve ``problem`` with one chain-of-thought call; the ledger records it as the final answer."""
    problem, ledger = start_run(problem, ledger)
    async with attached(bus, problem.run_id, [(Student(backend, ledger=ledger), 1)]) as active:
        return await ask(active, problem.derive(
            AnswerRequest, sender="long-cot", problem=problem, max_tokens=max_tokens, temperature=temperature,
            seed=seed, method="long-cot"), Solution)


class LongCoT(Method):
    name = "long-cot"
    summary = "one chain of thought with the whole budget (the baseline)"
    templates = ("long_cot",)

    async def run(self, problem: Problem, backend: Backend, *, params: MethodParams | None = None,
                  budget: int | None = None, seed: int | None = 0, handbook: BehaviorStore | None = None,
                  bus: Bus | None = None, ledger: Ledger | None = None) -> MethodResult:
        p = self.coerce(params)
        ledger = budget_ledger(budget, ledger)
        solution = await long_cot(problem, backend, ledger=ledger, max_tokens=await single_call_tokens(backend, problem, p, budget),
                                  temperature=p.temperature, seed=seed, bus=bus)
        return MethodResult(solution=solution, ledger=ledger)



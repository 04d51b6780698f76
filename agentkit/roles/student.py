"""The Student role: answers a run's ``AnswerRequest`` messages, one answering call each (``steps.answer``).

The request names the prompt template and its fields, so the Student answers with plain chain of thought
(``long_cot``), behavior-conditioned inference (``bci``: behaviors in context, "Metacognitive Reuse" arXiv
2509.13237, section 4.1), critique-and-revise, aggregation or any template a method brings, without knowing
which method asked. Attached for one run (by a method: ``attach(bus, run_id=...)``) it charges the run's
ledger; attached for everyone it gives each request a ledger of its own. Running whole methods for callers
(``SolveRequest``) is the method layer's job: ``agentkit.methods.MethodServer``.
"""

from __future__ import annotations

from agentkit.messages import AnswerRequest, Solution

from ._base import Role
from .steps import answer

__all__ = ["Student"]


class Student(Role):
    """Answers ``AnswerRequest`` messages (see the module doc); a method attaches ``Student(backend,
    ledger=run_ledger)`` with its ``run_id``."""

    name = "student"
    request_type = AnswerRequest

    async def handle(self, request: AnswerRequest) -> Solution:
        solution = await answer(
            request.problem, self.backend, ledger=self.ledger_for(request), prompt=request.prompt,
            prompt_fields=request.prompt_fields, behaviors=request.behaviors, max_tokens=request.max_tokens,
            temperature=request.temperature, seed=request.seed, round=request.round, branch=request.branch,
            final=request.final, sender=self.name, method=request.method, parent=request)
        return solution if solution.parent_id == request.id else solution.with_(parent_id=request.id)

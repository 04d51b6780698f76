"""The Teacher role ("Metacognitive Reuse" arXiv 2509.13237, LLM B): writes behavior-conditioned answers
that become BC-SFT training targets.

Its model step (``teach``) answers a problem with the behaviors in context (the paper's BCI prompt, through
the Student's answering call ``agentkit.roles.student.answer``) and, with ``plain=True``, answers the same
problem at the same budget and seed without them (the plain-SFT twin). ``Teacher`` answers ``TeachRequest``
with a ``TeachResult``. Exporting them as chat data, without the behaviors in the student's prompt, is
``agentkit.pipelines.bc_sft``'s job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from agentkit._behavior import Behavior, as_behaviors
from agentkit.backends.base import Backend
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import Problem, Solution, TeachRequest, TeachResult

from ._base import Role
from .steps import answer

__all__ = ["Teacher", "teach"]


async def teach(problem: Problem, backend: Backend, behaviors: Sequence[Behavior] | Mapping[str, str], *,
                plain: bool = True, max_tokens: int | None = 1024, temperature: float = 0.0,
                seed: int | None = 0) -> TeachResult:
    """The Teacher's behavior-conditioned answer (and, with ``plain``, its ordinary answer) to ``problem``;
    each answer has a ledger of its own."""
    chosen = as_behaviors(behaviors)
    if not chosen:
        raise ConfigError("teach() needs at least one behavior (the plain answer alone is ordinary SFT data)")

    def one(given: tuple[Behavior, ...], method: str) -> Coroutine[Any, Any, Solution]:
        return answer(problem, backend, ledger=Ledger(run_id=problem.run_id), behaviors=given, method=method,
                      prompt="bci" if given else "long_cot",
                      max_tokens=max_tokens, temperature=temperature, seed=seed, role="teacher", sender="teacher")

    jobs = [one(chosen, "teacher-bc")] + ([one((), "teacher-plain")] if plain else [])
    answers = await asyncio.gather(*jobs)
    return problem.derive(TeachResult, sender="teacher", problem_id=problem.problem_id, conditioned=answers[0],
                          plain=answers[1] if plain else None)


class Teacher(Role):
    """Subscribe with ``Teacher(backend).attach(bus)``; then ``bus.request(TeachRequest(...), TeachResult)``."""

    name = "teacher"
    request_type = TeachRequest
    default_concurrency = 4

    async def handle(self, request: TeachRequest) -> TeachResult:
        result = await teach(request.problem, self.backend, request.behaviors, plain=request.plain,
                             max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed)
        return result.with_(parent_id=request.id, run_id=request.run_id)

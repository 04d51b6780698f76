"""The Teacher role ("Metacognitive Reuse" arXiv 2509.13237, LLM B): writes behavior-conditioned answers
that become BC-SFT training targets.

Answers ``TeachRequest`` with a ``TeachResult``: the answer written with the request's behaviors in context
(the paper's BCI prompt) and, with ``plain=True``, the ordinary answer to the same problem at the same budget
and seed (the plain-SFT twin). Exporting them as chat data, without the behaviors in the student's prompt, is
``agentkit.methods.bc_sft``'s job.
"""

from __future__ import annotations

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus, Subscription
from agentkit.messages import TeachRequest, TeachResult

__all__ = ["Teacher"]


class Teacher:
    """Subscribe with ``Teacher(backend).attach(bus)``; then ``bus.request(TeachRequest(...), TeachResult)``."""

    name = "teacher"

    def __init__(self, backend: BaseBackend) -> None:
        self.backend = backend

    def attach(self, bus: Bus, *, concurrency: int = 4) -> Subscription:
        return bus.subscribe(TeachRequest, self.handle, name=self.name, concurrency=concurrency)

    async def handle(self, request: TeachRequest) -> TeachResult:
        from agentkit.methods.bc_sft import teach

        result = await teach(request.problem, self.backend, request.behaviors, plain=request.plain,
                             max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed)
        return result.with_(parent_id=request.id, run_id=request.run_id)

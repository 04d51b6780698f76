"""The Strategist role ("Metacognitive Reuse" arXiv 2509.13237, LLM A): solve, reflect, extract behaviors.

Answers ``CurateRequest`` with a ``BehaviorProposal`` (only entries that passed ``parse_behaviors``; the
rejected ones with their reasons in ``dropped``). On the way it publishes the ``Solution`` it reflected on
(when it solved the problem itself) and its ``Reflection``, so a ``Recorder`` keeps the whole trace. The
proposal's ``usage`` is the curation's token cost; storing is the caller's job (``build_handbook``), so a
Strategist can feed any handbook, or none.
"""

from __future__ import annotations

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus, Subscription
from agentkit.ledger import Ledger
from agentkit.messages import BehaviorProposal, CurateRequest

__all__ = ["Strategist"]


class Strategist:
    """Subscribe with ``Strategist(backend).attach(bus)``; then ``bus.request(CurateRequest(...), BehaviorProposal)``."""

    name = "strategist"

    def __init__(self, backend: BaseBackend) -> None:
        self.backend = backend
        self.bus: Bus | None = None

    def attach(self, bus: Bus, *, concurrency: int = 4) -> Subscription:
        self.bus = bus
        return bus.subscribe(CurateRequest, self.handle, name=self.name, concurrency=concurrency)

    async def handle(self, request: CurateRequest) -> BehaviorProposal:
        from agentkit.methods.curation import curate

        curation = await curate(
            request.problem, self.backend, solution=request.solution, ledger=Ledger(run_id=request.run_id),
            max_tokens=request.max_tokens, max_behaviors=request.max_behaviors, temperature=request.temperature,
            seed=request.seed, reveal_reference=request.reveal_reference, sender=self.name)
        if self.bus is not None:
            if request.solution is None:
                await self.bus.publish(curation.solution.with_(run_id=request.run_id))
            await self.bus.publish(curation.reflection.with_(run_id=request.run_id))
        return curation.proposal.with_(parent_id=request.id, run_id=request.run_id)

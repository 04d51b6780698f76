"""The Student role: answers ``SolveRequest`` messages on the bus with ``Solution`` messages.

It owns a backend; each request gets its own ``Ledger`` (budget per problem), and the reply carries the
ledger's ``B_seq`` / ``B_total``. Methods beyond ``long-cot`` plug in with their issues.
"""

from __future__ import annotations

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus, Subscription
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import Solution, SolveRequest
from agentkit.methods.long_cot import long_cot

__all__ = ["Student"]


class Student:
    """Subscribe with ``Student(backend).attach(bus)``; then ``bus.request(SolveRequest(...), Solution)``."""

    name = "student"

    def __init__(self, backend: BaseBackend, *, max_tokens: int = 1024, queue_size: int | None = None) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.queue_size = queue_size
        self.ledgers: dict[str, Ledger] = {}
        """The ledger of each handled request, by request id (for callers that want every call)."""

    def attach(self, bus: Bus, *, concurrency: int = 1) -> Subscription:
        """Subscribe to ``SolveRequest``; up to ``concurrency`` requests are solved at once."""
        return bus.subscribe(SolveRequest, self.handle, name=self.name, queue_size=self.queue_size,
                             concurrency=concurrency)

    async def handle(self, request: SolveRequest) -> Solution:
        if request.method != "long-cot":
            raise ConfigError(f"the Student knows method 'long-cot', not {request.method!r}")
        ledger = Ledger(run_id=request.run_id)
        self.ledgers[request.id] = ledger
        solution = await long_cot(
            request.problem, self.backend, ledger=ledger, max_tokens=request.max_tokens or self.max_tokens,
            temperature=request.temperature, seed=request.seed, sender=self.name,
        )
        return solution.with_(parent_id=request.id, run_id=request.run_id)

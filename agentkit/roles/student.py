"""The Student role: answers ``SolveRequest`` messages on the bus with ``Solution`` messages.

Methods: ``long-cot`` (one plain chain-of-thought call), ``bci`` (behaviors in context: the request's, or the
top ``k`` retrieved from the Student's ``handbook``; citations and usage recorded), ``self-improve``
(behaviors curated from its own first attempt, then answered again with them) and ``critique-revise`` (its
first attempt critiqued and revised). Each request gets its own ``Ledger``; the reply carries ``B_seq`` /
``B_total`` of everything the method spent, and for ``bci`` the behaviors given and cited.
"""

from __future__ import annotations

from typing import Any

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus, Subscription
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import Solution, SolveRequest
from agentkit.methods.bci import RETRIEVALS, bci
from agentkit.methods.long_cot import long_cot
from agentkit.methods.self_improve import critique_revise, self_improve

__all__ = ["METHODS", "Student"]

METHODS: tuple[str, ...] = ("long-cot", "bci", "self-improve", "critique-revise")


class Student:
    """Subscribe with ``Student(backend).attach(bus)``; then ``bus.request(SolveRequest(...), Solution)``.

    Args:
        handbook: a ``BehaviorStore`` for ``bci`` requests that bring no behaviors of their own.
        k, retrieval: how many behaviors to retrieve and how (``embedding``, ``topic`` or ``both``).
        keep_ledgers: keep each request's ``Ledger`` in ``ledgers`` (by request id) for callers that want
            every call; off by default so a long-lived Student does not grow.
    """

    name = "student"

    def __init__(self, backend: BaseBackend, *, max_tokens: int = 1024, queue_size: int | None = None,
                 handbook: Any = None, k: int = 8, retrieval: str = "embedding", keep_ledgers: bool = False) -> None:
        if retrieval not in RETRIEVALS:
            raise ConfigError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
        self.backend = backend
        self.max_tokens = max_tokens
        self.queue_size = queue_size
        self.handbook = handbook
        self.k = k
        self.retrieval = retrieval
        self.keep_ledgers = keep_ledgers
        self.ledgers: dict[str, Ledger] = {}
        """The ledger of each handled request, by request id (with ``keep_ledgers``)."""

    def attach(self, bus: Bus, *, concurrency: int = 1) -> Subscription:
        """Subscribe to ``SolveRequest``; up to ``concurrency`` requests are solved at once."""
        return bus.subscribe(SolveRequest, self.handle, name=self.name, queue_size=self.queue_size,
                             concurrency=concurrency)

    async def handle(self, request: SolveRequest) -> Solution:
        if request.method not in METHODS:
            raise ConfigError(f"the Student knows methods {', '.join(METHODS)}, not {request.method!r}")
        ledger = Ledger(run_id=request.run_id)
        if self.keep_ledgers:
            self.ledgers[request.id] = ledger
        common: dict[str, Any] = {"ledger": ledger, "max_tokens": request.max_tokens or self.max_tokens,
                                  "temperature": request.temperature, "seed": request.seed}
        problem = request.problem
        if request.method == "long-cot":
            solution = await long_cot(problem, self.backend, sender=self.name, **common)
        elif request.method == "bci":
            if not request.behaviors and self.handbook is None:
                raise ConfigError("a bci request needs behaviors, or a Student with a handbook to retrieve them")
            solution = await bci(problem, self.backend, behaviors=request.behaviors or None, handbook=self.handbook,
                                 k=request.k or self.k, retrieval=self.retrieval, sender=self.name, **common)
        elif request.method == "self-improve":
            solution = (await self_improve(problem, self.backend, **common)).solution
        else:
            solution = (await critique_revise(problem, self.backend, **common)).solution
        return solution.with_(parent_id=request.id, run_id=request.run_id, sender=self.name)

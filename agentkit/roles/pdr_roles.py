"""The Refiner and Distiller roles: PDR's draft and distill steps as bus handlers.

- ``Refiner`` answers ``RefineRequest`` with a ``Draft`` (round 1, no workspace: a plain solve; later rounds:
  the problem plus the workspace). Subscribed with ``concurrency=N`` so the M drafts of a round, one bus
  message each, run at once up to the backend's own limits (xllamacpp slots, vLLM batching, a pool of
  llama.cpp contexts).
- ``Distiller`` answers ``DistillRequest`` with a ``DistillResult`` (the next round's workspace or
  workspaces).

Both charge their calls to the ledger of the request's run, which the orchestrator registers in the shared
``ledgers`` mapping before it publishes (``agentkit.methods.pdr.pdr(..., bus=bus)`` does this).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus, Subscription
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import DistillRequest, DistillResult, Draft, RefineRequest

__all__ = ["Distiller", "Refiner"]


def _ledger(ledgers: MutableMapping[str, Ledger], run_id: str) -> Ledger:
    ledger = ledgers.get(run_id)
    if ledger is None:
        raise ConfigError(f"no ledger registered for run {run_id!r}; register one in the role's `ledgers` first")
    return ledger


class Refiner:
    """Writes drafts (``RefineRequest`` -> ``Draft``)."""

    name = "refiner"

    def __init__(self, backend: BaseBackend, ledgers: MutableMapping[str, Ledger]) -> None:
        self.backend = backend
        self.ledgers = ledgers

    def attach(self, bus: Bus, *, concurrency: int = 8) -> Subscription:
        """Handle the requests of the runs registered in ``ledgers`` (other Refiners on the bus take theirs)."""
        return bus.subscribe(RefineRequest, self.handle, name=self.name, concurrency=concurrency,
                             predicate=lambda request: request.run_id in self.ledgers)

    async def handle(self, request: RefineRequest) -> Draft:
        from agentkit.methods.pdr import write_draft

        draft = await write_draft(request, self.backend, _ledger(self.ledgers, request.run_id))
        return draft.with_(parent_id=request.id)


class Distiller:
    """Builds workspaces (``DistillRequest`` -> ``DistillResult``)."""

    name = "distiller"

    def __init__(self, backend: BaseBackend, ledgers: MutableMapping[str, Ledger]) -> None:
        self.backend = backend
        self.ledgers = ledgers

    def attach(self, bus: Bus, *, concurrency: int = 2) -> Subscription:
        """Handle the requests of the runs registered in ``ledgers`` (other Distillers take theirs)."""
        return bus.subscribe(DistillRequest, self.handle, name=self.name, concurrency=concurrency,
                             predicate=lambda request: request.run_id in self.ledgers)

    async def handle(self, request: DistillRequest) -> DistillResult:
        from agentkit.methods.pdr import distill

        workspaces = await distill(request, self.backend, _ledger(self.ledgers, request.run_id))
        return request.derive(DistillResult, sender=self.name, problem_id=request.problem.problem_id,
                              round=request.round, workspaces=tuple(workspaces))
